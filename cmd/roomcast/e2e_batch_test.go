package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/api/client"
)

// TestE2EBatchPublish: a batch is stored in order (ids grow with the
// messages, subscribers and the history see them in that order), each
// message is answered on its own (a bad one is a problem beside the
// others' ids), and idempotency keys count per message. Through the
// generated client, whose transport checks every request and answer
// against openapi.yaml.
func TestE2EBatchPublish(t *testing.T) {
	s := startClientServer(t, "")
	cl, _, _ := newClient(t, s)
	ctx := context.Background()
	lobby := e2eOpen(t, s, "/ns/default/rooms/lobby/events", "")
	other := e2eOpen(t, s, "/ns/default/rooms/other/events", "")

	msg := func(event string, rooms []string, key string) client.BatchMessage {
		m := client.BatchMessage{Event: event}
		var data client.Payload = map[string]any{"n": event}
		m.Data = &data
		if rooms != nil {
			m.Rooms = &rooms
		}
		if key != "" {
			m.Id = &key
		}
		return m
	}
	batch := []client.BatchMessage{
		msg("m0", []string{"lobby"}, "k0"),
		msg("m1", nil, ""), // the whole namespace
		msg("m2", []string{"other"}, ""),
		{Event: "connected"}, // reserved: refused alone
		msg("m4", []string{"lobby", "other"}, "k4"),
	}
	resp, err := cl.PublishBatchWithResponse(ctx, "default", client.BatchRequest{Messages: batch})
	clientStatus(t, "batch", resp.StatusCode(), resp.Body, err, http.StatusOK)
	res := resp.JSON200.Results
	if len(res) != len(batch) {
		t.Fatalf("%d results for %d messages: %s", len(res), len(batch), resp.Body)
	}
	var ids []string
	for i, r := range res {
		if i == 3 {
			if r.Id != nil || r.Error == nil || r.Error.Status != 400 || r.Error.Errors == nil || (*r.Error.Errors)[0].Field != "event" {
				t.Fatalf("result 3 = %s, want a 400 problem on field event", resp.Body)
			}
			continue
		}
		if r.Id == nil || r.Error != nil {
			t.Fatalf("result %d: %s, want an id", i, resp.Body)
		}
		if len(ids) > 0 && e2eSeq(t, *r.Id) <= e2eSeq(t, ids[len(ids)-1]) {
			t.Fatalf("ids %v then %s: not growing with the batch", ids, *r.Id)
		}
		ids = append(ids, *r.Id)
	}
	lobby.expect(t, ids[0], ids[1], ids[3])
	other.expect(t, ids[1], ids[2], ids[3])
	h, err := cl.RoomHistoryWithResponse(ctx, "default", "lobby", nil)
	clientStatus(t, "history", h.StatusCode(), h.Body, err, http.StatusOK)
	var got []string
	for _, m := range h.JSON200.Messages {
		got = append(got, m.Id)
	}
	if want := []string{ids[0], ids[1], ids[3]}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lobby history %v, want %v", got, want)
	}

	// The same keys again: duplicates with the first ids; a new message
	// between them is stored.
	again, err := cl.PublishBatchWithResponse(ctx, "default", client.BatchRequest{Messages: []client.BatchMessage{
		msg("m0", []string{"lobby"}, "k0"), msg("m5", []string{"lobby"}, ""), msg("m4", []string{"lobby", "other"}, "k4"),
	}})
	clientStatus(t, "batch again", again.StatusCode(), again.Body, err, http.StatusOK)
	r := again.JSON200.Results
	if *r[0].Id != ids[0] || r[0].Duplicate == nil || !*r[0].Duplicate || *r[2].Id != ids[3] || r[2].Duplicate == nil || !*r[2].Duplicate {
		t.Errorf("repeated keys: %s, want %s and %s as duplicates", again.Body, ids[0], ids[3])
	}
	if r[1].Id == nil || r[1].Duplicate != nil || e2eSeq(t, *r[1].Id) <= e2eSeq(t, ids[3]) {
		t.Errorf("the new message between them: %s", again.Body)
	}
	lobby.expect(t, *r[1].Id)

	// The whole body refused: too many messages for max_batch.
	p := e2eProblem(t, s, http.MethodPost, "/ns/default/messages/batch",
		`{"messages":[`+strings.Repeat(`{"event":"e"},`, 1000)+`{"event":"e"}]}`, nil, http.StatusBadRequest)
	e2eFieldError(t, p, "messages")
}

