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

// One connection API wherever the connection lives: every operation on a
// connection is keyed by its id (or its token) and runs on the node that
// holds it — here, or on another node over the Bus. Callers never learn
// which.

// Bus carries control requests between the nodes of a cluster (the engine
// implements it on core NATS request/reply). Messages themselves never
// travel this way: they go through the log, which every node follows.
//
// Contract: safe for concurrent use. Requests are opaque bytes the hub
// encodes; op names the operation, ns the namespace.
type Bus interface {
	// Serve answers requests from every node (this node's own included) with
	// handle until the bus closes: handle returns ok false when this node
	// has nothing to say (it does not hold the connection). handle may be
	// called concurrently and may block for the duration of the operation.
	Serve(handle func(ns, op string, req []byte) (reply []byte, ok bool)) error
	// Ask sends req to every node and returns the first reply; it fails
	// with ErrNotFound when no node answers before ctx ends.
	Ask(ctx context.Context, ns, op string, req []byte) ([]byte, error)
	// Gather sends req to every node and returns the replies received
	// before ctx ends or every node of the cluster answered.
	Gather(ctx context.Context, ns, op string, req []byte) ([][]byte, error)
}

// ConnInfo describes a connection, wherever it lives.
type ConnInfo struct {
	ID        ConnID
	User      string
	Rooms     []string
	Connected time.Time
	// Perms are what the connection may do (nil: open namespace).
	Perms Perms
}

// Membership is a connection's rooms after a join or a leave.
type Membership struct {
	// Changed is false when the call was a no-op (already in / not in).
	Changed bool
	Rooms   []string
}

// Bus operations.
const (
	opLookup  = "lookup"
	opJoin    = "join"
	opLeave   = "leave"
	opClose   = "close"
	opSettle  = "settle"
	opRooms   = "rooms"
	opMembers = "members"
	opGroup   = "group"
)

// connRequest is an operation on one connection, found by ID or by the
// hash of its token.
type connRequest struct {
	ID        ConnID `json:"id,omitempty"`
	TokenHash string `json:"token_hash,omitempty"` // hex
	Room      string `json:"room,omitempty"`
	// CheckJoin makes the holder check the connection's own join right (a
	// connection acting for itself with its token).
	CheckJoin bool `json:"check_join,omitempty"`
	// Reason of a close: "disconnected" or "replaced".
	Reason string       `json:"reason,omitempty"`
	Settle *settleBatch `json:"settle,omitempty"`
}

// connReply answers a connRequest.
type connReply struct {
	Conn    *wireConn `json:"conn,omitempty"`
	Changed bool      `json:"changed,omitempty"`
	Err     string    `json:"err,omitempty"`
	Kind    string    `json:"kind,omitempty"` // the sentinel of Err
}

// wireConn is a ConnInfo on the bus.
type wireConn struct {
	ID        ConnID          `json:"id"`
	User      string          `json:"user,omitempty"`
	Rooms     []string        `json:"rooms,omitempty"`
	Connected time.Time       `json:"connected"`
	Perms     json.RawMessage `json:"perms,omitempty"` // the holder's Perms as JSON; null: open
}

// presenceRequest asks every node for its part of a namespace's presence.
type presenceRequest struct {
	Room  string `json:"room,omitempty"`
	Group string `json:"group,omitempty"`
}

type presenceReply struct {
	Rooms   map[string]int `json:"rooms,omitempty"`
	Members []wireConn     `json:"members,omitempty"`
	// InFlight is what this node's members of a group hold.
	InFlight int `json:"in_flight,omitempty"`
}

// kinds carries a sentinel error across the bus.
var kinds = map[string]error{"invalid": ErrInvalid, "forbidden": ErrForbidden, "limit": ErrLimit, "not_found": ErrNotFound,
	"unauthorized": ErrUnauthorized, "superseded": ErrSuperseded, "unavailable": ErrUnavailable}

func kindOf(err error) string {
	for k, e := range kinds {
		if errors.Is(err, e) {
			return k
		}
	}
	return ""
}

