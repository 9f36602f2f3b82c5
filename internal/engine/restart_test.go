package engine

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/hub"
)

// TestLostSequencesAreNeverReused: after a JetStream restart the store may
// have forgotten messages the live feed already applied (their writes
// failed for lack of space). fillVoids takes their sequence numbers with
// void markers: the next message gets a new number, which the live feed
// applies, and no reader ever sees a void.
func TestLostSequencesAreNeverReused(t *testing.T) {
	e := open(t, Config{})
	ctx := context.Background()
	groupFixture(t, e, []string{"g"}, 2) // namespace x, room r: seqs 1 and 2
	var mu sync.Mutex
	var applied []uint64
	if err := e.Follow(ctx, "x", 0, func(m *hub.Message) {
		mu.Lock()
		applied = append(applied, m.Pos.Seq)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	appliedNow := func() []uint64 {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(applied)
	}
	waitFor(t, 5*time.Second, "the feed applied 1 and 2", func() bool { return len(appliedNow()) == 2 })

	// The feed had seen up to 5; the store kept 2.
	if err := e.fillVoids(ctx, map[string]uint64{"x": 5}); err != nil {
		t.Fatal(err)
	}
	st, err := e.State(ctx, "x")
	if err != nil || st.Last != 5 {
		t.Fatalf("state after filling: %+v %v, want last 5", st, err)
	}
	pos, _, err := e.Publish(ctx, "x", &hub.Outgoing{Rooms: []string{"r"}, Event: "e", Body: []byte(`{"n":"after"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if pos.Seq != 6 {
		t.Fatalf("the next message got sequence %d, want 6 (3 to 5 are taken)", pos.Seq)
	}
	waitFor(t, 5*time.Second, "the feed applied 6", func() bool { return len(appliedNow()) == 3 })
	if got := appliedNow(); !slices.Equal(got, []uint64{1, 2, 6}) {
		t.Fatalf("the feed applied %v, want [1 2 6]", got)
	}
	// Filling again up to what is stored does nothing.
	if err := e.fillVoids(ctx, map[string]uint64{"x": 6}); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.State(ctx, "x"); st.Last != 6 {
		t.Fatalf("a second fill moved the last sequence to %d", st.Last)
	}

	// Reads skip voids, whether they filter by subject or read everything.
	many := make([]string, maxFilterSubjects+1)
	for i := range many {
		many[i] = fmt.Sprintf("room%d", i)
	}
	many[0] = "r"
	for name, f := range map[string]hub.Filter{"room": {Rooms: []string{"r"}}, "whole namespace": {Rooms: many}} {
		var got []uint64
		if err := e.Read(ctx, "x", 1, 0, f, func(m *hub.Message) bool {
			got = append(got, m.Pos.Seq)
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, []uint64{1, 2, 6}) {
			t.Errorf("%s read %v, want [1 2 6]", name, got)
		}
	}
	// A consumer group never gets a void either.
	ds := fetchN(t, e, "g", 3)
	for i, want := range []uint64{1, 2, 6} {
		if ds[i].Msg.Pos.Seq != want {
			t.Errorf("group delivery %d: sequence %d, want %d", i, ds[i].Msg.Pos.Seq, want)
		}
	}
}

// TestRestartEndsPullsInFlight: a pull request in flight dies with
// JetStream; the pull returns when JetStream restarts, not after its
// heartbeat timeout (11 s with a 30 s wait), and the next pull gets the
// next message.
func TestRestartEndsPullsInFlight(t *testing.T) {
	e := open(t, Config{})
	ctx := context.Background()
	groupFixture(t, e, []string{"g"}, 0)
	g := hub.GroupKey{Room: "r", Name: "g"}
	done := make(chan error, 1)
	started := time.Now()
	go func() {
		done <- e.Pull(ctx, "x", g, 1, 30*time.Second, func(hub.Delivery) {})
	}()
	// The pull is waiting at the server once the consumer has a waiting
	// request.
	waitFor(t, 5*time.Second, "the pull waiting", func() bool {
		c, err := e.consumer(ctx, "x", g)
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumWaiting == 1
	})
	if err := e.restartJetStream(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the pull ended with %v, want nil (the caller pulls again)", err)
		}
	case <-time.After(8 * time.Second):
		t.Fatalf("the pull is still waiting %s after JetStream restarted", time.Since(started).Round(time.Millisecond))
	}
	if _, _, err := e.Publish(ctx, "x", &hub.Outgoing{Rooms: []string{"r"}, Event: "e", Body: []byte(`{"n":1}`)}); err != nil {
		t.Fatal(err)
	}
	if ds := fetchN(t, e, "g", 1); ds[0].Msg.Pos.Seq != 1 {
		t.Fatalf("after the restart the group got sequence %d, want 1", ds[0].Msg.Pos.Seq)
	}
}
