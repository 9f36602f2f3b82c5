package hub

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Consumer groups: each message published to a room goes to one connected
// member of each of the room's groups, must be acknowledged, is redelivered
// if not, and waits while no member is connected. The engine keeps the
// group's durable consumer (what is delivered, acknowledged, pending); the
// hub leases each delivery to one member of this node for the group's ack
// wait, and owns that lease: it ends it (redelivery, `revoked` to the
// holder), extends it (progress) and settles it (ack, nack).

// GroupKey names a consumer group: a room and the group's name.
type GroupKey struct {
	Room, Name string
}

func (k GroupKey) String() string { return "group " + k.Name + " of room " + k.Room }

// GroupConfig is a consumer group's delivery policy.
type GroupConfig struct {
	// AckWait is how long a member holds a delivery before it is taken
	// back and redelivered (its lease; progress extends it).
	AckWait time.Duration `json:"ack_wait"`
	// MaxDeliver is how many times a message is delivered before it is
	// parked as a dead letter.
	MaxDeliver int `json:"max_deliver"`
	// MaxInFlight bounds the unacknowledged deliveries one member holds:
	// no member is flooded, the others take the rest.
	MaxInFlight int `json:"max_in_flight"`
	// Backoff delays the redelivery of a delivery whose ack wait ran out:
	// the n-th redelivery waits Backoff[n-1] (the last entry for later
	// ones); empty: at once.
	Backoff []time.Duration `json:"backoff,omitempty"`
}

// DefaultGroupConfig is used where neither the namespace nor the group sets
// a value.
var DefaultGroupConfig = GroupConfig{AckWait: 30 * time.Second, MaxDeliver: 5, MaxInFlight: 10}

// Or returns c with its unset (zero or negative) fields taken from d.
func (c GroupConfig) Or(d GroupConfig) GroupConfig {
	if c.AckWait <= 0 {
		c.AckWait = d.AckWait
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = d.MaxDeliver
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = d.MaxInFlight
	}
	if c.Backoff == nil {
		c.Backoff = d.Backoff
	}
	return c
}

// backoff is the delay before the redelivery that follows delivery count.
func (c GroupConfig) backoff(count uint64) time.Duration {
	if len(c.Backoff) == 0 || count == 0 {
		return 0
	}
	return c.Backoff[min(int(count)-1, len(c.Backoff)-1)]
}

// Delivery is one message handed out by a group's durable consumer.
type Delivery struct {
	Msg *Message
	// Count is how many times it has been delivered (1 the first time).
	Count uint64
	// Handle is the engine's name for this delivery, for Settle and Park;
	// opaque to the hub.
	Handle string
}

// Settle is what to do with a delivery.
type Settle uint8

// Settle operations.
const (
	// Ack: processed; never delivered again.
	Ack Settle = iota + 1
	// Nack: not processed; deliver again (after a delay, if one is given).
	Nack
	// Term: never deliver again, unprocessed (parked, or not for this group).
	Term
	// Progress: still being processed; restart the engine's redelivery
	// timer.
	Progress
)

// Queue is the consumer side of groups in the engine: what a group's
// delivery loop uses.
//
// Contract: safe for concurrent use; every method honours ctx.
//   - EnsureGroup is called before Pull for a group on a node.
//   - A delivery passed to Pull's fn is the engine's to hand out again
//     only after the group's AckWait plus a margin (so that the hub's own
//     lease, AckWait, always ends first, on a live node), unless it is
//     settled before: Progress restarts that timer, Nack hands it out
//     again after its delay, Ack and Term never.
//   - Deliveries of messages not addressed to the group's room (a message
//     to several rooms, of which this is not one) never reach fn.
type Queue interface {
	// EnsureGroup creates group g of namespace ns if missing (with cfg,
	// its zero fields from defaults) or, with update, changes the fields
	// cfg sets; it returns the config in force.
	EnsureGroup(ctx context.Context, ns string, g GroupKey, cfg, defaults GroupConfig, update bool) (GroupConfig, error)
	// Pull asks for up to n deliveries of g and calls fn for each as soon
	// as it arrives, from the calling goroutine, until n arrived, wait
	// passed or ctx ended (fn is still called for deliveries that arrived
	// before; the caller gives back what it cannot use). It never waits for
	// a batch to fill.
	Pull(ctx context.Context, ns string, g GroupKey, n int, wait time.Duration, fn func(Delivery)) error
	// Settle applies op to deliveries by handle (delay: Nack only); done[i]
	// reports whether handles[i] was confirmed, also when err is not nil.
	Settle(ctx context.Context, handles []string, op Settle, delay time.Duration) (done []bool, err error)
	// Park copies d to g's dead letters with reason; the caller then
	// terminates it.
	Park(ctx context.Context, ns string, g GroupKey, d Delivery, reason string) error
}

