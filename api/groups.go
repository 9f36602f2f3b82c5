package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/roomcast/roomcast/internal/hub"
)

// GroupStreams is the optional capability of Streams to serve consumer
// group members (sse.Server has it).
type GroupStreams interface {
	ServeGroup(w http.ResponseWriter, r *http.Request, ns *hub.Namespace, room, group string, resume *hub.Position, token string) error
}

func groupParam(r *http.Request) (string, error) {
	g := chi.URLParam(r, "group")
	if !hub.ValidGroup(g) {
		return "", invalidParam("group", "must be 1–64 characters of A-Z a-z 0-9 _ -")
	}
	return g, nil
}

// roomGroup validates {room} and {group}, checks that the caller may do a
// (ActAck: what a member may see; ActAdmin: managing the group; "": no
// check, the handler checks) and that groups are on.
func (h *nsAPI) roomGroup(r *http.Request, a hub.Action) (string, string, hub.Groups, error) {
	room, err := roomParam(r)
	if err != nil {
		return "", "", nil, err
	}
	g, err := groupParam(r)
	if err != nil {
		return "", "", nil, err
	}
	if a != "" {
		p, err := h.authenticate(r, false)
		if err != nil {
			return "", "", nil, err
		}
		target := room
		if a == hub.ActAdmin {
			target = ""
		}
		if err := h.require(p, a, target); err != nil {
			return "", "", nil, err
		}
	}
	gs := h.ns.Groups()
	if gs == nil {
		return "", "", nil, fmt.Errorf("consumer groups are not enabled: %w", hub.ErrUnavailable)
	}
	return room, g, gs, nil
}

type groupConfigJSON struct {
	AckWait     string `json:"ack_wait"`
	MaxDeliver  int    `json:"max_deliver"`
	MaxInFlight int    `json:"max_in_flight"`
}

type groupStateJSON struct {
	Room        string          `json:"room"`
	Group       string          `json:"group"`
	Config      groupConfigJSON `json:"config"`
	Pending     uint64          `json:"pending"`
	InFlight    int             `json:"in_flight"`
	Redelivered int             `json:"redelivered"`
	AckFloor    string          `json:"ack_floor"`
	DeadLetters uint64          `json:"dead_letters"`
	Members     []memberInfo    `json:"members"`
}

func (h *nsAPI) groupState(ctx context.Context, gs hub.Groups, room, group string) (groupStateJSON, error) {
	st, err := gs.GroupState(ctx, h.ns.Name(), room, group)
	if err != nil {
		return groupStateJSON{}, err
	}
	out := groupStateJSON{
		Room: room, Group: group,
		Config:  groupConfigJSON{AckWait: st.Config.AckWait.String(), MaxDeliver: st.Config.MaxDeliver, MaxInFlight: st.Config.MaxInFlight},
		Pending: st.Pending, InFlight: st.InFlight, Redelivered: st.Redelivered,
		AckFloor:    hub.Position{Epoch: h.ns.Epoch(), Seq: st.AckFloor}.String(),
		DeadLetters: st.DeadLetters, Members: []memberInfo{},
	}
	for _, m := range h.ns.GroupMembers(room, group) {
		out.Members = append(out.Members, memberInfo{ID: m.ID, User: m.User, ConnectedAt: m.Connected.UTC()})
	}
	return out, nil
}

func (h *nsAPI) listGroups(w http.ResponseWriter, r *http.Request) {
	room, _, err := h.roomFor(r, hub.ActAck)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	gs := h.ns.Groups()
	if gs == nil {
		h.fail(w, r, fmt.Errorf("consumer groups are not enabled: %w", hub.ErrUnavailable))
		return
	}
	names, err := gs.ListGroups(r.Context(), h.ns.Name(), room)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := []groupStateJSON{}
	for _, g := range names {
		st, err := h.groupState(r.Context(), gs, room, g)
		if err != nil {
			continue // deleted meanwhile
		}
		out = append(out, st)
	}
	writeJSON(w, http.StatusOK, map[string]any{"room": room, "groups": out})
}

