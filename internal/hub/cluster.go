package hub

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Bus carries control requests between the nodes of a cluster (the engine
// implements it on core NATS request/reply). Every node answers requests
// with Hub.Control; messages themselves never travel this way: they go
// through the stream, which every node follows.
type Bus interface {
	// Ask sends req to every node and returns the first answer of a node
	// that has the connection; ErrNotFound when none answers in time.
	Ask(ctx context.Context, req ControlRequest) (ControlReply, error)
	// Gather sends req to every node and returns all answers received in
	// time (this node's included).
	Gather(ctx context.Context, req ControlRequest) ([]ControlReply, error)
}

// ControlRequest is an operation on another node's connections or a
// presence query.
type ControlRequest struct {
	Op        string `json:"op"` // lookup, join, leave, close, rooms, members
	NS        string `json:"ns"`
	ID        ConnID `json:"id,omitempty"`
	TokenHash string `json:"token_hash,omitempty"` // hex; lookup by token
	Room      string `json:"room,omitempty"`
	// CheckJoin makes the owner check the connection's own join right (a
	// connection acting for itself with its token).
	CheckJoin bool `json:"check_join,omitempty"`
}

// ControlReply answers a ControlRequest.
type ControlReply struct {
	Conn    *RemoteConn    `json:"conn,omitempty"`
	Changed bool           `json:"changed,omitempty"`
	Err     string         `json:"err,omitempty"`
	Kind    string         `json:"kind,omitempty"` // the sentinel of Err: invalid, forbidden, limit, not_found
	Rooms   map[string]int `json:"rooms,omitempty"`
	Members []RemoteConn   `json:"members,omitempty"`
}

// RemoteConn describes a connection of some node.
type RemoteConn struct {
	ID        ConnID          `json:"id"`
	User      string          `json:"user,omitempty"`
	Rooms     []string        `json:"rooms,omitempty"`
	Connected time.Time       `json:"connected"`
	Perms     json.RawMessage `json:"perms,omitempty"` // the owner's Perms as JSON; null: open
}

// ConnRef is a connection of this node (Local) or of another one.
type ConnRef struct {
	Local  *Conn
	Remote *RemoteConn
}

// ID returns the connection's id.
func (r ConnRef) ID() ConnID {
	if r.Local != nil {
		return r.Local.ID
	}
	return r.Remote.ID
}

// User returns the connection's user.
func (r ConnRef) User() string {
	if r.Local != nil {
		return r.Local.User
	}
	return r.Remote.User
}

// EnableCluster makes namespaces reach other nodes' connections via bus.
func (h *Hub) EnableCluster(bus Bus) { h.bus = bus }

var kinds = map[string]error{"invalid": ErrInvalid, "forbidden": ErrForbidden, "limit": ErrLimit, "not_found": ErrNotFound, "unauthorized": ErrUnauthorized}

func kindOf(err error) string {
	for k, e := range kinds {
		if errors.Is(err, e) {
			return k
		}
	}
	return ""
}

func (r ControlReply) err() error {
	if r.Err == "" {
		return nil
	}
	if e, ok := kinds[r.Kind]; ok {
		return fmt.Errorf("%s: %w", r.Err, e)
	}
	return fmt.Errorf("%s: %w", r.Err, ErrUnavailable)
}

// Control answers a request from another node about this node's
// connections; reply is false when this node has nothing to say (it does
// not have the connection).
func (h *Hub) Control(req ControlRequest) (ControlReply, bool) {
	ns, err := h.Namespace(req.NS)
	if err != nil {
		return ControlReply{}, false
	}
	switch req.Op {
	case "rooms":
		out := map[string]int{}
		for _, r := range ns.Rooms() {
			out[r.Name] = r.Members
		}
		return ControlReply{Rooms: out}, true
	case "members":
		ms, _ := ns.Members(req.Room)
		out := make([]RemoteConn, len(ms))
		for i, m := range ms {
			out[i] = RemoteConn{ID: m.ID, User: m.User, Connected: m.Connected}
		}
		return ControlReply{Members: out}, true
	}
	var c *Conn
	if req.TokenHash != "" {
		b, err := hex.DecodeString(req.TokenHash)
		if err != nil || len(b) != 32 {
			return ControlReply{}, false
		}
		ns.mu.RLock()
		c = ns.tokens[[32]byte(b)]
		ns.mu.RUnlock()
	} else {
		c, _ = ns.Conn(req.ID)
	}
	if c == nil {
		return ControlReply{}, false
	}
	var rep ControlReply
	switch req.Op {
	case "join":
		if req.CheckJoin && !Allowed(c.Perms, ActJoin, req.Room) {
			err = fmt.Errorf("join on room %q is not granted: %w", req.Room, ErrForbidden)
		} else {
			rep.Changed, err = ns.Join(c, req.Room)
		}
	case "leave":
		rep.Changed, err = ns.Leave(c, req.Room)
	case "close":
		c.Close(ErrDisconnected)
	case "replace":
		c.Close(ErrReplaced)
	}
	if err != nil {
		return ControlReply{Err: err.Error(), Kind: kindOf(err)}, true
	}
	rep.Conn = ns.remoteView(c)
	return rep, true
}

func (ns *Namespace) remoteView(c *Conn) *RemoteConn {
	info := ns.Info(c)
	perms, _ := json.Marshal(c.Perms)
	return &RemoteConn{ID: c.ID, User: c.User, Rooms: info.Rooms, Connected: c.Connected, Perms: perms}
}

// Find returns connection id, on this node or another.
func (ns *Namespace) Find(ctx context.Context, id ConnID) (ConnRef, error) {
	if c, err := ns.Conn(id); err == nil || ns.hub.bus == nil {
		return ConnRef{Local: c}, err
	}
	rep, err := ns.hub.bus.Ask(ctx, ControlRequest{Op: "lookup", NS: ns.name, ID: id})
	if err != nil {
		return ConnRef{}, fmt.Errorf("connection %s: %w", id, err)
	}
	return ConnRef{Remote: rep.Conn}, nil
}

// FindToken returns the connection whose token is token, on any node.
func (ns *Namespace) FindToken(ctx context.Context, token string) (ConnRef, error) {
	c, err := ns.Authenticate(token)
	if err == nil || ns.hub.bus == nil || !validToken(token) {
		return ConnRef{Local: c}, err
	}
	h := tokenHash(token)
	rep, aerr := ns.hub.bus.Ask(ctx, ControlRequest{Op: "lookup", NS: ns.name, TokenHash: hex.EncodeToString(h[:])})
	if aerr != nil {
		return ConnRef{}, err // the local answer: unknown or expired
	}
	return ConnRef{Remote: rep.Conn}, nil
}

// JoinRef adds connection r to room on whichever node holds it; with
// checkOwn the connection's own join right is checked there.
func (ns *Namespace) JoinRef(ctx context.Context, r ConnRef, room string, checkOwn bool) (bool, []string, error) {
	return ns.membershipRef(ctx, r, room, true, checkOwn)
}

// LeaveRef removes connection r from room on whichever node holds it.
func (ns *Namespace) LeaveRef(ctx context.Context, r ConnRef, room string) (bool, []string, error) {
	return ns.membershipRef(ctx, r, room, false, false)
}

func (ns *Namespace) membershipRef(ctx context.Context, r ConnRef, room string, join, checkOwn bool) (bool, []string, error) {
	if r.Local != nil {
		var changed bool
		var err error
		switch {
		case join && checkOwn && !Allowed(r.Local.Perms, ActJoin, room):
			err = fmt.Errorf("join on room %q is not granted: %w", room, ErrForbidden)
		case join:
			changed, err = ns.Join(r.Local, room)
		default:
			changed, err = ns.Leave(r.Local, room)
		}
		if err != nil {
			return false, nil, err
		}
		return changed, ns.Info(r.Local).Rooms, nil
	}
	if !ValidRoom(room) {
		return false, nil, fmt.Errorf("room %q: %w", clip(room), ErrInvalid)
	}
	op := "leave"
	if join {
		op = "join"
	}
	rep, err := ns.hub.bus.Ask(ctx, ControlRequest{Op: op, NS: ns.name, ID: r.Remote.ID, Room: room, CheckJoin: checkOwn})
	if err != nil {
		return false, nil, err
	}
	if err := rep.err(); err != nil {
		return false, nil, err
	}
	return rep.Changed, rep.Conn.Rooms, nil
}

// CloseRef disconnects connection r (on request) wherever it is.
func (ns *Namespace) CloseRef(ctx context.Context, r ConnRef) error {
	if r.Local != nil {
		r.Local.Close(ErrDisconnected)
		return nil
	}
	rep, err := ns.hub.bus.Ask(ctx, ControlRequest{Op: "close", NS: ns.name, ID: r.Remote.ID})
	if err != nil {
		return err
	}
	return rep.err()
}

// InfoRef describes connection r.
func (ns *Namespace) InfoRef(r ConnRef) ConnInfo {
	if r.Local != nil {
		return ns.Info(r.Local)
	}
	return ConnInfo{ID: r.Remote.ID, User: r.Remote.User, Rooms: r.Remote.Rooms, Connected: r.Remote.Connected}
}

// ClusterRooms lists the rooms with members on any node.
func (ns *Namespace) ClusterRooms(ctx context.Context) []RoomInfo {
	if ns.hub.bus == nil {
		return ns.Rooms()
	}
	reps, err := ns.hub.bus.Gather(ctx, ControlRequest{Op: "rooms", NS: ns.name})
	if err != nil || len(reps) == 0 {
		return ns.Rooms()
	}
	sum := map[string]int{}
	for _, rep := range reps {
		for r, n := range rep.Rooms {
			sum[r] += n
		}
	}
	out := make([]RoomInfo, 0, len(sum))
	for r, n := range sum {
		out = append(out, RoomInfo{Name: r, Members: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ClusterMembers lists room's members on every node, oldest first.
func (ns *Namespace) ClusterMembers(ctx context.Context, room string) ([]ConnInfo, error) {
	if ns.hub.bus == nil {
		return ns.Members(room)
	}
	if !ValidRoom(room) {
		return nil, fmt.Errorf("room %q: %w", clip(room), ErrInvalid)
	}
	reps, err := ns.hub.bus.Gather(ctx, ControlRequest{Op: "members", NS: ns.name, Room: room})
	if err != nil || len(reps) == 0 {
		return ns.Members(room)
	}
	var out []ConnInfo
	for _, rep := range reps {
		for _, m := range rep.Members {
			out = append(out, ConnInfo{ID: m.ID, User: m.User, Connected: m.Connected})
		}
	}
	sortMembers(out)
	if out == nil {
		out = []ConnInfo{}
	}
	return out, nil
}

// KeepSessions refreshes the sessions of this node's connections until ctx
// ends, so that when the node dies its clients can resume elsewhere within
// the recovery window (only in a cluster).
func (h *Hub) KeepSessions(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, ns := range h.Namespaces() {
			for _, c := range ns.localConns() {
				if ctx.Err() != nil {
					return
				}
				ns.persist(c)
			}
		}
	}
}
