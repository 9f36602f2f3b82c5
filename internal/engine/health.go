package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/internal/hub"
)

// Readiness is what /readyz reports: this node can publish and serve
// history for its namespaces now. It is kept up to date in the background
// (health.run), so that a probe costs no request to the cluster, and it
// rests on two facts, each chosen so that an election the node survives
// does not flip it and a heal does not either (issue 19):
//
//   - quorum: in an embedded cluster each node announces itself on the
//     heartbeat subject every PeerTimeout/6 over the NATS routes; a node
//     that hears fewer than a majority of the configured nodes (itself
//     included) within PeerTimeout is cut off (partitioned away, or its
//     peers are dead or paused) and can store nothing: not ready, and its
//     publishes and reads are refused at once (certainly not stored,
//     503) rather than sent into a partition where they could be stored
//     later. Neither an election nor a peer that died while a majority
//     lives changes what the survivors hear.
//   - streams: the stream of each namespace (and the sessions bucket's)
//     answers a stream-info request from its leader every probe. An
//     election after a leader died takes the raft election timeout (4–9 s
//     in NATS v2.15) during which no leader answers; a stream that has not
//     answered for StallTimeout (longer than an election) is stalled: not
//     ready.
//
// With an external NATS (no configured cluster) only the stream probes
// and the connection count.

// health is the engine's view of the cluster and of its streams.
type health struct {
	e      *Engine
	self   string
	nodes  int // configured cluster size; 0: no heartbeats (single node, external NATS)
	peerTO time.Duration
	stall  time.Duration
	every  time.Duration

	born time.Time // a node that just started has not heard its peers yet

	// What quorum answers, kept by run each turn so that a publish reads
	// two atomics rather than take the lock: the run loop's last turn
	// (unix ns) and the last verdict on the peers (nil: a quorum).
	turned  atomic.Int64
	verdict atomic.Pointer[error]

	mu      sync.Mutex
	tick    time.Time            // the run loop's last turn
	peers   map[string]time.Time // node name → last heard
	streams map[string]*streamProbe
	lastWhy string // the reason logged last ("": ready)

	sub    *nats.Subscription
	cancel context.CancelFunc
	done   chan struct{}
}

// streamProbe is what the probes know of one stream.
type streamProbe struct {
	ok      time.Time // last answer from its leader (zero: none yet)
	err     error     // the last probe's error
	watched time.Time
}

func newHealth(e *Engine) *health {
	every := max(e.cfg.PeerTimeout/6, 50*time.Millisecond)
	h := &health{e: e, self: e.cfg.NodeName, peerTO: e.cfg.PeerTimeout, stall: e.cfg.StallTimeout,
		every: every, born: time.Now(), tick: time.Now(), peers: map[string]time.Time{}, streams: map[string]*streamProbe{}, lastWhy: "starting"}
	if e.cfg.ClusterName != "" && e.nodes > 1 {
		h.nodes = e.nodes
	}
	h.turned.Store(h.tick.UnixNano())
	return h
}

