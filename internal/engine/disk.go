package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomcast/roomcast/internal/hub"
)

// A full disk, as the embedded NATS server (v2.15) meets it on a single
// node: the write of a message fails with ENOSPC, the stream's file store
// keeps that error for good (every later store returns it at once), and the
// publish is never answered, so each publish waited out its 3 s timeout and
// answered 503 — forever, freeing space changed nothing until a restart
// (server/filestore.go setWriteErr, server/stream.go processJetStreamMsg).
// Stopping and starting JetStream inside the running server reopens the
// stores from disk, which clears the error; what was acknowledged is on
// disk and stays (measured: 3 ms, 0 acknowledged messages lost).
//
// diskGuard makes that a state the server knows about:
//   - it trips when the data volume's free space falls below the reserve
//     (polled every DiskCheckInterval), or at once when the NATS server logs
//     a store write failing for lack of space;
//   - while tripped, publishes are refused at once (hub.ErrStorageFull, 507)
//     without reaching the store, Ready fails (/readyz 503), and publishes
//     already in flight when it tripped give up after a short grace
//     (hub.ErrUnavailable, 503: a message the store failed on has no answer,
//     and the grace lets the acknowledgements of those stored before it
//     arrive);
//   - once the volume has the reserve again (and a little more, so that it
//     does not flap), it restarts JetStream if a write had failed, restarts
//     the live consumers after their last applied message, and accepts
//     writes again.
//
// Only a single node restarts JetStream: in a cluster a replica whose write
// failed steps down and the others go on; the reserve check applies there
// too.
type diskGuard struct {
	e        *Engine
	dir      string
	reserve  int64
	resumeAt int64
	interval time.Duration
	logger   *slog.Logger

	state atomic.Pointer[diskState] // nil: the store takes writes

	mu      sync.Mutex
	cut     context.Context // cancelled shortly after a trip: in-flight publishes give up
	cancel  context.CancelFunc
	lastLog time.Time

	started atomic.Bool
	stop    chan struct{}
	done    chan struct{}
}

// diskState is why the store refuses writes.
type diskState struct {
	reason      string
	since       time.Time
	writeFailed bool // the store holds a write error: JetStream must restart
}

// inflightGrace is how long a publish already sent to the store keeps
// waiting for its acknowledgement after the guard trips.
const inflightGrace = 200 * time.Millisecond

func newDiskGuard(e *Engine, dir string, reserve int64, interval time.Duration, logger *slog.Logger) *diskGuard {
	g := &diskGuard{e: e, dir: dir, reserve: reserve, interval: interval, logger: logger,
		resumeAt: reserve + max(reserve/4, 1<<20), stop: make(chan struct{}), done: make(chan struct{})}
	g.cut, g.cancel = context.WithCancel(context.Background())
	return g
}

// refuse is nil while the store takes writes, else the reason as an
// hub.ErrStorageFull. A nil guard (external NATS) never refuses.
func (g *diskGuard) refuse() error {
	if g == nil {
		return nil
	}
	if st := g.state.Load(); st != nil {
		return fmt.Errorf("the store refuses writes: %s: %w", st.reason, hub.ErrStorageFull)
	}
	return nil
}

// refusing is why the store refuses writes ("": it does not).
func (g *diskGuard) refusing() string {
	if g == nil {
		return ""
	}
	if st := g.state.Load(); st != nil {
		return st.reason
	}
	return ""
}

// inflight is cancelled when in-flight writes should give up.
func (g *diskGuard) inflight() context.Context {
	if g == nil {
		return context.Background()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cut
}

// tripped reports whether ctx (from inflight) was cut by a trip.
func (g *diskGuard) tripped(ctx context.Context) bool {
	return g != nil && ctx.Err() != nil
}

// trip moves to st unless already refusing for a reason at least as
// strong (a write failure outranks low free space).
func (g *diskGuard) trip(st *diskState) bool {
	for {
		old := g.state.Load()
		if old != nil && (old.writeFailed || !st.writeFailed) {
			return false
		}
		if old != nil {
			st.since = old.since
		}
		if g.state.CompareAndSwap(old, st) {
			break
		}
	}
	g.mu.Lock()
	cancel := g.cancel
	g.mu.Unlock()
	time.AfterFunc(inflightGrace, cancel)
	return true
}

// storeError is called with each error line of the NATS server: a store
// write that failed for lack of space trips the guard at once (the server
// itself matches "no space left" the same way, server/store.go
// isOutOfSpaceErr). In a cluster the replica steps down and others store:
// nothing to do here.
func (g *diskGuard) storeError(line string) {
	if g == nil || g.e.Clustered() || !outOfSpace(line) {
		return
	}
	if g.trip(&diskState{reason: "a write to the data volume failed for lack of space", since: time.Now(), writeFailed: true}) {
		g.logger.Error("store refuses writes: the data volume is full; publishes answer 507 until space is freed",
			"data", g.dir, "reserve", g.reserve, "err", line)
	}
}

func outOfSpace(s string) bool {
	return strings.Contains(s, "no space left") || strings.Contains(s, "disk quota exceeded")
}

// start polls the volume until close.
func (g *diskGuard) start() {
	g.started.Store(true)
	go g.run()
}

func (g *diskGuard) run() {
	defer close(g.done)
	t := time.NewTicker(g.interval)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
			g.check()
		}
	}
}

func (g *diskGuard) close() {
	if g == nil || !g.started.Load() {
		return
	}
	close(g.stop)
	<-g.done
}