func (r connReply) err() error {
	if r.Err == "" {
		return nil
	}
	if e, ok := kinds[r.Kind]; ok {
		return fmt.Errorf("%s: %w", r.Err, e)
	}
	return fmt.Errorf("%s: %w", r.Err, ErrUnavailable)
}

// askTimeout bounds a request to another node; settleAskTimeout one whose
// holder waits for the engine's confirmation.
const (
	askTimeout       = 2 * time.Second
	settleAskTimeout = 8 * time.Second
	gatherTimeout    = 500 * time.Millisecond
)

// onConn runs op on the connection req names wherever it lives. On this
// node it runs at once; otherwise the node holding it runs it. ErrNotFound
// when no node holds it.
func (ns *Namespace) onConn(ctx context.Context, op string, req connRequest) (connReply, error) {
	c := ns.localConn(req.ID)
	if req.TokenHash != "" {
		c = nil
		if b, err := hex.DecodeString(req.TokenHash); err == nil && len(b) == 32 {
			c = ns.localByToken([32]byte(b))
		}
	}
	if c != nil {
		rep := ns.runConnOp(ctx, c, op, req)
		return rep, rep.err()
	}
	if ns.hub.bus == nil {
		return connReply{}, fmt.Errorf("connection %s is not open: %w", clip(string(req.ID)), ErrNotFound)
	}
	timeout := askTimeout
	if op == opSettle {
		timeout = settleAskTimeout
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	b, err := json.Marshal(req)
	if err != nil {
		return connReply{}, err
	}
	rb, err := ns.hub.bus.Ask(actx, ns.name, op, b)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return connReply{}, fmt.Errorf("connection %s is not open: %w", clip(string(req.ID)), ErrNotFound)
		}
		return connReply{}, fmt.Errorf("connection %s: %w", clip(string(req.ID)), err)
	}
	var rep connReply
	if err := json.Unmarshal(rb, &rep); err != nil {
		return connReply{}, fmt.Errorf("control reply: %w: %w", ErrUnavailable, err)
	}
	if rep.Conn == nil && rep.Err == "" {
		return connReply{}, fmt.Errorf("connection %s is not open: %w", clip(string(req.ID)), ErrNotFound)
	}
	return rep, rep.err()
}

// runConnOp runs op on local connection c.
func (ns *Namespace) runConnOp(ctx context.Context, c *Conn, op string, req connRequest) connReply {
	var rep connReply
	var err error
	switch op {
	case opJoin:
		switch {
		case !ValidRoom(req.Room):
			err = fmt.Errorf("room %q: %w", clip(req.Room), ErrInvalid)
		case req.CheckJoin && !Allowed(c.Perms, ActJoin, req.Room):
			err = fmt.Errorf("join on room %q is not granted: %w", req.Room, ErrForbidden)
		default:
			if rep.Changed, err = ns.join(c, req.Room); rep.Changed {
				ns.persist(ctx, c)
			}
		}
	case opLeave:
		if !ValidRoom(req.Room) {
			err = fmt.Errorf("room %q: %w", clip(req.Room), ErrInvalid)
		} else if rep.Changed, err = ns.leave(c, req.Room); rep.Changed {
			ns.persist(ctx, c)
		}
	case opClose:
		reason := ErrDisconnected
		if req.Reason == "replaced" {
			reason = ErrReplaced
		}
		c.Close(reason)
	case opSettle:
		if req.Settle == nil {
			err = fmt.Errorf("settle: nothing to settle: %w", ErrInvalid)
		} else {
			err = ns.settleLocal(ctx, c, *req.Settle)
		}
	}
	if err != nil {
		return connReply{Err: err.Error(), Kind: kindOf(err)}
	}
	rep.Conn = ns.wireView(c)
	return rep
}

func (ns *Namespace) wireView(c *Conn) *wireConn {
	info := ns.info(c)
	perms, _ := json.Marshal(c.Perms)
	return &wireConn{ID: c.ID, User: c.User, Rooms: info.Rooms, Connected: c.Connected, Perms: perms}
}

