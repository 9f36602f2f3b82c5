package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomcast/roomcast/internal/hub"
)

// Room occupancy across a cluster, for the room.occupied and room.vacated
// webhooks: a room is occupied while it has members on any node, and each
// change is announced once, by one node, after a debounce.
//
//   - Each node keeps, in the KV bucket roomcast_occupancy, one key per room
//     it has members in (c.<ns>.<rk>.<node>), written only when its local
//     count crosses zero; after each such write it asks for the room to be
//     evaluated by storing a request in the work-queue stream
//     roomcast-rooms (subject rcwh.room.<ns>.<rk>). That stream keeps one
//     request per room: a newer request replaces the older one.
//   - The nodes share one durable consumer of that stream. The node that
//     gets a request waits (a delayed nak) until the request is as old as
//     the namespace's debounce, so the room is evaluated once it has not
//     crossed zero on any node for that long: a room that empties and
//     refills within the debounce is never evaluated empty.
//   - Evaluating reads, from the stream leader, whether any node has the
//     room's key and the announced state (s.<ns>.<rk>, present while
//     occupied) with its revision. When they differ, the change is
//     announced with an id made of that revision — so a retry, or a second
//     node evaluating the same change, produces the same id, which the
//     outbox stores once — and the state is then updated at that revision
//     (compare-and-set; a loser evaluates again). An evaluator that
//     decided on what it read before a newer change re-reads after its
//     update and asks for another evaluation when the room moved on.
//   - Each node holds a lease (bucket roomcast_nodes, whose TTL is
//     NodeTTL) refreshed every third of it. A node that sees another's
//     lease gone asks for it to be reaped (rcwh.node.<node>): its room keys
//     are removed and its rooms evaluated. A node starting up removes its
//     own keys from before (its connections are gone) and asks for the
//     reaping of nodes that left keys without a lease.

// OccupancyConfig configures occupancy. Zero fields take
// DefaultOccupancyConfig's.
type OccupancyConfig struct {
	// NodeTTL is how long a node that stopped without saying so (killed,
	// cut off) still counts as holding its members.
	NodeTTL time.Duration
	// MaxPending bounds the rooms waiting for their debounce, cluster-wide:
	// beyond it, evaluations wait longer (never lost).
	MaxPending int
	// Workers bounds the evaluations one node runs at once.
	Workers int
}

// DefaultOccupancyConfig is occupancy's defaults (internal/config derives
// its own from it).
var DefaultOccupancyConfig = OccupancyConfig{NodeTTL: 15 * time.Second, MaxPending: 10000, Workers: 4}

// evalAckWait is how long an evaluation of a node that died holds its room
// before another node evaluates it.
const evalAckWait = 5 * time.Second

// markerTTL is how long the marker of a removed key is kept: longer than
// OutboxDedupe, so that an announcement id made of a revision is not made
// again within the outbox's dedupe window once the marker is gone.
const markerTTL = time.Hour

// Occupancy tracks which rooms have members anywhere in the cluster.
type Occupancy struct {
	e      *Engine
	cfg    OccupancyConfig
	node   string // this node's key
	kv     jetstream.KeyValue
	nodes  jetstream.KeyValue
	stream jetstream.Stream
	cons   jetstream.Consumer

	// incarnation is this process's lease value (another value under this
	// node's name is another process).
	incarnation string

	mu       sync.Mutex
	dirty    map[roomRef]bool // room → has local members, not yet written
	flushing bool             // a flush is writing (Settled)
	unasked  int              // rooms written whose evaluation is not asked yet
	rewrite  bool             // the lease was lost: store every key again
	wake     chan struct{}
}

type roomRef struct{ NS, Room string }

// roomRecord is the value of a count key and of an evaluation request.
type roomRecord struct {
	NS   string `json:"ns"`
	Room string `json:"room"`
}