// GroupState is a group's state as the engine knows it.
type GroupState struct {
	Key    GroupKey
	Config GroupConfig
	// Waiting counts messages not yet delivered to the group.
	Waiting uint64
	// Unacked counts delivered messages not yet acknowledged (held by a
	// member, or given back and waiting for a redelivery).
	Unacked     int
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
	Reason     string
}

// GroupAdmin is the management side of groups in the engine.
//
// Contract: safe for concurrent use; ErrNotFound for a group or dead
// letter that does not exist, ErrUnavailable when the engine cannot answer.
type GroupAdmin interface {
	// ListGroups lists the groups of a room by name.
	ListGroups(ctx context.Context, ns, room string) ([]string, error)
	GroupState(ctx context.Context, ns string, g GroupKey) (GroupState, error)
	DeleteGroup(ctx context.Context, ns string, g GroupKey) error
	DeadLetters(ctx context.Context, ns string, g GroupKey, limit int) ([]DeadLetter, error)
	// ReplayDead redelivers a dead letter to the group (only) and removes it.
	ReplayDead(ctx context.Context, ns string, g GroupKey, seq uint64) error
	DropDead(ctx context.Context, ns string, g GroupKey, seq uint64) error
}

// Groups is the engine side of consumer groups (Deps.Groups).
type Groups interface {
	Queue
	GroupAdmin
}

// ValidGroup reports whether s is a group name: 1–64 of [A-Za-z0-9_-].
func ValidGroup(s string) bool { return ValidNamespace(s) }

func (ns *Namespace) checkGroup(room, name string) (GroupKey, error) {
	if !ValidRoom(room) || !ValidGroup(name) {
		return GroupKey{}, fmt.Errorf("group %q of room %q: %w", clip(name), clip(room), ErrInvalid)
	}
	if ns.hub.groups == nil {
		return GroupKey{}, fmt.Errorf("consumer groups are not enabled on this server: %w", ErrUnavailable)
	}
	return GroupKey{Room: room, Name: name}, nil
}

// PutGroup creates group name of room if missing (zero fields of cfg from
// the namespace's group defaults) or, with update, changes the fields cfg
// sets. It returns the config in force.
func (ns *Namespace) PutGroup(ctx context.Context, room, name string, cfg GroupConfig, update bool) (GroupConfig, error) {
	k, err := ns.checkGroup(room, name)
	if err != nil {
		return GroupConfig{}, err
	}
	if err := ns.hub.checkInFlight(cfg.MaxInFlight); err != nil {
		return GroupConfig{}, err
	}
	return ns.hub.groups.EnsureGroup(ctx, ns.name, k, cfg, ns.cfg.Group, update)
}

// GroupStatus is a group's state as a person reads it, across the cluster.
type GroupStatus struct {
	Key    GroupKey
	Config GroupConfig
	// Pending counts messages waiting for a member: never delivered, or
	// given back and waiting for their redelivery.
	Pending uint64
	// InFlight counts deliveries a member holds now.
	InFlight    int
	Redelivered int
	AckFloor    Position
	DeadLetters uint64
	// Members are the group's connected members, on every node.
	Members []ConnInfo
}

