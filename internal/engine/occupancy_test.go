package engine

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestOccupancyOneAnnouncementPerChange: evaluators racing on the same room
// (several nodes, or a retry) announce each change with the same id, so
// the outbox stores it once, and record it once.
func TestOccupancyOneAnnouncementPerChange(t *testing.T) {
	e := open(t, Config{})
	ctx := context.Background()
	out, err := e.OpenOutbox(ctx, OutboxConfig{})
	if err != nil {
		t.Fatal(err)
	}
	occ, err := e.OpenOccupancy(ctx, OccupancyConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var ids []string
	announce := func(ctx context.Context, ns, room string, occupied bool, id string, at time.Time) error {
		mu.Lock()
		ids = append(ids, id)
		mu.Unlock()
		b, _ := json.Marshal(map[string]any{"room": room, "occupied": occupied})
		return out.Enqueue(ctx, "ep", id, b)
	}
	const ns, room = "chat", "orders.eu:1" // a room with characters keys may not hold
	race := func() {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- occ.settle(ctx, ns, room, time.Now(), announce)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("settle: %v", err)
			}
		}
	}
	stored := func() uint64 {
		t.Helper()
		info, err := out.stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	b, _ := json.Marshal(roomRecord{NS: ns, Room: room})
	if _, err := occ.kv.Put(ctx, countKey(ns, room, "n1"), b); err != nil {
		t.Fatal(err)
	}
	race()
	if n := stored(); n != 1 {
		t.Fatalf("occupied: %d webhooks stored, want 1", n)
	}
	occupied, announced, _, err := occ.read(ctx, ns, room)
	if err != nil || !occupied || !announced {
		t.Fatalf("after occupied: members %v, announced %v (%v); want both", occupied, announced, err)
	}
	mu.Lock()
	first := ids[0]
	for _, id := range ids {
		if id != first {
			t.Errorf("one change announced as %s and %s", first, id)
		}
	}
	ids = nil
	mu.Unlock()

	race() // nothing changed: nothing announced
	if n := stored(); n != 1 {
		t.Fatalf("no change: %d webhooks stored, want still 1", n)
	}
	if err := occ.kv.Purge(ctx, countKey(ns, room, "n1")); err != nil {
		t.Fatal(err)
	}
	race()
	if n := stored(); n != 2 {
		t.Fatalf("vacated: %d webhooks stored, want 2", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ids) == 0 || ids[0] == first {
		t.Errorf("vacated announced as %v, want an id other than occupied's %s", ids, first)
	}
}

// TestOccupancyReapsANodeWithoutLease: the room keys of a node without a
// lease are removed and its rooms asked for evaluation; a node with a lease
// keeps its keys.
func TestOccupancyReapsANodeWithoutLease(t *testing.T) {
	e := open(t, Config{})
	ctx := context.Background()
	occ, err := e.OpenOccupancy(ctx, OccupancyConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"gone", "alive"} {
		b, _ := json.Marshal(roomRecord{NS: "chat", Room: "r-" + n})
		if _, err := occ.kv.Put(ctx, countKey("chat", "r-"+n, n), b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := occ.nodes.Put(ctx, "alive", []byte("now")); err != nil {
		t.Fatal(err)
	}
	occ.sweep(ctx) // asks for "gone" to be reaped (and not "alive")
	msg := fetchOne(t, occ.cons)
	if msg.Subject() != nodeReapSubject("gone") {
		t.Fatalf("asked %s, want the reaping of gone", msg.Subject())
	}
	occ.handle(ctx, msg, func(string) time.Duration { return 0 }, nil)
	if _, err := occ.kv.Get(ctx, countKey("chat", "r-gone", "gone")); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("the dead node's key: %v, want it removed", err)
	}
	if _, err := occ.kv.Get(ctx, countKey("chat", "r-alive", "alive")); err != nil {
		t.Errorf("the live node's key: %v, want it kept", err)
	}
	msg = fetchOne(t, occ.cons)
	var r roomRecord
	if err := json.Unmarshal(msg.Data(), &r); err != nil || msg.Subject() != roomEvalSubject("chat", "r-gone") || r.Room != "r-gone" {
		t.Errorf("after the reap: %s %s, want the evaluation of r-gone", msg.Subject(), msg.Data())
	}
}

func fetchOne(t *testing.T, c jetstream.Consumer) jetstream.Msg {
	t.Helper()
	batch, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		return m
	}
	t.Fatal("no message within 5s")
	return nil
}

// TestOccupancyStoresItsKeysAgainAfterLosingItsLease: a node whose lease
// ran out (cut off from the engine) and whose keys were reaped stores them
// again once it sees its lease gone.
func TestOccupancyStoresItsKeysAgainAfterLosingItsLease(t *testing.T) {
	e := open(t, Config{NodeName: "n1"})
	ctx, cancel := context.WithCancel(context.Background())
	occ, err := e.OpenOccupancy(ctx, OccupancyConfig{NodeTTL: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = occ.Run(ctx, func(string) time.Duration { return time.Hour }, nil)
	}()
	defer func() { cancel(); <-done }()
	key := countKey("chat", "lobby", "n1")
	has := func() bool { _, err := occ.kv.Get(context.Background(), key); return err == nil }
	occ.Set("chat", "lobby", 2)
	deadline := time.Now().Add(10 * time.Second)
	for !has() {
		if time.Now().After(deadline) {
			t.Fatal("the room's key was not stored")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Reaped while cut off: lease and key gone.
	if err := occ.nodes.Purge(context.Background(), "n1"); err != nil {
		t.Fatal(err)
	}
	if err := occ.kv.Purge(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	for deadline = time.Now().Add(10 * time.Second); !has(); {
		if time.Now().After(deadline) {
			t.Fatal("the room's key was not stored again after the lease was lost")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := occ.nodes.Get(context.Background(), "n1"); err != nil {
		t.Errorf("the lease: %v, want it taken again", err)
	}
}

// TestOccupancyLogsTwoNodesSharingAName: a lease under this node's name
// written by another process is logged as an error.
func TestOccupancyLogsTwoNodesSharingAName(t *testing.T) {
	var buf syncBuf
	e, err := Open(context.Background(), Config{DataDir: t.TempDir(), NodeName: "twin"}, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	ctx, cancel := context.WithCancel(context.Background())
	occ, err := e.OpenOccupancy(ctx, OccupancyConfig{NodeTTL: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = occ.Run(ctx, func(string) time.Duration { return time.Hour }, nil)
	}()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(buf.String(), "another node uses this node's name"); {
		if time.Now().After(deadline) {
			t.Fatalf("no error logged for a shared name; log:\n%s", buf.String())
		}
		_, _ = occ.nodes.Put(context.Background(), "twin", []byte("another process"))
		time.Sleep(50 * time.Millisecond)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
