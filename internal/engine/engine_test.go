package engine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/hub"
)

func open(t *testing.T) *Engine {
	t.Helper()
	e, err := Open(context.Background(), Config{DataDir: t.TempDir()}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// TestReadyFlipsWhenTheServerStops: Ready (behind /readyz) fails while the
// embedded server is down.
func TestReadyFlipsWhenTheServerStops(t *testing.T) {
	e := open(t)
	ctx := context.Background()
	if err := e.Ready(ctx); err != nil {
		t.Fatalf("Ready on a fresh engine: %v", err)
	}
	if _, err := e.EnsureNamespace(ctx, "x", Retention{}); err != nil {
		t.Fatal(err)
	}
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for err = e.Ready(ctx); err == nil && time.Now().Before(deadline); err = e.Ready(ctx) {
		time.Sleep(10 * time.Millisecond)
	}
	if !errors.Is(err, hub.ErrUnavailable) {
		t.Fatalf("Ready after shutdown: %v, want ErrUnavailable", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, _, err := e.Publish(pctx, "x", &hub.Outgoing{Event: "e", Body: []byte(`{}`)}); !errors.Is(err, hub.ErrUnavailable) {
		t.Fatalf("publish with the engine down: %v, want ErrUnavailable", err)
	}
}

// TestEpochSurvivesRestart: the epoch is kept in the stream's metadata and
// sequences keep growing across a reopen of the same data dir.
func TestEpochSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	e, err := Open(ctx, Config{DataDir: dir}, logger)
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.EnsureNamespace(ctx, "n", Retention{})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := hub.EncodeBody("n", &hub.Outgoing{Event: "e", Rooms: []string{"r"}}, time.Now())
	p1, _, err := e.Publish(ctx, "n", &hub.Outgoing{Event: "e", Rooms: []string{"r"}, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	e2, err := Open(ctx, Config{DataDir: dir}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	st2, err := e2.EnsureNamespace(ctx, "n", Retention{})
	if err != nil {
		t.Fatal(err)
	}
	if st2.Epoch != st.Epoch || st2.Last != p1.Seq {
		t.Fatalf("after reopen: epoch %s last %d, want %s and %d", st2.Epoch, st2.Last, st.Epoch, p1.Seq)
	}
	p2, _, err := e2.Publish(ctx, "n", &hub.Outgoing{Event: "e", Rooms: []string{"r"}, Body: body})
	if err != nil || p2.Seq <= p1.Seq {
		t.Fatalf("publish after reopen: %v %v (first %d)", p2, err, p1.Seq)
	}
}

// TestIdleGroupIsRemoved: a group nobody consumes for GroupIdle is removed
// (README "Queues", --group-idle).
func TestIdleGroupIsRemoved(t *testing.T) {
	e, err := Open(context.Background(), Config{DataDir: t.TempDir(), GroupIdle: time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	ctx := context.Background()
	if _, err := e.EnsureNamespace(ctx, "x", Retention{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.EnsureGroup(ctx, "x", "r", "g", hub.GroupConfig{}, hub.GroupConfig{AckWait: time.Second, MaxDeliver: 5, MaxInFlight: 10}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.GroupState(ctx, "x", "r", "g"); err != nil {
		t.Fatalf("GroupState of a new group: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := e.GroupState(ctx, "x", "r", "g")
		if errors.Is(err, hub.ErrNotFound) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GroupState 20s after the group went idle (GroupIdle 1s): %v, want ErrNotFound", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