// OpenOccupancy creates or updates occupancy's buckets and stream.
func (e *Engine) OpenOccupancy(ctx context.Context, cfg OccupancyConfig) (*Occupancy, error) {
	d := DefaultOccupancyConfig
	if cfg.NodeTTL <= 0 {
		cfg.NodeTTL = d.NodeTTL
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = d.MaxPending
	}
	if cfg.Workers <= 0 {
		cfg.Workers = d.Workers
	}
	var inc [8]byte
	_, _ = rand.Read(inc[:])
	o := &Occupancy{e: e, cfg: cfg, node: nodeKey(e.cfg.NodeName), incarnation: hex.EncodeToString(inc[:]),
		dirty: map[roomRef]bool{}, wake: make(chan struct{}, 1)}
	err := retry(ctx, 60*time.Second, func() error {
		var err error
		o.kv, err = e.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: occupancyKV, Description: "roomcast: rooms with members per node, and their announced occupancy",
			History: 1, Storage: jetstream.FileStorage, Replicas: e.cfg.Replicas, LimitMarkerTTL: markerTTL,
		})
		if err != nil {
			return err
		}
		o.nodes, err = e.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: nodesKV, Description: "roomcast: leases of the nodes that count room members",
			TTL: cfg.NodeTTL, History: 1, Storage: jetstream.FileStorage, Replicas: e.cfg.Replicas,
		})
		if err != nil {
			return err
		}
		o.stream, err = e.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: roomsStream, Description: "roomcast: rooms to evaluate for occupancy webhooks (one request per room)",
			Subjects: []string{roomEvalRoot + ">", nodeReapRoot + ">"}, Retention: jetstream.WorkQueuePolicy,
			MaxMsgsPerSubject: 1, Discard: jetstream.DiscardOld, Storage: jetstream.FileStorage, Replicas: e.cfg.Replicas,
		})
		if err != nil {
			return err
		}
		o.cons, err = o.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable: "evaluate", Description: "roomcast: occupancy evaluation, shared by the nodes",
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: evalAckWait, MaxDeliver: -1, MaxAckPending: cfg.MaxPending,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("engine: occupancy: %w: %w", hub.ErrUnavailable, err)
	}
	return o, nil
}

// nodeKey names a node in keys and subjects.
func nodeKey(name string) string {
	if hub.ValidNamespace(name) { // [A-Za-z0-9_-], 1–64
		return name
	}
	return "h" + roomKey(name)
}

// Set records whether this node has members in room (n of them). It does
// not block: Run writes the latest value of each room.
func (o *Occupancy) Set(ns, room string, n int) {
	o.mu.Lock()
	o.dirty[roomRef{ns, room}] = n > 0
	o.mu.Unlock()
	o.poke()
}

func (o *Occupancy) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Run keeps this node's lease and room keys and evaluates rooms until ctx
// ends; then it writes what is left (bounded) and gives its lease up.
// debounce returns a namespace's debounce; announce must store the
// announcement of ns/room becoming occupied (or vacated) durably, with id
// as its idempotency key, before returning nil.
func (o *Occupancy) Run(ctx context.Context, debounce func(ns string) time.Duration,
	announce func(ctx context.Context, ns, room string, occupied bool, id string, at time.Time) error) error {
	if err := retry(ctx, 60*time.Second, o.putLease(ctx)); err != nil {
		return fmt.Errorf("engine: occupancy lease: %w: %w", hub.ErrUnavailable, err)
	}
	// This node's keys from before are stale: its connections are gone.
	if err := retry(ctx, 60*time.Second, func() error { return o.reap(ctx, o.node) }); err != nil {
		return fmt.Errorf("engine: occupancy: remove this node's old counts: %w: %w", hub.ErrUnavailable, err)
	}
	o.sweep(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); o.keepLease(ctx) }()
	go func() { defer wg.Done(); o.evaluate(ctx, debounce, announce) }()
	written, evals := o.write(ctx)
	wg.Wait()
	// Shutting down: the connections have left; write that, and give the
	// lease up so that no one waits for it to run out. If writing fails,
	// the lease runs out and another node reaps this one's keys.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if o.flush(fctx, written, evals) {
		_ = o.nodes.Purge(fctx, o.node)
	}
	return nil
}

