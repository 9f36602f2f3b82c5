package hub

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Namespace is a Socket.IO namespace: its own rooms, connections and log.
type Namespace struct {
	name  string
	cfg   NamespaceConfig
	hub   *Hub
	epoch string

	// applied is the sequence of the last message fanned out. It is written
	// by apply under mu.RLock (one apply goroutine) and read under mu.Lock
	// by registration and join, which is what makes "every message after
	// the one applied at join" exact.
	applied atomic.Uint64

	mu     sync.RWMutex
	closed bool // Hub.Close: no connection registers any more
	conns  map[ConnID]*Conn
	tokens map[[32]byte]*Conn
	rooms  map[string]map[*Conn]struct{}

	gmu    sync.Mutex          // guards groups; never held with mu
	groups map[GroupKey]*group // while they have local members

	obs observed // membership changes for Deps.Observer (observe.go)
}

// Name returns the namespace's name.
func (ns *Namespace) Name() string { return ns.name }

// Config returns the namespace's settings (defaults filled in).
func (ns *Namespace) Config() NamespaceConfig { return ns.cfg }

// Epoch returns the epoch of the namespace's log.
func (ns *Namespace) Epoch() string { return ns.epoch }

// position names sequence seq of this namespace's log.
func (ns *Namespace) position(seq uint64) Position { return Position{Epoch: ns.epoch, Seq: seq} }

// apply fans m out to the local connections that are to receive it. The
// Log's Follow calls it in sequence order from a single goroutine.
func (ns *Namespace) apply(m *Message) {
	ns.mu.RLock()
	n := ns.fanout(m, (*Conn).deliver)
	ns.applied.Store(m.Pos.Seq)
	ns.mu.RUnlock()
	if m.Notice {
		ns.noticeGroups(m)
	}
	ns.cfg.Metrics.FannedOut(n, time.Since(m.Time))
}

// fanout calls send once for every local connection m is addressed to
// (live addressing: room members now, whatever the sequence they joined
// at) and returns how many it called it for. Called with ns.mu held for
// reading.
func (ns *Namespace) fanout(m *Message, send func(*Conn, *Message)) int {
	n := 0
	switch {
	case m.GroupOnly:
	case m.To != "":
		if c := ns.conns[m.To]; c != nil && !excluded(c.ID, c.rooms, m.Except) {
			send(c, m)
			n++
		}
	case len(m.Rooms) > 0:
		for i, r := range m.Rooms {
			for c := range ns.rooms[r] {
				if i > 0 && inAny(c.rooms, m.Rooms[:i]) || len(m.Except) > 0 && excluded(c.ID, c.rooms, m.Except) {
					continue // got it through an earlier room, or excluded
				}
				send(c, m)
				n++
			}
		}
	default:
		for _, c := range ns.conns {
			if len(m.Except) == 0 || !excluded(c.ID, c.rooms, m.Except) {
				send(c, m)
				n++
			}
		}
	}
	return n
}

func inAny(rooms map[string]uint64, names []string) bool {
	for _, n := range names {
		if _, ok := rooms[n]; ok {
			return true
		}
	}
	return false
}

func (ns *Namespace) addLocked(c *Conn) {
	ns.conns[c.ID] = c
	ns.tokens[c.hash] = c
	for r := range c.rooms {
		ns.joinLocked(c, r)
	}
	c.registered = true
}

func (ns *Namespace) joinLocked(c *Conn, room string) {
	ns.cfg.Metrics.Joined()
	m := ns.rooms[room]
	if m == nil {
		m = map[*Conn]struct{}{}
		ns.rooms[room] = m
	}
	m[c] = struct{}{}
	ns.noteLocked(c, room, true)
}

func (ns *Namespace) removeLocked(c *Conn) {
	if !c.registered {
		return
	}
	c.registered = false
	delete(ns.conns, c.ID)
	delete(ns.tokens, c.hash)
	for r := range c.rooms {
		ns.leaveLocked(c, r)
	}
}

func (ns *Namespace) leaveLocked(c *Conn, room string) {
	ns.cfg.Metrics.Left()
	if m := ns.rooms[room]; m != nil {
		delete(m, c)
		if len(m) == 0 {
			delete(ns.rooms, room)
		}
	}
	ns.noteLocked(c, room, false)
}

