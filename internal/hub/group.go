package hub

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
)

// GroupConfig is a consumer group's delivery policy.
type GroupConfig struct {
	// AckWait is how long a delivery may stay unacknowledged before it is
	// redelivered (default 30s).
	AckWait time.Duration `json:"ack_wait"`
	// MaxDeliver is how many times a message is delivered before it is
	// parked as a dead letter (default 5).
	MaxDeliver int `json:"max_deliver"`
	// MaxInFlight bounds the unacknowledged deliveries one member holds
	// (default 10): no member is flooded, the others take the rest.
	MaxInFlight int `json:"max_in_flight"`
}

// Or returns c with its unset (zero or negative) fields taken from d.
func (c GroupConfig) Or(d GroupConfig) GroupConfig {
	c.defaults(d)
	return c
}

func (c *GroupConfig) defaults(d GroupConfig) {
	if c.AckWait <= 0 {
		c.AckWait = d.AckWait
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = d.MaxDeliver
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = d.MaxInFlight
	}
}

// DefaultGroupConfig is used where neither the namespace nor the group sets
// a value.
var DefaultGroupConfig = GroupConfig{AckWait: 30 * time.Second, MaxDeliver: 5, MaxInFlight: 10}

// Delivery is one message handed out by a group's durable consumer.
type Delivery struct {
	Msg *Message
	// Count is how many times it has been delivered (1 the first time).
	Count uint64
	// Reply is the engine's acknowledgement handle; it works from any node.
	Reply string
	// Raw is the stored body (envelope without id), kept for parking.
	Raw []byte
}

// GroupState is a group's state as the engine knows it.
type GroupState struct {
	Room        string
	Group       string
	Config      GroupConfig
	Pending     uint64 // waiting for a member
	InFlight    int    // delivered, not yet acknowledged
	Redelivered int
	AckFloor    uint64 // every message up to this sequence is acknowledged
	DeadLetters uint64
}

// DeadLetter is a message parked after MaxDeliver deliveries.
type DeadLetter struct {
	Seq        uint64 // its sequence among the dead letters
	Msg        *Message
	Deliveries uint64
	Parked     time.Time
}

// Settle is what to do with a delivery.
type Settle string

// Settle operations.
const (
	Ack  Settle = "+ACK"
	Nak  Settle = "-NAK"
	Term Settle = "+TERM"
)

// Groups is the engine side of consumer groups: durable consumers and their
// dead letters. Every method is safe for concurrent use.
type Groups interface {
	// EnsureGroup creates the group if missing (with cfg, its zero fields
	// from defaults) or, when update is set, updates the fields cfg sets;
	// it returns the config in force.
	EnsureGroup(ctx context.Context, ns, room, group string, cfg, defaults GroupConfig, update bool) (GroupConfig, error)
	DeleteGroup(ctx context.Context, ns, room, group string) error
	// ListGroups lists the groups of a room.
	ListGroups(ctx context.Context, ns, room string) ([]string, error)
	// Fetch returns up to max deliveries, waiting at most wait for the first.
	Fetch(ctx context.Context, ns, room, group string, max int, wait time.Duration) ([]Delivery, error)
	// Settle acknowledges, naks or terminates a delivery by its reply handle.
	Settle(ctx context.Context, reply string, op Settle) error
	// SettleAll settles several deliveries at once; done[i] reports whether
	// replies[i] was confirmed, also when err is not nil.
	SettleAll(ctx context.Context, replies []string, op Settle) (done []bool, err error)
	// Owns reports whether reply is a delivery of this group.
	Owns(ns, room, group, reply string) bool
	GroupState(ctx context.Context, ns, room, group string) (GroupState, error)
	Park(ctx context.Context, ns, room, group string, d Delivery) error
	DeadLetters(ctx context.Context, ns, room, group string, limit int) ([]DeadLetter, error)
	// ReplayDead redelivers a dead letter to the group (only) and removes it.
	ReplayDead(ctx context.Context, ns, room, group string, seq uint64) error
	DropDead(ctx context.Context, ns, room, group string, seq uint64) error
}

// ValidGroup reports whether s is a group name: 1–64 of [A-Za-z0-9_-].
func ValidGroup(s string) bool { return ValidNamespace(s) }

