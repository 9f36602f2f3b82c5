package hub

import (
	"sync"
	"time"
)

// Observer is told, after the fact, of the changes on this node that
// parties outside the server may want to know of (package webhook turns
// them into webhooks). It is Deps.Observer; nil: nobody is told, at no cost.
//
// Contract:
//   - Every call comes after the change took effect, outside every
//     namespace, connection and group lock of the hub.
//   - Member calls about one namespace come one at a time, in the order the
//     changes happened on this node: the last MemberChange.Size of a room
//     is its current local size.
//   - Implementations must not block: calls come from the paths of joins,
//     leaves, stream opens and closes, and of a group's delivery loop.
//     Enqueue and return; never call back into the hub from a call.
type Observer interface {
	// Member: a connection of this node joined or left a room (a REST join
	// or leave, a stream opening with rooms or restored, a stream's end).
	Member(MemberChange)
	// DeadLettered: a consumer group parked a message as a dead letter on
	// this node (exactly where the `dead_letter` notice is announced).
	DeadLettered(DeadLettered)
}

// MemberChange is a connection joining or leaving a room on this node.
type MemberChange struct {
	NS, Room string
	Conn     ConnID
	User     string // the connection's user ("" in open namespaces)
	Joined   bool   // false: it left
	// Size is the number of this node's connections in the room after the
	// change (other nodes hold the rest of the room).
	Size int
	At   time.Time
}

// DeadLettered is a message parked by a consumer group.
type DeadLettered struct {
	NS    string
	Group GroupKey
	// ID is the parked message's id (its position: what clients saw).
	ID         string
	Event      string
	Deliveries uint64
	Reason     string
	At         time.Time
}

// observed queues a namespace's membership changes until they can be told
// outside its lock.
type observed struct {
	qmu   sync.Mutex // guards q; a leaf: taken under ns.mu, never the other way
	q     []MemberChange
	order sync.Mutex // held while the queue is told: one teller at a time, in order
}

// noteLocked queues a change of c's membership of room (the room's local
// size is read here, under ns.mu, so that it is the size right after this
// change). Called with ns.mu held for writing.
func (ns *Namespace) noteLocked(c *Conn, room string, joined bool) {
	if ns.hub.observer == nil {
		return
	}
	ch := MemberChange{NS: ns.name, Room: room, Conn: c.ID, User: c.User, Joined: joined, Size: len(ns.rooms[room]), At: time.Now()}
	ns.obs.qmu.Lock()
	ns.obs.q = append(ns.obs.q, ch)
	ns.obs.qmu.Unlock()
}

// observe tells the Observer the queued changes, in order. Called without
// any hub lock, after each operation that may have queued some: whoever
// comes first tells those queued by others too, and a teller racing with
// it waits its turn (the Observer does not block, so the wait is short).
func (ns *Namespace) observe() {
	o := ns.hub.observer
	if o == nil {
		return
	}
	ns.obs.order.Lock()
	defer ns.obs.order.Unlock()
	for {
		ns.obs.qmu.Lock()
		q := ns.obs.q
		ns.obs.q = nil
		ns.obs.qmu.Unlock()
		if len(q) == 0 {
			return
		}
		for _, ch := range q {
			o.Member(ch)
		}
	}
}

// observeDead tells the Observer that group k parked m.
func (ns *Namespace) observeDead(k GroupKey, m *Message, deliveries uint64, reason string) {
	if o := ns.hub.observer; o != nil {
		o.DeadLettered(DeadLettered{NS: ns.name, Group: k, ID: m.Pos.String(), Event: m.Event, Deliveries: deliveries, Reason: reason, At: time.Now()})
	}
}
