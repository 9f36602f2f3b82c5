package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// group runs one consumer group's deliveries to its members on this node:
// it pulls as many deliveries as the members have room for, hands each to
// the member holding the fewest, and leases it to that member for the ack
// wait. Every lease ends one way: settled by its holder (ack, nack), given
// back when the holder leaves, or taken back when the ack wait passes (the
// holder gets `revoked` and its ack id is dead from then on).
type group struct {
	ns     *Namespace
	key    GroupKey
	cfg    GroupConfig
	q      Queue
	logger *slog.Logger
	wake   chan struct{}
	ctx    context.Context // the loop's; cancelled by stop
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	members   []*Conn
	held      map[*Conn]int
	flights   map[string]*flight // by flight id
	acked     recent             // flight ids acknowledged lately (a repeated ack is a no-op)
	revoked   recent             // flight ids whose lease ended without a settle
	stopPull  context.CancelFunc // ends the pull in progress, if any
	pullDone  chan struct{}      // closed when that pull has returned
	next      int                // where the next search for a member starts (round robin)
	lastHeld  map[uint64]*Conn   // by message: the member whose lease of it ran out last
	lastFirst uint64             // the last first-delivery sequence (gap detection)
	head      uint64             // the log's first sequence, read at headAt
	headAt    time.Time
}

type flight struct {
	id       string
	conn     *Conn
	d        Delivery
	deadline time.Time // when its lease ends
	timer    *time.Timer
	// settling is set while an ack or nack of it is on its way to the
	// engine: its lease cannot end meanwhile.
	settling bool
}

// pullWait bounds one pull: the loop asks again when it passes.
const pullWait = 30 * time.Second

// revoked is the data of a `revoked` event.
type revokedData struct {
	AckID  string `json:"ack_id"`
	ID     string `json:"id"`
	Group  string `json:"group"`
	Room   string `json:"room"`
	Reason string `json:"reason"`
}

// groupReset is the data of the reset event a group member gets when
// retention removed messages its group had not consumed.
type groupReset struct {
	Reason string `json:"reason"`
	Group  string `json:"group"`
	Room   string `json:"room"`
	// After is the position after which messages may be missing.
	After string `json:"position"`
}

func (ns *Namespace) groupResetData(k GroupKey, after uint64) []byte {
	b, _ := json.Marshal(groupReset{Reason: "messages of this group were removed by retention before being consumed",
		Group: k.Name, Room: k.Room, After: ns.position(after).String()})
	return b
}