// group runs one consumer group's deliveries to its members on this node.
type group struct {
	ns         *Namespace
	room, name string
	cfg        GroupConfig
	engine     Groups
	logger     *slog.Logger
	wake       chan struct{}
	cancel     context.CancelFunc
	done       chan struct{}
	mu         sync.Mutex
	members    []*Conn
	flights    map[string]*flight // ack id → flight
	perConn    map[*Conn]int

	// Gap detection (run goroutine only): the last first-delivery sequence
	// and the stream's first sequence, refreshed at most once a second.
	lastFirst  uint64
	streamHead uint64
	headAt     time.Time
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

func (g *group) resetData(after uint64) []byte {
	b, _ := json.Marshal(groupReset{Reason: "messages of this group were removed by retention before being consumed",
		Group: g.name, Room: g.room, After: Position{Epoch: g.ns.epoch, Seq: after}.String()})
	return b
}

// checkGap tells the members when a first delivery skips past messages
// that retention removed (the stream's head moved beyond them) — never a
// silent loss.
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
			g.streamHead, g.headAt = st.First, time.Now()
		}
	}
	if g.streamHead <= prev+1 {
		return // the sequences between are other rooms' messages, still stored
	}
	gap, err := g.ns.hub.log.Gap(ctx, g.ns.name, prev, Filter{Rooms: []string{g.room}})
	if err != nil || !gap {
		return
	}
	data := g.resetData(prev)
	g.mu.Lock()
	members := append([]*Conn(nil), g.members...)
	g.mu.Unlock()
	for _, c := range members {
		c.notice("reset", data)
	}
}

type flight struct {
	conn     *Conn
	reply    string
	deadline time.Time
}

func (g *group) key() string { return groupKey(g.room, g.name) }

// groupKey names a group in Namespace.groups.
func groupKey(room, name string) string { return room + "\x00" + name }

// run fetches as many deliveries as the members can take, hands each to the
// member holding the fewest, and sweeps flights past their ack wait.
func (g *group) run(ctx context.Context) {
	defer close(g.done)
	for ctx.Err() == nil {
		capacity := g.capacity()
		if capacity == 0 {
			select {
			case <-ctx.Done():
				return
			case <-g.wake:
			case <-time.After(g.cfg.AckWait / 4):
				g.sweep()
			}
			continue
		}
		ds, err := g.engine.Fetch(ctx, g.ns.name, g.room, g.name, min(capacity, 256), time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			g.logger.Warn("group fetch", "ns", g.ns.name, "room", g.room, "group", g.name, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		for _, d := range ds {
			g.dispatch(ctx, d)
		}
		g.sweep()
	}
}

func (g *group) capacity() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, m := range g.members {
		n += max(0, g.cfg.MaxInFlight-g.perConn[m])
	}
	return n
}

func (g *group) dispatch(ctx context.Context, d Delivery) {
	m := d.Msg
	if d.Count == 1 && !m.GroupOnly {
		g.checkGap(ctx, m.Pos.Seq)
	}
	if !m.GroupOnly && !contains(m.Rooms, g.room) {
		// A multi-room message not addressed to this room.
		_ = g.engine.Settle(ctx, d.Reply, Term)
		return
	}
	if d.Count > uint64(g.cfg.MaxDeliver) {
		if err := g.engine.Park(ctx, g.ns.name, g.room, g.name, d); err != nil {
			g.logger.Error("park dead letter", "ns", g.ns.name, "room", g.room, "group", g.name, "err", err)
			_ = g.engine.Settle(ctx, d.Reply, Nak)
			return
		}
		g.ns.cfg.Metrics.Parked()
		_ = g.engine.Settle(ctx, d.Reply, Term)
		return
	}
	g.mu.Lock()
	var target *Conn
	best := g.cfg.MaxInFlight
	for _, c := range g.members {
		if n := g.perConn[c]; n < best {
			target, best = c, n
		}
	}
	if target == nil {
		g.mu.Unlock()
		_ = g.engine.Settle(ctx, d.Reply, Nak)
		return
	}
	ackID := g.ns.hub.ackID(target.ID, d.Reply)
	g.perConn[target]++
	g.flights[ackID] = &flight{conn: target, reply: d.Reply, deadline: time.Now().Add(g.cfg.AckWait)}
	g.mu.Unlock()
	if !target.deliverGroup(m, ackID, d.Count) {
		g.release(ackID)
		_ = g.engine.Settle(ctx, d.Reply, Nak)
		return
	}
	g.ns.cfg.Metrics.GroupDelivered(d.Count > 1)
}

// sweep forgets flights past their ack wait: the engine redelivers them,
// and an ack received by another node never reaches this one.
func (g *group) sweep() {
	now := time.Now()
	g.mu.Lock()
	for id, f := range g.flights {
		if now.After(f.deadline) {
			delete(g.flights, id)
			g.perConn[f.conn]--
		}
	}
	g.mu.Unlock()
}

// release forgets a flight (acked, nacked or failed) and returns it.
func (g *group) release(ackID string) *flight {
	g.mu.Lock()
	f := g.flights[ackID]
	if f != nil {
		delete(g.flights, ackID)
		g.perConn[f.conn]--
	}
	g.mu.Unlock()
	if f != nil {
		g.poke()
	}
	return f
}

func (g *group) poke() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// ackID binds a delivery's reply handle to the connection that received it,
// so that only that connection's token can settle it, on any node: the MAC
// key is shared by all nodes through the engine.
func (h *Hub) ackID(conn ConnID, reply string) string {
	mac := hmac.New(sha256.New, h.ackKey)
	mac.Write([]byte(conn))
	mac.Write([]byte{0})
	mac.Write([]byte(reply))
	return base64.RawURLEncoding.EncodeToString([]byte(reply)) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:16])
}