// Group returns group name of room's status.
func (ns *Namespace) Group(ctx context.Context, room, name string) (GroupStatus, error) {
	k, err := ns.checkGroup(room, name)
	if err != nil {
		return GroupStatus{}, err
	}
	st, err := ns.hub.groups.GroupState(ctx, ns.name, k)
	if err != nil {
		return GroupStatus{}, err
	}
	out := GroupStatus{Key: k, Config: st.Config, Redelivered: st.Redelivered, AckFloor: ns.position(st.AckFloor),
		DeadLetters: st.DeadLetters, Members: []ConnInfo{}}
	for _, rep := range ns.gather(ctx, opGroup, presenceRequest{Room: room, Group: name}) {
		out.InFlight += rep.InFlight
		for _, m := range rep.Members {
			out.Members = append(out.Members, ConnInfo{ID: m.ID, User: m.User, Connected: m.Connected})
		}
	}
	sort.Slice(out.Members, func(i, j int) bool { return out.Members[i].ID < out.Members[j].ID })
	// What the engine counts as unacknowledged but no member holds was
	// given back (a member left, a lease ran out) and waits for a member.
	out.Pending = st.Waiting + uint64(max(0, st.Unacked-out.InFlight))
	return out, nil
}

// ListGroups returns the status of every group of room.
func (ns *Namespace) ListGroups(ctx context.Context, room string) ([]GroupStatus, error) {
	if _, err := ns.checkGroup(room, "g"); err != nil {
		return nil, err
	}
	names, err := ns.hub.groups.ListGroups(ctx, ns.name, room)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := []GroupStatus{}
	for _, g := range names {
		st, err := ns.Group(ctx, room, g)
		if err != nil {
			continue // deleted meanwhile
		}
		out = append(out, st)
	}
	return out, nil
}

// DeleteGroup removes a group, its backlog and its dead letters.
func (ns *Namespace) DeleteGroup(ctx context.Context, room, name string) error {
	k, err := ns.checkGroup(room, name)
	if err != nil {
		return err
	}
	return ns.hub.groups.DeleteGroup(ctx, ns.name, k)
}

// GroupBacklog returns the group's ack floor and up to limit messages of
// the room stored after it: what a member reconnecting after a long absence
// asks for ("everything not acknowledged"). Messages acknowledged out of
// order past the floor are included too: the floor is contiguous.
func (ns *Namespace) GroupBacklog(ctx context.Context, room, name string, limit int) (Position, []*Message, error) {
	k, err := ns.checkGroup(room, name)
	if err != nil {
		return Position{}, nil, err
	}
	st, err := ns.hub.groups.GroupState(ctx, ns.name, k)
	if err != nil {
		return Position{}, nil, err
	}
	var out []*Message
	err = ns.hub.log.Read(ctx, ns.name, st.AckFloor+1, 0, Filter{Rooms: []string{room}}, func(m *Message) bool {
		if !m.GroupOnly && contains(m.Rooms, room) {
			out = append(out, m)
		}
		return len(out) < limit
	})
	return ns.position(st.AckFloor), out, err
}

// DeadLetters lists up to limit of a group's dead letters, oldest first.
func (ns *Namespace) DeadLetters(ctx context.Context, room, name string, limit int) ([]DeadLetter, error) {
	k, err := ns.checkGroup(room, name)
	if err != nil {
		return nil, err
	}
	if _, err := ns.hub.groups.GroupState(ctx, ns.name, k); err != nil {
		return nil, err // 404 for an unknown group
	}
	return ns.hub.groups.DeadLetters(ctx, ns.name, k, limit)
}

// ReplayDead delivers dead letter seq to the group once more (to it alone)
// and removes it from the dead letters.
func (ns *Namespace) ReplayDead(ctx context.Context, room, name string, seq uint64) error {
	k, err := ns.checkGroup(room, name)
	if err != nil {
		return err
	}
	return ns.hub.groups.ReplayDead(ctx, ns.name, k, seq)
}

// DropDead removes dead letter seq.
func (ns *Namespace) DropDead(ctx context.Context, room, name string, seq uint64) error {
	k, err := ns.checkGroup(room, name)
	if err != nil {
		return err
	}
	return ns.hub.groups.DropDead(ctx, ns.name, k, seq)
}

// settleBatch is a settle request for the node holding the connection.
type settleBatch struct {
	Room   string        `json:"room"`
	Group  string        `json:"group"`
	AckIDs []string      `json:"ack_ids"`
	Op     Settle        `json:"op"`
	Delay  time.Duration `json:"delay,omitempty"`
}

