package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/roomcast/roomcast/internal/hub"
)

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
