package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/hub"
)

// open opens an engine with cfg (a temp data dir unless set) and closes it
// when the test or benchmark ends.
func open(t testing.TB, cfg Config) *Engine {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	e, err := Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// TestReadyFlipsWhenTheServerStops: Ready (behind /readyz) fails while the
// embedded server is down.
func TestReadyFlipsWhenTheServerStops(t *testing.T) {
	e := open(t, Config{})
	ctx := context.Background()
	if err := e.Ready(ctx); err != nil {
		t.Fatalf("Ready on a fresh engine: %v", err)
	}
	if _, err := e.OpenNamespace(ctx, "x", hub.Retention{}); err != nil {
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
	st, err := e.OpenNamespace(ctx, "n", hub.Retention{})
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
	st2, err := e2.OpenNamespace(ctx, "n", hub.Retention{})
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
	e := open(t, Config{GroupIdle: time.Second})
	ctx := context.Background()
	if _, err := e.OpenNamespace(ctx, "x", hub.Retention{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.EnsureGroup(ctx, "x", hub.GroupKey{Room: "r", Name: "g"}, hub.GroupConfig{}, hub.GroupConfig{AckWait: time.Second, MaxDeliver: 5, MaxInFlight: 10}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.GroupState(ctx, "x", hub.GroupKey{Room: "r", Name: "g"}); err != nil {
		t.Fatalf("GroupState of a new group: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := e.GroupState(ctx, "x", hub.GroupKey{Room: "r", Name: "g"})
		if errors.Is(err, hub.ErrNotFound) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GroupState 20s after the group went idle (GroupIdle 1s): %v, want ErrNotFound", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSettleAllConfirmsEach: a batch of settles is confirmed delivery by
// delivery; a handle nothing consumes any more is an ErrUnavailable, not a
// confirmation; a malformed one is refused before anything is sent.
func TestSettleAllConfirmsEach(t *testing.T) {
	e := open(t, Config{})
	ctx := context.Background()
	groupFixture(t, e, []string{"g", "gone"}, 6)
	fetch := func(group string) []string {
		t.Helper()
		var replies []string
		for _, d := range fetchN(t, e, group, 6) {
			replies = append(replies, d.Handle)
		}
		return replies
	}

	replies := fetch("g")
	if st, err := e.GroupState(ctx, "x", hub.GroupKey{Room: "r", Name: "g"}); err != nil || st.Unacked != 6 {
		t.Fatalf("before the acks: in flight %d (%v), want 6", st.Unacked, err)
	}
	// Five of them, one given twice.
	done, err := e.Settle(ctx, append(replies[:5:5], replies[1]), hub.Ack, 0)
	if err != nil || !slices.Equal(done, []bool{true, true, true, true, true, true}) {
		t.Fatalf("SettleAll: %v, %v; want all confirmed", done, err)
	}
	if st, err := e.GroupState(ctx, "x", hub.GroupKey{Room: "r", Name: "g"}); err != nil || st.Unacked != 1 || st.AckFloor == 0 {
		t.Fatalf("after the acks: in flight %d, ack floor %d (%v), want 1 (the sixth) and > 0", st.Unacked, st.AckFloor, err)
	}
	// Settled again (a client retrying after a lost answer): still confirmed.
	if done, err := e.Settle(ctx, replies[:2], hub.Ack, 0); err != nil || !done[0] || !done[1] {
		t.Fatalf("SettleAll again: %v, %v", done, err)
	}

	if _, err := e.Settle(ctx, []string{replies[0], "$JS.ACK.*"}, hub.Ack, 0); !errors.Is(err, hub.ErrInvalid) {
		t.Fatalf("a wildcard handle: %v, want ErrInvalid", err)
	}

	gone := fetch("gone")
	if err := e.DeleteGroup(ctx, "x", hub.GroupKey{Room: "r", Name: "gone"}); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	done, err = e.Settle(sctx, gone, hub.Ack, 0)
	if !errors.Is(err, hub.ErrUnavailable) || slices.Contains(done, true) {
		t.Fatalf("settles of a deleted group: %v, %v; want ErrUnavailable and none confirmed", done, err)
	}
	// A batch mixing both: what was confirmed is reported as such.
	done, err = e.Settle(sctx, []string{gone[0], replies[5], gone[1]}, hub.Ack, 0)
	if !errors.Is(err, hub.ErrUnavailable) || !slices.Equal(done, []bool{false, true, false}) {
		t.Fatalf("a mixed batch: %v, %v; want [false true false] and ErrUnavailable", done, err)
	}
	if st, err := e.GroupState(ctx, "x", hub.GroupKey{Room: "r", Name: "g"}); err != nil || st.Unacked != 0 {
		t.Fatalf("after the mixed batch: in flight %d (%v), want 0", st.Unacked, err)
	}
}

// TestClusterPortInUseFailsAtOnce: a cluster port another process holds is
// reported by Open at once, with the server's own words, not as a
// 30-second "not ready"; the server's errors reach roomcast's log.
func TestClusterPortInUseFailsAtOnce(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var logged strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logged.Write(p)
	}), nil))
	start := time.Now()
	e, err := Open(context.Background(), Config{DataDir: t.TempDir(), ClusterName: "c", ClusterListen: l.Addr().String()}, logger)
	if err == nil {
		e.Close()
		t.Fatal("Open with the cluster port in use succeeded")
	}
	if !errors.Is(err, hub.ErrUnavailable) || !strings.Contains(err.Error(), "router port") {
		t.Errorf("Open: %v, want ErrUnavailable naming the router port", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("Open took %v to fail: it should not wait for readiness that cannot come", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logged.String(), "component=nats") || !strings.Contains(logged.String(), "level=ERROR") {
		t.Errorf("the server's error did not reach the log:\n%s", logged.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestSettleAllInCluster: with R3 consumers the server keeps one pending
// confirmation per message, so handles of the same message in one batch (a
// delivery and its redelivery, or one handle twice) must go as one settle,
// or the batch waits for an answer that never comes.
func TestSettleAllInCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster: not in -short")
	}
	var routes []string
	var listens []string
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listens = append(listens, l.Addr().String())
		routes = append(routes, "nats://"+l.Addr().String())
		l.Close()
	}
	engines := make([]*Engine, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			engines[i], errs[i] = Open(context.Background(), Config{DataDir: t.TempDir(), NodeName: fmt.Sprintf("n%d", i+1),
				ClusterName: "c", ClusterListen: listens[i], Routes: routes}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		}()
	}
	wg.Wait()
	for i, e := range engines {
		if errs[i] != nil {
			t.Fatalf("node %d: %v", i+1, errs[i])
		}
		t.Cleanup(e.Close)
	}
	e := engines[0]
	if e.Replicas() != 3 {
		t.Fatalf("replicas %d, want 3", e.Replicas())
	}
	ctx := context.Background()
	if _, err := e.OpenNamespace(ctx, "x", hub.Retention{}); err != nil {
		t.Fatal(err)
	}
	cfg := hub.GroupConfig{AckWait: time.Minute, MaxDeliver: 5, MaxInFlight: 100}
	if _, err := e.EnsureGroup(ctx, "x", hub.GroupKey{Room: "r", Name: "g"}, hub.GroupConfig{}, cfg, false); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, _, err := e.Publish(ctx, "x", &hub.Outgoing{Rooms: []string{"r"}, Event: "e", Body: []byte(fmt.Sprintf(`{"n":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
	fetch := func(n int) []hub.Delivery { return fetchN(t, e, "g", n) }
	first := fetch(2)
	if _, err := e.Settle(ctx, []string{first[0].Handle}, hub.Nack, 0); err != nil {
		t.Fatal(err)
	}
	again := fetch(1) // the redelivery of the first message: another handle
	if again[0].Msg.Pos != first[0].Msg.Pos || again[0].Handle == first[0].Handle {
		t.Fatalf("redelivery %v (%s), want message %v with a new handle", again[0].Msg.Pos, again[0].Handle, first[0].Msg.Pos)
	}
	start := time.Now()
	done, err := e.Settle(ctx, []string{first[0].Handle, again[0].Handle, first[1].Handle, again[0].Handle}, hub.Ack, 0)
	if err != nil || slices.Contains(done, false) {
		t.Fatalf("SettleAll in a cluster: %v, %v (after %v); want all confirmed", done, err, time.Since(start))
	}
	if st, err := e.GroupState(ctx, "x", hub.GroupKey{Room: "r", Name: "g"}); err != nil || st.Unacked != 0 {
		t.Fatalf("after the acks: in flight %d (%v), want 0", st.Unacked, err)
	}
}

// TestSettleAllMergesByMessage: handles are merged per message of one
// consumer — two groups' deliveries of the same message are two settles
// (checked to fail when merged by sequence alone) — and a merged nak of a
// delivery and its redelivery is applied once. (SettleAll sends the latest
// delivery's handle; a single node applies a nak of either, so which one
// went is not observable here.)
func TestSettleAllMergesByMessage(t *testing.T) {
	e := open(t, Config{})
	ctx := context.Background()
	groupFixture(t, e, []string{"g", "h"}, 2)
	inFlight := func(group string) int {
		t.Helper()
		st, err := e.GroupState(ctx, "x", hub.GroupKey{Room: "r", Name: group})
		if err != nil {
			t.Fatal(err)
		}
		return st.Unacked
	}

	g, h := fetchN(t, e, "g", 2), fetchN(t, e, "h", 1)
	if len(g) != 2 || len(h) != 1 || g[0].Msg.Pos != h[0].Msg.Pos {
		t.Fatalf("fetched %d and %d deliveries, want 2 and 1 of the same first message", len(g), len(h))
	}
	// Group g's second message is naked and redelivered (a new handle).
	if _, err := e.Settle(ctx, []string{g[1].Handle}, hub.Nack, 0); err != nil {
		t.Fatal(err)
	}
	again := fetchN(t, e, "g", 1)
	if len(again) != 1 || again[0].Msg.Pos != g[1].Msg.Pos {
		t.Fatalf("no redelivery of the naked message: %v", again)
	}
	// The first message, in both groups: two settles, both acknowledged;
	// group g's ack floor moves past the second message's first delivery.
	if done, err := e.Settle(ctx, []string{g[0].Handle, h[0].Handle}, hub.Ack, 0); err != nil || slices.Contains(done, false) {
		t.Fatalf("acks of one message in two groups: %v, %v", done, err)
	}
	if n := inFlight("h"); n != 0 {
		t.Fatalf("group h: %d in flight after its ack, want 0 (merged with group g's?)", n)
	}
	// The old and the new handle of the second message, naked together.
	if done, err := e.Settle(ctx, []string{g[1].Handle, again[0].Handle}, hub.Nack, 0); err != nil || slices.Contains(done, false) {
		t.Fatalf("nak of a delivery and its redelivery: %v, %v", done, err)
	}
	if third := fetchN(t, e, "g", 1); third[0].Count != 3 {
		t.Fatalf("after the merged nak: %d deliveries (count %v), want the third delivery at once", len(third), third)
	}
}

// fetchN fetches n deliveries of group g of room r in namespace x, within
// 10 s, or fails the test.
func fetchN(t *testing.T, e *Engine, group string, n int) []hub.Delivery {
	t.Helper()
	var out []hub.Delivery
	for deadline := time.Now().Add(10 * time.Second); len(out) < n && time.Now().Before(deadline); {
		err := e.Pull(context.Background(), "x", hub.GroupKey{Room: "r", Name: group}, n-len(out), time.Second,
			func(d hub.Delivery) { out = append(out, d) })
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(out) != n {
		t.Fatalf("group %s: fetched %d of %d deliveries", group, len(out), n)
	}
	return out
}

// groupFixture makes namespace x with the given groups of room r (ack wait
// a minute, 100 in flight) and publishes msgs messages to r.
func groupFixture(t *testing.T, e *Engine, groups []string, msgs int) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.OpenNamespace(ctx, "x", hub.Retention{}); err != nil {
		t.Fatal(err)
	}
	cfg := hub.GroupConfig{AckWait: time.Minute, MaxDeliver: 5, MaxInFlight: 100}
	for _, g := range groups {
		if _, err := e.EnsureGroup(ctx, "x", hub.GroupKey{Room: "r", Name: g}, hub.GroupConfig{}, cfg, false); err != nil {
			t.Fatal(err)
		}
	}
	for i := range msgs {
		if _, _, err := e.Publish(ctx, "x", &hub.Outgoing{Rooms: []string{"r"}, Event: "e", Body: []byte(fmt.Sprintf(`{"n":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
}