// SettleGroup acknowledges (Ack), gives back (Nack, after delay) or extends
// (Progress) deliveries made to connection conn, on the node that holds it.
// Every ack id must be a current delivery of the group to conn: an ack id
// of another connection or group is refused (ErrForbidden), and one whose
// lease ended (it was redelivered) is refused with ErrSuperseded — only its
// current holder can settle a delivery. Acknowledging a delivery already
// acknowledged is a no-op.
func (ns *Namespace) SettleGroup(ctx context.Context, conn ConnID, room, name string, ackIDs []string, op Settle, delay time.Duration) error {
	k, err := ns.checkGroup(room, name)
	if err != nil {
		return err
	}
	if op != Ack && op != Nack && op != Progress {
		return fmt.Errorf("settle: unknown operation: %w", ErrInvalid)
	}
	for i, id := range ackIDs {
		if _, ok := parseAckID(id); !ok {
			return fmt.Errorf("ids[%d] is not an ack id: send the ack_id of a delivery as received: %w", i, ErrInvalid)
		}
	}
	b := settleBatch{Room: k.Room, Group: k.Name, AckIDs: ackIDs, Op: op, Delay: delay}
	_, err = ns.onConn(ctx, opSettle, connRequest{ID: conn, Settle: &b})
	return err
}

// ackID names a delivery to a member: the flight's id and a MAC binding it
// to the namespace, group and connection, with a key shared by the nodes,
// so that an ack id is refused for any other connection or group on any
// node without a lookup.
func (ns *Namespace) ackID(k GroupKey, conn ConnID, flight string) string {
	return flight + "." + base64.RawURLEncoding.EncodeToString(ns.ackMAC(k, conn, flight))
}

func (ns *Namespace) ackMAC(k GroupKey, conn ConnID, flight string) []byte {
	mac := hmac.New(sha256.New, ns.hub.ackKey)
	for _, s := range []string{ns.name, k.Room, k.Name, string(conn), flight} {
		mac.Write([]byte(s))
		mac.Write([]byte{0})
	}
	return mac.Sum(nil)[:16]
}

// parseAckID returns the flight id of a well-formed ack id.
func parseAckID(ackID string) (string, bool) {
	flight, mac, ok := strings.Cut(ackID, ".")
	if !ok || len(flight) != idLen || len(mac) != 22 || !ValidConnID(flight) {
		return "", false
	}
	// Strict: a MAC has one spelling (no stray bits in its last character).
	if _, err := base64.RawURLEncoding.Strict().DecodeString(mac); err != nil {
		return "", false
	}
	return flight, true
}

// checkAckID reports whether ackID was issued to conn for group k.
func (ns *Namespace) checkAckID(k GroupKey, conn ConnID, ackID string) (string, bool) {
	flight, ok := parseAckID(ackID)
	if !ok {
		return "", false
	}
	_, mac, _ := strings.Cut(ackID, ".")
	got, _ := base64.RawURLEncoding.Strict().DecodeString(mac)
	return flight, hmac.Equal(got, ns.ackMAC(k, conn, flight))
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// deadLetterData is the data of a `dead_letter` notice.
type deadLetterData struct {
	ID         string `json:"id"` // the parked message's id
	Group      string `json:"group"`
	Room       string `json:"room"`
	Event      string `json:"event"`
	Deliveries uint64 `json:"deliveries"`
	Reason     string `json:"reason"`
}

// announceDead stores a `dead_letter` notice in the room, so that its
// subscribers (and the group's members, apply) learn that a message was
// parked — also those offline now, when they resume.
func (ns *Namespace) announceDead(k GroupKey, m *Message, deliveries uint64, reason string) {
	data, _ := json.Marshal(deadLetterData{ID: m.Pos.String(), Group: k.Name, Room: k.Room, Event: m.Event, Deliveries: deliveries, Reason: reason})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := ns.store(ctx, &Outgoing{Event: EventDeadLetter, Data: data, Rooms: []string{k.Room}, Notice: true}); err != nil {
		ns.hub.logger.Warn("announce dead letter", "ns", ns.name, "room", k.Room, "group", k.Name, "err", err)
	}
}

// noticeGroups hands a room notice to the members of the room's groups on
// this node (they are not members of the room). Called by apply, in
// sequence order.
func (ns *Namespace) noticeGroups(m *Message) {
	ns.gmu.Lock()
	var members []*Conn
	for k, g := range ns.groups {
		if contains(m.Rooms, k.Room) {
			members = append(members, g.snapshotMembers()...)
		}
	}
	ns.gmu.Unlock()
	for _, c := range members {
		c.deliver(m)
	}
}