// TestE2EVolatile: a volatile publish reaches the live members of its
// room with their current position as SSE id, is answered 204, is not in
// the history, and a client that resumes from it gets what was stored
// after it — and never the volatile message.
func TestE2EVolatile(t *testing.T) {
	s := startServer(t)
	a := e2eOpen(t, s, "/ns/default/rooms/lobby/events", "")
	b := e2eOpen(t, s, "/ns/default/rooms/lobby/events", "")
	m1 := e2ePub(t, s, "/ns/default/rooms/lobby/messages", "chat", "m1", "")
	a.expect(t, m1)
	b.expect(t, m1)

	volatile := func(body string, token string) {
		t.Helper()
		code, out, _ := s.do(t, http.MethodPost, "/ns/default/rooms/lobby/messages", body, token)
		if code != http.StatusNoContent {
			t.Fatalf("volatile publish: %d %v, want 204", code, out)
		}
	}
	volatile(fmt.Sprintf(`{"event":"typing","data":{"on":true},"volatile":true,"except":[%q]}`, a.ID), a.Token)
	ev := b.Expect("typing")
	if ev.ID != b.LastID {
		t.Errorf("volatile SSE id %q, want b's current position %q (unchanged)", ev.ID, b.LastID)
	}
	var env map[string]any
	if err := json.Unmarshal([]byte(ev.Data), &env); err != nil {
		t.Fatal(err)
	}
	if _, has := env["id"]; has || env["volatile"] != true || env["from"] != a.ID || env["room"] != "lobby" || env["ns"] != "default" {
		t.Errorf("volatile envelope %s: want no id, volatile true, from a, room lobby", ev.Data)
	}
	// a (in except) got nothing: the next stored message comes first.
	m2 := e2ePub(t, s, "/ns/default/rooms/lobby/messages", "chat", "m2", "")
	a.expect(t, m2)
	b.expect(t, m2)

	// Never stored: not in the history.
	h := e2eGet(t, s, "/ns/default/rooms/lobby/messages")
	msgs, _ := h["messages"].([]any)
	if len(msgs) != 2 {
		t.Errorf("lobby history has %d messages, want 2 (m1, m2): %v", len(msgs), msgs)
	}

	// b drops after a volatile message; a stored one follows; b resumes from
	// the volatile's id: it gets m3 only.
	volatile(`{"event":"cursor","data":{"x":1},"volatile":true}`, "")
	vev := b.Expect("cursor")
	a.Expect("cursor")
	b.Close()
	m3 := e2ePub(t, s, "/ns/default/rooms/lobby/messages", "chat", "m3", "")
	a.expect(t, m3)
	again := e2eOpen(t, s, "/ns/default/rooms/lobby/events", vev.ID)
	again.expect(t, m3)
	// Nothing else: the volatile messages are not replayed (a sentinel
	// stored message is the very next event).
	m4 := e2ePub(t, s, "/ns/default/rooms/lobby/messages", "chat", "m4", "")
	again.expect(t, m4)

	// An idempotency key with volatile is refused on its field.
	p := e2eProblem(t, s, http.MethodPost, "/ns/default/rooms/lobby/messages", `{"event":"typing","volatile":true,"id":"k"}`, nil, http.StatusBadRequest)
	e2eFieldError(t, p, "id")
}

// TestClusterVolatile: a volatile message published on one node reaches the
// live members of its room on every node (core NATS, outside the stream),
// with each connection's position as SSE id, and is stored on none.
func TestClusterVolatile(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: not in -short")
	}
	nodes := startCluster(t, 2)
	n1, n2 := nodes[0].srv, nodes[1].srv
	far := e2eOpen(t, n2, "/ns/default/rooms/lobby/events", "")
	near := e2eOpen(t, n1, "/ns/default/rooms/lobby/events", "")
	m1 := e2ePub(t, n1, "/ns/default/rooms/lobby/messages", "chat", "m1", "")
	far.expect(t, m1)
	near.expect(t, m1)

	// Another node's interest travels over the routes asynchronously: a
	// volatile message sent before it arrived is lost (best effort), so
	// send until the far connection has one, within a deadline.
	var got sseEvent
	eventually(t, e2eTimeout, "a volatile message from n1 on n2", func() bool {
		code, out, _ := n1.do(t, http.MethodPost, "/ns/default/rooms/lobby/messages", `{"event":"typing","data":"n1","volatile":true}`, "")
		if code != http.StatusNoContent {
			t.Fatalf("volatile publish on n1: %d %v", code, out)
		}
		select {
		case got = <-far.events:
			return true
		case <-time.After(200 * time.Millisecond):
			return false
		}
	})
	if got.Event != "typing" || got.ID != far.LastID {
		t.Fatalf("n2 got %q with id %q, want typing with its position %q", got.Event, got.ID, far.LastID)
	}
	if env := got.envelope(t); env["volatile"] != true || env["data"] != "n1" || env["id"] != nil {
		t.Errorf("n2's volatile envelope %s", got.Data)
	}
	// The publishing node's own connection gets it too (each send once).
	if ev := near.Expect("typing"); ev.ID != near.LastID {
		t.Errorf("n1's connection: volatile id %q, want %q", ev.ID, near.LastID)
	}
	// Drain the retries' copies, then a stored message: nothing was stored
	// in between.
	m2 := e2ePub(t, n2, "/ns/default/rooms/lobby/messages", "chat", "m2", "")
	for _, c := range []*e2eClient{far, near} {
		for {
			ev := c.Next(e2eTimeout)
			if ev.Event == "typing" {
				continue
			}
			if ev.Event != "chat" || !strings.HasPrefix(ev.ID, m2+".") {
				t.Fatalf("got %q %s, want m2 %s", ev.Event, ev.ID, m2)
			}
			break
		}
	}
	if e2eSeq(t, m2) != e2eSeq(t, m1)+1 {
		t.Errorf("m1 %s then m2 %s: the volatile messages took positions", m1, m2)
	}
}
