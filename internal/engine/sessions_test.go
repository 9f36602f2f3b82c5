package engine

import (
	"context"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/hub"
)

// TestSessionSaveTakeCycles: a session saved is taken exactly once, cycle
// after cycle on the same key (as a client that reconnects again and again).
func TestSessionSaveTakeCycles(t *testing.T) {
	e := open(t, Config{})
	ctx := context.Background()
	for i := 0; i < 200; i++ {
		s := hub.Session{NS: "n", ID: "c", Rooms: map[string]uint64{"r": uint64(i)}, Saved: time.Now()}
		if err := e.Save(ctx, "n.k", s); err != nil {
			t.Fatal(err)
		}
		got, ok, err := e.Take(ctx, "n.k")
		if err != nil || !ok || got.Rooms["r"] != uint64(i) {
			t.Fatalf("cycle %d: take = %v %v %v", i, got, ok, err)
		}
		if _, ok, _ := e.Take(ctx, "n.k"); ok {
			t.Fatalf("cycle %d: taken twice", i)
		}
	}
}
