package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
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

// bearer returns the Authorization bearer credential, "" when absent.
func bearer(r *http.Request) (string, bool, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false, nil
	}
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(cred) == "" {
		return "", true, fmt.Errorf("authorization: want \"Bearer <connection token>\": %w", hub.ErrUnauthorized)
	}
	return strings.TrimSpace(cred), true, nil
}

// caller returns the connection whose token the request carries (nil when it
// carries none).
func (h *nsAPI) caller(r *http.Request) (*hub.Conn, error) {
	tok, present, err := bearer(r)
	if err != nil || !present {
		return nil, err
	}
	return h.ns.Authenticate(tok)
}

// actingFor authorizes a request made on behalf of connection id: it must
// carry that connection's token.
func (h *nsAPI) actingFor(r *http.Request, id hub.ConnID) (*hub.Conn, error) {
	c, err := h.caller(r)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("this call needs the connection's token (Authorization: Bearer <token from the connected event>): %w", hub.ErrUnauthorized)
	}
	if c.ID != id {
		return nil, fmt.Errorf("the token is not connection %s's: %w", id, hub.ErrForbidden)
	}
	return c, nil
}

// --- SSE ---------------------------------------------------------------

func (h *nsAPI) connect(w http.ResponseWriter, r *http.Request) {
	var rooms []string
	if q := r.URL.Query().Get("rooms"); q != "" {
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
		gs, ok := h.cfg.Streams.(GroupStreams)
		if !ok {
			h.fail(w, r, fmt.Errorf("consumer groups are not enabled: %w", hub.ErrUnavailable))
			return
		}
		h.stream(w, r, nil, func(resume *hub.Position, token string) error {
			return gs.ServeGroup(w, r, h.ns, room, g, resume, token)
		})
		return
	}
	h.stream(w, r, []string{room}, nil)
}

// stream parses Last-Event-ID and serves the stream (serve, when set,
// serves a group member instead).
func (h *nsAPI) stream(w http.ResponseWriter, r *http.Request, rooms []string, serve func(*hub.Position, string) error) {
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("last_event_id")
	}
	var resume *hub.Position
	var token string
	if last != "" {
		pos, tok, err := hub.ParseResume(last)
		if err != nil {
			h.fail(w, r, invalidParam("Last-Event-ID", "must be an event id received from this server (epoch-sequence[.token])"))
			return
		}
		resume, token = &pos, tok
	}
	if serve == nil {
		serve = func(resume *hub.Position, token string) error {
			return h.cfg.Streams.Serve(w, r, h.ns, rooms, resume, token)
		}
	}
	if err := serve(resume, token); err != nil {
		h.fail(w, r, err)
	}
}

// --- publish -------------------------------------------------------------

type publishRequest struct {
	Event  string          `json:"event" validate:"required,event"`
	Data   json.RawMessage `json:"data" validate:"json"`
	Rooms  []string        `json:"rooms" validate:"omitempty,max=100,dive,room"`
	Except []string        `json:"except" validate:"omitempty,max=100,dive,room"`
	ID     string          `json:"id" validate:"omitempty,max=128,printascii"`
}

type roomPublishRequest struct {
	Event  string          `json:"event" validate:"required,event"`
	Data   json.RawMessage `json:"data" validate:"json"`
	Except []string        `json:"except" validate:"omitempty,max=100,dive,room"`
	ID     string          `json:"id" validate:"omitempty,max=128,printascii"`
}

type directPublishRequest struct {
	Event string          `json:"event" validate:"required,event"`
	Data  json.RawMessage `json:"data" validate:"json"`
	ID    string          `json:"id" validate:"omitempty,max=128,printascii"`
}

type publishResponse struct {
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

func (h *nsAPI) send(w http.ResponseWriter, r *http.Request, o *hub.Outgoing) {
	from, err := h.caller(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if from != nil {
		o.From = from.ID
	}
	if o.Key != "" {
		// Scope idempotency keys per namespace and sender so that two
		// publishers picking the same key cannot swallow each other's
		// messages.
		o.Key = h.ns.Name() + "/" + string(o.From) + "/" + o.Key
	}
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
	h.send(w, r, &hub.Outgoing{Event: req.Event, Data: req.Data, Rooms: req.Rooms, Except: req.Except, Key: req.ID})
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
	h.send(w, r, &hub.Outgoing{Event: req.Event, Data: req.Data, Rooms: []string{room}, Except: req.Except, Key: req.ID})
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
	h.send(w, r, &hub.Outgoing{Event: req.Event, Data: req.Data, To: id, Key: req.ID})
}

// --- rooms, members, connections ----------------------------------------

type roomInfo struct {
	Name    string `json:"name"`
	Members int    `json:"members"`
}

func (h *nsAPI) listRooms(w http.ResponseWriter, r *http.Request) {
	rooms := h.ns.Rooms()
	out := make([]roomInfo, len(rooms))
	for i, ri := range rooms {
		out[i] = roomInfo{Name: ri.Name, Members: ri.Members}
	}
	writeJSON(w, http.StatusOK, map[string]any{"rooms": out})
}

func (h *nsAPI) getRoom(w http.ResponseWriter, r *http.Request) {
	room, err := roomParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	members, err := h.ns.Members(room)
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
	ConnectedAt time.Time  `json:"connected_at"`
}

func (h *nsAPI) listMembers(w http.ResponseWriter, r *http.Request) {
	room, err := roomParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	members, err := h.ns.Members(room)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]memberInfo, len(members))
	for i, m := range members {
		out[i] = memberInfo{ID: m.ID, ConnectedAt: m.Connected.UTC()}
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

func (h *nsAPI) membership(w http.ResponseWriter, r *http.Request, join bool) {
	room, err := roomParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	id, err := connParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	c, err := h.actingFor(r, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var changed bool
	if join {
		changed, err = h.ns.Join(c, room)
	} else {
		changed, err = h.ns.Leave(c, room)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, membership{Room: room, ID: id, Member: join, Changed: changed, Rooms: h.ns.Info(c).Rooms})
}

func (h *nsAPI) join(w http.ResponseWriter, r *http.Request)  { h.membership(w, r, true) }
func (h *nsAPI) leave(w http.ResponseWriter, r *http.Request) { h.membership(w, r, false) }

type connectionInfo struct {
	ID          hub.ConnID `json:"id"`
	NS          string     `json:"ns"`
	Rooms       []string   `json:"rooms"`
	ConnectedAt time.Time  `json:"connected_at"`
}

func (h *nsAPI) getConnection(w http.ResponseWriter, r *http.Request) {
	id, err := connParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	c, err := h.ns.Conn(id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	info := h.ns.Info(c)
	writeJSON(w, http.StatusOK, connectionInfo{ID: info.ID, NS: h.ns.Name(), Rooms: info.Rooms, ConnectedAt: info.Connected.UTC()})
}

func (h *nsAPI) disconnect(w http.ResponseWriter, r *http.Request) {
	id, err := connParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	c, err := h.actingFor(r, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	c.Close(hub.ErrDisconnected)
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
	room, err := roomParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > h.ns.Config().HistoryLimit {
			h.fail(w, r, invalidParam("limit", fmt.Sprintf("must be an integer from 1 to %d", h.ns.Config().HistoryLimit)))
			return
		}
		limit = n
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
