package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/roomcast/roomcast/internal/hub"
)

// TestReadyzFollowsTheEngine: /readyz answers 503 with Retry-After while the
// engine's Ready fails, and 200 again once it recovers; /healthz stays 200.
func TestReadyzFollowsTheEngine(t *testing.T) {
	var down atomic.Bool
	h := testHub(t, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	router, err := New(Config{
		Hub: h, Namespaces: []Namespace{{Name: "default", MaxBody: 1024}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ready: func(context.Context) error {
			if down.Load() {
				return fmt.Errorf("engine stopped: %w", hub.ErrUnavailable)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(router)
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	for _, step := range []struct {
		down      bool
		wantReady int
	}{{false, 200}, {true, 503}, {false, 200}} {
		down.Store(step.down)
		code, retry := get("/readyz")
		if code != step.wantReady {
			t.Errorf("engine down=%v: /readyz %d, want %d", step.down, code, step.wantReady)
		}
		if code == 503 && retry == "" {
			t.Error("503 without Retry-After")
		}
		if code, _ := get("/healthz"); code != 200 {
			t.Errorf("/healthz %d", code)
		}
	}
}
