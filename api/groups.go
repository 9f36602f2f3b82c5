package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/roomcast/roomcast/internal/hub"
)

func groupParam(r *http.Request) (string, error) {
	g := chi.URLParam(r, "group")
	if !hub.ValidGroup(g) {
		return "", invalidParam("group", "must be 1–64 characters of A-Z a-z 0-9 _ -")
	}
	return g, nil
}

// roomGroup validates {room} and {group} and checks that the caller may do
// a (ActAck: what a member may see; ActAdmin: managing the group; "": no
// check, the handler checks).
func (h *nsAPI) roomGroup(r *http.Request, a hub.Action) (string, string, error) {
	room, err := roomParam(r)
	if err != nil {
		return "", "", err
	}
	g, err := groupParam(r)
	if err != nil {
		return "", "", err
	}
	if a != "" {
		p, err := h.authenticate(r, false)
		if err != nil {
			return "", "", err
		}
		target := room
		if a == hub.ActAdmin {
			target = ""
		}
		if err := h.require(p, a, target); err != nil {
			return "", "", err
		}
	}
	return room, g, nil
}

type groupConfigJSON struct {
	AckWait     string   `json:"ack_wait"`
	MaxDeliver  int      `json:"max_deliver"`
	MaxInFlight int      `json:"max_in_flight"`
	Backoff     []string `json:"backoff"`
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

func groupJSON(st hub.GroupStatus) groupStateJSON {
	out := groupStateJSON{
		Room: st.Key.Room, Group: st.Key.Name,
		Config: groupConfigJSON{AckWait: st.Config.AckWait.String(), MaxDeliver: st.Config.MaxDeliver,
			MaxInFlight: st.Config.MaxInFlight, Backoff: []string{}},
		Pending: st.Pending, InFlight: st.InFlight, Redelivered: st.Redelivered,
		AckFloor: st.AckFloor.String(), DeadLetters: st.DeadLetters, Members: []memberInfo{},
	}
	for _, d := range st.Config.Backoff {
		out.Config.Backoff = append(out.Config.Backoff, d.String())
	}
	for _, m := range st.Members {
		out.Members = append(out.Members, memberInfo{ID: m.ID, User: m.User, ConnectedAt: m.Connected.UTC()})
	}
	return out
}

func (h *nsAPI) listGroups(w http.ResponseWriter, r *http.Request) {
	room, _, err := h.roomFor(r, hub.ActAck)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	groups, err := h.ns.ListGroups(r.Context(), room)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]groupStateJSON, len(groups))
	for i, st := range groups {
		out[i] = groupJSON(st)
	}
	writeJSON(w, http.StatusOK, map[string]any{"room": room, "groups": out})
}

func (h *nsAPI) getGroup(w http.ResponseWriter, r *http.Request) {
	room, g, err := h.roomGroup(r, hub.ActAck)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	st, err := h.ns.Group(r.Context(), room, g)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, groupJSON(st))
}

type putGroupRequest struct {
	AckWait     string   `json:"ack_wait" validate:"omitempty,duration"`
	MaxDeliver  int      `json:"max_deliver" validate:"omitempty,min=1,max=1000"`
	MaxInFlight int      `json:"max_in_flight" validate:"omitempty,min=1,max=10000"`
	Backoff     []string `json:"backoff" validate:"omitempty,max=20,dive,duration"`
}

func (h *nsAPI) putGroup(w http.ResponseWriter, r *http.Request) {
	room, g, err := h.roomGroup(r, hub.ActAdmin)
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
	if req.Backoff != nil {
		cfg.Backoff = make([]time.Duration, len(req.Backoff))
		for i, b := range req.Backoff {
			cfg.Backoff[i], _ = time.ParseDuration(b) // validated
		}
	}
	if _, err := h.ns.PutGroup(r.Context(), room, g, cfg, true); err != nil {
		h.fail(w, r, err)
		return
	}
	st, err := h.ns.Group(r.Context(), room, g)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, groupJSON(st))
}

