package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/roomcast/roomcast/internal/hub"
)

// nsAPI serves one namespace's routes.
type nsAPI struct {
	*API
	ns      *hub.Namespace
	maxBody int64
	batch   batchLimits
	sec     *Security
}

func invalidParam(field, msg string) error {
	return &validationError{fields: []FieldError{{Field: field, Message: msg}}}
}

func notFound(what string) error { return fmt.Errorf("%s: %w", what, hub.ErrNotFound) }

func (h *nsAPI) fail(w http.ResponseWriter, r *http.Request, err error) {
	writeError(w, r, h.logger, err)
}

// roomParam returns the {room} path segment, validated.
func roomParam(r *http.Request) (string, error) {
	room := chi.URLParam(r, "room")
	if !hub.ValidRoom(room) {
		return "", invalidParam("room", tagMessages["room"])
	}
	return room, nil
}

func connParam(r *http.Request) (hub.ConnID, error) {
	id := chi.URLParam(r, "id")
	if !hub.ValidConnID(id) {
		return "", invalidParam("id", tagMessages["connid"])
	}
	return hub.ConnID(id), nil
}

// --- SSE ---------------------------------------------------------------

func (h *nsAPI) connect(w http.ResponseWriter, r *http.Request) {
	// rooms=a,b and rooms=a&rooms=b both work.
	var rooms []string
	for _, q := range r.URL.Query()["rooms"] {
		if q == "" {
			continue
		}
		for _, room := range strings.Split(q, ",") {
			if !hub.ValidRoom(room) {
				h.fail(w, r, invalidParam("rooms", tagMessages["room"]))
				return
			}
			rooms = append(rooms, room)
		}
	}
	h.stream(w, r, rooms, nil)
}

func (h *nsAPI) roomEvents(w http.ResponseWriter, r *http.Request) {
	room, err := roomParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if r.URL.Query().Has("group") {
		g := r.URL.Query().Get("group")
		if !hub.ValidGroup(g) {
			h.fail(w, r, invalidParam("group", "must be 1–64 characters of A-Z a-z 0-9 _ -"))
			return
		}
		h.stream(w, r, nil, &hub.GroupKey{Room: room, Name: g})
		return
	}
	h.stream(w, r, []string{room}, nil)
}

// stream authenticates, checks limits, parses Last-Event-ID and serves the
// stream (a group member's when g is set). Its own frame stays small: the
// goroutine running it lives for the whole stream, and the checks (in
// openStream) and the error answer (streamFailed) run in helpers whose large
// frames are gone by the time the stream idles (BENCHMARKS.md, target 4).
func (h *nsAPI) stream(w http.ResponseWriter, r *http.Request, rooms []string, g *hub.GroupKey) {
	req, release, ok := h.openStream(w, r, rooms, g)
	if !ok {
		return
	}
	defer release()
	if err := h.cfg.Streams.Serve(w, r, h.ns, req); err != nil {
		h.streamFailed(w, r, err)
	}
}

// openStream does stream's checks and builds the connection's request; it
// answers the request itself and returns false when the stream is not to
// be served.
//
//go:noinline
func (h *nsAPI) openStream(w http.ResponseWriter, r *http.Request, rooms []string, g *hub.GroupKey) (hub.OpenRequest, func(), bool) {
	p, err := h.authenticate(r, true)
	if err != nil {
		h.fail(w, r, err)
		return hub.OpenRequest{}, nil, false
	}
	if p.kind == connection {
		h.fail(w, r, fmt.Errorf("a connection token cannot open a stream; reconnect with Last-Event-ID to resume a connection: %w", hub.ErrUnauthorized))
		return hub.OpenRequest{}, nil, false
	}
	if h.sec.Locked && p.kind == anonymous {
		err = h.require(p, hub.ActSubscribe, "") // 401 with the reason
	} else if g != nil {
		err = h.require(p, hub.ActAck, g.Room)
	} else {
		for _, room := range rooms {
			if err = h.require(p, hub.ActSubscribe, room); err != nil {
				break
			}
		}
	}
	if err != nil {
		h.fail(w, r, err)
		return hub.OpenRequest{}, nil, false
	}
	last, field := r.Header.Get("Last-Event-ID"), "Last-Event-ID"
	if last == "" {
		last, field = r.URL.Query().Get("last_event_id"), "last_event_id"
	}
	req := hub.OpenRequest{Rooms: rooms, Group: g, User: p.id.User, Expires: p.id.Expires, Perms: p.perms(!h.sec.Locked)}
	if last != "" {
		pos, tok, err := hub.ParseResume(last)
		if err != nil {
			h.fail(w, r, invalidParam(field, "must be an event id received from this server (epoch-sequence[.token])"))
			return hub.OpenRequest{}, nil, false
		}
		req.Resume, req.Token = &pos, tok
	}
	release, err := h.conns.acquire(h.sec, h.ns.Name(), clientIP(r), p.id.User)
	if err != nil {
		h.fail(w, r, err)
		return hub.OpenRequest{}, nil, false
	}
	return req, release, true
}

