package api_test

// BenchmarkPublishRoom measures what the API does with a publish before the
// engine: routing, middleware, body decode, validation, the hub's envelope
// encoding, and the 202 answer, through the real router with a hub.Log that
// stores nothing. `go test -run '^$' -bench . -benchmem ./api/`.

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/roomcast/roomcast/api"
	"github.com/roomcast/roomcast/internal/hub"
)

// nullLog is a hub.Log that numbers publishes and stores nothing.
type nullLog struct{ seq atomic.Uint64 }

func (l *nullLog) OpenNamespace(context.Context, string, hub.Retention) (hub.LogState, error) {
	return hub.LogState{Epoch: "e1", First: 1}, nil
}
func (l *nullLog) Follow(context.Context, string, uint64, func(*hub.Message)) error { return nil }

func (l *nullLog) Publish(context.Context, string, *hub.Outgoing) (hub.Position, bool, error) {
	return hub.Position{Epoch: "e1", Seq: l.seq.Add(1)}, false, nil
}
func (l *nullLog) Read(context.Context, string, uint64, uint64, hub.Filter, func(*hub.Message) bool) error {
	return nil
}
func (l *nullLog) State(context.Context, string) (hub.LogState, error) {
	return hub.LogState{Epoch: "e1", First: 1, Last: l.seq.Load()}, nil
}
func (l *nullLog) Gap(context.Context, string, uint64, hub.Filter) (bool, error) { return false, nil }

type nullSessions struct{}

func (nullSessions) Save(context.Context, string, hub.Session) error { return nil }
func (nullSessions) Take(context.Context, string) (hub.Session, bool, error) {
	return hub.Session{}, false, nil
}

type noStreams struct{}

func (noStreams) Serve(http.ResponseWriter, *http.Request, *hub.Namespace, hub.OpenRequest) error {
	return hub.ErrUnavailable
}

func BenchmarkPublishRoom(b *testing.B) {
	// The bench runs the server at warn: no access log line per request.
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h, err := hub.New(hub.Deps{Log: &nullLog{}, Sessions: nullSessions{}, Logger: logger}, hub.Config{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := h.AddNamespace(context.Background(), "default", hub.NamespaceConfig{}); err != nil {
		b.Fatal(err)
	}
	router, err := api.New(api.Config{Hub: h, Streams: noStreams{}, Namespaces: []api.Namespace{{Name: "default", MaxBody: 64 << 10}}, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"event":"b","data":{"bt":1764337234123456789,"bn":123456,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}`)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/ns/default/rooms/lobby/messages", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		router.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkPublishBatch: the API's share of a batch publish of 100
// messages like BenchmarkPublishRoom's (router, body decode, each message's
// decode, validation and envelope, the 200 with its results), per message.
func BenchmarkPublishBatch(b *testing.B) {
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h, err := hub.New(hub.Deps{Log: &nullLog{}, Sessions: nullSessions{}, Logger: logger}, hub.Config{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := h.AddNamespace(context.Background(), "default", hub.NamespaceConfig{}); err != nil {
		b.Fatal(err)
	}
	router, err := api.New(api.Config{Hub: h, Streams: noStreams{}, Namespaces: []api.Namespace{{Name: "default", MaxBody: 64 << 10}}, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	const size = 100
	one := `{"event":"b","rooms":["lobby"],"data":{"bt":1764337234123456789,"bn":123456,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}`
	body := []byte(`{"messages":[` + strings.Repeat(one+",", size-1) + one + `]}`)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/ns/default/messages/batch", bytes.NewReader(body))
		rec := httptest.NewRecorder()
		router.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/size, "ns/msg")
}
