package hub

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Sessions at their edges: saves that honour their deadline, saves that
// fail, the recovery window's last instant, a session given back.

// strictSessions is a fakeSessions whose Save honours its context, or
// fails with err.
type strictSessions struct {
	*fakeSessions
	mu  sync.Mutex
	err error
}

func (s *strictSessions) Save(ctx context.Context, key string, sess Session) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.fakeSessions.Save(ctx, key, sess)
}

func newSessionsFixture(t *testing.T, cfg NamespaceConfig, logger *writerLogger) (*fixture, *strictSessions) {
	t.Helper()
	log, sess := newFakeLog(testEpoch), &strictSessions{fakeSessions: newFakeSessions()}
	deps := Deps{Log: log, Sessions: sess, Logger: discard()}
	if logger != nil {
		deps.Logger = slogTo(logger)
	}
	h, err := New(deps, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := h.AddNamespace(ctx, "test", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{hub: h, ns: ns, log: log, sess: sess.fakeSessions}, sess
}

type writerLogger = lockedWriter

// TestSessionSavesReachTheStore: the live session saved at open and at a
// join, the session kept at the stream's end, each within its deadline.
func TestSessionSavesReachTheStore(t *testing.T) {
	fx, _ := newSessionsFixture(t, NamespaceConfig{}, nil)
	c, _ := fx.connect(t, "a")
	key := sessionKey("test", tokenHash(c.Token))
	got := func() Session {
		fx.sess.mu.Lock()
		defer fx.sess.mu.Unlock()
		return fx.sess.m[key]
	}
	if s := got(); !s.Live || s.ID != c.ID || len(s.Rooms) != 1 {
		t.Fatalf("session at open: %+v, want live, in a", s)
	}
	if _, err := join(fx.ns, c, "b"); err != nil {
		t.Fatal(err)
	}
	if s := got(); len(s.Rooms) != 2 {
		t.Fatalf("session after a join: %+v, want rooms a and b", s)
	}
	if err := disconnect(c, true); err != nil {
		t.Fatal(err)
	}
	if s := got(); s.Live || s.ID != c.ID || len(s.Rooms) != 2 {
		t.Fatalf("session at the end: %+v, want kept, not live, with a and b", s)
	}
}

// TestFailedSessionSavesAreLoggedOnceAMinute: a live session that cannot
// be saved leaves the connection working; failures are logged at most
// once a minute, with how many there were.
func TestFailedSessionSavesAreLoggedOnceAMinute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := &lockedWriter{}
		fx, sess := newSessionsFixture(t, NamespaceConfig{}, logs)
		sess.err = errors.New("store down")
		c, sink := fx.connect(t, "a") // one failure: logged
		for _, room := range []string{"b", "c"} {
			time.Sleep(time.Second)
			if _, err := join(fx.ns, c, room); err != nil { // two more, within the minute: counted
				t.Fatal(err)
			}
		}
		if n := strings.Count(logs.String(), "save live sessions"); n != 1 || !strings.Contains(logs.String(), "failed=1") {
			t.Fatalf("log after three failures in two seconds:\n%s", logs)
		}
		time.Sleep(time.Minute - 2*time.Second) // a minute after the one logged
		if _, err := join(fx.ns, c, "d"); err != nil {
			t.Fatal(err)
		}
		if out := logs.String(); strings.Count(out, "save live sessions") != 2 || !strings.Contains(out, "failed=3") || !strings.Contains(out, "store down") {
			t.Fatalf("log a minute later:\n%s", out)
		}
		if sink.closeErr() != nil {
			t.Fatalf("the connection closed: %v", sink.closeErr())
		}
	})
}

// TestRecoveryWindowLastInstant: a session is restored up to its recovery
// window's last instant, not after.
func TestRecoveryWindowLastInstant(t *testing.T) {
	for _, c := range []struct {
		age      time.Duration
		restored bool
	}{{time.Minute, true}, {time.Minute + time.Nanosecond, false}} {
		synctest.Test(t, func(t *testing.T) {
			fx := newFixture(t, NamespaceConfig{RecoveryWindow: time.Minute})
			token, old := newID(), ConnID(newID())
			if err := fx.sess.Save(ctx, sessionKey("test", tokenHash(token)), Session{NS: "test", ID: old, Saved: time.Now()}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(c.age)
			st, err := openOn(fx.ns, ctx, OpenRequest{Token: token, Resume: &Position{testEpoch, 0}, Sink: &fakeSink{}})
			if err != nil || st.Restored != c.restored || (st.Conn.ID == old) != c.restored {
				t.Fatalf("after %v: restored %v id %s (%v), want restored %v", c.age, st.Restored, st.Conn.ID, err, c.restored)
			}
		})
	}
}

// TestFailedResumeGivesTheSessionBack: a resume that takes its session and
// then fails (the log cannot say whether messages were lost) gives the
// session back as it was, so that the next attempt can restore it.
func TestFailedResumeGivesTheSessionBack(t *testing.T) {
	fx, _ := newSessionsFixture(t, NamespaceConfig{}, nil)
	token, old := newID(), ConnID(newID())
	key := sessionKey("test", tokenHash(token))
	saved := Session{NS: "test", ID: old, Rooms: map[string]uint64{"a": 0}, Saved: time.Now()}
	if err := fx.sess.Save(ctx, key, saved); err != nil {
		t.Fatal(err)
	}
	fx.log.gapErr = ErrUnavailable
	if _, err := openOn(fx.ns, ctx, OpenRequest{Token: token, Resume: &Position{testEpoch, 0}, Sink: &fakeSink{}}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("resume with the log failing: %v", err)
	}
	fx.sess.mu.Lock()
	back, ok := fx.sess.m[key]
	fx.sess.mu.Unlock()
	if !ok || back.ID != old || back.Rooms["a"] != 0 || len(back.Rooms) != 1 {
		t.Fatalf("session after the failed resume: %+v (kept %v), want it back", back, ok)
	}
	fx.log.gapErr = nil
	st, err := openOn(fx.ns, ctx, OpenRequest{Token: token, Resume: &Position{testEpoch, 0}, Sink: &fakeSink{}})
	if err != nil || !st.Restored || st.Conn.ID != old {
		t.Fatalf("the next resume: %+v, %v; want %s restored", st, err, old)
	}
}
