package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/roomcast/roomcast/internal/hub"
)

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail,omitempty"`
	Instance  string       `json:"instance,omitempty"`
	RequestID string       `json:"request_id,omitempty"`
	Errors    []FieldError `json:"errors,omitempty"`
}

// FieldError is one invalid field of a request, keyed by its JSON name.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// validationError carries per-field errors to writeError.
type validationError struct {
	fields []FieldError
}

func (e *validationError) Error() string {
	parts := make([]string, len(e.fields))
	for i, f := range e.fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

// sentence is the problem's detail of a validation error: each invalid
// field with what it must be ("event is required; rooms[0] must be …").
func (e *validationError) sentence() string {
	parts := make([]string, len(e.fields))
	for i, f := range e.fields {
		parts[i] = f.Field + " " + f.Message
	}
	return strings.Join(parts, "; ")
}

func (e *validationError) Unwrap() error { return hub.ErrInvalid }

// classes is the one table from domain errors to HTTP statuses, in the
// order they are tested.
var classes = []struct {
	err   error
	code  int
	title string
}{
	// Before ErrInvalid: a body read that failed wraps it too.
	{errBodyTimeout, http.StatusRequestTimeout, "request timeout"},
	{errUnsupportedType, http.StatusUnsupportedMediaType, "unsupported media type"},
	{errHeaderTooLarge, http.StatusRequestHeaderFieldsTooLarge, "request header fields too large"},
	{hub.ErrInvalid, http.StatusBadRequest, "invalid request"},
	{hub.ErrUnauthorized, http.StatusUnauthorized, "unauthorized"},
	{hub.ErrForbidden, http.StatusForbidden, "forbidden"},
	{hub.ErrNotFound, http.StatusNotFound, "not found"},
	{hub.ErrTooLarge, http.StatusRequestEntityTooLarge, "request too large"},
	{hub.ErrLimit, http.StatusConflict, "limit reached"},
	{hub.ErrSuperseded, http.StatusConflict, "delivery superseded"},
	{hub.ErrRateLimited, http.StatusTooManyRequests, "too many requests"},
	{hub.ErrResumeExpired, http.StatusGone, "position no longer available"},
	{hub.ErrStorageFull, http.StatusInsufficientStorage, "insufficient storage"},
	{hub.ErrOutcomeUnknown, http.StatusGatewayTimeout, "outcome unknown"},
	{hub.ErrUnavailable, http.StatusServiceUnavailable, "service unavailable"},
	{hub.ErrClosed, http.StatusServiceUnavailable, "service unavailable"},
}

// ProblemOutcomeUnknown is the problem type of a 504: the request reached
// the store but its answer did not come back, so the message may or may
// not be stored; a retry with the same idempotency id is safe (openapi.yaml,
// responses/OutcomeUnknown). Every other problem is about:blank.
const ProblemOutcomeUnknown = "urn:roomcast:problem:outcome-unknown"

// status maps err to its HTTP status and title, and returns the sentinel
// that decided (nil for an unexpected error: 500).
func status(err error) (int, string, error) {
	for _, c := range classes {
		if errors.Is(err, c.err) {
			return c.code, c.title, c.err
		}
	}
	return http.StatusInternalServerError, "internal error", nil
}

// detail is the problem's detail: err's text without the words of the
// sentinel that classified it. Errors are made as fmt.Errorf("<what is
// wrong, what to do>: %w", hub.ErrX) so that errors.Is finds their class;
// the class is already said by the status and the title, so a detail that
// ended in it ("… is not declared: not found") would say it twice. It is
// dropped here, once for every error, wherever it was wrapped (an error
// relayed from another node may carry it twice).
func detail(err, class error) string {
	msg := err.Error()
	if class == nil {
		return msg
	}
	for {
		rest, ok := strings.CutSuffix(msg, ": "+class.Error())
		if !ok {
			return msg
		}
		msg = rest
	}
}

// writeError answers err as problem+json. Unexpected errors are logged once,
// here, with the request id, and their text is not shown to the client.
func writeError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	p := problemOf(r, logger, err)
	switch p.Status {
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	case http.StatusGatewayTimeout:
		// The client must not take this for a refusal: the message may be
		// stored (and delivered) already.
		p.Type = ProblemOutcomeUnknown
		w.Header().Set("Retry-After", "1")
		p.Detail = "the message may or may not be stored: the store did not answer in time (" + p.Detail + "); retry with the same id to store it once"
	case http.StatusInsufficientStorage:
		// Space comes back when an operator frees it; the server notices
		// within a second.
		w.Header().Set("Retry-After", "5")
	case http.StatusTooManyRequests:
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", "1")
		}
	case http.StatusRequestTimeout:
		// The rest of the body may still come: this connection cannot
		// carry another request.
		w.Header().Set("Connection", "close")
	case http.StatusUnsupportedMediaType:
		w.Header().Set("Accept", "application/json")
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="roomcast"`)
	}
	writeProblem(w, p)
}

// problemOf is err as a problem document: the one mapping of errors to
// problems (writeError answers with it; a batch reports each message's
// error with it). An unexpected error is logged here, once, with the
// request id, and its text is not shown.
func problemOf(r *http.Request, logger *slog.Logger, err error) Problem {
	code, title, class := status(err)
	p := Problem{
		Type:      "about:blank",
		Title:     title,
		Status:    code,
		Detail:    detail(err, class),
		Instance:  r.URL.Path,
		RequestID: middleware.GetReqID(r.Context()),
	}
	var ve *validationError
	if errors.As(err, &ve) {
		p.Errors = ve.fields
		p.Detail = ve.sentence()
	}
	if code == http.StatusInternalServerError {
		if logger == nil {
			logger = slog.Default()
		}
		logger.Error("request failed", "request_id", p.RequestID, "method", r.Method, "path", r.URL.Path, "err", err)
		p.Detail = "an unexpected error occurred; the request id identifies it in the server log"
	}
	if code == http.StatusInsufficientStorage {
		// The detail says what happened, not the layers the error went
		// through (the reason is in the log and /readyz).
		p.Detail = "the message was not stored: the server's data volume is full and its store refuses writes; retry once space is freed"
	}
	return p
}

func writeProblem(w http.ResponseWriter, p Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