func (h *nsAPI) deleteGroup(w http.ResponseWriter, r *http.Request) {
	room, g, err := h.roomGroup(r, hub.ActAdmin)
	if err == nil {
		err = h.ns.DeleteGroup(r.Context(), room, g)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type ackRequest struct {
	IDs []string `json:"ids" validate:"required,min=1,max=1000,dive,required,max=1024"`
}

type nackRequest struct {
	IDs []string `json:"ids" validate:"required,min=1,max=1000,dive,required,max=1024"`
	// Delay postpones the redelivery (default: at once).
	Delay string `json:"delay" validate:"omitempty,duration"`
}

// settle settles deliveries held by the calling connection: only its
// token may, and only deliveries it still holds (409 otherwise).
func (h *nsAPI) settle(w http.ResponseWriter, r *http.Request, op hub.Settle) {
	room, g, err := h.roomGroup(r, "")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var ids []string
	var delay time.Duration
	if op == hub.Nack {
		var req nackRequest
		err = h.decode(w, r, h.maxBody, &req)
		ids = req.IDs
		if req.Delay != "" {
			delay, _ = time.ParseDuration(req.Delay) // validated
		}
	} else {
		var req ackRequest
		err = h.decode(w, r, h.maxBody, &req)
		ids = req.IDs
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p, err := h.authenticate(r, false)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if p.kind != connection {
		h.fail(w, r, fmt.Errorf("settling a delivery needs the token of the connection that received it: %w", hub.ErrUnauthorized))
		return
	}
	if err := h.ns.SettleGroup(r.Context(), p.conn.ID, room, g, ids, op, delay); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *nsAPI) ack(w http.ResponseWriter, r *http.Request)      { h.settle(w, r, hub.Ack) }
func (h *nsAPI) nack(w http.ResponseWriter, r *http.Request)     { h.settle(w, r, hub.Nack) }
func (h *nsAPI) progress(w http.ResponseWriter, r *http.Request) { h.settle(w, r, hub.Progress) }

// groupMessages lists the messages of the room after the group's ack floor:
// what a member reconnecting after a long absence asks for ("give me all I
// have not acknowledged").
func (h *nsAPI) groupMessages(w http.ResponseWriter, r *http.Request) {
	room, g, err := h.roomGroup(r, hub.ActAck)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	limit, err := h.limitParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	floor, msgs, err := h.ns.GroupBacklog(r.Context(), room, g, limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]json.RawMessage, len(msgs))
	for i, m := range msgs {
		out[i] = m.Body
	}
	writeJSON(w, http.StatusOK, map[string]any{"room": room, "group": g, "ack_floor": floor.String(), "messages": out})
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
	Reason     string          `json:"reason,omitempty"`
	Message    json.RawMessage `json:"message"`
}

func (h *nsAPI) listDead(w http.ResponseWriter, r *http.Request) {
	room, g, err := h.roomGroup(r, hub.ActAdmin)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	limit, err := h.limitParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	dls, err := h.ns.DeadLetters(r.Context(), room, g, limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]deadLetterJSON, len(dls))
	for i, d := range dls {
		out[i] = deadLetterJSON{Seq: d.Seq, Deliveries: d.Deliveries, ParkedAt: d.Parked.UTC(), Reason: d.Reason, Message: d.Msg.Body}
	}
	writeJSON(w, http.StatusOK, map[string]any{"room": room, "group": g, "dead_letters": out})
}

func deadSeq(r *http.Request) (uint64, error) {
	n, err := strconv.ParseUint(chi.URLParam(r, "seq"), 10, 64)
	if err != nil || n == 0 {
		return 0, invalidParam("seq", "must be a dead letter's seq (a positive integer)")
	}
	return n, nil
}

// deadLetterOp is a handler applying op (Namespace.ReplayDead or DropDead)
// to dead letter {seq}, answering status.
func (h *nsAPI) deadLetterOp(status int, op func(ns *hub.Namespace, r *http.Request, room, group string, seq uint64) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		room, g, err := h.roomGroup(r, hub.ActAdmin)
		if err == nil {
			var seq uint64
			if seq, err = deadSeq(r); err == nil {
				err = op(h.ns, r, room, g, seq)
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
	h.deadLetterOp(http.StatusAccepted, func(ns *hub.Namespace, r *http.Request, room, g string, seq uint64) error {
		return ns.ReplayDead(r.Context(), room, g, seq)
	})(w, r)
}

// dropDead removes a dead letter.
func (h *nsAPI) dropDead(w http.ResponseWriter, r *http.Request) {
	h.deadLetterOp(http.StatusNoContent, func(ns *hub.Namespace, r *http.Request, room, g string, seq uint64) error {
		return ns.DropDead(r.Context(), room, g, seq)
	})(w, r)
}