// parseAckID returns the reply handle of ackID if it was issued to conn.
func (h *Hub) parseAckID(conn ConnID, ackID string) (string, bool) {
	enc, _, ok := strings.Cut(ackID, ".")
	if !ok || len(ackID) > 1024 {
		return "", false
	}
	reply, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return "", false
	}
	return string(reply), hmac.Equal([]byte(h.ackID(conn, string(reply))), []byte(ackID))
}

// JoinGroup makes c a member of group name of room and starts the group's
// delivery loop on this node if it is the first local member.
func (ns *Namespace) JoinGroup(ctx context.Context, c *Conn, room, name string) error {
	cfg, err := ns.EnsureGroup(ctx, room, name, GroupConfig{}, false) // validates; fails without groups
	if err != nil {
		return err
	}
	gs := ns.hub.groups
	ns.gmu.Lock()
	k := groupKey(room, name)
	g := ns.groups[k]
	if g == nil {
		gctx, cancel := context.WithCancel(context.Background())
		g = &group{ns: ns, room: room, name: name, cfg: cfg, engine: gs, logger: ns.hub.logger,
			wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{}),
			flights: map[string]*flight{}, perConn: map[*Conn]int{}}
		ns.groups[k] = g
		go g.run(gctx)
	}
	g.mu.Lock()
	g.members = append(g.members, c)
	g.mu.Unlock()
	ns.gmu.Unlock()
	// A member joining a group whose backlog lost messages to retention
	// (nobody consumed them in time) is told so at once.
	if st, err := gs.GroupState(ctx, ns.name, room, name); err == nil {
		if gap, err := ns.hub.log.Gap(ctx, ns.name, st.AckFloor, Filter{Rooms: []string{room}}); err == nil && gap {
			defer c.notice("reset", g.resetData(st.AckFloor))
		}
	}
	// Record the membership on the connection unless it closed meanwhile:
	// Disconnect closes first and then leaves c.groups, so either it sees
	// this group or we see it closed and leave ourselves.
	c.mu.Lock()
	closed := c.state == stateClosed
	if !closed {
		c.groups = append(c.groups, g)
	}
	c.mu.Unlock()
	if closed {
		g.mu.Lock()
		g.removeLocked(c)
		g.mu.Unlock()
		ns.stopGroupIfEmpty(g)
		return fmt.Errorf("connection %s: %w", c.ID, ErrClosed)
	}
	g.poke()
	return nil
}

func (g *group) removeLocked(c *Conn) {
	for i, m := range g.members {
		if m == c {
			g.members = append(g.members[:i], g.members[i+1:]...)
			break
		}
	}
}