// streamFailed answers a stream that ended before anything was written.
//
//go:noinline
func (h *nsAPI) streamFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, hub.ErrDisconnected) {
		// The connection was closed on request: 204 is the answer that
		// makes an EventSource stop reconnecting (Socket.IO's
		// server-side disconnect).
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.fail(w, r, err)
}

type ticketResponse struct {
	Ticket    string    `json:"ticket"`
	ExpiresAt time.Time `json:"expires_at"`
}

// issueTicket exchanges a JWT (or API key) for a short-lived, single-use
// ticket to put in a stream URL (?ticket=): EventSource cannot send headers.
func (h *nsAPI) issueTicket(w http.ResponseWriter, r *http.Request) {
	p, err := h.authenticate(r, false)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if p.kind != user && p.kind != admin {
		h.fail(w, r, fmt.Errorf("a ticket is issued for a JWT or an API key: %w", hub.ErrUnauthorized))
		return
	}
	if h.cfg.Tickets == nil {
		h.fail(w, r, fmt.Errorf("tickets: %w", hub.ErrUnavailable))
		return
	}
	t, exp, err := h.newTicket(r.Context(), h.ns.Name(), p.id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, ticketResponse{Ticket: t, ExpiresAt: exp.UTC()})
}

// --- publish -------------------------------------------------------------

type publishRequest struct {
	Event  string          `json:"event" validate:"required,event"`
	Data   json.RawMessage `json:"data" validate:"json"`
	Rooms  []string        `json:"rooms" validate:"omitempty,max=100,dive,room"`
	Except []string        `json:"except" validate:"omitempty,max=100,dive,room"`
	ID     string          `json:"id" validate:"omitempty,max=128,printascii"`
	// Volatile: delivered live only, never stored (publishVolatile).
	Volatile bool `json:"volatile"`
}

type roomPublishRequest struct {
	Event  string          `json:"event" validate:"required,event"`
	Data   json.RawMessage `json:"data" validate:"json"`
	Except []string        `json:"except" validate:"omitempty,max=100,dive,room"`
	ID     string          `json:"id" validate:"omitempty,max=128,printascii"`
	// Volatile: delivered live only, never stored (publishVolatile).
	Volatile bool `json:"volatile"`
}

type directPublishRequest struct {
	Event string          `json:"event" validate:"required,event"`
	Data  json.RawMessage `json:"data" validate:"json"`
	ID    string          `json:"id" validate:"omitempty,max=128,printascii"`
	// Volatile: delivered live only, never stored (publishVolatile).
	Volatile bool `json:"volatile"`
}

