package hub

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"
)

type connState uint8

const (
	stateStarting connState = iota // registered; live messages are held until replay ends
	stateLive                      // live messages go straight to the sink
	stateClosed
)

// Conn is one client connection (a Socket.IO socket) on this node.
type Conn struct {
	ID        ConnID
	Token     string
	Remote    string
	Connected time.Time
	// User is the authenticated user (JWT sub), "" in open namespaces.
	User string
	// Perms are what the connection may do (nil: open namespace).
	Perms  Perms
	expiry *time.Timer
	ns     *Namespace
	sink   Sink
	hash   [32]byte

	// rooms maps each joined room to the sequence applied when it was
	// joined (replay skips room messages older than the join).
	// Guarded by ns.mu.
	rooms      map[string]uint64
	registered bool // guarded by ns.mu: false once removed or replaced

	mu      sync.Mutex // guards the fields below; never held while blocking
	state   connState
	last    uint64     // sequence of the last message handed to the sink
	pending []*Message // live messages held while starting
	err     error      // why it closed
	groups  []*group   // consumer groups it is a member of
}

// GroupSink is the optional capability of a Sink to carry consumer group
// deliveries.
type GroupSink interface {
	// SendGroup enqueues a group delivery without blocking. at is the
	// connection's current position, used as the event's resume id (a
	// group delivery may be a redelivery of an older message and must not
	// move the client's Last-Event-ID backwards).
	SendGroup(m *Message, ackID string, count uint64, at Position) bool
	// SendNotice enqueues a reserved event (reset) without blocking.
	SendNotice(event string, data []byte, at Position) bool
}

// notice sends a reserved event to a live connection (group members are
// told so when their group lost messages to retention).
func (c *Conn) notice(event string, data []byte) {
	gs, ok := c.sink.(GroupSink)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateLive && !gs.SendNotice(event, data, Position{Epoch: c.ns.epoch, Seq: c.last}) {
		c.closeLocked(ErrSlowConsumer)
	}
}

// deliverGroup hands a group delivery to a live connection.
func (c *Conn) deliverGroup(m *Message, ackID string, count uint64) bool {
	gs, ok := c.sink.(GroupSink)
	if !ok {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateLive {
		return false
	}
	if !gs.SendGroup(m, ackID, count, Position{Epoch: c.ns.epoch, Seq: c.last}) {
		c.closeLocked(ErrSlowConsumer)
		return false
	}
	return true
}

// Namespace returns the connection's namespace.
func (c *Conn) Namespace() *Namespace { return c.ns }

// Err returns why the connection was closed (nil while open).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// deliver hands m to the connection without blocking.
func (c *Conn) deliver(m *Message) {
	c.mu.Lock()
	switch {
	case c.state == stateClosed || m.Pos.Seq <= c.last:
		c.mu.Unlock()
		return
	case c.state == stateStarting:
		if len(c.pending) >= c.ns.hub.cfg.ResumeBuffer {
			c.closeLocked(ErrSlowConsumer)
			c.mu.Unlock()
			return
		}
		c.pending = append(c.pending, m)
		c.mu.Unlock()
		return
	}
	if !c.sink.Send(m) {
		c.closeLocked(ErrSlowConsumer)
		c.mu.Unlock()
		return
	}
	c.last = m.Pos.Seq
	c.mu.Unlock()
}

// Close disconnects the connection with err.
func (c *Conn) Close(err error) {
	c.mu.Lock()
	c.closeLocked(err)
	c.mu.Unlock()
}

func (c *Conn) closeLocked(err error) {
	if c.state == stateClosed {
		return
	}
	c.state = stateClosed
	c.err = err
	c.pending = nil
	if c.expiry != nil {
		c.expiry.Stop()
	}
	if err == ErrSlowConsumer {
		c.ns.cfg.Metrics.SlowConsumer()
	}
	c.sink.Close(err)
}

// replayed records that the replay handed m to the sink.
func (c *Conn) replayed(seq uint64) {
	c.mu.Lock()
	if seq > c.last {
		c.last = seq
	}
	c.mu.Unlock()
}

// GoLive sends the live messages held during start-up (those the replay has
// not sent already) and switches the connection to direct delivery.
func (c *Conn) GoLive() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateClosed {
		return c.err
	}
	for _, m := range c.pending {
		if m.Pos.Seq <= c.last {
			continue
		}
		if !c.sink.Send(m) {
			c.closeLocked(ErrSlowConsumer)
			return ErrSlowConsumer
		}
		c.last = m.Pos.Seq
	}
	c.pending = nil
	c.state = stateLive
	return nil
}

// Replay sends, with back-pressure, every stored message with from < seq <=
// to that this connection should receive. It returns ErrResumeExpired when
// retention removed part of that range before it could be read.
func (c *Conn) Replay(ctx context.Context, from, to uint64) error {
	if to <= from {
		return nil
	}
	ns := c.ns
	ns.mu.RLock()
	rooms := maps.Clone(c.rooms)
	ns.mu.RUnlock()
	names := slices.Collect(maps.Keys(rooms))
	f := Filter{Rooms: names, Conn: c.ID}
	var sendErr error
	err := ns.hub.log.Read(ctx, ns.name, from+1, to, f, func(m *Message) bool {
		if !matches(c.ID, rooms, m) || !c.mayReceive(rooms, m) {
			return true
		}
		if sendErr = c.sink.SendWait(ctx, m); sendErr != nil {
			return false
		}
		c.replayed(m.Pos.Seq)
		return true
	})
	if sendErr != nil {
		return sendErr
	}
	if err != nil {
		return err
	}
	// Retention may have removed messages between the gap check done at
	// connect time and the read: check again rather than risk a silent gap.
	gap, err := ns.hub.log.Gap(ctx, ns.name, from, f)
	if err != nil {
		return err
	}
	if gap {
		return ErrResumeExpired
	}
	return nil
}

// mayReceive re-checks a replayed room message against the connection's
// current permissions: one of the rooms that makes it match must still be
// allowed.
func (c *Conn) mayReceive(rooms map[string]uint64, m *Message) bool {
	if c.Perms == nil || len(m.Rooms) == 0 {
		return true
	}
	for _, r := range m.Rooms {
		if _, in := rooms[r]; in && canReceive(c.Perms, r) {
			return true
		}
	}
	return false
}

// matches reports whether a connection with id and rooms (room → join
// sequence) is to receive m. It is the single definition of addressing, used
// by live fan-out, replay and history alike.
func matches(id ConnID, rooms map[string]uint64, m *Message) bool {
	switch {
	case m.GroupOnly:
		return false
	case m.To != "":
		if m.To != id {
			return false
		}
	case len(m.Rooms) > 0:
		in := false
		for _, r := range m.Rooms {
			if joined, ok := rooms[r]; ok && m.Pos.Seq > joined {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	return !excluded(id, rooms, m.Except)
}

func excluded(id ConnID, rooms map[string]uint64, except []string) bool {
	for _, e := range except {
		if id != "" && e == string(id) {
			return true
		}
		if _, ok := rooms[e]; ok {
			return true
		}
	}
	return false
}
