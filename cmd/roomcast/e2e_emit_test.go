package main

import (
	"net/http"
	"sort"
	"testing"
	"time"
)

// e2eEmitWorld is a server with four connections:
//
//	A: /events?rooms=a,b   B: /events?rooms=b   C: /events?rooms=c,vip   D: /rooms/a/events
type e2eEmitWorld struct {
	s          *testServer
	a, b, c, d *e2eClient
}

func e2eNewEmitWorld(t *testing.T) *e2eEmitWorld {
	t.Helper()
	s := startServer(t)
	w := &e2eEmitWorld{s: s}
	w.a = e2eOpen(t, s, "/ns/default/events?rooms=a,b", "")
	w.b = e2eOpen(t, s, "/ns/default/events?rooms=b", "")
	w.c = e2eOpen(t, s, "/ns/default/events?rooms=c,vip", "")
	w.d = e2eOpen(t, s, "/ns/default/rooms/a/events", "")
	for _, c := range []struct {
		cl   *e2eClient
		want []string
	}{{w.a, []string{"a", "b"}}, {w.b, []string{"b"}}, {w.c, []string{"c", "vip"}}, {w.d, []string{"a"}}} {
		got := append([]string(nil), c.cl.Rooms...)
		sort.Strings(got)
		if !e2eEqualJSON(t, e2eAnySlice(got), c.want) {
			t.Fatalf("connected rooms %v, want %v", got, c.want)
		}
	}
	return w
}

func e2eAnySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// deliver checks that exactly the clients in got receive message id (one
// copy each) and the others do not: a namespace-wide sentinel published
// after it must be everyone's next message.
func (w *e2eEmitWorld) deliver(t *testing.T, id string, got ...*e2eClient) map[*e2eClient]e2eMsg {
	t.Helper()
	sentinel := e2eSentinel(t, w.s)
	out := map[*e2eClient]e2eMsg{}
	for _, c := range []*e2eClient{w.a, w.b, w.c, w.d} {
		want := false
		for _, g := range got {
			want = want || g == c
		}
		if want {
			out[c] = c.expect(t, id)[0]
		}
		if m := c.recv(t); m.ID() != sentinel {
			t.Fatalf("connection %s: got %s (event %q) where the sentinel %s was due (receives %s: %v)",
				c.ID, m.ID(), m.Event, sentinel, id, want)
		}
	}
	return out
}

func TestE2EEmitNamespaceWide(t *testing.T) {
	t.Parallel()
	w := e2eNewEmitWorld(t)
	data := map[string]any{"text": "hello", "n": 1.0, "list": []any{1.0, "x", nil}}
	id := w.s.publish(t, "/ns/default/messages", map[string]any{"event": "news", "data": data}, "")
	got := w.deliver(t, id, w.a, w.b, w.c, w.d)
	for c, m := range got {
		env := m.Env
		if env["ns"] != "default" || env["event"] != "news" || env["room"] != nil || env["from"] != nil {
			t.Errorf("connection %s: envelope %v, want ns default, event news, room null, from null", c.ID, env)
		}
		if _, ok := env["rooms"]; ok {
			t.Errorf("connection %s: namespace-wide envelope has rooms: %v", c.ID, env)
		}
		if _, ok := env["to"]; ok {
			t.Errorf("connection %s: namespace-wide envelope has to: %v", c.ID, env)
		}
		if !e2eEqualJSON(t, env["data"], data) {
			t.Errorf("connection %s: data %v, want %v", c.ID, env["data"], data)
		}
		ts, _ := env["ts"].(string)
		if tm, err := time.Parse(time.RFC3339Nano, ts); err != nil || time.Since(tm) > time.Minute || time.Until(tm) > time.Minute {
			t.Errorf("connection %s: ts %q is not a recent RFC 3339 time (%v)", c.ID, ts, err)
		}
	}
	// A publish without data delivers data null.
	id = w.s.publish(t, "/ns/default/messages", map[string]any{"event": "ping"}, "")
	for c, m := range w.deliver(t, id, w.a, w.b, w.c, w.d) {
		if v, ok := m.Env["data"]; !ok || v != nil {
			t.Errorf("connection %s: data %v (present %v), want null", c.ID, v, ok)
		}
	}
}