// run pulls as many deliveries as the members can take and dispatches each
// as it arrives, until stop.
func (g *group) run() {
	defer close(g.done)
	ctx := g.ctx
	for ctx.Err() == nil {
		n := g.capacity()
		if n == 0 {
			select {
			case <-ctx.Done():
				return
			case <-g.wake:
			}
			continue
		}
		pctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		g.mu.Lock()
		g.stopPull, g.pullDone = cancel, done
		g.mu.Unlock()
		err := g.q.Pull(pctx, g.ns.name, g.key, min(n, 256), pullWait, func(d Delivery) { g.dispatch(ctx, pctx, d) })
		g.mu.Lock()
		g.stopPull, g.pullDone = nil, nil
		g.mu.Unlock()
		cut := pctx.Err() != nil // ended by stop or a leaving member, not by a failure
		close(done)
		cancel()
		if err != nil && !cut {
			g.logger.Warn("group pull", "ns", g.ns.name, "room", g.key.Room, "group", g.key.Name, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
}

// capacity is how many more deliveries the live members can hold.
func (g *group) capacity() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, m := range g.members {
		n += max(0, g.cfg.MaxInFlight-g.held[m])
	}
	return n
}

func (g *group) poke() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// dispatch leases d to the member holding the fewest deliveries, or gives
// it back when none has room (the pull then ends, and the next one asks
// for what the members can take). pctx is the pull's context: a member
// leaving ends it, and waits for it.
func (g *group) dispatch(ctx, pctx context.Context, d Delivery) {
	m := d.Msg
	if d.Count == 1 && !m.GroupOnly {
		g.checkGap(ctx, m.Pos.Seq)
	}
	if d.Count > uint64(g.cfg.MaxDeliver) {
		g.park(ctx, pctx, d)
		return
	}
	g.mu.Lock()
	target := g.pickLocked(m.Pos.Seq)
	if target == nil {
		if g.stopPull != nil {
			g.stopPull()
		}
		g.mu.Unlock()
		g.giveBack(d, 0)
		return
	}
	f := &flight{id: newID(), conn: target, d: d, deadline: time.Now().Add(g.cfg.AckWait)}
	g.flights[f.id] = f
	g.held[target]++
	f.timer = time.AfterFunc(g.cfg.AckWait, func() { g.expire(f.id) })
	g.mu.Unlock()
	ackID := g.ns.ackID(g.key, target.ID, f.id)
	if !target.deliverGroup(m, ackID, d.Count, f.deadline) {
		if g.release(f.id) != nil {
			g.giveBack(d, 0)
		}
		return
	}
	g.ns.cfg.Metrics.GroupDelivered(d.Count > 1)
}

// pickLocked chooses the member for a delivery of message seq: one holding
// the fewest, in turn among equals, and not the one whose lease of this
// message just ran out when another has room (a member that let it expire
// is likely stuck). nil when no member has room.
func (g *group) pickLocked(seq uint64) *Conn {
	avoid := g.lastHeld[seq]
	var target, fallback *Conn
	best := g.cfg.MaxInFlight
	k := len(g.members)
	for i := range k {
		c := g.members[(g.next+i)%k]
		n := g.held[c]
		switch {
		case n >= g.cfg.MaxInFlight:
		case c == avoid:
			fallback = c
		case n < best:
			target, best = c, n
		}
	}
	if target == nil {
		target = fallback
	}
	if target != nil {
		g.next = (g.next + 1) % k
		delete(g.lastHeld, seq)
	}
	return target
}

// giveBack hands a delivery back to the engine for another member (after
// delay).
func (g *group) giveBack(d Delivery, delay time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// A failure leaves it to the engine's own redelivery timer.
	_, _ = g.q.Settle(ctx, []string{d.Handle}, Nack, delay)
}

// release forgets a flight (settled or given back) and returns it; nil when
// it was not there (its lease ended meanwhile).
func (g *group) release(id string) *flight {
	g.mu.Lock()
	f := g.flights[id]
	if f != nil {
		g.forgetLocked(f)
	}
	g.mu.Unlock()
	if f != nil {
		g.poke()
	}
	return f
}

func (g *group) forgetLocked(f *flight) {
	f.timer.Stop()
	delete(g.flights, f.id)
	if g.held[f.conn]--; g.held[f.conn] <= 0 {
		delete(g.held, f.conn)
	}
}

// expire ends a lease whose ack wait passed: the delivery goes back to the
// engine (after the group's backoff) and its holder is told that its ack
// id is dead.
func (g *group) expire(id string) {
	g.mu.Lock()
	f := g.flights[id]
	if f == nil || f.settling {
		g.mu.Unlock()
		return
	}
	g.forgetLocked(f)
	g.revoked.add(id)
	if len(g.lastHeld) > recentMax {
		clear(g.lastHeld)
	}
	g.lastHeld[f.d.Msg.Pos.Seq] = f.conn
	g.mu.Unlock()
	// The holder hears first: the message given back may come to the
	// same member again, and its new delivery must follow the revoked.
	data, _ := json.Marshal(revokedData{AckID: g.ns.ackID(g.key, f.conn.ID, id), ID: f.d.Msg.Pos.String(),
		Group: g.key.Name, Room: g.key.Room, Reason: "its ack wait passed: the message goes to another delivery"})
	f.conn.notice("revoked", data)
	g.poke()
	g.giveBack(f.d, g.cfg.backoff(f.d.Count))
}

// park moves a message delivered MaxDeliver times to the group's dead
// letters, tells the members and the room, and terminates it. A park that
// fails is retried until the pull ends (the group stops, or a member leaves
// and waits for the pull): then the delivery is given back, and parked on
// its next delivery (the engine stores a park retried after an outcome it
// did not learn once). Each attempt gets at most 5 s.
func (g *group) park(ctx, pctx context.Context, d Delivery) {
	times := "times"
	if d.Count-1 == 1 {
		times = "time"
	}
	reason := fmt.Sprintf("delivered %d %s without being acknowledged (max_deliver %d)", d.Count-1, times, g.cfg.MaxDeliver)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := g.q.Park(actx, g.ns.name, g.key, d, reason)
		cancel()
		if err == nil {
			break
		}
		if pctx.Err() != nil {
			g.giveBack(d, 0)
			return
		}
		g.logger.Warn("park dead letter; retrying", "ns", g.ns.name, "room", g.key.Room, "group", g.key.Name, "err", err)
		select {
		case <-pctx.Done():
			g.giveBack(d, 0)
			return
		case <-time.After(wait):
		}
	}
	g.ns.cfg.Metrics.Parked()
	tctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, _ = g.q.Settle(tctx, []string{d.Handle}, Term, 0)
	cancel()
	g.ns.announceDead(g.key, d.Msg, d.Count-1, reason)
	g.ns.observeDead(g.key, d.Msg, d.Count-1, reason)
}

// checkGap tells the members when a first delivery skips past messages
// that retention removed (the log's head moved beyond them) — never a
// silent loss. Called from the loop only.
func (g *group) checkGap(ctx context.Context, seq uint64) {
	prev := g.lastFirst
	if seq > g.lastFirst {
		g.lastFirst = seq
	}
	if prev == 0 || seq <= prev+1 {
		return
	}
	if time.Since(g.headAt) > time.Second {
		if st, err := g.ns.hub.log.State(ctx, g.ns.name); err == nil {
			g.head, g.headAt = st.First, time.Now()
		}
	}
	if g.head <= prev+1 {
		return // the sequences between are other rooms' messages, still stored
	}
	gap, err := g.ns.hub.log.Gap(ctx, g.ns.name, prev, Filter{Rooms: []string{g.key.Room}})
	if err != nil || !gap {
		return
	}
	data := g.ns.groupResetData(g.key, prev)
	for _, c := range g.snapshotMembers() {
		c.notice("reset", data)
	}
}

func (g *group) snapshotMembers() []*Conn {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*Conn(nil), g.members...)
}

