package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	r3sse "github.com/r3labs/sse/v2"
	"go.uber.org/goleak"
)

// e2eR3Event is a copy of an r3labs client event (the client reuses nothing,
// but copying keeps the handler free of aliasing questions).
type e2eR3Event struct{ id, event, data string }

// TestE2ER3labsClient: the r3labs/sse Go client subscribes to a room stream,
// gets `connected` then messages, including one larger than its default
// 64 KiB buffer, and stops when its context is cancelled.
func TestE2ER3labsClient(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--max-body", "256KiB")
	client := r3sse.NewClient(s.URL+"/ns/default/rooms/go/events", r3sse.ClientMaxBufferSize(1<<20))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The default backoff ignores the context and retries for 15 minutes.
	bo := backoff.NewExponentialBackOff()
	bo.MaxElapsedTime = 0
	client.ReconnectStrategy = backoff.WithContext(bo, ctx)

	events := make(chan e2eR3Event, 64)
	done := make(chan error, 1)
	go func() {
		done <- client.SubscribeWithContext(ctx, "", func(ev *r3sse.Event) {
			select {
			case events <- e2eR3Event{string(ev.ID), string(ev.Event), string(ev.Data)}:
			case <-ctx.Done():
			}
		})
	}()
	next := func() e2eR3Event {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case err := <-done:
			t.Fatalf("client ended: %v", err)
		case <-time.After(e2eTimeout):
			t.Fatal("no event from the r3labs client")
		}
		return e2eR3Event{}
	}

	first := next()
	if first.event != "connected" {
		t.Fatalf("first event %q, want connected", first.event)
	}
	var conn struct{ ID, Token string }
	if err := json.Unmarshal([]byte(first.data), &conn); err != nil || conn.ID == "" {
		t.Fatalf("connected data %q: %v", first.data, err)
	}

	big := strings.Repeat("b", 100<<10)
	for i, data := range []any{map[string]any{"text": "hi"}, big, "after"} {
		id := e2ePub(t, s, "/ns/default/rooms/go/messages", "chat message", data, "")
		ev := next()
		if ev.event != "chat message" || ev.id != id+"."+conn.Token {
			t.Fatalf("message %d: event %q id %q, want chat message and %s.<token>", i, ev.event, ev.id, id)
		}
		var env map[string]any
		if err := json.Unmarshal([]byte(ev.data), &env); err != nil {
			t.Fatalf("message %d: data is not JSON (%d bytes): %v", i, len(ev.data), err)
		}
		if env["id"] != id || !e2eEqualJSON(t, env["data"], data) {
			t.Fatalf("message %d: envelope id %v, data of %d bytes; want %s", i, env["id"], len(ev.data), id)
		}
	}
	if n := e2eMembers(t, s, "go"); n != 1 {
		t.Fatalf("room go has %d members while the client is subscribed, want 1", n)
	}

	cancel()
	select {
	case <-done:
	case <-time.After(e2eTimeout):
		t.Fatal("SubscribeWithContext did not return after cancel")
	}
	eventually(t, e2eTimeout, "the client's connection to leave", func() bool { return e2eMembers(t, s, "go") == 0 })
}

// TestE2ENoGoroutineLeak runs streams through connect, replay, slow and
// requested disconnects, and a graceful stop with a stream still open; then
// no goroutine is left over. Not parallel: it counts the process's
// goroutines.
func TestE2ENoGoroutineLeak(t *testing.T) {
	http.DefaultClient.CloseIdleConnections()
	opts := []goleak.Option{goleak.IgnoreCurrent()}
	func() {
		s := startServer(t, "--heartbeat", "50ms")
		a := e2eOpen(t, s, "/ns/default/events?rooms=x", "")
		b := e2eOpen(t, s, "/ns/default/rooms/x/events", "")
		id := e2ePub(t, s, "/ns/default/rooms/x/messages", "m", 1, "")
		a.expect(t, id)
		b.expect(t, id)
		// Client gone, then resumed with a replay.
		a.Close()
		e2eWaitDisconnects(t, s, a.ID, 1)
		id2 := e2ePub(t, s, "/ns/default/rooms/x/messages", "m", 2, "")
		r := e2eOpen(t, s, "/ns/default/events?rooms=x", a.LastID)
		r.expect(t, id2)
		b.expect(t, id2)
		// Disconnected on request.
		code, _, _ := e2eReq(t, s, http.MethodDelete, "/ns/default/connections/"+r.ID, nil, map[string]string{"Authorization": "Bearer " + r.Token})
		if code != http.StatusNoContent {
			t.Fatalf("DELETE connection: %d", code)
		}
		r.Ended(e2eTimeout)
		// A reset, then the server stops with b and it still open.
		c := e2eOpen(t, s, "/ns/default/rooms/x/events", "ffffffffffffffff-1")
		c.expectReset(t)
		s.Stop()
		b.Ended(e2eTimeout)
		c.Ended(e2eTimeout)
		a.Close()
		b.Close()
		c.Close()
		r.Close()
	}()
	http.DefaultClient.CloseIdleConnections()
	goleak.VerifyNone(t, opts...)
}
