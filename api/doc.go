// Package api is roomcast's HTTP surface: the chi router (router.go shows it
// whole), a route group per declared namespace with its own middleware stack,
// the REST handlers, request validation (validator/v10) and the one mapping
// of errors to RFC 9457 problem+json (errors.go).
//
// openapi.yaml at the repository root is the source of truth for this
// package: a test fails when a route is missing from the spec or a spec path
// has no route, and responses are validated against it.
//
// It imports hub, never sse: the SSE endpoint is handed in as a Streams.
// Handlers are safe for concurrent use; the Router holds no per-request state.
package api