// deliverGroup hands a group delivery to a live connection.
func (c *Conn) deliverGroup(m *Message, ackID string, count uint64, deadline time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateLive {
		return false
	}
	if !c.sink.Send(Event{ID: c.at(), Name: m.Event, Data: GroupBody(m, ackID, count, deadline)}) {
		c.closeLocked(ErrSlowConsumer)
		return false
	}
	return true
}

// joinGroup makes c a member of group k and starts the group's delivery
// loop on this node if c is its first local member.
func (ns *Namespace) joinGroup(ctx context.Context, c *Conn, k GroupKey) error {
	cfg, err := ns.PutGroup(ctx, k.Room, k.Name, GroupConfig{}, false)
	if err != nil {
		return err
	}
	// A member joining a group whose backlog lost messages to retention
	// (nobody consumed them in time) is told so first, before any delivery.
	if st, err := ns.hub.groups.GroupState(ctx, ns.name, k); err == nil {
		if gap, err := ns.hub.log.Gap(ctx, ns.name, st.AckFloor, Filter{Rooms: []string{k.Room}}); err == nil && gap {
			c.notice(EventReset, ns.groupResetData(k, st.AckFloor))
		}
	}
	ns.gmu.Lock()
	g := ns.groups[k]
	if g == nil {
		gctx, cancel := context.WithCancel(context.Background())
		g = &group{ns: ns, key: k, cfg: cfg, q: ns.hub.groups, logger: ns.hub.logger,
			wake: make(chan struct{}, 1), ctx: gctx, cancel: cancel, done: make(chan struct{}),
			held: map[*Conn]int{}, flights: map[string]*flight{}, lastHeld: map[uint64]*Conn{}}
		ns.groups[k] = g
		go g.run()
	}
	g.mu.Lock()
	g.members = append(g.members, c)
	g.mu.Unlock()
	ns.gmu.Unlock()
	// Record the membership on the connection unless it closed meanwhile:
	// Detach closes first and then leaves c.groups, so either it sees this
	// group or we see it closed and leave ourselves.
	c.mu.Lock()
	closed := c.state == stateClosed
	if !closed {
		c.groups = append(c.groups, g)
	}
	c.mu.Unlock()
	if closed {
		ns.leaveGroup(g, c)
		return fmt.Errorf("connection %s: %w", c.ID, ErrClosed)
	}
	g.poke()
	return nil
}

