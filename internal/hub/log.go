package hub

import (
	"context"
	"time"
)

// Log is the durable, ordered store behind the hub, and its live feed
// (internal/engine implements it on JetStream; hubtest.MemLog in memory).
//
// Contract:
//   - Every method is safe for concurrent use and honours ctx.
//   - Each namespace is one log with one sequence: positions grow by one
//     per stored message, in the order Publish calls were stored.
//   - OpenNamespace is called once per namespace before anything else
//     about it. Follow is then called once: it feeds fn every message
//     stored after `after`, in sequence order, from one goroutine, without
//     gaps, until the Log is closed. fn must not block (the hub's fan-out
//     is a non-blocking enqueue).
//   - Read sees what Publish answered: a message whose Publish returned is
//     readable by the next Read on any node.
//   - Errors wrap ErrNotFound (no such namespace) or ErrUnavailable (the
//     store cannot answer now: retry later; from Publish: o was certainly
//     not stored, and never will be); Publish's may also wrap
//     ErrOutcomeUnknown (o was sent and no answer came: it may be stored;
//     only a retry with the same Key is safe) or ErrStorageFull.
type Log interface {
	// OpenNamespace creates or updates namespace ns's log with r (its zero
	// fields take DefaultRetention's) and returns its state.
	OpenNamespace(ctx context.Context, ns string, r Retention) (LogState, error)
	// Follow feeds fn every message of ns stored after sequence after (see
	// the contract above).
	Follow(ctx context.Context, ns string, after uint64, fn func(*Message)) error
	// Publish stores o (its Body already encoded) in namespace ns and returns
	// its position once stored. dup is true when o.Key was seen within the
	// dedupe window: pos is then the first publish's position.
	Publish(ctx context.Context, ns string, o *Outgoing) (pos Position, dup bool, err error)
	// Read calls fn, in sequence order, for every stored message of ns with
	// from <= seq <= to that can match f. It stops early when fn returns
	// false. to == 0 means up to the last message at the time of the call.
	Read(ctx context.Context, ns string, from, to uint64, f Filter, fn func(*Message) bool) error
	// State returns the namespace log's epoch and first and last sequences.
	State(ctx context.Context, ns string) (LogState, error)
	// Gap reports whether retention may have removed a message matching f
	// with a sequence greater than after.
	Gap(ctx context.Context, ns string, after uint64, f Filter) (bool, error)
}

// LogState describes a namespace log.
type LogState struct {
	// Epoch names this incarnation of the log: it changes when the store is
	// wiped or recreated, and positions of another epoch mean nothing here.
	Epoch       string
	First, Last uint64
}

// Retention is a namespace log's storage limits.
type Retention struct {
	MaxAge time.Duration
	// MaxBytes bounds the namespace's whole log.
	MaxBytes int64
	// MaxMsgsPerRoom bounds each room's history; the same limit applies to
	// the namespace-wide, multi-room and each direct-message subject.
	MaxMsgsPerRoom int64
	// Dedupe is the idempotency-key window (at most MaxAge).
	Dedupe time.Duration
}

// DefaultRetention is the retention of a namespace that sets none.
var DefaultRetention = Retention{MaxAge: 24 * time.Hour, MaxBytes: 1 << 30, MaxMsgsPerRoom: 10000, Dedupe: 2 * time.Minute}

// Or returns r with its unset (zero or negative) fields taken from d, and
// Dedupe clamped to MaxAge.
func (r Retention) Or(d Retention) Retention {
	if r.MaxAge <= 0 {
		r.MaxAge = d.MaxAge
	}
	if r.MaxBytes <= 0 {
		r.MaxBytes = d.MaxBytes
	}
	if r.MaxMsgsPerRoom == 0 {
		r.MaxMsgsPerRoom = d.MaxMsgsPerRoom
	}
	if r.Dedupe <= 0 {
		r.Dedupe = d.Dedupe
	}
	if r.Dedupe > r.MaxAge {
		r.Dedupe = r.MaxAge
	}
	return r
}

// Filter narrows a Read to what a connection can receive: messages to any
// of Rooms, to the connection Conn, to several rooms, and to the whole
// namespace. A nil Rooms and empty Conn still match namespace-wide messages.
type Filter struct {
	Rooms []string
	Conn  ConnID
}

// Sessions keeps what a connection needs to be restored — its id, user and
// rooms — across disconnects, restarts and nodes.
//
// Contract: safe for concurrent use; Save overwrites; of several concurrent
// Takes of one key at most one gets the session; the store expires records
// older than the longest recovery window (the hub checks each namespace's
// own window on Take).
type Sessions interface {
	Save(ctx context.Context, key string, s Session) error
	// Take returns and removes the session; ok is false when there is none.
	Take(ctx context.Context, key string) (s Session, ok bool, err error)
}

// Session is a connection's restorable state.
type Session struct {
	NS    string            `json:"ns"`
	ID    ConnID            `json:"id"`
	User  string            `json:"user,omitempty"`
	Rooms map[string]uint64 `json:"rooms"`
	Saved time.Time         `json:"saved"`
	// Disconnected marks a connection closed on request: it is not
	// restored, and its client is told to stop reconnecting.
	Disconnected bool `json:"disconnected,omitempty"`
	// Live marks the record of a connection still open (refreshed while it
	// is), so that its client can resume after this node dies.
	Live bool `json:"live,omitempty"`
}