// leaveGroups removes c from its groups; its unacknowledged deliveries are
// redelivered at once (at-least-once: it may have processed them, but it
// can no longer acknowledge them). A group left with no local member stops
// its loop here and is waited for.
func (ns *Namespace) leaveGroups(c *Conn) {
	c.mu.Lock()
	groups := c.groups
	c.groups = nil
	c.mu.Unlock()
	for _, g := range groups {
		var replies []string
		g.mu.Lock()
		g.removeLocked(c)
		for id, f := range g.flights {
			if f.conn == c {
				replies = append(replies, f.reply)
				delete(g.flights, id)
			}
		}
		delete(g.perConn, c)
		empty := len(g.members) == 0
		g.mu.Unlock()
		if len(replies) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = g.engine.SettleAll(ctx, replies, Nak)
			cancel()
		}
		if empty {
			ns.stopGroupIfEmpty(g)
		}
	}
}

func (ns *Namespace) stopGroupIfEmpty(g *group) {
	ns.gmu.Lock()
	g.mu.Lock()
	empty := len(g.members) == 0
	g.mu.Unlock()
	if !empty || ns.groups[g.key()] != g {
		ns.gmu.Unlock()
		return
	}
	delete(ns.groups, g.key())
	ns.gmu.Unlock()
	g.cancel()
	<-g.done
}

// SettleGroup acknowledges (or naks) deliveries made to connection conn
// (which may live on another node: an ack id proves itself).
func (ns *Namespace) SettleGroup(ctx context.Context, conn ConnID, room, name string, ackIDs []string, op Settle) error {
	gs := ns.hub.groups
	if gs == nil {
		return fmt.Errorf("consumer groups: %w", ErrUnavailable)
	}
	replies := make([]string, len(ackIDs))
	for i, id := range ackIDs {
		reply, ok := ns.hub.parseAckID(conn, id)
		if !ok && !wellFormedAckID(id) {
			return fmt.Errorf("ids[%d] is not an ack id: send the ack_id of a delivery as received: %w", i, ErrInvalid)
		}
		if !ok {
			return fmt.Errorf("ids[%d] was not delivered to connection %s: acknowledge with the token of the connection that received it: %w", i, conn, ErrForbidden)
		}
		if !gs.Owns(ns.name, room, name, reply) {
			return fmt.Errorf("ids[%d] is not a delivery of group %s of room %s: acknowledge it on the path of its own group: %w", i, name, room, ErrInvalid)
		}
		replies[i] = reply
	}
	ns.gmu.Lock()
	g := ns.groups[groupKey(room, name)]
	ns.gmu.Unlock()
	done, err := gs.SettleAll(ctx, replies, op)
	if g != nil {
		for i, ok := range done {
			if ok {
				g.release(ackIDs[i])
			}
		}
	}
	return err
}

// EnsureGroup creates group name of room if missing (zero fields of cfg
// from the namespace's group defaults) or, with update, changes the fields
// cfg sets. It returns the config in force.
func (ns *Namespace) EnsureGroup(ctx context.Context, room, name string, cfg GroupConfig, update bool) (GroupConfig, error) {
	if !ValidRoom(room) || !ValidGroup(name) {
		return GroupConfig{}, fmt.Errorf("group %q of room %q: %w", clip(name), clip(room), ErrInvalid)
	}
	if ns.hub.groups == nil {
		return GroupConfig{}, fmt.Errorf("consumer groups: %w", ErrUnavailable)
	}
	return ns.hub.groups.EnsureGroup(ctx, ns.name, room, name, cfg, ns.cfg.Group, update)
}

// Groups returns the engine side of consumer groups (nil when disabled).
func (ns *Namespace) Groups() Groups { return ns.hub.groups }

// GroupMembers lists the local members of a group.
func (ns *Namespace) GroupMembers(room, name string) []ConnInfo {
	ns.gmu.Lock()
	g := ns.groups[groupKey(room, name)]
	ns.gmu.Unlock()
	if g == nil {
		return []ConnInfo{}
	}
	g.mu.Lock()
	out := make([]ConnInfo, 0, len(g.members))
	for _, c := range g.members {
		out = append(out, ConnInfo{ID: c.ID, User: c.User, Connected: c.Connected})
	}
	g.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
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
		g.cancel()
		<-g.done
	}
}
