package hub

import (
	"context"
	"errors"
	"fmt"
	"maps"
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
	// by Apply under mu.RLock (one Apply goroutine) and read under mu.Lock
	// by registration and join, which is what makes "every message after
	// the one applied at join" exact.
	applied atomic.Uint64

	mu     sync.RWMutex
	closed bool // Hub.Close: no connection registers any more
	conns  map[ConnID]*Conn
	tokens map[[32]byte]*Conn
	rooms  map[string]map[*Conn]struct{}

	gmu    sync.Mutex        // guards groups; never held with mu
	groups map[string]*group // by room + "\x00" + name, while they have local members
}

// Name returns the namespace's name.
func (ns *Namespace) Name() string { return ns.name }

// Config returns the namespace's settings.
func (ns *Namespace) Config() NamespaceConfig { return ns.cfg }

// Epoch returns the epoch of the namespace's log.
func (ns *Namespace) Epoch() string { return ns.epoch }

// Applied returns the position of the last message fanned out on this node.
func (ns *Namespace) Applied() Position {
	return Position{Epoch: ns.epoch, Seq: ns.applied.Load()}
}

// Apply fans m out to the local connections that are to receive it. It must
// be called in sequence order from a single goroutine.
func (ns *Namespace) Apply(m *Message) {
	n := 0
	ns.mu.RLock()
	switch {
	case m.GroupOnly:
	case m.To != "":
		if c := ns.conns[m.To]; c != nil && !excluded(c.ID, c.rooms, m.Except) {
			c.deliver(m)
			n++
		}
	case len(m.Rooms) > 0:
		for i, r := range m.Rooms {
			for c := range ns.rooms[r] {
				if inAny(c.rooms, m.Rooms[:i]) || excluded(c.ID, c.rooms, m.Except) {
					continue // got it through an earlier room, or excluded
				}
				c.deliver(m)
				n++
			}
		}
	default:
		for _, c := range ns.conns {
			if !excluded(c.ID, c.rooms, m.Except) {
				c.deliver(m)
				n++
			}
		}
	}
	ns.applied.Store(m.Pos.Seq)
	ns.mu.RUnlock()
	ns.cfg.Metrics.FannedOut(n, time.Since(m.Time))
}

func inAny(rooms map[string]uint64, names []string) bool {
	for _, n := range names {
		if _, ok := rooms[n]; ok {
			return true
		}
	}
	return false
}

// ConnectRequest opens a connection.
type ConnectRequest struct {
	// Rooms to join at once (from the URL).
	Rooms []string
	// Resume is the Last-Event-ID position, if any.
	Resume *Position
	// Token is the previous connection's token from a Last-Event-ID, if any:
	// its id and rooms are restored when still within the recovery window.
	Token  string
	Remote string
	Sink   Sink
	// Perms are the connection's permissions (nil: an open namespace):
	// restored rooms it may no longer receive are dropped, and replayed
	// messages are checked again.
	Perms Perms
	// User is the authenticated user (a JWT's sub), "" if none.
	User string
	// Expires closes the connection with ErrTokenExpired (zero: never).
	Expires time.Time
}

// Start tells the SSE layer how to begin a new connection's stream.
type Start struct {
	Conn *Conn
	// Restored is true when a previous connection's id and rooms came back.
	Restored bool
	// At is the position the stream starts from (the `connected` event's id).
	At Position
	// ReplayTo is the last sequence to replay from At (0: nothing to replay).
	ReplayTo uint64
	// Reset is non-empty when the asked-for position cannot be honoured:
	// the client missed messages and must refetch state.
	Reset string
}