// connInfo turns a holder's answer back into a ConnInfo.
func (ns *Namespace) connInfo(w *wireConn) (ConnInfo, error) {
	info := ConnInfo{ID: w.ID, User: w.User, Rooms: w.Rooms, Connected: w.Connected}
	if info.Rooms == nil {
		info.Rooms = []string{}
	}
	if len(w.Perms) > 0 && string(w.Perms) != "null" {
		if ns.hub.decodePerms == nil {
			return ConnInfo{}, fmt.Errorf("connection %s: rights from another node cannot be read here: %w", w.ID, ErrUnavailable)
		}
		p, err := ns.hub.decodePerms(w.Perms)
		if err != nil {
			return ConnInfo{}, fmt.Errorf("connection %s: rights from another node: %w: %w", w.ID, ErrUnavailable, err)
		}
		info.Perms = p
	}
	return info, nil
}

// control answers another node's request (Bus.Serve's handler).
func (h *Hub) control(nsName, op string, body []byte) ([]byte, bool) {
	ns, err := h.Namespace(nsName)
	if err != nil {
		return nil, false
	}
	var rep any
	switch op {
	case opRooms, opMembers, opGroup:
		var req presenceRequest
		if json.Unmarshal(body, &req) != nil {
			return nil, false
		}
		rep = ns.localPresence(op, req)
	default:
		var req connRequest
		if json.Unmarshal(body, &req) != nil {
			return nil, false
		}
		var c *Conn
		if req.TokenHash != "" {
			if b, err := hex.DecodeString(req.TokenHash); err == nil && len(b) == 32 {
				c = ns.localByToken([32]byte(b))
			}
		} else {
			c = ns.localConn(req.ID)
		}
		if c == nil {
			return nil, false
		}
		ctx, cancel := context.WithTimeout(context.Background(), settleAskTimeout)
		defer cancel()
		rep = ns.runConnOp(ctx, c, op, req)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return nil, false
	}
	return b, true
}

func (ns *Namespace) localPresence(op string, req presenceRequest) presenceReply {
	switch op {
	case opRooms:
		return presenceReply{Rooms: ns.localRooms()}
	case opMembers:
		ms := ns.localMembers(req.Room)
		out := make([]wireConn, len(ms))
		for i, m := range ms {
			out[i] = wireConn{ID: m.ID, User: m.User, Connected: m.Connected}
		}
		return presenceReply{Members: out}
	default: // opGroup
		ms, inFlight := ns.localGroupMembers(GroupKey{Room: req.Room, Name: req.Group})
		out := make([]wireConn, len(ms))
		for i, m := range ms {
			out[i] = wireConn{ID: m.ID, User: m.User, Connected: m.Connected}
		}
		return presenceReply{Members: out, InFlight: inFlight}
	}
}

// gather asks every node (this one included) for its part of presence; a
// single node answers itself.
func (ns *Namespace) gather(ctx context.Context, op string, req presenceRequest) []presenceReply {
	local := ns.localPresence(op, req)
	if ns.hub.bus == nil {
		return []presenceReply{local}
	}
	b, _ := json.Marshal(req)
	gctx, cancel := context.WithTimeout(ctx, gatherTimeout)
	defer cancel()
	raws, err := ns.hub.bus.Gather(gctx, ns.name, op, b)
	if err != nil || len(raws) == 0 {
		return []presenceReply{local} // the bus is down: this node's part is all we know
	}
	out := make([]presenceReply, 0, len(raws))
	for _, rb := range raws {
		var rep presenceReply
		if json.Unmarshal(rb, &rep) == nil {
			out = append(out, rep)
		}
	}
	return out
}

