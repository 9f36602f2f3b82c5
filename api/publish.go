package api

import (
	"encoding/json"
	"net/http"

	"github.com/roomcast/roomcast/internal/hub"
)

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