// Connect registers a new connection, or restores a previous one, and says
// what to replay. The caller then sends `connected`, calls Conn.Replay when
// Start.ReplayTo > 0, and Conn.GoLive.
func (ns *Namespace) Connect(ctx context.Context, req ConnectRequest) (Start, error) {
	for _, r := range req.Rooms {
		if !ValidRoom(r) {
			return Start{}, fmt.Errorf("room %q: %w", clip(r), ErrInvalid)
		}
	}
	if len(req.Rooms) > ns.cfg.MaxRoomsPerConn {
		return Start{}, fmt.Errorf("%d rooms, at most %d: %w", len(req.Rooms), ns.cfg.MaxRoomsPerConn, ErrLimit)
	}
	var st Start
	for _, r := range req.Rooms {
		if !Allowed(req.Perms, ActSubscribe, r) {
			return Start{}, fmt.Errorf("subscribe to room %q: %w", r, ErrForbidden)
		}
	}
	c := &Conn{ns: ns, sink: req.Sink, Remote: req.Remote, Connected: time.Now(), rooms: map[string]uint64{},
		Perms: req.Perms, User: req.User}

	var restored map[string]uint64
	if req.Token != "" {
		id, rooms, ok, err := ns.reclaim(ctx, req.Token, req.User)
		if err != nil {
			return Start{}, err
		}
		if ok { // only ever the same user's (reclaim)
			// Whatever fails from here on (the client gave up mid-handshake,
			// the engine hiccuped) must not lose the session it came for.
			defer func() {
				if st.Conn == nil {
					ns.giveBack(tokenHash(req.Token), Session{NS: ns.name, ID: id, User: req.User, Rooms: rooms, Saved: time.Now()})
				}
			}()
			// Rooms its current permissions no longer allow are dropped.
			for r := range rooms {
				if !canReceive(req.Perms, r) {
					delete(rooms, r)
				}
			}
			c.ID, c.Token, restored, st.Restored = id, req.Token, rooms, true
		}
	}
	if c.ID == "" {
		c.ID, c.Token = ConnID(newID()), newID()
	}
	c.hash = tokenHash(c.Token)

	ns.mu.Lock()
	h := ns.applied.Load()
	// Everything up to h was fanned out before this registration: the
	// connection's position starts there (group deliveries carry it as id).
	c.last = h
	for r, s := range restored {
		c.rooms[r] = s
	}
	// The URL's rooms count from the resume position when there is one (the
	// client had them then: their missed messages are replayed), else from
	// now.
	joinAt := h
	if req.Resume != nil && req.Resume.Epoch == ns.epoch && req.Resume.Seq < h {
		joinAt = req.Resume.Seq
	}
	for _, r := range req.Rooms {
		if _, ok := c.rooms[r]; !ok {
			c.rooms[r] = joinAt
		}
	}
	if len(c.rooms) > ns.cfg.MaxRoomsPerConn {
		ns.mu.Unlock()
		return Start{}, fmt.Errorf("%d rooms, at most %d: %w", len(c.rooms), ns.cfg.MaxRoomsPerConn, ErrLimit)
	}
	if ns.closed {
		ns.mu.Unlock()
		return Start{}, fmt.Errorf("namespace %s: server shutting down: %w", ns.name, ErrClosed)
	}
	ns.addLocked(c)
	ns.mu.Unlock()
	if !req.Expires.IsZero() {
		c.expiry = time.AfterFunc(time.Until(req.Expires), func() { c.Close(ErrTokenExpired) })
	}

	st.At = Position{Epoch: ns.epoch, Seq: h}
	if req.Resume == nil {
		st.Conn = c
		ns.persist(c)
		return st, nil
	}
	defer func() { ns.cfg.Metrics.Resumed(st.Reset != "") }()
	switch {
	case req.Resume.Epoch != ns.epoch:
		st.Reset = "the message store was recreated since that position"
	case req.Resume.Seq > h:
		st.Reset = "that position is ahead of this server's log"
	case req.Token != "" && !st.Restored:
		st.Reset = "the connection is past its recovery window; its rooms and direct messages are gone"
	default:
		gap, err := ns.hub.log.Gap(ctx, ns.name, req.Resume.Seq, ns.filterOf(c))
		if err != nil {
			// A restored session is given back as it was taken (Connect's
			// deferred giveBack), not saved here.
			_ = ns.Disconnect(c, false)
			return Start{}, err
		}
		if gap {
			st.Reset = "messages after that position were removed by retention"
			break
		}
		st.At = *req.Resume
		st.ReplayTo = h
	}
	st.Conn = c
	ns.persist(c)
	return st, nil
}

// persist keeps a live connection's session in Sessions when the hub is
// one node of a cluster, so that if this node dies its clients resume on
// another with their rooms (KeepSessions refreshes them). A single node
// saves sessions only at disconnect.
func (ns *Namespace) persist(c *Conn) {
	if ns.hub.bus == nil {
		return
	}
	ns.mu.RLock()
	if !c.registered {
		ns.mu.RUnlock()
		return
	}
	rooms := maps.Clone(c.rooms)
	ns.mu.RUnlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = ns.hub.sess.Save(ctx, sessionKey(ns.name, c.hash), Session{NS: ns.name, ID: c.ID, User: c.User, Rooms: rooms, Saved: time.Now(), Live: true})
}

