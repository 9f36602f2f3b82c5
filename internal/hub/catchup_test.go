package hub

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestResumeOnANodeBehind: a resume with a position this node has not
// applied yet (stored in the cluster, the node's live feed behind) waits
// for the feed and replays from the position — no reset, nothing sent
// twice; past CatchUpWait it is refused with ErrUnavailable (503); a
// position past the whole log still resets.
func TestResumeOnANodeBehind(t *testing.T) {
	newNS := func(t *testing.T, wait time.Duration) *fixture {
		t.Helper()
		log := newFakeLog(testEpoch)
		h := newHub(t, log, newFakeSessions(), Deps{}, Config{CatchUpWait: wait})
		ns, err := h.AddNamespace(context.Background(), "test", NamespaceConfig{})
		if err != nil {
			t.Fatal(err)
		}
		return &fixture{hub: h, ns: ns, log: log}
	}

	t.Run("waits for the feed, then replays from the position", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fx := newNS(t, 5*time.Second)
			for i := 0; i < 3; i++ {
				fx.publish(&Message{Event: "e", Rooms: []string{"r"}})
			}
			// Stored in the cluster, not yet applied here.
			behind := []*Message{fx.log.add(&Message{Event: "e", Rooms: []string{"r"}}), fx.log.add(&Message{Event: "e", Rooms: []string{"r"}})}
			sink := &fakeSink{}
			done := make(chan struct{})
			var st opened
			var err error
			go func() {
				defer close(done)
				st, err = openOn(fx.ns, context.Background(), OpenRequest{Rooms: []string{"r"}, Sink: sink, Resume: &Position{testEpoch, 4}})
			}()
			time.Sleep(time.Second) // fake time: Open waits for the feed
			synctest.Wait()
			select {
			case <-done:
				t.Fatalf("resume at 4 on a node at 3 returned before the feed caught up: %v", err)
			default:
			}
			for _, m := range behind {
				fx.ns.apply(m)
			}
			<-done
			if err != nil {
				t.Fatalf("resume at 4 on a node at 3: %v, want it to wait for the feed", err)
			}
			if st.Reset != "" || st.At.Seq != 4 || st.ReplayTo != 5 {
				t.Fatalf("resume: reset %q, at %d, replay to %d; want no reset, from 4 to 5", st.Reset, st.At.Seq, st.ReplayTo)
			}
			if err := st.Conn.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := sink.seqs(); len(got) != 1 || got[0] != 5 {
				t.Fatalf("replayed %v, want [5] (4 the client has)", got)
			}
		})
	})

	t.Run("refused when the feed does not catch up in time", func(t *testing.T) {
		fx := newNS(t, 100*time.Millisecond)
		fx.publish(&Message{Event: "e", Rooms: []string{"r"}})
		fx.log.add(&Message{Event: "e", Rooms: []string{"r"}})
		began := time.Now()
		_, err := openOn(fx.ns, context.Background(), OpenRequest{Rooms: []string{"r"}, Sink: &fakeSink{}, Resume: &Position{testEpoch, 2}})
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("resume at 2 on a node stuck at 1: %v, want ErrUnavailable", err)
		}
		if took := time.Since(began); took < 100*time.Millisecond {
			t.Errorf("refused after %s, want after CatchUpWait (100ms)", took)
		}
		if connCount(fx.ns) != 0 {
			t.Error("a refused resume left a connection registered")
		}
	})

	t.Run("a position past the whole log resets once the log says so three times", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fx := newNS(t, 5*time.Second)
			fx.publish(&Message{Event: "e", Rooms: []string{"r"}})
			began := time.Now()
			st, err := openOn(fx.ns, context.Background(), OpenRequest{Rooms: []string{"r"}, Sink: &fakeSink{}, Resume: &Position{testEpoch, 9}})
			if err != nil {
				t.Fatal(err)
			}
			if st.Reset == "" {
				t.Fatal("resume past the log: no reset")
			}
			if took := time.Since(began); took != time.Duration(aheadChecks-1)*aheadEvery {
				t.Errorf("reset after %s (fake time), want %s: three answers of the log, not CatchUpWait", took, time.Duration(aheadChecks-1)*aheadEvery)
			}
		})
	})

	t.Run("a stale answer of the log does not reset", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fx := newNS(t, 5*time.Second)
			fx.publish(&Message{Event: "e", Rooms: []string{"r"}})
			// The log's last answer is stale (a leader just continued):
			// the message at 2 is stored a moment later, and applied.
			go func() {
				time.Sleep(300 * time.Millisecond)
				fx.publish(&Message{Event: "e", Rooms: []string{"r"}})
			}()
			st, err := openOn(fx.ns, context.Background(), OpenRequest{Rooms: []string{"r"}, Sink: &fakeSink{}, Resume: &Position{testEpoch, 2}})
			if err != nil {
				t.Fatal(err)
			}
			if st.Reset != "" || st.At.Seq != 2 {
				t.Fatalf("resume at 2 while the log first said 1: reset %q at %d, want no reset, at 2", st.Reset, st.At.Seq)
			}
		})
	})
}
