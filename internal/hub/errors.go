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
	// ErrStorageFull: the store refuses writes (its volume is full); the
	// message was not stored.
	ErrStorageFull = errors.New("storage full")
)