// giveBack saves a session taken by a reconnect that then failed.
func (ns *Namespace) giveBack(hash [32]byte, s Session) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = ns.hub.sess.Save(ctx, sessionKey(ns.name, hash), s)
}

func (ns *Namespace) filterOf(c *Conn) Filter {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	f := Filter{Conn: c.ID, Rooms: make([]string, 0, len(c.rooms))}
	for r := range c.rooms {
		f.Rooms = append(f.Rooms, r)
	}
	return f
}

// reclaim finds the connection that token belonged to: still attached on
// this node (its client reconnected before the old stream noticed it was
// dead: the old one is replaced) or saved in Sessions after a disconnect.
//
// Only the same user gets a connection back: another user's resume leaves
// the connection open, or its session saved (ok is false).
func (ns *Namespace) reclaim(ctx context.Context, token, user string) (ConnID, map[string]uint64, bool, error) {
	hash := tokenHash(token)
	ns.mu.Lock()
	if old := ns.tokens[hash]; old != nil && old.User != user {
		ns.mu.Unlock()
		return "", nil, false, nil
	} else if old != nil {
		rooms := maps.Clone(old.rooms)
		ns.removeLocked(old)
		ns.mu.Unlock()
		old.Close(ErrReplaced)
		return old.ID, rooms, true, nil
	}
	ns.mu.Unlock()
	s, ok, err := ns.hub.sess.Take(ctx, sessionKey(ns.name, hash))
	if err != nil {
		return "", nil, false, fmt.Errorf("restore session: %w", err)
	}
	if !ok || s.NS != ns.name || time.Since(s.Saved) > ns.cfg.RecoveryWindow {
		return "", nil, false, nil
	}
	if s.Disconnected {
		return "", nil, false, fmt.Errorf("connection %s was disconnected on request: %w", s.ID, ErrDisconnected)
	}
	if s.User != user {
		ns.giveBack(hash, s)
		return "", nil, false, nil
	}
	if ns.hub.bus != nil && s.Live {
		// Its client came here while the connection may still be open on
		// another node (it did not notice the drop yet): close it there, so
		// that one connection never lives twice.
		_, _ = ns.hub.bus.Ask(ctx, ControlRequest{Op: "replace", NS: ns.name, ID: s.ID})
	}
	if s.Rooms == nil {
		s.Rooms = map[string]uint64{}
	}
	return s.ID, s.Rooms, true, nil
}

// canReceive reports whether p lets a connection receive room's messages:
// it may subscribe to it or join it.
func canReceive(p Perms, room string) bool {
	return Allowed(p, ActSubscribe, room) || Allowed(p, ActJoin, room)
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
}

// Disconnect removes c from the namespace. With recoverable set (the client
// went away, it did not ask to leave), its id and rooms are saved for the
// recovery window so that a reconnect with Last-Event-ID restores them. A
// connection closed on request (ErrDisconnected) leaves a tombstone
// instead, so that its EventSource is told to stop rather than reconnect.
//
// The session is saved before the connection is unregistered: a reconnect
// racing with this finds either the live connection (and takes it over)
// or the saved session, never neither.
func (ns *Namespace) Disconnect(c *Conn, recoverable bool) error {
	c.Close(ErrClosed)
	ns.leaveGroups(c)
	explicit := errors.Is(c.Err(), ErrDisconnected)
	ns.mu.RLock()
	was := c.registered
	var rooms map[string]uint64
	if was && recoverable && !explicit {
		rooms = maps.Clone(c.rooms)
	}
	ns.mu.RUnlock()
	var err error
	if was && (recoverable || explicit) {
		s := Session{NS: ns.name, ID: c.ID, User: c.User, Rooms: rooms, Saved: time.Now(), Disconnected: explicit}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if serr := ns.hub.sess.Save(ctx, sessionKey(ns.name, c.hash), s); serr != nil {
			err = fmt.Errorf("save session of %s/%s: %w", ns.name, c.ID, serr)
		}
		cancel()
	}
	ns.mu.Lock()
	ns.removeLocked(c)
	ns.mu.Unlock()
	return err
}

// close ends every connection and refuses new ones (Connect: ErrClosed).
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

// Authenticate returns the local connection whose token is token.
func (ns *Namespace) Authenticate(token string) (*Conn, error) {
	if !validToken(token) {
		return nil, fmt.Errorf("the bearer credential is not a connection token (22 characters from a connected event): %w", ErrUnauthorized)
	}
	ns.mu.RLock()
	c := ns.tokens[tokenHash(token)]
	ns.mu.RUnlock()
	if c == nil {
		return nil, fmt.Errorf("the connection token is unknown or its connection has closed; use the token of a connection's connected event: %w", ErrUnauthorized)
	}
	return c, nil
}