// Connection returns connection id, wherever it lives.
func (ns *Namespace) Connection(ctx context.Context, id ConnID) (ConnInfo, error) {
	if !ValidConnID(string(id)) {
		return ConnInfo{}, fmt.Errorf("connection %q: %w", clip(string(id)), ErrInvalid)
	}
	if c := ns.localConn(id); c != nil {
		return ns.info(c), nil
	}
	rep, err := ns.onConn(ctx, opLookup, connRequest{ID: id})
	if err != nil {
		return ConnInfo{}, err
	}
	return ns.connInfo(rep.Conn)
}

// ConnectionByToken returns the connection whose token is token, wherever
// it lives; ErrUnauthorized when there is none.
func (ns *Namespace) ConnectionByToken(ctx context.Context, token string) (ConnInfo, error) {
	if !validToken(token) {
		return ConnInfo{}, fmt.Errorf("the bearer credential is not a connection token (22 characters from a connected event): %w", ErrUnauthorized)
	}
	h := tokenHash(token)
	if c := ns.localByToken(h); c != nil {
		return ns.info(c), nil
	}
	rep, err := ns.onConn(ctx, opLookup, connRequest{TokenHash: hex.EncodeToString(h[:])})
	if errors.Is(err, ErrNotFound) || ns.hub.bus == nil {
		return ConnInfo{}, fmt.Errorf("the connection token is unknown or its connection has closed; use the token of a connection's connected event: %w", ErrUnauthorized)
	}
	if err != nil {
		return ConnInfo{}, err
	}
	return ns.connInfo(rep.Conn)
}

// Join adds connection id to room (idempotent), wherever it lives. With
// checkOwn the connection's own join right is checked (it acts for itself
// with its token); otherwise the caller has checked its own rights.
func (ns *Namespace) Join(ctx context.Context, id ConnID, room string, checkOwn bool) (Membership, error) {
	return ns.membership(ctx, opJoin, connRequest{ID: id, Room: room, CheckJoin: checkOwn})
}

// Leave removes connection id from room (idempotent), wherever it lives.
func (ns *Namespace) Leave(ctx context.Context, id ConnID, room string) (Membership, error) {
	return ns.membership(ctx, opLeave, connRequest{ID: id, Room: room})
}

func (ns *Namespace) membership(ctx context.Context, op string, req connRequest) (Membership, error) {
	if !ValidRoom(req.Room) {
		return Membership{}, fmt.Errorf("room %q: %w", clip(req.Room), ErrInvalid)
	}
	rep, err := ns.onConn(ctx, op, req)
	if err != nil {
		return Membership{}, err
	}
	return Membership{Changed: rep.Changed, Rooms: rep.Conn.Rooms}, nil
}

// Disconnect closes connection id on request, wherever it lives: its client
// is told so, and a resume of it is refused.
func (ns *Namespace) Disconnect(ctx context.Context, id ConnID) error {
	_, err := ns.onConn(ctx, opClose, connRequest{ID: id, Reason: "disconnected"})
	return err
}

// closeRemote closes connection id on another node with reason.
func (ns *Namespace) closeRemote(ctx context.Context, id ConnID, reason error) error {
	r := "disconnected"
	if errors.Is(reason, ErrReplaced) {
		r = "replaced"
	}
	_, err := ns.onConn(ctx, opClose, connRequest{ID: id, Reason: r})
	return err
}

// Rooms lists the rooms with members on any node, by name.
func (ns *Namespace) Rooms(ctx context.Context) []RoomInfo {
	sum := map[string]int{}
	for _, rep := range ns.gather(ctx, opRooms, presenceRequest{}) {
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

// Members lists room's members on every node, oldest first.
func (ns *Namespace) Members(ctx context.Context, room string) ([]ConnInfo, error) {
	if !ValidRoom(room) {
		return nil, fmt.Errorf("room %q: %w", clip(room), ErrInvalid)
	}
	out := []ConnInfo{}
	for _, rep := range ns.gather(ctx, opMembers, presenceRequest{Room: room}) {
		for _, m := range rep.Members {
			out = append(out, ConnInfo{ID: m.ID, User: m.User, Connected: m.Connected})
		}
	}
	sortMembers(out)
	return out, nil
}
