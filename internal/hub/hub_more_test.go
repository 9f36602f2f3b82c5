package hub

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// The hub's session refresher, fan-out counts, and the edges of names and
// encodings.

// TestRunRefreshesLiveSessions: Hub.Run saves every live connection's
// session, marked live and fresh, every third of the shortest recovery
// window (at least a second), until its context ends.
func TestRunRefreshesLiveSessions(t *testing.T) {
	for _, c := range []struct {
		window, every time.Duration
	}{
		{30 * time.Second, 10 * time.Second},
		{time.Second, time.Second}, // a third would be under a second
	} {
		synctest.Test(t, func(t *testing.T) {
			fx := newFixture(t, NamespaceConfig{RecoveryWindow: c.window})
			if _, err := fx.hub.AddNamespace(ctx, "slow", NamespaceConfig{RecoveryWindow: time.Hour}); err != nil {
				t.Fatal(err)
			}
			conn, _ := fx.connect(t, "lobby")
			saves := func() int {
				fx.sess.mu.Lock()
				defer fx.sess.mu.Unlock()
				return fx.sess.saves
			}
			base := saves()
			runCtx, stop := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				fx.hub.Run(runCtx)
				close(done)
			}()
			time.Sleep(c.every - time.Millisecond)
			synctest.Wait()
			if n := saves(); n != base {
				t.Fatalf("window %v: %d saves before %v", c.window, n-base, c.every)
			}
			time.Sleep(time.Millisecond)
			synctest.Wait()
			if n := saves(); n != base+1 {
				t.Fatalf("window %v: %d saves at %v, want 1", c.window, n-base, c.every)
			}
			time.Sleep(c.every)
			synctest.Wait()
			if n := saves(); n != base+2 {
				t.Fatalf("window %v: %d saves at 2×%v, want 2", c.window, n-base, c.every)
			}
			sess := fx.sess.all()
			if len(sess) != 1 || !sess[0].Live || sess[0].ID != conn.ID || !sess[0].Saved.Equal(time.Now()) {
				t.Fatalf("sessions %+v, want conn's, live, saved now", sess)
			}
			stop()
			<-done
		})
	}
}

// TestFanOutIsCounted: each message is counted once with the number of
// local connections it was handed to.
func TestFanOutIsCounted(t *testing.T) {
	m := &recMetrics{}
	fx := newFixture(t, NamespaceConfig{Metrics: m})
	a, _ := fx.connect(t, "r1", "r2")
	fx.connect(t, "r1")
	fx.connect(t)
	fx.publish(&Message{Event: "e", Rooms: []string{"r1", "r2"}}) // a once, b
	fx.publish(&Message{Event: "e", Rooms: []string{"r2"}})       // a
	fx.publish(&Message{Event: "e", To: a.ID})                    // a
	fx.publish(&Message{Event: "e"})                              // all three
	fx.publish(&Message{Event: "e", Rooms: []string{"none"}})     // nobody
	m.mu.Lock()
	defer m.mu.Unlock()
	if want := []int{2, 1, 1, 3, 0}; !equalInts(m.fanned, want) {
		t.Fatalf("fanned out to %v, want %v", m.fanned, want)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRoomNameCharacterEdges: the first and last character of each
// allowed range is allowed, those next to them are not.
func TestRoomNameCharacterEdges(t *testing.T) {
	for _, c := range "azAZ09_-:@=" {
		if !ValidRoom(string(c)) || !ValidRoom("x"+string(c)+"x") {
			t.Errorf("ValidRoom(%q) = false", c)
		}
	}
	for _, c := range "`{@[/;" {
		if c == '@' {
			continue
		}
		if ValidRoom(string(c)) {
			t.Errorf("ValidRoom(%q) = true", c)
		}
	}
}

// TestEventNoncharacterEdges: U+FDD0–U+FDEF are refused, their neighbours
// are not.
func TestEventNoncharacterEdges(t *testing.T) {
	for r, valid := range map[rune]bool{0xfdcf: true, 0xfdd0: false, 0xfdef: false, 0xfdf0: true} {
		if err := ValidEvent("a" + string(r)); (err == nil) != valid {
			t.Errorf("ValidEvent(a%U) = %v, want valid %v", r, err, valid)
		}
	}
}

// TestClipKeepsFortyCharacters: names quoted in errors are cut past 40
// characters, with an ellipsis.
func TestClipKeepsFortyCharacters(t *testing.T) {
	s40 := strings.Repeat("a", 40)
	if got := clip(s40); got != s40 {
		t.Errorf("clip of 40 characters = %q", got)
	}
	if got := clip(s40 + "b"); got != s40+"…" {
		t.Errorf("clip of 41 characters = %q", got)
	}
}

// TestEnvelopesAreBuiltInOneAllocation: WithID and GroupBody size their
// output once (they run for every stored message and group delivery).
func TestEnvelopesAreBuiltInOneAllocation(t *testing.T) {
	body := []byte(`{"ns":"test","room":"r","event":"e","from":null,"ts":"2030-01-02T03:04:05.123456789Z","data":{"a":[1,2,3]}}`)
	m := &Message{Pos: Position{Epoch: "0123456789abcdef", Seq: 1 << 40}}
	m.Body = WithID(body, m.Pos.String())
	ackID := strings.Repeat("a", idLen) + "." + strings.Repeat("b", 22)
	deadline := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)
	if n := testing.AllocsPerRun(100, func() { _ = WithID(body, m.Pos.String()) }); n != 2 { // the id's string, the body
		t.Errorf("WithID: %v allocations, want 2", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = GroupBody(m, ackID, 1000, deadline) }); n != 2 {
		t.Errorf("GroupBody: %v allocations, want 2", n)
	}
}

// TestMembersConnectedTogetherAreOrderedByID: members are listed oldest
// first, and those connected at the same instant by id.
func TestMembersConnectedTogetherAreOrderedByID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, NamespaceConfig{})
		for range 4 {
			fx.connect(t, "lobby") // the bubble's clock stands still: one instant
		}
		ms, err := fx.ns.Members(ctx, "lobby")
		if err != nil || len(ms) != 4 {
			t.Fatalf("Members = %v, %v", ms, err)
		}
		for i := 1; i < len(ms); i++ {
			if !ms[i-1].Connected.Equal(ms[i].Connected) || ms[i-1].ID >= ms[i].ID {
				t.Fatalf("members %v, want them by id", ms)
			}
		}
		time.Sleep(time.Second)
		late, _ := fx.connect(t, "lobby")
		if ms, _ := fx.ns.Members(ctx, "lobby"); ms[4].ID != late.ID {
			t.Fatalf("members %v, want the latest connection last", ms)
		}
	})
}

// TestHistoryPastRetentionIsTruncatedWithoutAGapQuery: `after` older than
// the log's first message is truncated on the log's state alone.
func TestHistoryPastRetentionIsTruncatedWithoutAGapQuery(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	for range 3 {
		fx.log.add(&Message{Event: "e", Rooms: []string{"lobby"}})
	}
	fx.log.retainFrom(3)      // one message left
	fx.log.gapErr = ErrClosed // Gap must not be asked
	page, err := fx.ns.History(ctx, "lobby", &Position{testEpoch, 1}, 10)
	if err != nil || !page.Truncated || len(page.Messages) != 1 || page.Messages[0].Pos.Seq != 3 {
		t.Fatalf("History after 1 = %+v, %v; want message 3, truncated", page, err)
	}
}
