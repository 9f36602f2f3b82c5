package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/roomcast/roomcast/internal/hub"
)

// failLog is a recLog whose publishes fail with err.
type failLog struct {
	recLog
	err error
}

func (l *failLog) Publish(context.Context, string, *hub.Outgoing) (hub.Position, bool, error) {
	return hub.Position{}, false, l.err
}

// TestPublishOutcomes: a publish the store refused (nothing stored) is a
// 503, one whose outcome is unknown a 504 with its own problem type; both
// say to retry after Retry-After, and a 504 says the message may be stored
// and to retry with the same id.
func TestPublishOutcomes(t *testing.T) {
	for _, tc := range []struct {
		err      error
		status   int
		typ      string
		inDetail string
	}{
		{fmt.Errorf("engine: publish: not stored: %w: nats: no responders", hub.ErrUnavailable), 503, "about:blank", "not stored"},
		{fmt.Errorf("engine: publish: %w: context deadline exceeded", hub.ErrOutcomeUnknown), 504, ProblemOutcomeUnknown, "may or may not be stored"},
		{fmt.Errorf("the store refuses writes: %w", hub.ErrStorageFull), 507, "about:blank", "not stored"},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))
			h := testHub(t, &failLog{err: tc.err}, logger)
			r, err := New(Config{Hub: h, Streams: refuseStreams{}, Namespaces: []Namespace{{Name: "default", MaxBody: 1024}}, Logger: logger})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodPost, "/ns/default/rooms/r/messages", strings.NewReader(`{"event":"e","id":"k1"}`))
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, req)
			var p Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("%d %s: %v", rec.Code, rec.Body, err)
			}
			if rec.Code != tc.status || p.Status != tc.status || p.Type != tc.typ {
				t.Fatalf("%d, type %q; want %d, type %q: %s", rec.Code, p.Type, tc.status, tc.typ, rec.Body)
			}
			if rec.Header().Get("Retry-After") == "" {
				t.Error("no Retry-After")
			}
			if !strings.Contains(p.Detail, tc.inDetail) {
				t.Errorf("detail %q does not say %q", p.Detail, tc.inDetail)
			}
			if tc.status == 504 && !strings.Contains(p.Detail, "same id") {
				t.Errorf("a 504's detail %q does not say to retry with the same id", p.Detail)
			}
		})
	}
}