func (o *Occupancy) putLease(ctx context.Context) func() error {
	return func() error {
		_, err := o.nodes.Put(ctx, o.node, []byte(o.incarnation))
		return err
	}
}

// keepLease refreshes the lease and watches the others'. A lease found gone
// (this node was cut off longer than NodeTTL, and its keys may have been
// reaped) makes the writer store this node's keys again; one found written
// by another process means two nodes share a name.
func (o *Occupancy) keepLease(ctx context.Context) {
	t := time.NewTicker(o.cfg.NodeTTL / 3)
	defer t.Stop()
	known := o.leases(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		entry, err := o.nodes.Get(ctx, o.node)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			o.e.logger.Warn("occupancy: this node's lease ran out (cut off from the engine?): storing its room counts again", "node", o.node)
			o.mu.Lock()
			o.rewrite = true
			o.mu.Unlock()
			o.poke()
		case err == nil && string(entry.Value()) != o.incarnation:
			o.e.logger.Error("occupancy: another node uses this node's name: room occupancy webhooks will be wrong; give each node its own --node-name", "node", o.node)
		}
		if err := o.putLease(ctx)(); err != nil && ctx.Err() == nil {
			o.e.logger.Warn("occupancy lease", "err", err)
		}
		now := o.leases(ctx)
		if now == nil {
			continue // not read: compare next time
		}
		for n := range known {
			if !now[n] && o.askReap(ctx, n) != nil {
				now[n] = true // not asked (an election, say): ask again next time
			}
		}
		known = now
	}
}

// leases returns the nodes holding a lease (nil when they cannot be read).
func (o *Occupancy) leases(ctx context.Context) map[string]bool {
	l, err := o.nodes.ListKeys(ctx)
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for k := range l.Keys() {
		out[k] = true
	}
	return out
}

func (o *Occupancy) askReap(ctx context.Context, node string) error {
	_, err := o.e.js.Publish(ctx, nodeReapSubject(node), nil)
	if err != nil && ctx.Err() == nil {
		o.e.logger.Warn("occupancy: ask to reap a node; asking again", "node", node, "err", err)
	}
	return err
}

// sweep asks for the reaping of nodes with room keys and no lease (they
// died while no node was watching).
func (o *Occupancy) sweep(ctx context.Context) {
	live := o.leases(ctx)
	if live == nil {
		return
	}
	l, err := o.kv.ListKeysFiltered(ctx, "c.>")
	if err != nil {
		return
	}
	dead := map[string]bool{}
	for k := range l.Keys() {
		if n := k[strings.LastIndexByte(k, '.')+1:]; !live[n] && n != o.node {
			dead[n] = true
		}
	}
	for n := range dead {
		_ = o.askReap(ctx, n) // a node left unasked is found again by the next start's sweep
	}
}

// reap removes node's room keys and asks for its rooms to be evaluated.
func (o *Occupancy) reap(ctx context.Context, node string) error {
	l, err := o.kv.ListKeysFiltered(ctx, "c.*.*."+node)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil
		}
		return err
	}
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	for _, k := range keys {
		entry, err := o.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		var r roomRecord
		if json.Unmarshal(entry.Value(), &r) != nil {
			continue
		}
		// At the revision read: a node that came back meanwhile and wrote
		// the key again keeps it.
		err = o.kv.Purge(ctx, k, jetstream.LastRevision(entry.Revision()), jetstream.PurgeTTL(markerTTL))
		if wrongRevision(err) {
			continue
		}
		if err != nil {
			return err
		}
		if err := o.askEval(ctx, r.NS, r.Room); err != nil {
			return err
		}
	}
	return nil
}

