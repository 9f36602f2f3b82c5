package api

import (
	"context"
	"log/slog"
	"testing"

	"github.com/roomcast/roomcast/internal/hub"
	"github.com/roomcast/roomcast/internal/hub/hubtest"
)

// testHub returns a hub on log (nil: an in-memory one) with namespace
// "default" added.
func testHub(tb testing.TB, log hub.Log, logger *slog.Logger) *hub.Hub {
	tb.Helper()
	if log == nil {
		log = &hubtest.MemLog{}
	}
	h, err := hub.New(hub.Deps{Log: log, Sessions: &hubtest.MemSessions{}, Logger: logger}, hub.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := h.AddNamespace(context.Background(), "default", hub.NamespaceConfig{}); err != nil {
		tb.Fatal(err)
	}
	return h
}