func TestE2EEmitRoom(t *testing.T) {
	t.Parallel()
	w := e2eNewEmitWorld(t)
	id := e2ePub(t, w.s, "/ns/default/rooms/a/messages", "chat", "to a", "")
	for c, m := range w.deliver(t, id, w.a, w.d) {
		if m.Env["room"] != "a" || m.Env["data"] != "to a" || m.Env["from"] != nil {
			t.Errorf("connection %s: envelope %v, want room a, data \"to a\", from null", c.ID, m.Env)
		}
	}
	// The same through POST /messages with one room.
	id = w.s.publish(t, "/ns/default/messages", map[string]any{"event": "chat", "data": 2, "rooms": []string{"c"}}, "")
	for c, m := range w.deliver(t, id, w.c) {
		if m.Env["room"] != "c" {
			t.Errorf("connection %s: room %v, want c", c.ID, m.Env["room"])
		}
	}
	// A room nobody is in: stored (202), delivered to nobody.
	id = e2ePub(t, w.s, "/ns/default/rooms/empty/messages", "chat", 3, "")
	w.deliver(t, id)
}

func TestE2EEmitUnionOfRooms(t *testing.T) {
	t.Parallel()
	w := e2eNewEmitWorld(t)
	// A is in a and b: one copy. B (b) and D (a) get it; C does not.
	id := w.s.publish(t, "/ns/default/messages", map[string]any{"event": "multi", "data": 1, "rooms": []string{"a", "b"}}, "")
	for c, m := range w.deliver(t, id, w.a, w.b, w.d) {
		if m.Env["room"] != nil || !e2eEqualJSON(t, m.Env["rooms"], []string{"a", "b"}) {
			t.Errorf("connection %s: envelope %v, want room null and rooms [a b]", c.ID, m.Env)
		}
	}
	// Order of the rooms does not matter, duplicates are ignored.
	id = w.s.publish(t, "/ns/default/messages", map[string]any{"event": "multi", "data": 2, "rooms": []string{"b", "a", "b", "c"}}, "")
	w.deliver(t, id, w.a, w.b, w.c, w.d)
	id = w.s.publish(t, "/ns/default/messages", map[string]any{"event": "multi", "data": 3, "rooms": []string{"vip", "b", "nobody"}}, "")
	w.deliver(t, id, w.a, w.b, w.c)
}

func TestE2EEmitDirect(t *testing.T) {
	t.Parallel()
	w := e2eNewEmitWorld(t)
	id := e2ePub(t, w.s, "/ns/default/connections/"+w.b.ID+"/messages", "dm", "for b", "")
	m := w.deliver(t, id, w.b)[w.b]
	if m.Env["to"] != w.b.ID || m.Env["room"] != nil || m.Env["from"] != nil || m.Env["data"] != "for b" {
		t.Fatalf("direct envelope %v, want to %s, room null, from null", m.Env, w.b.ID)
	}
	// Sent as A: from is A's public id, never its token.
	id = e2ePub(t, w.s, "/ns/default/connections/"+w.d.ID+"/messages", "dm", "from a", w.a.Token)
	m = w.deliver(t, id, w.d)[w.d]
	if m.Env["from"] != w.a.ID {
		t.Fatalf("direct from A: from %v, want %s", m.Env["from"], w.a.ID)
	}
	// A connection id that is well formed but unknown: stored for a
	// resuming connection, delivered to nobody here.
	id = e2ePub(t, w.s, "/ns/default/connections/AAAAAAAAAAAAAAAAAAAAAA/messages", "dm", 1, "")
	w.deliver(t, id)
	// Direct messages take no rooms or except.
	e2eProblem(t, w.s, http.MethodPost, "/ns/default/connections/"+w.b.ID+"/messages",
		map[string]any{"event": "dm", "except": []string{w.b.ID}}, nil, http.StatusBadRequest)
}