func (o *Occupancy) askEval(ctx context.Context, ns, room string) error {
	b, _ := json.Marshal(roomRecord{NS: ns, Room: room})
	_, err := o.e.js.Publish(ctx, roomEvalSubject(ns, room), b)
	return err
}

// write stores this node's room keys as Set changes them, until ctx ends;
// it returns the keys it holds and the rooms whose evaluation it could not
// ask for yet.
func (o *Occupancy) write(ctx context.Context) (written, evals map[roomRef]bool) {
	written, evals = map[roomRef]bool{}, map[roomRef]bool{}
	var retryC <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return written, evals
		case <-o.wake:
		case <-retryC:
		}
		retryC = nil
		if !o.flush(ctx, written, evals) {
			retryC = time.After(time.Second)
		}
	}
}

// flush writes the rooms Set changed and asks for the evaluation of those
// whose key came or went. It reports whether everything was written (what
// was not is kept for the next flush).
func (o *Occupancy) flush(ctx context.Context, written, evals map[roomRef]bool) bool {
	o.mu.Lock()
	batch := o.dirty
	o.dirty = map[roomRef]bool{}
	o.flushing = true
	if o.rewrite {
		// Every key this node holds, stored again (and evaluated): a
		// reaper may have removed them.
		o.rewrite = false
		for r := range written {
			if _, newer := batch[r]; !newer {
				batch[r] = true
			}
			delete(written, r)
		}
	}
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		o.flushing, o.unasked = false, len(evals)
		o.mu.Unlock()
	}()
	ok := true
	for r, has := range batch {
		if written[r] == has {
			continue
		}
		var err error
		if has {
			b, _ := json.Marshal(roomRecord{NS: r.NS, Room: r.Room})
			_, err = o.kv.Put(ctx, countKey(r.NS, r.Room, o.node), b)
		} else {
			err = o.kv.Purge(ctx, countKey(r.NS, r.Room, o.node), jetstream.PurgeTTL(markerTTL))
		}
		if err != nil {
			ok = false
			o.mu.Lock()
			if _, newer := o.dirty[r]; !newer {
				o.dirty[r] = has
			}
			o.mu.Unlock()
			continue
		}
		if has {
			written[r] = true
		} else {
			delete(written, r)
		}
		evals[r] = true
	}
	for r := range evals {
		if err := o.askEval(ctx, r.NS, r.Room); err != nil {
			ok = false
			continue
		}
		delete(evals, r)
	}
	if !ok && ctx.Err() == nil {
		o.e.logger.Warn("occupancy: room counts not written; retrying")
	}
	return ok
}

// evaluate runs this node's share of the evaluations until ctx ends.
func (o *Occupancy) evaluate(ctx context.Context, debounce func(string) time.Duration,
	announce func(context.Context, string, string, bool, string, time.Time) error) {
	o.e.work(ctx, o.cons, o.cfg.Workers, evalAckWait, "occupancy", func(ctx context.Context, msg jetstream.Msg) {
		o.handle(ctx, msg, debounce, announce)
	})
}

func (o *Occupancy) handle(ctx context.Context, msg jetstream.Msg, debounce func(string) time.Duration,
	announce func(context.Context, string, string, bool, string, time.Time) error) {
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.Ack()
		return
	}
	if node, ok := strings.CutPrefix(msg.Subject(), nodeReapRoot); ok {
		if node != o.node {
			leased, err := o.leased(ctx, node)
			if err == nil && !leased {
				err = o.reap(ctx, node)
			}
			if err != nil {
				// Unsure (the lease unreadable during an election) or not
				// reaped: again in a second, never dropped (its rooms
				// would stay occupied).
				_ = msg.NakWithDelay(time.Second)
				return
			}
		}
		_ = msg.Ack()
		return
	}
	var r roomRecord
	if json.Unmarshal(msg.Data(), &r) != nil {
		_ = msg.Ack()
		return
	}
	if wait := debounce(r.NS) - time.Since(md.Timestamp); wait > 0 {
		_ = msg.NakWithDelay(wait)
		return
	}
	if err := o.settle(ctx, r.NS, r.Room, md.Timestamp, announce); err != nil {
		if ctx.Err() == nil {
			o.e.logger.Warn("occupancy: evaluate room; retrying", "ns", r.NS, "room", r.Room, "err", err)
		}
		_ = msg.NakWithDelay(time.Second)
		return
	}
	_ = msg.Ack()
}

