package api

import (
	"net/http"
	"time"

	"github.com/roomcast/roomcast/internal/hub"
)

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

func (h *nsAPI) join(w http.ResponseWriter, r *http.Request) { h.membership(w, r, true) }

func (h *nsAPI) leave(w http.ResponseWriter, r *http.Request) { h.membership(w, r, false) }
