package main

import (
	"net/http"
	"testing"
)

// TestSmoke is the thinnest slice: a publish reaches a room subscriber
// through the real engine, with the envelope the design promises.
func TestSmoke(t *testing.T) {
	s := startServer(t)
	sub := s.subscribe(t, "/ns/default/rooms/lobby/events", "")
	connID, _, _ := sub.connected()
	if connID == "" {
		t.Fatal("empty connection id")
	}
	id := s.publish(t, "/ns/default/rooms/lobby/messages", `{"event":"chat message","data":{"text":"hi"}}`, "")
	ev := sub.Expect("chat message")
	env := ev.envelope(t)
	if env["id"] != id || env["room"] != "lobby" || env["ns"] != "default" || env["from"] != nil {
		t.Fatalf("envelope %v, want id %s room lobby ns default from null", env, id)
	}
	if data, _ := env["data"].(map[string]any); data["text"] != "hi" {
		t.Fatalf("data %v, want text hi", env["data"])
	}
	code, _, _ := s.do(t, http.MethodGet, "/healthz", nil, "")
	if code != http.StatusOK {
		t.Fatalf("healthz %d", code)
	}
}
