package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/fault"
	"github.com/roomcast/roomcast/internal/hub"
)

// lockedLog collects the engine's log.
type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// diskRig is an engine on a small volume with one namespace followed.
type diskRig struct {
	e       *Engine
	dir     string
	log     *lockedLog
	applied atomic.Uint64 // last sequence the live consumer applied
	count   atomic.Int64
}

func newDiskRig(t *testing.T, size, reserve int64) *diskRig {
	t.Helper()
	dir := fault.SmallVolume(t, size)
	rig := &diskRig{dir: dir, log: &lockedLog{}}
	logger := slog.New(slog.NewTextHandler(rig.log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	e, err := Open(context.Background(), Config{DataDir: filepath.Join(dir, "data"), DiskReserve: reserve, DiskCheckInterval: 50 * time.Millisecond}, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	rig.e = e
	st, err := e.OpenNamespace(context.Background(), "n", hub.Retention{MaxBytes: size / 2, MaxMsgsPerRoom: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Follow(context.Background(), "n", st.Last, func(m *hub.Message) {
		rig.count.Add(1)
		rig.applied.Store(m.Pos.Seq)
	}); err != nil {
		t.Fatal(err)
	}
	return rig
}

func (rig *diskRig) publish(i int) (uint64, time.Duration, error) {
	o := &hub.Outgoing{Event: "e", Rooms: []string{"r"}, Data: []byte(fmt.Sprintf(`{"i":%d,"pad":%q}`, i, strings.Repeat("x", 2000)))}
	body, err := hub.EncodeBody("n", o, time.Now())
	if err != nil {
		panic(err)
	}
	o.Body = body
	start := time.Now()
	pos, _, err := rig.e.Publish(context.Background(), "n", o)
	return pos.Seq, time.Since(start), err
}

// waitFor polls cond every 10 ms until it holds or fails after limit; it
// returns how long it took.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// checkStored reads the namespace and fails unless every acked sequence is
// there.
func (rig *diskRig) checkStored(t *testing.T, acked []uint64) {
	t.Helper()
	have := map[uint64]bool{}
	if err := rig.e.Read(context.Background(), "n", 1, 0, hub.Filter{Rooms: []string{"r"}}, func(m *hub.Message) bool {
		have[m.Pos.Seq] = true
		return true
	}); err != nil {
		t.Fatal(err)
	}
	for _, seq := range acked {
		if !have[seq] {
			t.Errorf("acknowledged message %d is not in the store", seq)
		}
	}
}

// TestDiskFullWriteFailureRecovers: with no reserve, the volume fills
// until a store write fails. The publish that met the failure is answered
// within the grace (not the 3 s timeout), the next ones at once with
// ErrStorageFull, Ready fails; once space is freed the engine restarts
// JetStream by itself, publishes are stored again, the live consumer goes
// on, and every acknowledged message is in the store.
func TestDiskFullWriteFailureRecovers(t *testing.T) {
	rig := newDiskRig(t, 16<<20, 0)
	filler, err := fault.Fill(rig.dir, 256<<10)
	if err != nil {
		t.Fatal(err)
	}
	var acked []uint64
	var failedAfter time.Duration
	for i := 0; ; i++ {
		if i > 10000 {
			t.Fatal("10,000 publishes on a full volume and none failed")
		}
		var seq uint64
		seq, failedAfter, err = rig.publish(i)
		if err != nil {
			break
		}
		acked = append(acked, seq)
	}
	if !errors.Is(err, hub.ErrOutcomeUnknown) && !errors.Is(err, hub.ErrStorageFull) {
		t.Fatalf("the publish that met the full disk: %v, want ErrOutcomeUnknown (the write may have failed after it) or ErrStorageFull", err)
	}
	// Not a speed test: the point is not waiting out the 3 s timeout.
	if failedAfter > 2*time.Second {
		t.Errorf("the publish that met the full disk answered after %s, want well under the 3 s timeout", failedAfter)
	}
	var slowest time.Duration
	for i := 0; i < 20; i++ {
		_, d, err := rig.publish(-i)
		if !errors.Is(err, hub.ErrStorageFull) {
			t.Fatalf("publish on a full store: %v, want ErrStorageFull", err)
		}
		slowest = max(slowest, d)
	}
	if slowest > time.Second {
		t.Errorf("refused publishes took up to %s, want at once (they never reach the store)", slowest)
	}
	if err := rig.e.Ready(context.Background()); !errors.Is(err, hub.ErrUnavailable) {
		t.Fatalf("Ready on a full store: %v, want ErrUnavailable", err)
	}
	if got := strings.Count(rig.log.String(), "no space left"); got > 2 {
		t.Errorf("the out-of-space error was logged %d times, want it rate-limited:\n%s", got, rig.log.String())
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	var seq uint64
	recovered := waitFor(t, 10*time.Second, "a publish stored after space was freed", func() bool {
		seq, _, err = rig.publish(1 << 20)
		return err == nil
	})
	acked = append(acked, seq)
	if err := rig.e.Ready(context.Background()); err != nil {
		t.Fatalf("Ready after recovery: %v", err)
	}
	live := waitFor(t, 3*time.Second, "the live consumer applying the new message (restarted, not waiting ~5 s for its heartbeats to fail)", func() bool { return rig.applied.Load() >= seq })
	if got := rig.count.Load(); got != int64(len(acked)) {
		t.Errorf("the live consumer applied %d messages, want the %d acknowledged", got, len(acked))
	}
	rig.checkStored(t, acked)
	if !strings.Contains(rig.log.String(), "JetStream restarted") {
		t.Errorf("no JetStream restart logged:\n%s", rig.log.String())
	}
	t.Logf("%d publishes stored, the failing one answered after %s, refusals at most %s; recovered %s after space was freed (live feed %s later, at %s)",
		len(acked)-1, failedAfter.Round(time.Microsecond), slowest.Round(time.Microsecond), recovered.Round(time.Millisecond), live.Round(time.Millisecond), time.Since(freed).Round(time.Millisecond))
}

// TestDiskReserveRefusesBeforeAWriteFails: with a reserve, publishes are
// refused once free space falls under it, before any write fails (no
// JetStream restart), and accepted again once it is back.
func TestDiskReserveRefusesBeforeAWriteFails(t *testing.T) {
	const reserve = 4 << 20
	rig := newDiskRig(t, 32<<20, reserve)
	seq, _, err := rig.publish(0)
	if err != nil {
		t.Fatal(err)
	}
	acked := []uint64{seq}
	filler, err := fault.Fill(rig.dir, reserve/2)
	if err != nil {
		t.Fatal(err)
	}
	tripped := waitFor(t, 5*time.Second, "a refusal under the reserve", func() bool {
		_, _, err := rig.publish(1)
		return errors.Is(err, hub.ErrStorageFull)
	})
	if err := rig.e.Ready(context.Background()); !errors.Is(err, hub.ErrUnavailable) || !strings.Contains(err.Error(), "reserve") {
		t.Fatalf("Ready under the reserve: %v, want ErrUnavailable naming the reserve", err)
	}
	// A batch is refused the same way, every message of it, without trying.
	batch := []*hub.Outgoing{{Event: "e", Rooms: []string{"r"}, Body: []byte(`{"b":1}`)}, {Event: "e", Rooms: []string{"r"}, Body: []byte(`{"b":2}`)}}
	for i, st := range rig.e.PublishBatch(context.Background(), "n", batch) {
		if !errors.Is(st.Err, hub.ErrStorageFull) {
			t.Fatalf("batch message %d under the reserve: %+v, want ErrStorageFull", i, st)
		}
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	recovered := waitFor(t, 5*time.Second, "a publish stored once the reserve is back", func() bool {
		seq, _, err = rig.publish(2)
		return err == nil
	})
	acked = append(acked, seq)
	rig.checkStored(t, acked)
	if log := rig.log.String(); strings.Contains(log, "no space left") || strings.Contains(log, "JetStream restarted") {
		t.Errorf("a write failed or JetStream restarted although the reserve should have prevented it:\n%s", log)
	}
	t.Logf("refused %s after the volume fell under the reserve, accepted %s after it was back", tripped.Round(time.Millisecond), recovered.Round(time.Millisecond))
}