// Settled reports whether every change Set was told has been written and
// evaluated (or is waiting for nothing): nothing local is pending and no
// room of the cluster waits for its evaluation.
func (o *Occupancy) Settled(ctx context.Context) (bool, error) {
	o.mu.Lock()
	local := len(o.dirty) == 0 && !o.flushing && o.unasked == 0
	o.mu.Unlock()
	if !local {
		return false, nil
	}
	n, err := o.Waiting(ctx)
	return n == 0, err
}

// Waiting returns the number of rooms (and nodes to reap) waiting for
// their evaluation, cluster-wide.
func (o *Occupancy) Waiting(ctx context.Context) (uint64, error) {
	info, err := o.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("engine: occupancy: %w: %w", hub.ErrUnavailable, err)
	}
	return info.State.Msgs, nil
}

// leased reports whether node holds a lease; an error: unsure.
func (o *Occupancy) leased(ctx context.Context, node string) (bool, error) {
	_, err := o.nodes.Get(ctx, node)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	default:
		return false, err
	}
}

// settle announces ns/room's change if its occupancy differs from the
// announced one, and records it.
func (o *Occupancy) settle(ctx context.Context, ns, room string, at time.Time,
	announce func(context.Context, string, string, bool, string, time.Time) error) error {
	sk := stateKey(ns, room)
	for range 10 {
		occupied, announced, rev, err := o.read(ctx, ns, room)
		if err != nil {
			return err
		}
		if occupied == announced {
			return nil
		}
		event := "vacated"
		if occupied {
			event = "occupied"
		}
		id := fmt.Sprintf("%s.%s.%s.%d", ns, roomKey(room), event, rev)
		if err := announce(ctx, ns, room, occupied, id, at); err != nil {
			return err
		}
		if occupied {
			b, _ := json.Marshal(roomRecord{NS: ns, Room: room})
			_, err = o.kv.Update(ctx, sk, b, rev)
		} else {
			err = o.kv.Purge(ctx, sk, jetstream.LastRevision(rev), jetstream.PurgeTTL(markerTTL))
		}
		if wrongRevision(err) {
			continue // another node recorded a change meanwhile: look again
		}
		if err != nil {
			return err
		}
		// A zero-crossing made while this was decided may have been
		// evaluated against the old state and found nothing to do.
		if now, _, _, err := o.read(ctx, ns, room); err == nil && now != occupied {
			return o.askEval(ctx, ns, room)
		}
		return nil
	}
	return errors.New("the announced state keeps changing")
}

// read returns whether any node has members in ns/room, whether it is
// announced occupied, and the revision of that announcement (0: none). It
// reads from the bucket's leader (a watch), never a replica that may lag.
func (o *Occupancy) read(ctx context.Context, ns, room string) (occupied, announced bool, rev uint64, err error) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	sk := stateKey(ns, room)
	w, err := o.kv.WatchFiltered(rctx, []string{"c." + ns + "." + roomKey(room) + ".*", sk}, jetstream.MetaOnly())
	if err != nil {
		return false, false, 0, err
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-rctx.Done():
			return false, false, 0, rctx.Err()
		case entry := <-w.Updates():
			if entry == nil { // the initial values are all in
				return occupied, announced, rev, nil
			}
			put := entry.Operation() == jetstream.KeyValuePut
			if entry.Key() == sk {
				announced, rev = put, entry.Revision()
			} else if put {
				occupied = true
			}
		}
	}
}

func wrongRevision(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}