func TestE2EEmitExcept(t *testing.T) {
	t.Parallel()
	w := e2eNewEmitWorld(t)
	// except a connection id, to one room.
	id := w.s.publish(t, "/ns/default/rooms/a/messages", map[string]any{"event": "x", "data": 1, "except": []string{w.a.ID}}, "")
	w.deliver(t, id, w.d)
	// except a room name: whoever is in b is excluded even if in a too.
	id = w.s.publish(t, "/ns/default/messages", map[string]any{"event": "x", "data": 2, "rooms": []string{"a", "b"}, "except": []string{"b"}}, "")
	w.deliver(t, id, w.d)
	// Namespace-wide except a room and a connection.
	id = w.s.publish(t, "/ns/default/messages", map[string]any{"event": "x", "data": 3, "except": []string{"vip", w.d.ID}}, "")
	w.deliver(t, id, w.a, w.b)
	// Broadcast to all but the sender (socket.broadcast.to(b).emit): A
	// publishes as itself and excludes itself.
	id = w.s.publish(t, "/ns/default/rooms/b/messages", map[string]any{"event": "x", "data": 4, "except": []string{w.a.ID}}, w.a.Token)
	if m := w.deliver(t, id, w.b)[w.b]; m.Env["from"] != w.a.ID {
		t.Fatalf("broadcast from A: from %v, want %s", m.Env["from"], w.a.ID)
	}
	// Namespace-wide broadcast by C.
	id = w.s.publish(t, "/ns/default/messages", map[string]any{"event": "x", "data": 5, "except": []string{w.c.ID}}, w.c.Token)
	for c, m := range w.deliver(t, id, w.a, w.b, w.d) {
		if m.Env["from"] != w.c.ID {
			t.Errorf("connection %s: from %v, want %s", c.ID, m.Env["from"], w.c.ID)
		}
	}
	// except everything: nobody.
	id = w.s.publish(t, "/ns/default/messages", map[string]any{"event": "x", "data": 6, "except": []string{"a", "b", "c"}}, "")
	w.deliver(t, id)
}

func TestE2EEmitFrom(t *testing.T) {
	t.Parallel()
	w := e2eNewEmitWorld(t)
	for _, tc := range []struct {
		path string
		to   []*e2eClient
	}{{"/ns/default/messages", []*e2eClient{w.a, w.b, w.c, w.d}}, {"/ns/default/rooms/b/messages", []*e2eClient{w.a, w.b}}} {
		path := tc.path
		id := e2ePub(t, w.s, path, "who", 1, w.b.Token)
		for c, m := range w.deliver(t, id, tc.to...) {
			if m.Env["from"] != w.b.ID {
				t.Errorf("%s as B: connection %s got from %v, want %s", path, c.ID, m.Env["from"], w.b.ID)
			}
		}
		id = e2ePub(t, w.s, path, "who", 2, "")
		for c, m := range w.deliver(t, id, tc.to...) {
			if v, ok := m.Env["from"]; !ok || v != nil {
				t.Errorf("%s without token: connection %s got from %v (present %v), want null", path, c.ID, v, ok)
			}
		}
	}
	// A token that is not a live connection's is refused, not ignored: a
	// publish must never go out with a wrong or missing `from` silently.
	for _, auth := range []string{"Bearer garbage", "Bearer AAAAAAAAAAAAAAAAAAAAAA", "Bearer " + w.b.ID, "Basic " + w.b.Token, "Bearer"} {
		e2eProblem(t, w.s, http.MethodPost, "/ns/default/rooms/b/messages", map[string]any{"event": "who", "data": 3},
			map[string]string{"Authorization": auth}, http.StatusUnauthorized)
	}
	// Nothing of the refused publishes was delivered.
	w.deliver(t, e2eSentinel(t, w.s), w.a, w.b, w.c, w.d)
}

func TestE2EPublishIdempotencyKey(t *testing.T) {
	t.Parallel()
	w := e2eNewEmitWorld(t)
	body := map[string]any{"event": "once", "data": 1, "id": "order-42"}
	code, out, _ := w.s.do(t, http.MethodPost, "/ns/default/rooms/b/messages", body, "")
	if code != http.StatusAccepted || out["duplicate"] == true {
		t.Fatalf("first publish: %d %v, want 202 without duplicate", code, out)
	}
	first, _ := out["id"].(string)
	code, out, _ = w.s.do(t, http.MethodPost, "/ns/default/rooms/b/messages", body, "")
	if code != http.StatusAccepted || out["id"] != first || out["duplicate"] != true {
		t.Fatalf("second publish: %d %v, want 202 with id %s and duplicate true", code, out, first)
	}
	w.deliver(t, first, w.a, w.b)
}