type publishResponse struct {
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

func (h *nsAPI) send(w http.ResponseWriter, r *http.Request, o *hub.Outgoing) {
	p, err := h.authenticate(r, false)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// Emitting to rooms needs publish on each; to the whole namespace or to
	// one connection, admin (they are server-side actions in Socket.IO).
	if len(o.Rooms) == 0 {
		err = h.require(p, hub.ActAdmin, "")
	}
	for _, room := range o.Rooms {
		if err == nil {
			err = h.require(p, hub.ActPublish, room)
		}
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if p.kind == connection {
		o.From = p.conn.ID
	}
	if o.Volatile {
		h.publishVolatile(w, r, o)
		return
	}
	h.scopeKey(p, o)
	pos, dup, err := h.ns.Publish(r.Context(), o)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, publishResponse{ID: pos.String(), Duplicate: dup})
}

func (h *nsAPI) publish(w http.ResponseWriter, r *http.Request) {
	var req publishRequest
	if err := h.decode(w, r, h.maxBody, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	h.send(w, r, &hub.Outgoing{Event: req.Event, Data: req.Data, Rooms: req.Rooms, Except: req.Except, Key: req.ID, Volatile: req.Volatile})
}

func (h *nsAPI) publishRoom(w http.ResponseWriter, r *http.Request) {
	room, err := roomParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var req roomPublishRequest
	if err := h.decode(w, r, h.maxBody, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	h.send(w, r, &hub.Outgoing{Event: req.Event, Data: req.Data, Rooms: []string{room}, Except: req.Except, Key: req.ID, Volatile: req.Volatile})
}

func (h *nsAPI) publishConn(w http.ResponseWriter, r *http.Request) {
	id, err := connParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var req directPublishRequest
	if err := h.decode(w, r, h.maxBody, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	h.send(w, r, &hub.Outgoing{Event: req.Event, Data: req.Data, To: id, Key: req.ID, Volatile: req.Volatile})
}

// --- rooms, members, connections ----------------------------------------

type roomInfo struct {
	Name    string `json:"name"`
	Members int    `json:"members"`
}

func (h *nsAPI) listRooms(w http.ResponseWriter, r *http.Request) {
	p, err := h.authenticate(r, false)
	if err == nil && h.sec.Locked && p.kind == anonymous {
		err = h.require(p, hub.ActPresence, "")
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	perms := p.perms(!h.sec.Locked)
	out := []roomInfo{}
	for _, ri := range h.ns.Rooms(r.Context()) {
		if hub.Allowed(perms, hub.ActPresence, ri.Name) { // only rooms whose presence the caller may see
			out = append(out, roomInfo{Name: ri.Name, Members: ri.Members})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"rooms": out})
}

// roomFor validates {room} and checks that the caller may do a on it.
func (h *nsAPI) roomFor(r *http.Request, a hub.Action) (string, principal, error) {
	room, err := roomParam(r)
	if err != nil {
		return "", principal{}, err
	}
	p, err := h.authenticate(r, false)
	if err != nil {
		return "", principal{}, err
	}
	return room, p, h.require(p, a, room)
}

func (h *nsAPI) getRoom(w http.ResponseWriter, r *http.Request) {
	room, _, err := h.roomFor(r, hub.ActPresence)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	members, err := h.ns.Members(r.Context(), room)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// A room exists while it has members, as in Socket.IO; an empty room
	// is reported with 0 members rather than 404, since it may have history.
	writeJSON(w, http.StatusOK, roomInfo{Name: room, Members: len(members)})
}

type memberInfo struct {
	ID          hub.ConnID `json:"id"`
	User        string     `json:"user,omitempty"`
	ConnectedAt time.Time  `json:"connected_at"`
}

func (h *nsAPI) listMembers(w http.ResponseWriter, r *http.Request) {
	room, _, err := h.roomFor(r, hub.ActPresence)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	members, err := h.ns.Members(r.Context(), room)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]memberInfo, len(members))
	for i, m := range members {
		out[i] = memberInfo{ID: m.ID, User: m.User, ConnectedAt: m.Connected.UTC()}
	}
	writeJSON(w, http.StatusOK, map[string]any{"room": room, "members": out})
}

type membership struct {
	Room   string     `json:"room"`
	ID     hub.ConnID `json:"id"`
	Member bool       `json:"member"`
	// Changed is false when the call was a no-op (already in / not in).
	Changed bool     `json:"changed"`
	Rooms   []string `json:"rooms"`
}

// target returns connection {id}, on any node, after checking that the
// caller may act for it.
func (h *nsAPI) target(r *http.Request) (hub.ConnInfo, principal, error) {
	id, err := connParam(r)
	if err != nil {
		return hub.ConnInfo{}, principal{}, err
	}
	p, err := h.authenticate(r, false)
	if err != nil {
		return hub.ConnInfo{}, principal{}, err
	}
	if p.kind == anonymous {
		return hub.ConnInfo{}, p, h.mayActFor(p, hub.ConnInfo{ID: id})
	}
	if p.kind == connection && p.conn.ID != id {
		return hub.ConnInfo{}, p, fmt.Errorf("the token is not connection %s's: use the token of that connection's connected event: %w", id, hub.ErrForbidden)
	}
	c, err := h.ns.Connection(r.Context(), id)
	if err != nil {
		return hub.ConnInfo{}, p, err
	}
	return c, p, h.mayActFor(p, c)
}

func (h *nsAPI) membership(w http.ResponseWriter, r *http.Request, join bool) {
	room, err := roomParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	c, p, err := h.target(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var m hub.Membership
	if join {
		// The caller's own rights decide: the connection's claims when it
		// acts for itself (checked where it lives), the JWT's for a backend
		// acting for its user.
		own := p.kind == connection
		if !own {
			if err := h.require(p, hub.ActJoin, room); err != nil {
				h.fail(w, r, err)
				return
			}
		}
		m, err = h.ns.Join(r.Context(), c.ID, room, own)
	} else {
		m, err = h.ns.Leave(r.Context(), c.ID, room)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, membership{Room: room, ID: c.ID, Member: join, Changed: m.Changed, Rooms: m.Rooms})
}

func (h *nsAPI) join(w http.ResponseWriter, r *http.Request)  { h.membership(w, r, true) }
func (h *nsAPI) leave(w http.ResponseWriter, r *http.Request) { h.membership(w, r, false) }

type connectionInfo struct {
	ID          hub.ConnID `json:"id"`
	NS          string     `json:"ns"`
	User        string     `json:"user,omitempty"`
	Rooms       []string   `json:"rooms"`
	ConnectedAt time.Time  `json:"connected_at"`
}

func (h *nsAPI) getConnection(w http.ResponseWriter, r *http.Request) {
	var c hub.ConnInfo
	var err error
	if h.sec.Locked {
		c, _, err = h.target(r)
	} else {
		var id hub.ConnID
		if id, err = connParam(r); err == nil {
			if _, err = h.authenticate(r, false); err == nil { // a credential, if any, must be valid
				c, err = h.ns.Connection(r.Context(), id)
			}
		}
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, connectionInfo{ID: c.ID, NS: h.ns.Name(), User: c.User, Rooms: c.Rooms, ConnectedAt: c.Connected.UTC()})
}

func (h *nsAPI) disconnect(w http.ResponseWriter, r *http.Request) {
	c, _, err := h.target(r)
	if err == nil {
		err = h.ns.Disconnect(r.Context(), c.ID)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// --- history ---------------------------------------------------------------

type historyResponse struct {
	Room      string            `json:"room"`
	Messages  []json.RawMessage `json:"messages"`
	Truncated bool              `json:"truncated"`
	// Last is the id of the last message returned: pass it as `after` (or
	// Last-Event-ID) to continue from there.
	Last string `json:"last,omitempty"`
}

func (h *nsAPI) history(w http.ResponseWriter, r *http.Request) {
	room, _, err := h.roomFor(r, hub.ActHistory)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	limit, err := h.limitParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var after *hub.Position
	if s := q.Get("after"); s != "" {
		pos, _, err := hub.ParseResume(s)
		if err != nil {
			h.fail(w, r, invalidParam("after", "must be a message id (epoch-sequence)"))
			return
		}
		after = &pos
	}
	page, err := h.ns.History(r.Context(), room, after, limit)
	if err != nil {
		h.fail(w, r, err) // 410 when `after` is from another epoch of the store
		return
	}
	resp := historyResponse{Room: room, Messages: make([]json.RawMessage, len(page.Messages)), Truncated: page.Truncated}
	for i, m := range page.Messages {
		resp.Messages[i] = m.Body
	}
	if n := len(page.Messages); n > 0 {
		resp.Last = page.Messages[n-1].Pos.String()
	}
	writeJSON(w, http.StatusOK, resp)
}
