package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"
)

// A connection's life, in one place: Open registers it (new or restored)
// and sends `connected`; Run sends `reset` or replays what it missed, then
// switches it to live delivery and joins its consumer group; Close ends it;
// Detach, once its stream has ended, keeps its session for the recovery
// window and unregisters it. The SSE layer provides the Sink and calls
// these four; it knows nothing else of the protocol.

// OpenRequest opens a connection.
type OpenRequest struct {
	// Rooms to join at once (from the URL).
	Rooms []string
	// Group, when set, makes the connection a member of that consumer
	// group: it receives the group's deliveries instead of the room's
	// broadcast.
	Group *GroupKey
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

// start is how a connection's stream begins, decided by Open.
type start struct {
	restored bool
	// at is the position of the `connected` event.
	at Position
	// replayTo is the last sequence to replay after at (0: nothing).
	replayTo uint64
	// reset is non-empty when the asked-for position cannot be honoured.
	reset string
	// lost says why a resume's token did not restore its connection.
	lost  string
	group *GroupKey
}

// Connected is the data of the `connected` event.
type Connected struct {
	ID       ConnID   `json:"id"`
	Token    string   `json:"token"`
	NS       string   `json:"ns"`
	Rooms    []string `json:"rooms"`
	Restored bool     `json:"restored"`
	User     string   `json:"user,omitempty"`
}

// resetData is the data of a `reset` event.
type resetData struct {
	Reason   string `json:"reason"`
	Position string `json:"position"`
}

// Open registers a new connection, or restores a previous one, and sends
// its `connected` event through req.Sink.Hello. The caller then calls Run
// once the sink carries events, and Detach when the stream has ended.
func (ns *Namespace) Open(ctx context.Context, req OpenRequest) (*Conn, error) {
	defer ns.observe() // its rooms joined (or a replaced connection's left), outside the lock
	for _, r := range req.Rooms {
		if !ValidRoom(r) {
			return nil, fmt.Errorf("room %q: %w", clip(r), ErrInvalid)
		}
	}
	if len(req.Rooms) > ns.cfg.MaxRoomsPerConn {
		return nil, fmt.Errorf("%d rooms, at most %d: %w", len(req.Rooms), ns.cfg.MaxRoomsPerConn, ErrLimit)
	}
	for _, r := range req.Rooms {
		if !Allowed(req.Perms, ActSubscribe, r) {
			return nil, fmt.Errorf("subscribe to room %q: %w", r, ErrForbidden)
		}
	}
	if req.Group != nil {
		if _, err := ns.PutGroup(ctx, req.Group.Room, req.Group.Name, GroupConfig{}, false); err != nil {
			return nil, err
		}
	}
	c := &Conn{ns: ns, sink: req.Sink, Remote: req.Remote, Connected: time.Now(), rooms: map[string]uint64{},
		Perms: req.Perms, User: req.User}
	c.start.group = req.Group
	if err := ns.catchUp(ctx, req.Resume); err != nil {
		return nil, err
	}

	var restored map[string]uint64
	opened := false
	if req.Token != "" {
		id, rooms, ok, why, err := ns.reclaim(ctx, req.Token, req.User)
		if err != nil {
			return nil, err
		}
		c.start.lost = why
		if ok { // only ever the same user's (reclaim)
			// Whatever fails from here on (the client gave up mid-handshake,
			// the engine hiccuped) must not lose the session it came for.
			defer func() {
				if !opened {
					ns.giveBack(tokenHash(req.Token), Session{NS: ns.name, ID: id, User: req.User, Rooms: rooms, Saved: time.Now()})
				}
			}()
			// Rooms its current permissions no longer allow are dropped.
			for r := range rooms {
				if !canReceive(req.Perms, r) {
					delete(rooms, r)
				}
			}
			c.ID, c.Token, restored, c.start.restored = id, req.Token, rooms, true
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
		return nil, fmt.Errorf("%d rooms, at most %d: %w", len(c.rooms), ns.cfg.MaxRoomsPerConn, ErrLimit)
	}
	if ns.closed {
		ns.mu.Unlock()
		return nil, fmt.Errorf("namespace %s: server shutting down: %w", ns.name, ErrClosed)
	}
	ns.addLocked(c)
	ns.mu.Unlock()
	if !req.Expires.IsZero() {
		c.expiry = time.AfterFunc(time.Until(req.Expires), func() { c.Close(ErrTokenExpired) })
	}

	c.start.at = ns.position(h)
	if req.Resume != nil {
		if err := ns.resumeFrom(ctx, c, req); err != nil {
			// A restored session is given back as it was taken (the
			// deferred giveBack), not saved here.
			ns.mu.Lock()
			ns.removeLocked(c)
			ns.mu.Unlock()
			c.Close(ErrClosed)
			return nil, err
		}
	}
	ns.persist(ctx, c)
	if err := c.hello(); err != nil {
		ns.mu.Lock()
		ns.removeLocked(c)
		ns.mu.Unlock()
		c.Close(err)
		return nil, err
	}
	opened = true
	return c, nil
}

// resumeFrom decides what a resuming connection gets: a replay from
// req.Resume, or a reset with the true reason.
func (ns *Namespace) resumeFrom(ctx context.Context, c *Conn, req OpenRequest) error {
	h := c.start.at.Seq
	reset := ""
	switch {
	case req.Resume.Epoch != ns.epoch:
		reset = "the message store was recreated since that position"
	case req.Resume.Seq > h:
		reset = "that position is ahead of this server's log"
	default:
		gap, err := ns.hub.log.Gap(ctx, ns.name, req.Resume.Seq, ns.filterOf(c))
		if err != nil {
			return err
		}
		if gap {
			reset = "messages after that position were removed by retention"
			break
		}
		// Whatever became of the session, the messages of the rooms in the
		// URL (and namespace-wide ones) are replayed from the position.
		c.start.at = *req.Resume
		c.start.replayTo = h
		if req.Token != "" && !c.start.restored {
			// The connection did not come back: a new id, and its other
			// rooms and direct messages are gone. Say so, after the replay.
			reset = "the connection was not restored: " + c.start.lost +
				"; it continues as a new connection: the messages of the rooms in the URL were replayed, its other rooms and its direct messages are gone"
		}
	}
	c.start.reset = reset
	ns.cfg.Metrics.Resumed(reset != "")
	return nil
}

// hello sends the `connected` event.
func (c *Conn) hello() error {
	info := c.ns.info(c)
	data, err := json.Marshal(Connected{ID: c.ID, Token: c.Token, NS: c.ns.name, Rooms: info.Rooms, Restored: c.start.restored, User: c.User})
	if err != nil {
		return err
	}
	return c.sink.Hello(Event{ID: ResumeID(c.start.at, c.Token), Name: EventConnected, Data: data})
}

// Run begins the connection's stream once its sink carries events: `reset`
// or the replay of what it missed, then live delivery, then its consumer
// group. It returns once the connection is live (or closed: a failure
// closes the connection, which resumes from what it received).
func (c *Conn) Run(ctx context.Context) error {
	st := c.start
	reset := st.reset
	if st.replayTo > 0 {
		err := c.replay(ctx, st.at.Seq, st.replayTo)
		switch {
		case errors.Is(err, ErrResumeExpired):
			reset = "messages after that position were removed by retention while resuming"
		case err != nil:
			c.Close(err)
			return fmt.Errorf("replay: %w", err)
		}
	}
	if reset != "" {
		// Live messages after the registration point are held in the
		// connection's queue and follow this event: the reset's id must be
		// that point, or a drop right after it would skip them.
		at := st.at
		if st.replayTo > 0 {
			at.Seq = st.replayTo
		}
		data, _ := json.Marshal(resetData{Reason: reset, Position: at.String()})
		if err := c.sink.SendWait(ctx, Event{ID: ResumeID(at, c.Token), Name: EventReset, Data: data}); err != nil {
			c.Close(err)
			return err
		}
	}
	if err := c.goLive(); err != nil {
		return err
	}
	if st.group != nil {
		if err := c.ns.joinGroup(ctx, c, *st.group); err != nil {
			c.Close(err)
			return err
		}
	}
	return nil
}

// Detach removes the connection once its stream has ended. Unless it was
// closed on request or replaced, its id and rooms are saved for the
// recovery window so that a reconnect with Last-Event-ID restores them; a
// connection closed on request leaves a tombstone instead, so that its
// EventSource is told to stop rather than reconnect.
//
// The session is saved before the connection is unregistered: a reconnect
// racing with this finds either the live connection (and takes it over)
// or the saved session, never neither.
func (c *Conn) Detach() error {
	ns := c.ns
	c.Close(ErrClosed)
	ns.leaveGroups(c)
	reason := c.Err()
	explicit := errors.Is(reason, ErrDisconnected)
	recoverable := !explicit && !errors.Is(reason, ErrReplaced)
	c.saveMu.Lock()
	c.detached = true
	ns.mu.RLock()
	was := c.registered
	var rooms map[string]uint64
	if was && recoverable {
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
	c.saveMu.Unlock()
	ns.mu.Lock()
	ns.removeLocked(c)
	ns.mu.Unlock()
	ns.observe()
	return err
}

// persist saves a live connection's session, marked live, so that if this
// node dies (or is killed) its client can resume — here after a restart,
// or on another node — with its id and rooms. It is saved before the
// client learns of the change (`connected`, a join's or leave's answer):
// what a client was told survives a crash. Hub.Run refreshes every live
// session within its recovery window. A save that fails leaves the
// connection working, only not restorable after a crash (logged).
func (ns *Namespace) persist(ctx context.Context, c *Conn) { ns.save(ctx, c) }

// save writes c's live session now (Hub.Run's saver).
func (ns *Namespace) save(ctx context.Context, c *Conn) {
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	if c.detached {
		return
	}
	ns.mu.RLock()
	if !c.registered {
		ns.mu.RUnlock()
		return
	}
	rooms := maps.Clone(c.rooms)
	ns.mu.RUnlock()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := ns.hub.sess.Save(ctx, sessionKey(ns.name, c.hash), Session{NS: ns.name, ID: c.ID, User: c.User, Rooms: rooms, Saved: time.Now(), Live: true}); err != nil {
		ns.hub.saver.failed(err)
	}
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
// dead: the old one is replaced) or saved in Sessions.
//
// Only the same user gets a connection back: another user's resume leaves
// the connection open, or its session saved (ok is false).
func (ns *Namespace) reclaim(ctx context.Context, token, user string) (ConnID, map[string]uint64, bool, string, error) {
	const unknown = "its session is unknown here (never saved, or no longer kept)"
	hash := tokenHash(token)
	ns.mu.Lock()
	if old := ns.tokens[hash]; old != nil && old.User != user {
		ns.mu.Unlock()
		return "", nil, false, unknown, nil
	} else if old != nil && errors.Is(old.Err(), ErrDisconnected) {
		// Closed on request, its stream not yet detached: it must not come
		// back through a resume that raced the tombstone.
		ns.mu.Unlock()
		return "", nil, false, "", fmt.Errorf("connection %s was disconnected on request: %w", old.ID, ErrDisconnected)
	} else if old != nil {
		rooms := maps.Clone(old.rooms)
		ns.removeLocked(old)
		ns.mu.Unlock()
		old.Close(ErrReplaced)
		return old.ID, rooms, true, "", nil
	}
	ns.mu.Unlock()
	s, ok, err := ns.hub.sess.Take(ctx, sessionKey(ns.name, hash))
	if err != nil {
		return "", nil, false, "", fmt.Errorf("restore session: %w", err)
	}
	if !ok || s.NS != ns.name {
		return "", nil, false, unknown, nil
	}
	if time.Since(s.Saved) > ns.cfg.RecoveryWindow {
		return "", nil, false, "it is past its recovery window (" + ns.cfg.RecoveryWindow.String() + ")", nil
	}
	if s.Disconnected {
		return "", nil, false, "", fmt.Errorf("connection %s was disconnected on request: %w", s.ID, ErrDisconnected)
	}
	if s.User != user {
		ns.giveBack(hash, s)
		return "", nil, false, unknown, nil
	}
	if s.Live && ns.hub.bus != nil {
		// Its client came here while the connection may still be open on
		// another node (it did not notice the drop yet): close it there, so
		// that one connection never lives twice.
		_ = ns.closeRemote(ctx, s.ID, ErrReplaced)
	}
	if s.Rooms == nil {
		s.Rooms = map[string]uint64{}
	}
	return s.ID, s.Rooms, true, "", nil
}