// close ends every connection and refuses new ones (Open: ErrClosed).
func (ns *Namespace) close() {
	ns.mu.Lock()
	ns.closed = true
	ns.mu.Unlock()
	for _, c := range ns.localConns() {
		c.Close(ErrClosed)
	}
}

// localConns is a snapshot of this node's connections, taken under the
// lock so that the caller can act on them without it.
func (ns *Namespace) localConns() []*Conn {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	conns := make([]*Conn, 0, len(ns.conns))
	for _, c := range ns.conns {
		conns = append(conns, c)
	}
	return conns
}

// localConn returns the connection id of this node, or nil.
func (ns *Namespace) localConn(id ConnID) *Conn {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return ns.conns[id]
}

// localByToken returns the connection of this node whose token hashes to
// h, or nil.
func (ns *Namespace) localByToken(h [32]byte) *Conn {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return ns.tokens[h]
}

// join adds local connection c to room (idempotent). It reports whether c
// was not in the room before.
func (ns *Namespace) join(c *Conn, room string) (bool, error) {
	defer ns.observe() // after the unlock
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if !c.registered {
		return false, fmt.Errorf("connection %s has closed: %w", c.ID, ErrNotFound)
	}
	if _, ok := c.rooms[room]; ok {
		return false, nil
	}
	if len(c.rooms) >= ns.cfg.MaxRoomsPerConn {
		return false, fmt.Errorf("connection %s is in %d rooms, the most allowed: %w", c.ID, len(c.rooms), ErrLimit)
	}
	c.rooms[room] = ns.applied.Load()
	ns.joinLocked(c, room)
	return true, nil
}

// leave removes local connection c from room (idempotent).
func (ns *Namespace) leave(c *Conn, room string) (bool, error) {
	defer ns.observe() // after the unlock
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if !c.registered {
		return false, fmt.Errorf("connection %s has closed: %w", c.ID, ErrNotFound)
	}
	if _, ok := c.rooms[room]; !ok {
		return false, nil
	}
	delete(c.rooms, room)
	ns.leaveLocked(c, room)
	return true, nil
}

// info describes local connection c.
func (ns *Namespace) info(c *Conn) ConnInfo {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	info := ConnInfo{ID: c.ID, User: c.User, Connected: c.Connected, Perms: c.Perms, Rooms: make([]string, 0, len(c.rooms))}
	for r := range c.rooms {
		info.Rooms = append(info.Rooms, r)
	}
	sort.Strings(info.Rooms)
	return info
}

// RoomInfo describes a room and its member count.
type RoomInfo struct {
	Name    string
	Members int
}

// localRooms counts the members of each room on this node.
func (ns *Namespace) localRooms() map[string]int {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	out := make(map[string]int, len(ns.rooms))
	for r, m := range ns.rooms {
		out[r] = len(m)
	}
	return out
}

// localMembers lists the connections of this node in room.
func (ns *Namespace) localMembers(room string) []ConnInfo {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	out := make([]ConnInfo, 0, len(ns.rooms[room]))
	for c := range ns.rooms[room] {
		out = append(out, ConnInfo{ID: c.ID, User: c.User, Connected: c.Connected})
	}
	return out
}

// sortMembers orders a member list as the API answers it: oldest
// connection first, then by id.
func sortMembers(m []ConnInfo) {
	sort.Slice(m, func(i, j int) bool {
		if !m[i].Connected.Equal(m[j].Connected) {
			return m[i].Connected.Before(m[j].Connected)
		}
		return m[i].ID < m[j].ID
	})
}

// LocalCounts returns the number of connections and of rooms with members
// on this node (for metrics).
func (ns *Namespace) LocalCounts() (conns, rooms int) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return len(ns.conns), len(ns.rooms)
}

// Publish validates o, encodes its envelope once and stores it. The message
// reaches connections when the log's live feed hands it to every node.
func (ns *Namespace) Publish(ctx context.Context, o *Outgoing) (Position, bool, error) {
	if err := prepare(o); err != nil {
		return Position{}, false, err
	}
	return ns.store(ctx, o)
}