// Conn returns the local connection id.
func (ns *Namespace) Conn(id ConnID) (*Conn, error) {
	ns.mu.RLock()
	c := ns.conns[id]
	ns.mu.RUnlock()
	if c == nil {
		return nil, fmt.Errorf("connection %s is not open: %w", clip(string(id)), ErrNotFound)
	}
	return c, nil
}

// Join adds connection c to room (idempotent). It reports whether c was not
// in the room before.
func (ns *Namespace) Join(c *Conn, room string) (bool, error) {
	changed, err := ns.join(c, room)
	if changed {
		ns.persist(c)
	}
	return changed, err
}

func (ns *Namespace) join(c *Conn, room string) (bool, error) {
	if !ValidRoom(room) {
		return false, fmt.Errorf("room %q: %w", clip(room), ErrInvalid)
	}
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

// Leave removes connection c from room (idempotent).
func (ns *Namespace) Leave(c *Conn, room string) (bool, error) {
	changed, err := ns.leave(c, room)
	if changed {
		ns.persist(c)
	}
	return changed, err
}

func (ns *Namespace) leave(c *Conn, room string) (bool, error) {
	if !ValidRoom(room) {
		return false, fmt.Errorf("room %q: %w", clip(room), ErrInvalid)
	}
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

// ConnInfo describes a connection.
type ConnInfo struct {
	ID        ConnID
	User      string
	Rooms     []string
	Connected time.Time
}

// Info describes c.
func (ns *Namespace) Info(c *Conn) ConnInfo {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	info := ConnInfo{ID: c.ID, User: c.User, Connected: c.Connected, Rooms: make([]string, 0, len(c.rooms))}
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

// Rooms lists the rooms that have members, by name.
func (ns *Namespace) Rooms() []RoomInfo {
	ns.mu.RLock()
	out := make([]RoomInfo, 0, len(ns.rooms))
	for r, m := range ns.rooms {
		out = append(out, RoomInfo{Name: r, Members: len(m)})
	}
	ns.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Members lists the connections in room, oldest first.
func (ns *Namespace) Members(room string) ([]ConnInfo, error) {
	if !ValidRoom(room) {
		return nil, fmt.Errorf("room %q: %w", clip(room), ErrInvalid)
	}
	ns.mu.RLock()
	out := make([]ConnInfo, 0, len(ns.rooms[room]))
	for c := range ns.rooms[room] {
		out = append(out, ConnInfo{ID: c.ID, User: c.User, Connected: c.Connected})
	}
	ns.mu.RUnlock()
	sortMembers(out)
	return out, nil
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

// ConnCount returns the number of local connections.
func (ns *Namespace) ConnCount() int {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return len(ns.conns)
}

// Publish validates o, encodes its envelope once and stores it. The message
// reaches connections when the log's consumer hands it to Apply.
func (ns *Namespace) Publish(ctx context.Context, o *Outgoing) (Position, bool, error) {
	if err := ValidEvent(o.Event); err != nil {
		return Position{}, false, err
	}
	for _, r := range o.Rooms {
		if !ValidRoom(r) {
			return Position{}, false, fmt.Errorf("room %q: %w", clip(r), ErrInvalid)
		}
	}
	for _, e := range o.Except {
		if !ValidRoom(e) {
			return Position{}, false, fmt.Errorf("except %q: %w", clip(e), ErrInvalid)
		}
	}
	if o.To != "" && !ValidConnID(string(o.To)) {
		return Position{}, false, fmt.Errorf("connection %q: %w", clip(string(o.To)), ErrInvalid)
	}
	o.Rooms = dedupe(o.Rooms)
	o.Except = dedupe(o.Except)
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

// RoomMessages returns up to limit messages addressed to room (alone or
// among others; not namespace-wide ones) stored after sequence after: what a
// consumer group of the room has to process.
func (ns *Namespace) RoomMessages(ctx context.Context, room string, after uint64, limit int) ([]*Message, error) {
	if !ValidRoom(room) {
		return nil, fmt.Errorf("room %q: %w", clip(room), ErrInvalid)
	}
	var out []*Message
	err := ns.hub.log.Read(ctx, ns.name, after+1, 0, Filter{Rooms: []string{room}}, func(m *Message) bool {
		if !m.GroupOnly && contains(m.Rooms, room) {
			out = append(out, m)
		}
		return len(out) < limit
	})
	return out, err
}