// leaveGroups removes c from its groups; its unacknowledged deliveries go
// to another member at once, or wait for the next one (at-least-once: it
// may have processed them, but it can no longer acknowledge them).
func (ns *Namespace) leaveGroups(c *Conn) {
	c.mu.Lock()
	groups := c.groups
	c.groups = nil
	c.mu.Unlock()
	for _, g := range groups {
		ns.leaveGroup(g, c)
	}
}

func (ns *Namespace) leaveGroup(g *group, c *Conn) {
	var handles []string
	g.mu.Lock()
	for i, m := range g.members {
		if m == c {
			g.members = append(g.members[:i], g.members[i+1:]...)
			break
		}
	}
	for _, f := range g.flights {
		if f.conn == c && !f.settling {
			handles = append(handles, f.d.Handle)
			g.forgetLocked(f)
			g.revoked.add(f.id)
		}
	}
	// The pull in progress asked for room this member no longer offers:
	// end it (the next asks for what is left), and wait until it has ended,
	// so that what is given back below cannot reach it.
	stop, pulled := g.stopPull, g.pullDone
	empty := len(g.members) == 0
	g.mu.Unlock()
	if stop != nil {
		stop()
		<-pulled
	}
	if empty {
		ns.stopGroupIfEmpty(g)
	}
	if len(handles) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = g.q.Settle(ctx, handles, Nack, 0)
		cancel()
	}
	g.poke()
}

func (ns *Namespace) stopGroupIfEmpty(g *group) {
	ns.gmu.Lock()
	g.mu.Lock()
	empty := len(g.members) == 0
	g.mu.Unlock()
	if !empty || ns.groups[g.key] != g {
		ns.gmu.Unlock()
		return
	}
	delete(ns.groups, g.key)
	ns.gmu.Unlock()
	g.stop()
}

// stop ends the loop and waits for it; leases still held end with it (the
// engine redelivers them after its own timer).
func (g *group) stop() {
	g.cancel()
	<-g.done
	g.mu.Lock()
	for _, f := range g.flights {
		f.timer.Stop()
	}
	g.mu.Unlock()
}

func (ns *Namespace) stopGroups() {
	ns.gmu.Lock()
	groups := make([]*group, 0, len(ns.groups))
	for k, g := range ns.groups {
		groups = append(groups, g)
		delete(ns.groups, k)
	}
	ns.gmu.Unlock()
	for _, g := range groups {
		g.stop()
	}
}

// localGroupMembers lists the group's members on this node and counts the
// deliveries they hold.
func (ns *Namespace) localGroupMembers(k GroupKey) ([]ConnInfo, int) {
	ns.gmu.Lock()
	g := ns.groups[k]
	ns.gmu.Unlock()
	if g == nil {
		return nil, 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]ConnInfo, 0, len(g.members))
	for _, c := range g.members {
		out = append(out, ConnInfo{ID: c.ID, User: c.User, Connected: c.Connected})
	}
	return out, len(g.flights)
}

