package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/roomcast/roomcast/internal/hub"
)

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