func (h *nsAPI) getGroup(w http.ResponseWriter, r *http.Request) {
	room, g, gs, err := h.roomGroup(r, hub.ActAck)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	st, err := h.groupState(r.Context(), gs, room, g)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

type putGroupRequest struct {
	AckWait     string `json:"ack_wait" validate:"omitempty,duration"`
	MaxDeliver  int    `json:"max_deliver" validate:"omitempty,min=1,max=1000"`
	MaxInFlight int    `json:"max_in_flight" validate:"omitempty,min=1,max=10000"`
}

func (h *nsAPI) putGroup(w http.ResponseWriter, r *http.Request) {
	room, g, gs, err := h.roomGroup(r, hub.ActAdmin)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var req putGroupRequest
	if err := h.decodeOptional(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	cfg := hub.GroupConfig{MaxDeliver: req.MaxDeliver, MaxInFlight: req.MaxInFlight}
	if req.AckWait != "" {
		cfg.AckWait, _ = time.ParseDuration(req.AckWait) // validated
	}
	if _, err := h.ns.EnsureGroup(r.Context(), room, g, cfg, true); err != nil {
		h.fail(w, r, err)
		return
	}
	st, err := h.groupState(r.Context(), gs, room, g)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (h *nsAPI) deleteGroup(w http.ResponseWriter, r *http.Request) {
	room, g, gs, err := h.roomGroup(r, hub.ActAdmin)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := gs.DeleteGroup(r.Context(), h.ns.Name(), room, g); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type ackRequest struct {
	IDs []string `json:"ids" validate:"required,min=1,max=1000,dive,required,max=1024"`
}

func (h *nsAPI) settle(w http.ResponseWriter, r *http.Request, op hub.Settle) {
	room, g, _, err := h.roomGroup(r, "")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var req ackRequest
	if err := h.decode(w, r, h.maxBody, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	p, err := h.authenticate(r, false)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if p.kind != connection {
		h.fail(w, r, fmt.Errorf("acknowledging needs the token of the connection that received the deliveries: %w", hub.ErrUnauthorized))
		return
	}
	if err := h.ns.SettleGroup(r.Context(), p.conn.ID(), room, g, req.IDs, op); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *nsAPI) ack(w http.ResponseWriter, r *http.Request)  { h.settle(w, r, hub.Ack) }
func (h *nsAPI) nack(w http.ResponseWriter, r *http.Request) { h.settle(w, r, hub.Nak) }

// groupMessages lists the messages of the room after the group's ack floor:
// what a member reconnecting after a long absence asks for ("give me all I
// have not acknowledged"). Messages acknowledged out of order past the floor
// are included too: acks are per message, the floor is contiguous.
func (h *nsAPI) groupMessages(w http.ResponseWriter, r *http.Request) {
	room, g, gs, err := h.roomGroup(r, hub.ActAck)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	limit, err := h.limitParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	st, err := gs.GroupState(r.Context(), h.ns.Name(), room, g)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	msgs, err := h.ns.RoomMessages(r.Context(), room, st.AckFloor, limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]json.RawMessage, len(msgs))
	for i, m := range msgs {
		out[i] = m.Body
	}
	writeJSON(w, http.StatusOK, map[string]any{"room": room, "group": g, "ack_floor": hub.Position{Epoch: h.ns.Epoch(), Seq: st.AckFloor}.String(), "messages": out})
}

func (h *nsAPI) limitParam(r *http.Request) (int, error) {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > h.ns.Config().HistoryLimit {
			return 0, invalidParam("limit", fmt.Sprintf("must be an integer from 1 to %d", h.ns.Config().HistoryLimit))
		}
		limit = n
	}
	return limit, nil
}

type deadLetterJSON struct {
	Seq        uint64          `json:"seq"`
	Deliveries uint64          `json:"deliveries"`
	ParkedAt   time.Time       `json:"parked_at"`
	Message    json.RawMessage `json:"message"`
}

func (h *nsAPI) listDead(w http.ResponseWriter, r *http.Request) {
	room, g, gs, err := h.roomGroup(r, hub.ActAdmin)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	limit, err := h.limitParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if _, err := gs.GroupState(r.Context(), h.ns.Name(), room, g); err != nil {
		h.fail(w, r, err) // 404 for an unknown group
		return
	}
	dls, err := gs.DeadLetters(r.Context(), h.ns.Name(), room, g, limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]deadLetterJSON, len(dls))
	for i, d := range dls {
		out[i] = deadLetterJSON{Seq: d.Seq, Deliveries: d.Deliveries, ParkedAt: d.Parked.UTC(), Message: d.Msg.Body}
	}
	writeJSON(w, http.StatusOK, map[string]any{"room": room, "group": g, "dead_letters": out})
}

func (h *nsAPI) deadSeq(r *http.Request) (uint64, error) {
	n, err := strconv.ParseUint(chi.URLParam(r, "seq"), 10, 64)
	if err != nil || n == 0 {
		return 0, invalidParam("seq", "must be a dead letter's seq (a positive integer)")
	}
	return n, nil
}

// deadLetterOp is a handler applying op (hub.Groups.ReplayDead or DropDead)
// to dead letter {seq}, answering status.
func (h *nsAPI) deadLetterOp(status int, op func(gs hub.Groups, ctx context.Context, ns, room, group string, seq uint64) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		room, g, gs, err := h.roomGroup(r, hub.ActAdmin)
		if err == nil {
			var seq uint64
			if seq, err = h.deadSeq(r); err == nil {
				err = op(gs, r.Context(), h.ns.Name(), room, g, seq)
			}
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
		w.WriteHeader(status)
	}
}

// replayDead redelivers a dead letter to its group alone.
func (h *nsAPI) replayDead(w http.ResponseWriter, r *http.Request) {
	h.deadLetterOp(http.StatusAccepted, hub.Groups.ReplayDead)(w, r)
}

// dropDead removes a dead letter.
func (h *nsAPI) dropDead(w http.ResponseWriter, r *http.Request) {
	h.deadLetterOp(http.StatusNoContent, hub.Groups.DropDead)(w, r)
}
