package hub

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"
)

// Sink is the outbound side of one connection (the sse package implements
// it on an r3labs stream). The hub calls it in this order: Hello once, from
// Open; then Send and SendWait, in the order the events are to be written;
// Close at any time, from any goroutine.
type Sink interface {
	// Hello writes the connection's first event (`connected`). It is called
	// once, by Open, before any other method, and may write synchronously.
	Hello(ev Event) error
	// Send enqueues ev without blocking; it returns false when the
	// connection's queue is full (the hub then closes the connection).
	Send(ev Event) bool
	// SendWait enqueues ev, waiting while the queue is full (replay uses it:
	// a resuming client is paced by its own reading speed).
	SendWait(ctx context.Context, ev Event) error
	// Close ends the connection with err; it does not block and may be
	// called more than once. When EndReason(err) names a reason a client
	// must act on, the sink writes an `end` event with it before ending the
	// stream, if it can without waiting, with lastID as its SSE id (the id
	// of the last event sent: an event without one would clear the
	// client's Last-Event-ID).
	Close(err error, lastID string)
}

// Event is one event for a connection: a stored message (Msg, whose
// encoding the sink may share across connections; its SSE id is
// ResumeID(Msg.Pos, the connection's token)), or a reserved event or group
// delivery (ID, its full SSE id, Name and Data).
type Event struct {
	Msg  *Message
	ID   string
	Name string
	Data []byte
}

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
	start  start // how its stream begins (Open, Run)

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

	// saveMu orders this connection's session writes (the refresher, a
	// join, the final save at Detach): a later one never overwrites an
	// earlier one with older state. detached is set under it by Detach.
	saveMu   sync.Mutex
	detached bool
}

// Namespace returns the connection's namespace.
func (c *Conn) Namespace() *Namespace { return c.ns }

// Restored reports whether Open gave back a previous connection's id and
// rooms.
func (c *Conn) Restored() bool { return c.start.restored }

// Reset returns why the asked-for resume position could not be honoured
// ("" when it could, or when there was none).
func (c *Conn) Reset() string { return c.start.reset }

// Err returns why the connection was closed (nil while open).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// at is the SSE id of a reserved event or a group delivery sent now: the
// connection's current position (it must never move the client's
// Last-Event-ID backwards) and its token. Called with c.mu held.
func (c *Conn) at() string { return ResumeID(c.ns.position(c.last), c.Token) }

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
	if !c.sink.Send(Event{Msg: m}) {
		c.closeLocked(ErrSlowConsumer)
		c.mu.Unlock()
		return
	}
	c.last = m.Pos.Seq
	c.mu.Unlock()
}

// notice sends a reserved event to a live connection without blocking.
func (c *Conn) notice(name string, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateLive && !c.sink.Send(Event{ID: c.at(), Name: name, Data: data}) {
		c.closeLocked(ErrSlowConsumer)
	}
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
	c.sink.Close(err, c.at())
}

// replayed records that the replay handed m to the sink.
func (c *Conn) replayed(seq uint64) {
	c.mu.Lock()
	if seq > c.last {
		c.last = seq
	}
	c.mu.Unlock()
}

// goLive sends the live messages held during start-up (those the replay has
// not sent already) and switches the connection to direct delivery.
func (c *Conn) goLive() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateClosed {
		return c.err
	}
	for _, m := range c.pending {
		if m.Pos.Seq <= c.last {
			continue
		}
		if !c.sink.Send(Event{Msg: m}) {
			c.closeLocked(ErrSlowConsumer)
			return ErrSlowConsumer
		}
		c.last = m.Pos.Seq
	}
	c.pending = nil
	c.state = stateLive
	return nil
}

// replay sends, with back-pressure, every stored message with from < seq <=
// to that this connection should receive. It returns ErrResumeExpired when
// retention removed part of that range before it could be read.
func (c *Conn) replay(ctx context.Context, from, to uint64) error {
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
		if sendErr = c.sink.SendWait(ctx, Event{Msg: m}); sendErr != nil {
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
	// open and the read: check again rather than risk a silent gap.
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

// canReceive reports whether p lets a connection receive room's messages:
// it may subscribe to it or join it.
func canReceive(p Perms, room string) bool {
	return Allowed(p, ActSubscribe, room) || Allowed(p, ActJoin, room)
}