// settleLocal settles deliveries held by local connection c.
func (ns *Namespace) settleLocal(ctx context.Context, c *Conn, b settleBatch) error {
	k := GroupKey{Room: b.Room, Name: b.Group}
	ids := make([]string, len(b.AckIDs))
	for i, a := range b.AckIDs {
		id, ok := ns.checkAckID(k, c.ID, a)
		if !ok {
			return fmt.Errorf("ids[%d] was not delivered by %s to connection %s: acknowledge with the token of the connection that received it, on its group's path: %w", i, k, c.ID, ErrForbidden)
		}
		ids[i] = id
	}
	ns.gmu.Lock()
	g := ns.groups[k]
	ns.gmu.Unlock()
	if g == nil {
		return fmt.Errorf("the connection holds no delivery of %s (its leases ended): %w", k, ErrSuperseded)
	}
	// Claim every flight first, all or nothing: a 204 means all of them.
	var claimed []*flight
	g.mu.Lock()
	for i, id := range ids {
		f := g.flights[id]
		switch {
		case f != nil && f.conn == c && !f.settling:
			claimed = append(claimed, f)
			continue
		case f == nil && b.Op == Ack && g.acked.has(id):
			continue // acknowledged already
		}
		revoked := g.revoked.has(id)
		g.mu.Unlock()
		if revoked {
			return fmt.Errorf("ids[%d]: delivery superseded: its lease ended and the message went to another delivery: %w", i, ErrSuperseded)
		}
		return fmt.Errorf("ids[%d] is no longer held by connection %s (acknowledged, handed back, or its lease ended): %w", i, c.ID, ErrSuperseded)
	}
	for _, f := range claimed {
		f.settling = true
	}
	g.mu.Unlock()
	if len(claimed) == 0 {
		return nil
	}
	handles := make([]string, len(claimed))
	for i, f := range claimed {
		handles[i] = f.d.Handle
	}
	if b.Op == Progress {
		return g.extend(ctx, claimed, handles)
	}
	done, err := g.q.Settle(ctx, handles, b.Op, b.Delay)
	g.mu.Lock()
	for i, f := range claimed {
		f.settling = false
		if done[i] {
			g.forgetLocked(f)
			if b.Op == Ack {
				g.acked.add(f.id)
			}
		}
	}
	g.mu.Unlock()
	g.expireLate(claimed)
	g.poke()
	if err != nil {
		return fmt.Errorf("settle %d deliveries of %s: %w", len(handles), k, err)
	}
	return nil
}

// extend restarts the leases of claimed (progress), here and in the engine.
func (g *group) extend(ctx context.Context, claimed []*flight, handles []string) error {
	done, err := g.q.Settle(ctx, handles, Progress, 0)
	g.mu.Lock()
	for i, f := range claimed {
		f.settling = false
		if done[i] {
			f.deadline = time.Now().Add(g.cfg.AckWait)
			f.timer.Reset(g.cfg.AckWait)
		}
	}
	g.mu.Unlock()
	g.expireLate(claimed)
	if err != nil {
		return fmt.Errorf("extend %d deliveries of %s: %w", len(handles), g.key, err)
	}
	return nil
}

// expireLate ends the leases of flights whose settle failed while their
// ack wait passed (expire skipped them while they were settling).
func (g *group) expireLate(fs []*flight) {
	now := time.Now()
	for _, f := range fs {
		g.mu.Lock()
		late := g.flights[f.id] == f && now.After(f.deadline)
		g.mu.Unlock()
		if late {
			g.expire(f.id)
		}
	}
}

// recent is a bounded set of ids: the newest recentMax are kept.
type recent struct {
	set   map[string]struct{}
	order []string
}

const recentMax = 4096

func (r *recent) add(id string) {
	if r.set == nil {
		r.set = map[string]struct{}{}
	}
	if _, ok := r.set[id]; ok {
		return
	}
	r.set[id] = struct{}{}
	r.order = append(r.order, id)
	if len(r.order) > recentMax {
		delete(r.set, r.order[0])
		r.order = r.order[1:]
	}
}

func (r *recent) has(id string) bool {
	_, ok := r.set[id]
	return ok
}
