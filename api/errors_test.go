package api

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/roomcast/roomcast/internal/hub"
)

// TestProblemDetail: a problem's detail is the error's text without the
// sentinel that classified it, wherever that sentinel was wrapped.
func TestProblemDetail(t *testing.T) {
	relayed := fmt.Errorf("%s: %w", "the credential does not grant join on room \"a\": forbidden", hub.ErrForbidden)
	for _, c := range []struct {
		err    error
		code   int
		detail string
	}{
		{fmt.Errorf("namespace chat is not declared: %w", hub.ErrNotFound), http.StatusNotFound, "namespace chat is not declared"},
		{fmt.Errorf("publish to default: %w", fmt.Errorf("event is empty: %w", hub.ErrInvalid)), http.StatusBadRequest, "publish to default: event is empty"},
		{relayed, http.StatusForbidden, `the credential does not grant join on room "a"`},
		{fmt.Errorf("more than 5 requests per 1s: %w", hub.ErrRateLimited), http.StatusTooManyRequests, "more than 5 requests per 1s"},
		{fmt.Errorf("shutting down: %w", hub.ErrClosed), http.StatusServiceUnavailable, "shutting down"},
		{hub.ErrNotFound, http.StatusNotFound, "not found"}, // a bare sentinel keeps its word
		{errors.New("disk on fire"), http.StatusInternalServerError, "disk on fire"},
	} {
		code, _, class := status(c.err)
		if got := detail(c.err, class); code != c.code || got != c.detail {
			t.Errorf("%q: %d %q, want %d %q", c.err, code, got, c.code, c.detail)
		}
	}
}