// start subscribes to the heartbeats and runs the probes until stop.
func (h *health) start() error {
	if h.nodes > 0 {
		sub, err := h.e.nc.Subscribe(heartbeatSubject, func(m *nats.Msg) {
			name := string(m.Data)
			if name == "" || name == h.self {
				return
			}
			h.mu.Lock()
			h.peers[name] = time.Now()
			h.mu.Unlock()
		})
		if err != nil {
			return fmt.Errorf("engine: heartbeat subscription: %w", err)
		}
		h.sub = sub
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go h.run(ctx)
	return nil
}

func (h *health) stop() {
	if h == nil || h.cancel == nil {
		return
	}
	h.cancel()
	<-h.done
	if h.sub != nil {
		_ = h.sub.Unsubscribe()
	}
}

// watch adds a stream to the probes and probes it at once.
func (h *health) watch(ctx context.Context, stream string) {
	h.mu.Lock()
	if _, ok := h.streams[stream]; !ok {
		h.streams[stream] = &streamProbe{watched: time.Now()}
	}
	h.mu.Unlock()
	h.probe(ctx, stream)
}

func (h *health) run(ctx context.Context) {
	defer close(h.done)
	t := time.NewTicker(h.every)
	defer t.Stop()
	next := time.Now()
	for {
		now := time.Now()
		h.mu.Lock()
		if now.Sub(h.tick) > h.peerTO/2 {
			// This process did not run for a while (stopped, starved):
			// its peers' silence meanwhile says nothing of them, and their
			// heartbeats queued in its sockets are still unread. They get
			// a fresh PeerTimeout to be heard again.
			for name := range h.peers {
				h.peers[name] = now
			}
		}
		h.tick = now
		if err := h.peersLocked(now); err != nil {
			h.verdict.Store(&err)
		} else {
			h.verdict.Store(nil)
		}
		h.turned.Store(now.UnixNano())
		h.mu.Unlock()
		if h.nodes > 0 {
			_ = h.e.nc.Publish(heartbeatSubject, []byte(h.self))
		}
		// Streams are probed about twice a second whatever the heartbeat
		// interval, each on its own goroutine: a stream whose leader does
		// not answer must not delay the others' probes.
		if now := time.Now(); !now.Before(next) {
			next = now.Add(max(h.every, 500*time.Millisecond))
			h.mu.Lock()
			names := make([]string, 0, len(h.streams))
			for name := range h.streams {
				names = append(names, name)
			}
			h.mu.Unlock()
			var wg sync.WaitGroup
			for _, name := range names {
				wg.Add(1)
				go func() { defer wg.Done(); h.probe(ctx, name) }()
			}
			wg.Wait()
			h.log()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe asks stream's leader for its info.
func (h *health) probe(ctx context.Context, stream string) {
	pctx, cancel := context.WithTimeout(ctx, max(h.peerTO/3, time.Second))
	defer cancel()
	_, err := h.e.js.Stream(pctx, stream)
	if ctx.Err() != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.streams[stream]
	if p == nil {
		return
	}
	p.err = err
	if err == nil {
		p.ok = time.Now()
	}
}

// quorum returns nil when this node hears a majority of its cluster (or is
// not in an embedded cluster), else why not.
// It is on every publish's path: two atomics, no lock (what run decided
// at its last turn, at most a heartbeat interval ago).
func (h *health) quorum() error {
	if h == nil || h.nodes == 0 {
		return nil
	}
	now := time.Now()
	if now.Sub(h.born) < h.peerTO || time.Duration(now.UnixNano()-h.turned.Load()) > h.peerTO/2 {
		return nil // see quorumLocked
	}
	if p := h.verdict.Load(); p != nil {
		return *p
	}
	return nil
}

func (h *health) quorumLocked(now time.Time) error {
	if now.Sub(h.born) < h.peerTO {
		// Too soon to tell: the peers' heartbeats may not have arrived
		// yet (a restarted node reads its namespaces meanwhile).
		return nil
	}
	if now.Sub(h.tick) > h.peerTO/2 {
		// The run loop has not turned for a while: this process was
		// stopped or starved, and what it knows of its peers is stale, not
		// evidence of a partition (run resets it at its next turn).
		return nil
	}
	return h.peersLocked(now)
}

// peersLocked says whether the peers heard within PeerTimeout make a
// quorum with this node.
func (h *health) peersLocked(now time.Time) error {
	heard := []string{h.self}
	for name, at := range h.peers {
		if now.Sub(at) <= h.peerTO {
			heard = append(heard, name)
		}
	}
	if need := h.nodes/2 + 1; len(heard) < need {
		sort.Strings(heard)
		return fmt.Errorf("this node reaches %d of the %d nodes of its cluster (%s) within %s, fewer than the %d a quorum needs: it can store nothing: %w",
			len(heard), h.nodes, strings.Join(heard, ", "), h.peerTO, need, hub.ErrUnavailable)
	}
	return nil
}

// heard is how many nodes of the cluster this node hears now, itself
// included (1 when not in an embedded cluster).
func (h *health) heard() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 1
	now := time.Now()
	for _, at := range h.peers {
		if now.Sub(at) <= h.peerTO {
			n++
		}
	}
	return n
}

// ready returns nil when the node can publish and serve history now.
func (h *health) ready() error {
	if h == nil {
		return nil
	}
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.quorumLocked(now); err != nil {
		return err
	}
	names := make([]string, 0, len(h.streams))
	for name := range h.streams {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := h.streams[name]
		switch {
		case p.ok.IsZero() && p.err == nil:
			return fmt.Errorf("stream %s: not probed yet: %w", name, hub.ErrUnavailable)
		case p.ok.IsZero() && now.Sub(p.watched) > h.stall:
			return fmt.Errorf("stream %s: no leader has answered since it was opened %s ago (%v): %w", name, now.Sub(p.watched).Round(time.Second), p.err, hub.ErrUnavailable)
		case p.ok.IsZero():
			// Opened, not answered yet: an election under way at start-up.
			return fmt.Errorf("stream %s: no leader has answered yet (%v): %w", name, p.err, hub.ErrUnavailable)
		case now.Sub(p.ok) > h.stall:
			return fmt.Errorf("stream %s: no leader has answered for %s (%v): %w", name, now.Sub(p.ok).Round(time.Second), p.err, hub.ErrUnavailable)
		}
	}
	return nil
}

// log logs each change of readiness once.
func (h *health) log() {
	why := ""
	if err := h.ready(); err != nil {
		why = err.Error()
	}
	h.mu.Lock()
	last := h.lastWhy
	h.lastWhy = why
	h.mu.Unlock()
	switch {
	case why == last:
	case why == "" && last == "starting":
		h.e.logger.Info("ready")
	case why == "":
		h.e.logger.Info("ready again")
	case last == "starting":
		// Start-up waits for the cluster: said by Open's callers if it lasts.
	case last == "" || !sameCause(why, last):
		h.e.logger.Warn("not ready", "err", why)
	}
}

// sameCause compares two reasons up to their figures (the durations and
// counts in them change every probe).
func sameCause(a, b string) bool {
	strip := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return -1
			}
			return r
		}, s)
	}
	return strip(a) == strip(b)
}

// attemptTimeout bounds one attempt of serve.
const attemptTimeout = 2 * time.Second

// serve calls f until it succeeds, ctx ends or readRetry passes, as retry
// does: a request being served waits across a leader election. Each
// attempt has attemptTimeout: a request to a leader that does not answer
// (paused, cut off) waits for no more, and the next attempt reaches the
// leader elected meanwhile. But it does not wait on a node cut off from
// its cluster's quorum, or whose connection to NATS is down: nothing there
// can succeed before that ends, and the client is better told at once
// (503).
func (e *Engine) serve(ctx context.Context, f func(ctx context.Context) error) error {
	deadline := time.Now().Add(readRetry)
	wait := 20 * time.Millisecond
	for {
		if err := e.health.quorum(); err != nil {
			return err
		}
		if !e.nc.IsConnected() {
			// Reconnecting takes seconds (an external NATS restarting).
			return fmt.Errorf("the connection to NATS is down: %w", hub.ErrUnavailable)
		}
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := f(actx)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}
