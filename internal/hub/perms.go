package hub

import (
	"context"
	"time"
)

// Action is something a caller may be allowed to do in a namespace.
type Action string

// Actions, as named in JWT claims.
const (
	ActSubscribe Action = "subscribe" // open a stream on a room (URL rooms, room stream)
	ActPublish   Action = "publish"   // emit to a room
	ActJoin      Action = "join"      // join a room through REST
	ActPresence  Action = "presence"  // list a room's members
	ActHistory   Action = "history"   // read a room's history
	ActAck       Action = "ack"       // be a consumer group member of a room
	ActAdmin     Action = "admin"     // everything, namespace-wide and direct emits, groups
)

// Perms says what a caller may do. nil Perms (an open namespace) allow
// everything.
type Perms interface {
	// Allowed reports whether action a is allowed on room ("" for
	// namespace-wide actions).
	Allowed(a Action, room string) bool
	IsAdmin() bool
}

// Allowed reports whether p (nil: open) allows a on room.
func Allowed(p Perms, a Action, room string) bool {
	return p == nil || p.Allowed(a, room)
}

// Identity is who opens a stream: set by the API's authentication on the
// request context, read by the SSE layer.
type Identity struct {
	User    string
	Perms   Perms
	Expires time.Time
}

type identityKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the identity ctx carries (zero: an open namespace).
func IdentityFrom(ctx context.Context) Identity {
	id, _ := ctx.Value(identityKey{}).(Identity)
	return id
}