// check compares the free space with the reserve, trips or recovers.
func (g *diskGuard) check() {
	free, err := freeBytes(g.dir)
	if err != nil {
		g.logEvery(time.Minute, slog.LevelWarn, "cannot read the data volume's free space", "data", g.dir, "err", err)
		return
	}
	st := g.state.Load()
	switch {
	case st == nil && free < g.reserve:
		if g.trip(&diskState{reason: fmt.Sprintf("the data volume has %s free, under the %s reserve", FormatBytes(free), FormatBytes(g.reserve)), since: time.Now()}) {
			g.logger.Error("store refuses writes: the data volume is nearly full; publishes answer 507 until space is freed",
				"data", g.dir, "free", free, "reserve", g.reserve)
		}
	case st != nil && free >= g.resumeAt:
		if st.writeFailed {
			if err := g.e.restartJetStream(); err != nil {
				g.logEvery(time.Minute, slog.LevelError, "store still refuses writes: restarting JetStream failed", "data", g.dir, "err", err)
				return
			}
		}
		g.mu.Lock()
		g.cut, g.cancel = context.WithCancel(context.Background())
		g.mu.Unlock()
		g.state.Store(nil)
		g.logger.Info("store takes writes again", "data", g.dir, "free", free, "refused_for", time.Since(st.since).Round(time.Millisecond).String())
	case st != nil:
		g.logEvery(time.Minute, slog.LevelWarn, "store still refuses writes: free space on the data volume",
			"data", g.dir, "free", free, "needed", g.resumeAt, "since", st.since.Format(time.RFC3339))
	}
}

// logEvery logs at most once per period (a full disk lasts; its log must
// not fill what is left of it).
func (g *diskGuard) logEvery(period time.Duration, level slog.Level, msg string, args ...any) {
	g.mu.Lock()
	now := time.Now()
	ok := now.Sub(g.lastLog) >= period
	if ok {
		g.lastLog = now
	}
	g.mu.Unlock()
	if ok {
		g.logger.Log(context.Background(), level, msg, args...)
	}
}

// restartJetStream stops and starts JetStream inside the embedded server:
// its stores are reopened from disk (clearing a write error they held), then
// the live consumers start again after their last applied message.
func (e *Engine) restartJetStream() error {
	if e.srv == nil || e.sopts == nil {
		return errors.New("no embedded server")
	}
	start := time.Now()
	lasts := e.lastSeqs()
	if err := e.srv.ShutdownJetStream(); err != nil {
		return fmt.Errorf("stop JetStream: %w", err)
	}
	o := e.sopts
	if err := e.srv.EnableJetStream(&server.JetStreamConfig{
		StoreDir: o.StoreDir, SyncInterval: o.SyncInterval, SyncAlways: o.SyncAlways,
		MaxMemory: o.JetStreamMaxMemory, MaxStore: o.JetStreamMaxStore, Strict: !o.NoJetStreamStrict,
	}); err != nil {
		return fmt.Errorf("start JetStream: %w", err)
	}
	// The pull requests in flight died with JetStream: their pulls end now
	// and are made again.
	e.mu.Lock()
	close(e.restarted)
	e.restarted = make(chan struct{})
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.fillVoids(ctx, lasts); err != nil {
		return err
	}
	if err := e.refollow(ctx); err != nil {
		return err
	}
	e.logger.Info("JetStream restarted to clear the store's write error", "took", time.Since(start).Round(time.Microsecond).String())
	return nil
}

// lastSeqs returns each namespace stream's last sequence as the running
// store knows it, and at least the last its live feed applied: it may hold
// messages the store could not write to disk.
func (e *Engine) lastSeqs() map[string]uint64 {
	e.mu.Lock()
	streams := maps.Clone(e.streams)
	follows := append([]*follow(nil), e.follows...)
	e.mu.Unlock()
	lasts := make(map[string]uint64, len(streams))
	for ns, s := range streams {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if info, err := s.stream.Info(ctx); err == nil {
			lasts[ns] = info.State.LastSeq
		}
		cancel()
		for _, f := range follows {
			if f.s == s {
				f.mu.Lock()
				lasts[ns] = max(lasts[ns], f.last)
				f.mu.Unlock()
			}
		}
	}
	return lasts
}

// fillVoids gives away the sequence numbers the store lost. A message whose
// write failed for lack of space (its publish answered 503, outcome
// unknown) may have been seen by the live feed and a group's pull before
// the failure; reopened, the store has forgotten it and would give its
// number to the next message, which every reader that saw the lost one
// would skip. Each lost number is taken by a void marker instead (subject
// rc.<ns>.v, no body, skipped by every reader): a sequence number, and so
// an event id, is never given to two messages.
func (e *Engine) fillVoids(ctx context.Context, lasts map[string]uint64) error {
	for ns, before := range lasts {
		s, err := e.ns(ns)
		if err != nil {
			continue
		}
		info, err := e.info(ctx, s)
		if err != nil {
			return err
		}
		now := info.State.LastSeq
		if now >= before {
			continue
		}
		for seq := now; seq < before; seq++ {
			if _, err := e.js.PublishMsg(ctx, nats.NewMsg(voidSubject(ns)), jetstream.WithExpectStream(s.name), jetstream.WithExpectLastSequence(seq)); err != nil {
				return fmt.Errorf("engine: void sequence %d of %s: %w", seq+1, s.name, err)
			}
		}
		e.logger.Warn("the store lost messages whose writes failed for lack of space (their publishes were answered 503, outcome unknown); their sequence numbers will not be reused",
			"ns", ns, "from", now+1, "to", before)
	}
	return nil
}

// Volume is the size and free space of the file system holding a
// directory.
type Volume struct {
	Size, Free int64
}

func freeBytes(dir string) (int64, error) {
	v, err := VolumeOf(dir)
	return v.Free, err
}

// FormatBytes prints n bytes for people (1.5 GiB, 32.0 MiB).
func FormatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
