package auth

import (
	"strings"

	"github.com/roomcast/roomcast/internal/hub"
)

// Grants are the actions a JWT grants, per room pattern. Patterns use NATS
// style wildcards on dot-separated segments: "orders.*" matches
// "orders.eu" (one segment), "orders.>" matches "orders.eu.paris" (one or
// more), ">" matches every room.
type Grants struct {
	Subscribe []string `json:"subscribe,omitempty"`
	Publish   []string `json:"publish,omitempty"`
	Join      []string `json:"join,omitempty"`
	Presence  []string `json:"presence,omitempty"`
	History   []string `json:"history,omitempty"`
	Ack       []string `json:"ack,omitempty"`
	Admin     bool     `json:"admin,omitempty"`
}

var _ hub.Perms = Grants{}

// Allowed implements hub.Perms.
func (g Grants) Allowed(a hub.Action, room string) bool {
	if g.Admin {
		return true
	}
	var pats []string
	switch a {
	case hub.ActSubscribe:
		pats = g.Subscribe
	case hub.ActPublish:
		pats = g.Publish
	case hub.ActJoin:
		pats = g.Join
	case hub.ActPresence:
		pats = g.Presence
	case hub.ActHistory:
		pats = g.History
	case hub.ActAck:
		pats = g.Ack
	default: // ActAdmin and anything unknown
		return false
	}
	if room == "" {
		return false // namespace-wide actions need admin
	}
	for _, p := range pats {
		if Match(p, room) {
			return true
		}
	}
	return false
}

// IsAdmin implements hub.Perms.
func (g Grants) IsAdmin() bool { return g.Admin }

// Match reports whether room matches pattern.
func Match(pattern, room string) bool {
	if pattern == ">" {
		return room != ""
	}
	// Segment by segment without splitting (no allocation: this runs per
	// pattern for every message a connection with permissions replays).
	for {
		p, pnext, pmore := strings.Cut(pattern, ".")
		if p == ">" {
			return !pmore // room has a segment left here: it had one more than the prefix
		}
		r, rnext, rmore := strings.Cut(room, ".")
		if p != "*" && p != r {
			return false
		}
		switch {
		case !pmore:
			return !rmore
		case !rmore:
			// The pattern goes on and the room does not: only a last ">"
			// would match, and it needs a segment that is not there.
			return false
		}
		pattern, room = pnext, rnext
	}
}

// validPattern reports whether p is a room name with optional wildcard
// segments: "*" anywhere, ">" last.
func validPattern(p string) bool {
	if len(p) > 2*hub.MaxNameLen {
		return false
	}
	segs := strings.Split(p, ".")
	for i, s := range segs {
		wildcard := s == "*" || s == ">" && i == len(segs)-1
		if !wildcard && !hub.ValidRoom(s) { // ValidRoom refuses "*" and ">" elsewhere
			return false
		}
	}
	return true
}