// prepare checks a message from a publisher (Publish, PublishBatch,
// PublishVolatile) and normalizes its target lists.
func prepare(o *Outgoing) error {
	if err := ValidEvent(o.Event); err != nil {
		return err
	}
	for _, r := range o.Rooms {
		if !ValidRoom(r) {
			return fmt.Errorf("room %q: %w", clip(r), ErrInvalid)
		}
	}
	for _, e := range o.Except {
		if !ValidRoom(e) {
			return fmt.Errorf("except %q: %w", clip(e), ErrInvalid)
		}
	}
	if o.To != "" && !ValidConnID(string(o.To)) {
		return fmt.Errorf("connection %q: %w", clip(string(o.To)), ErrInvalid)
	}
	o.Notice = false // only the server's own notices
	o.Rooms = dedupe(o.Rooms)
	o.Except = dedupe(o.Except)
	return nil
}

// store encodes o's envelope and stores it.
func (ns *Namespace) store(ctx context.Context, o *Outgoing) (Position, bool, error) {
	body, err := EncodeBody(ns.name, o, time.Now())
	if err != nil {
		return Position{}, false, fmt.Errorf("encode: %w: %w", ErrInvalid, err)
	}
	o.Body = body
	began := time.Now()
	pos, dup, err := ns.hub.log.Publish(ctx, ns.name, o)
	if err != nil {
		return Position{}, false, fmt.Errorf("publish to %s: %w", ns.name, err)
	}
	ns.cfg.Metrics.Published(time.Since(began))
	return pos, dup, nil
}

func dedupe(s []string) []string {
	if len(s) < 2 {
		return s
	}
	seen := make(map[string]struct{}, len(s))
	out := s[:0:0]
	for _, v := range s {
		if _, ok := seen[v]; !ok {
			seen[v] = struct{}{}
			out = append(out, v)
		}
	}
	return out
}

// HistoryPage is a page of a room's history.
type HistoryPage struct {
	Messages []*Message
	// Truncated is true when `after` is older than what retention kept:
	// messages between it and the first one returned are gone.
	Truncated bool
}

// History returns what a connection joined to room alone would have
// received: messages to the room (alone or among others) and to the whole
// namespace, oldest first. With after, the limit messages following it;
// without, the latest limit messages.
func (ns *Namespace) History(ctx context.Context, room string, after *Position, limit int) (HistoryPage, error) {
	if !ValidRoom(room) {
		return HistoryPage{}, fmt.Errorf("room %q: %w", clip(room), ErrInvalid)
	}
	if limit <= 0 {
		limit = min(100, ns.cfg.HistoryLimit)
	}
	limit = min(limit, ns.cfg.HistoryLimit)
	rooms := map[string]uint64{room: 0}
	f := Filter{Rooms: []string{room}}
	st, err := ns.hub.log.State(ctx, ns.name)
	if err != nil {
		return HistoryPage{}, err
	}
	var page HistoryPage
	if after != nil {
		if after.Epoch != st.Epoch {
			return HistoryPage{}, fmt.Errorf("position %s is from another epoch of the store (it was recreated): read the latest messages, without after: %w", after, ErrResumeExpired)
		}
		page.Truncated = st.First > after.Seq+1 && st.Last >= st.First
		if !page.Truncated {
			if page.Truncated, err = ns.hub.log.Gap(ctx, ns.name, after.Seq, f); err != nil {
				return HistoryPage{}, err
			}
		}
		err = ns.hub.log.Read(ctx, ns.name, after.Seq+1, st.Last, f, func(m *Message) bool {
			if matches("", rooms, m) {
				page.Messages = append(page.Messages, m)
			}
			return len(page.Messages) < limit
		})
		return page, err
	}
	// Latest `limit`: read growing windows back from the end. The scan is
	// bounded so that a quiet room in a busy namespace cannot cost more
	// than maxScan reads.
	const maxScan = 1 << 17
	if st.Last == 0 || st.Last < st.First {
		return page, nil
	}
	window := uint64(max(limit*4, 256))
	for {
		from := st.First
		if st.Last-st.First+1 > window {
			from = st.Last - window + 1
		}
		var got []*Message
		err := ns.hub.log.Read(ctx, ns.name, from, st.Last, f, func(m *Message) bool {
			if matches("", rooms, m) {
				got = append(got, m)
			}
			return true
		})
		if err != nil {
			return HistoryPage{}, err
		}
		if len(got) >= limit || from == st.First || window >= maxScan {
			if len(got) > limit {
				got = got[len(got)-limit:]
			}
			page.Messages = got
			return page, nil
		}
		window *= 4
	}
}
