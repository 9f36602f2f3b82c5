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

func (e *validationError) Unwrap() error { return hub.ErrInvalid }

// status is the one table from domain errors to HTTP statuses.
func status(err error) (int, string) {
	switch {
	// Before ErrInvalid: a body read that failed wraps it too.
	case errors.Is(err, errBodyTimeout):
		return http.StatusRequestTimeout, "request timeout"
	case errors.Is(err, errUnsupportedType):
		return http.StatusUnsupportedMediaType, "unsupported media type"
	case errors.Is(err, errHeaderTooLarge):
		return http.StatusRequestHeaderFieldsTooLarge, "request header fields too large"
	case errors.Is(err, hub.ErrInvalid):
		return http.StatusBadRequest, "invalid request"
	case errors.Is(err, hub.ErrUnauthorized):
		return http.StatusUnauthorized, "unauthorized"
	case errors.Is(err, hub.ErrForbidden):
		return http.StatusForbidden, "forbidden"
	case errors.Is(err, hub.ErrNotFound):
		return http.StatusNotFound, "not found"
	case errors.Is(err, hub.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, "request too large"
	case errors.Is(err, hub.ErrLimit):
		return http.StatusConflict, "limit reached"
	case errors.Is(err, hub.ErrRateLimited):
		return http.StatusTooManyRequests, "too many requests"
	case errors.Is(err, hub.ErrResumeExpired):
		return http.StatusGone, "position no longer available"
	case errors.Is(err, hub.ErrStorageFull):
		return http.StatusInsufficientStorage, "insufficient storage"
	case errors.Is(err, hub.ErrUnavailable), errors.Is(err, hub.ErrClosed):
		return http.StatusServiceUnavailable, "service unavailable"
	default:
		return http.StatusInternalServerError, "internal error"
	}
}

// writeError answers err as problem+json. Unexpected errors are logged once,
// here, with the request id, and their text is not shown to the client.
func writeError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	code, title := status(err)
	p := Problem{
		Type:      "about:blank",
		Title:     title,
		Status:    code,
		Detail:    err.Error(),
		Instance:  r.URL.Path,
		RequestID: middleware.GetReqID(r.Context()),
	}
	var ve *validationError
	if errors.As(err, &ve) {
		p.Errors = ve.fields
		p.Detail = "one or more fields are invalid"
	}
	switch code {
	case http.StatusInternalServerError:
		if logger == nil {
			logger = slog.Default()
		}
		logger.Error("request failed", "request_id", p.RequestID, "method", r.Method, "path", r.URL.Path, "err", err)
		p.Detail = "an unexpected error occurred; the request id identifies it in the server log"
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	case http.StatusInsufficientStorage:
		// Space comes back when an operator frees it; the server notices
		// within a second. The detail says what happened, not the layers
		// the error went through (the reason is in the log and /readyz).
		w.Header().Set("Retry-After", "5")
		p.Detail = "the message was not stored: the server's data volume is full and its store refuses writes; retry once space is freed"
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
