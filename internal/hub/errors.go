package hub

import "errors"

// Sentinel errors. Callers test them with errors.Is; api/errors.go maps them
// to HTTP statuses in one place.
var (
	ErrNotFound      = errors.New("not found")
	ErrInvalid       = errors.New("invalid")
	ErrUnauthorized  = errors.New("unauthorized")
	ErrForbidden     = errors.New("forbidden")
	ErrClosed        = errors.New("closed")
	ErrSlowConsumer  = errors.New("slow consumer")
	ErrUnavailable   = errors.New("unavailable")
	ErrTooLarge      = errors.New("too large")
	ErrLimit         = errors.New("limit reached")
	ErrRateLimited   = errors.New("rate limited")
	ErrResumeExpired = errors.New("resume position no longer available")
	// ErrDisconnected closes a connection on request (DELETE
	// …/connections/{id}): its session is not kept for resume.
	ErrDisconnected = errors.New("disconnected on request")
	// ErrReplaced closes a connection whose token reconnected elsewhere.
	ErrReplaced = errors.New("replaced by a newer connection with the same token")
	// ErrTokenExpired closes a connection whose credentials expired.
	ErrTokenExpired = errors.New("credentials expired")
	// ErrSuperseded refuses to settle a group delivery that its connection
	// no longer holds: its lease ended and the message went to another
	// delivery.
	ErrSuperseded = errors.New("superseded")
	// ErrStorageFull: the store refuses writes (its volume is full); the
	// message was not stored.
	ErrStorageFull = errors.New("storage full")
	// ErrOutcomeUnknown: a write was sent to the store but its answer did
	// not come (a timeout, the engine's connection or its leader lost
	// mid-request): it may or may not be stored. Only a retry with the
	// same idempotency key is safe. ErrUnavailable, by contrast, means
	// nothing was stored.
	ErrOutcomeUnknown = errors.New("outcome unknown")
)

// Reserved event names: sent by the server itself, never by a publisher.
const (
	EventConnected  = "connected"   // a connection's first event
	EventReset      = "reset"       // the asked-for position cannot be honoured
	EventError      = "error"       // reserved for EventSource's own error event
	EventRevoked    = "revoked"     // a group delivery's lease ended: its ack id is dead
	EventDeadLetter = "dead_letter" // a room's message was parked by a consumer group
	EventEnd        = "end"         // the server ends the stream on purpose (EndReason)
)

// EndReason names why the server ends a stream on purpose, for the `end`
// event a client reads to know what to do: "expired" (refresh the
// credential, then reconnect), "disconnected" (closed on request: do not
// reconnect), "shutdown" (the server is stopping: reconnect, with
// Last-Event-ID), "replaced" (the same connection resumed elsewhere). ""
// for any other reason (a slow consumer, a network error: the client just
// reconnects).
func EndReason(err error) string {
	switch {
	case errors.Is(err, ErrTokenExpired):
		return "expired"
	case errors.Is(err, ErrDisconnected):
		return "disconnected"
	case errors.Is(err, ErrClosed):
		return "shutdown"
	case errors.Is(err, ErrReplaced):
		return "replaced"
	}
	return ""
}
