package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/roomcast/roomcast/internal/spectest"
	"github.com/roomcast/roomcast/internal/webhook"
)

// The webhooks end to end: real servers (child processes, killed with
// SIGKILL, a 3-node cluster) POSTing to a receiver on loopback that checks
// every signature as a backend would.

const hookSecretEnv = "ROOMCAST_TEST_HOOK_SECRET"

var hookSecret = "e2e-secret-0123456789abcdef0123456789"

// hook is a webhook a receiver accepted.
type hook struct {
	ID, Type string
	Attempt  int
	Data     map[string]any
}

// hookReceiver is a backend's webhook endpoint on loopback: it verifies
// every POST's signature and checks its body against openapi.yaml's Webhook
// schema. While down it answers 503 (after recording the attempt).
type hookReceiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	down     bool
	got      []hook
	attempts map[string]string // id → type, every attempt's
	refused  []string
}

func newHookReceiver(t *testing.T, down bool) *hookReceiver {
	t.Helper()
	r := &hookReceiver{down: down, attempts: map[string]string{}}
	doc, err := spectest.Load()
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	schema := doc.Components.Schemas["Webhook"]
	if schema == nil || schema.Value == nil {
		t.Fatal("openapi.yaml has no components/schemas/Webhook")
	}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var v any
		if err := json.Unmarshal(body, &v); err != nil || schema.Value.VisitJSON(v, openapi3.MultiErrors()) != nil {
			r.mu.Lock()
			r.refused = append(r.refused, fmt.Sprintf("body %s does not match the Webhook schema: %v", body, schema.Value.VisitJSON(v)))
			r.mu.Unlock()
		}
		if err := webhook.Verify(req.Header.Get(webhook.HeaderSignature), body, []byte(hookSecret), webhook.DefaultTolerance, time.Now()); err != nil {
			r.mu.Lock()
			r.refused = append(r.refused, err.Error())
			r.mu.Unlock()
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var p struct {
			ID   string         `json:"id"`
			Type string         `json:"type"`
			NS   string         `json:"ns"`
			Time time.Time      `json:"time"`
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal(body, &p); err != nil || p.ID != req.Header.Get(webhook.HeaderID) || p.NS != "default" || p.Time.IsZero() {
			r.mu.Lock()
			r.refused = append(r.refused, fmt.Sprintf("payload %s: %v", body, err))
			r.mu.Unlock()
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		attempt, _ := strconv.Atoi(req.Header.Get(webhook.HeaderAttempt))
		r.mu.Lock()
		defer r.mu.Unlock()
		r.attempts[p.ID] = p.Type
		if r.down {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		r.got = append(r.got, hook{ID: p.ID, Type: p.Type, Attempt: attempt, Data: p.Data})
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.refused) > 0 {
			t.Errorf("the receiver refused POSTs as not genuine: %v", r.refused)
		}
	})
	return r
}

func (r *hookReceiver) setDown(down bool) {
	r.mu.Lock()
	r.down = down
	r.mu.Unlock()
}

// accepted returns the accepted webhooks of type typ ("" for all).
func (r *hookReceiver) accepted(typ string) []hook {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []hook
	for _, h := range r.got {
		if typ == "" || h.Type == typ {
			out = append(out, h)
		}
	}
	return out
}

// tried returns the ids of every webhook attempted, with their types.
func (r *hookReceiver) tried() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.attempts))
	for id, typ := range r.attempts {
		out[id] = typ
	}
	return out
}

// hookConfig writes a config file whose namespace default sends events to
// url, debounced by debounce.
func hookConfig(t *testing.T, url, debounce string, events ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "roomcast.yaml")
	yaml := fmt.Sprintf("namespaces:\n  - name: default\n    webhook_debounce: %s\n    webhooks:\n      - url: %s\n        events: [%s]\n        secret_env: %s\n",
		debounce, url, strings.Join(events, ", "), hookSecretEnv)
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// hookFlags keep a test's retries and node leases short.
var hookFlags = []string{"--webhook-backoff", "100ms", "--webhook-max-backoff", "300ms", "--webhook-node-ttl", "3s"}

// metricValue reads one sample of /metrics (-1 when absent).
func metricValue(t *testing.T, s *testServer, name string) float64 {
	t.Helper()
	resp, err := requestClient.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// hooksSettled waits until no room waits for its evaluation and the outbox
// of namespace default is empty, cluster-wide (read on s).
func hooksSettled(t *testing.T, s *testServer) {
	t.Helper()
	eventually(t, 30*time.Second, "rooms evaluated and webhooks sent", func() bool {
		return metricValue(t, s, "roomcast_webhook_rooms_waiting") == 0 &&
			metricValue(t, s, `roomcast_webhooks_pending{ns="default"}`) == 0
	})
}

// TestWebhooksRefuseToStartWithoutSecret: an endpoint whose secret variable
// is unset or shorter than 32 bytes stops the server at start, naming the
// variable.
func TestWebhooksRefuseToStartWithoutSecret(t *testing.T) {
	file := hookConfig(t, "https://backend.example/hooks", "5s", webhook.MemberJoined)
	for name, tc := range map[string]struct {
		value string
		want  []string
	}{
		"unset": {"", []string{hookSecretEnv, "is not set"}},
		"short": {"too-short", []string{hookSecretEnv, "holds 9 bytes", "at least 32"}},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			getenv := func(k string) string {
				if k == hookSecretEnv {
					return tc.value
				}
				return ""
			}
			err := run(ctx, []string{"--addr", "127.0.0.1:0", "--data", t.TempDir(), "--config", file}, getenv, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("the server started")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestWebhooksMembersAndDeadLetters: joins, leaves and a parked message are
// POSTed, signed, with their data; the counters say so.
func TestWebhooksMembersAndDeadLetters(t *testing.T) {
	rcv := newHookReceiver(t, false)
	t.Setenv(hookSecretEnv, hookSecret)
	file := hookConfig(t, rcv.srv.URL, "5s", webhook.MemberJoined, webhook.MemberLeft, webhook.MessageDeadLettered)
	c := startChild(t, t.TempDir(), append([]string{"--config", file}, hookFlags...)...)
	s := &testServer{t: t, URL: c.URL}

	st := s.subscribe(t, "/ns/default/events?rooms=lobby", "")
	id, token, _ := st.connected()
	if code, body, _ := s.do(t, http.MethodDelete, "/ns/default/rooms/lobby/members/"+id, nil, token); code != http.StatusOK {
		t.Fatalf("leave: %d %v", code, body)
	}
	eventually(t, 10*time.Second, "member.joined and member.left", func() bool {
		return len(rcv.accepted(webhook.MemberJoined)) == 1 && len(rcv.accepted(webhook.MemberLeft)) == 1
	})
	for _, h := range rcv.accepted("") {
		if h.Data["room"] != "lobby" || h.Data["connection"] != id || h.Attempt != 1 {
			t.Errorf("%s %v (attempt %d): want room lobby, connection %s, first attempt", h.Type, h.Data, h.Attempt, id)
		}
	}

	putGroup(t, s, "q", "g", map[string]any{"ack_wait": "300ms", "max_deliver": 1, "max_in_flight": 5})
	m := joinGroup(t, s, "q", "g")
	msgID := s.publish(t, "/ns/default/rooms/q/messages", `{"event":"job","data":"poison"}`, "")
	m.next(t, 10*time.Second) // not acknowledged
	eventually(t, 15*time.Second, "message.dead_lettered", func() bool { return len(rcv.accepted(webhook.MessageDeadLettered)) == 1 })
	d := rcv.accepted(webhook.MessageDeadLettered)[0].Data
	if d["message_id"] != msgID || d["room"] != "q" || d["group"] != "g" || d["event"] != "job" || d["deliveries"] != float64(1) || d["reason"] == "" {
		t.Errorf("dead letter %v: want message %s of q/g, event job, 1 delivery, a reason", d, msgID)
	}
	eventually(t, 10*time.Second, "the counters", func() bool {
		return metricValue(t, s, `roomcast_webhooks_sent_total{event="message.dead_lettered",ns="default"}`) == 1 &&
			metricValue(t, s, `roomcast_webhooks_sent_total{event="member.joined",ns="default"}`) >= 1 &&
			metricValue(t, s, `roomcast_webhooks_pending{ns="default"}`) == 0
	})
}

// TestWebhooksSurviveKill9: webhooks pending (their receiver down) when the
// server is killed with SIGKILL are all delivered after the restart; the
// rooms the killed server's connections held are then announced vacated.
func TestWebhooksSurviveKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: not in -short")
	}
	rcv := newHookReceiver(t, true)
	t.Setenv(hookSecretEnv, hookSecret)
	file := hookConfig(t, rcv.srv.URL, "500ms", webhook.RoomOccupied, webhook.RoomVacated, webhook.MemberJoined)
	data := t.TempDir()
	args := append([]string{"--config", file}, hookFlags...)
	c := startChild(t, data, args...)
	s := &testServer{t: t, URL: c.URL}
	const rooms = 3
	for i := range rooms {
		st := s.subscribe(t, fmt.Sprintf("/ns/default/events?rooms=r%d", i), "")
		st.connected()
	}
	// Each webhook was tried at least once: it is in the outbox.
	eventually(t, 20*time.Second, "3 joins and 3 occupied rooms tried", func() bool { return len(rcv.tried()) == 2*rooms })
	pending := rcv.tried()
	c.kill()

	rcv.setDown(false)
	c = startChild(t, data, args...)
	s = &testServer{t: t, URL: c.URL}
	eventually(t, 30*time.Second, "every pending webhook delivered", func() bool {
		n := 0
		for _, h := range rcv.accepted("") {
			if _, ok := pending[h.ID]; ok {
				n++
			}
		}
		return n >= len(pending)
	})
	eventually(t, 30*time.Second, "the 3 rooms vacated", func() bool { return len(rcv.accepted(webhook.RoomVacated)) == rooms })
	hooksSettled(t, s)
	byID := map[string]int{}
	for _, h := range rcv.accepted("") {
		byID[h.ID]++
	}
	for id, typ := range pending {
		if byID[id] != 1 {
			t.Errorf("%s %s delivered %d times, want once", typ, id, byID[id])
		}
	}
	vacated := map[any]bool{}
	for _, h := range rcv.accepted(webhook.RoomVacated) {
		vacated[h.Data["room"]] = true
	}
	if len(vacated) != rooms || len(rcv.accepted("")) != 3*rooms {
		t.Errorf("accepted %d webhooks, vacated rooms %v; want %d (joined, occupied, vacated for each room)", len(rcv.accepted("")), vacated, 3*rooms)
	}
}

// TestWebhooksClusterOneOccupied: in a 3-node cluster, a room joined on two
// nodes is announced occupied once; its members leaving one node changes
// nothing; the last member's node killed with SIGKILL makes it vacated,
// once, announced by the surviving nodes.
func TestWebhooksClusterOneOccupied(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: not in -short")
	}
	rcv := newHookReceiver(t, false)
	t.Setenv(hookSecretEnv, hookSecret)
	file := hookConfig(t, rcv.srv.URL, "1s", webhook.RoomOccupied, webhook.RoomVacated)
	nodes := startCluster(t, 3, append([]string{"--config", file}, hookFlags...)...)
	n1, n2, n3 := nodes[0].srv, nodes[1].srv, nodes[2].srv

	a := n1.subscribe(t, "/ns/default/events?rooms=lobby", "")
	a.connected()
	b := n2.subscribe(t, "/ns/default/events?rooms=lobby", "")
	b.connected()
	eventually(t, 20*time.Second, "room.occupied", func() bool { return len(rcv.accepted(webhook.RoomOccupied)) >= 1 })
	hooksSettled(t, n3)
	if got := rcv.accepted(""); len(got) != 1 || got[0].Type != webhook.RoomOccupied || got[0].Data["room"] != "lobby" {
		t.Fatalf("webhooks %+v, want one room.occupied for lobby", got)
	}

	a.Close() // n1's member leaves; n2's stays
	eventually(t, 10*time.Second, "n1's member gone", func() bool {
		code, body, _ := n3.do(t, http.MethodGet, "/ns/default/rooms/lobby/members", nil, "")
		ms, _ := body["members"].([]any)
		return code == http.StatusOK && len(ms) == 1
	})
	hooksSettled(t, n3)
	if got := len(rcv.accepted("")); got != 1 {
		t.Fatalf("%d webhooks after one of two nodes' members left, want still 1", got)
	}

	nodes[1].kill() // n2, with lobby's last member, dies without a word
	// Then: n2's lease runs out (3 s), the survivors elect new leaders for
	// what n2 led (the meta layer, buckets, streams, consumers: 4–9 s each
	// in NATS, some after others), work n2 had fetched comes back after its
	// ack wait (5 s), the room is evaluated after its debounce and the
	// webhook sent: well under a minute, even on a loaded machine.
	deadline := time.Now().Add(60 * time.Second)
	for len(rcv.accepted(webhook.RoomVacated)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no room.vacated 60 s after the last member's node was killed; rooms waiting for evaluation %v, webhooks pending %v, n3 engine ready: %v",
				metricValue(t, n3, "roomcast_webhook_rooms_waiting"), metricValue(t, n3, `roomcast_webhooks_pending{ns="default"}`), metricValue(t, n3, "roomcast_engine_ready"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	hooksSettled(t, n3)
	if got := rcv.accepted(webhook.RoomVacated); len(got) != 1 || got[0].Data["room"] != "lobby" || len(rcv.accepted("")) != 2 {
		t.Errorf("vacated %+v (all: %d), want one room.vacated for lobby and 2 webhooks in all", got, len(rcv.accepted("")))
	}
}

// TestWebhooksGracefulShutdown: a server stopped with SIGTERM stores its
// connections' leaves before it exits: after the restart the backend gets
// member.left and, the debounce passed, room.vacated — once each.
func TestWebhooksGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a child server: not in -short")
	}
	rcv := newHookReceiver(t, false)
	t.Setenv(hookSecretEnv, hookSecret)
	file := hookConfig(t, rcv.srv.URL, "1s", webhook.RoomOccupied, webhook.RoomVacated, webhook.MemberLeft)
	data := t.TempDir()
	args := append([]string{"--config", file}, hookFlags...)
	c := startChild(t, data, args...)
	s := &testServer{t: t, URL: c.URL}
	st := s.subscribe(t, "/ns/default/events?rooms=bye", "")
	id, _, _ := st.connected()
	eventually(t, 20*time.Second, "room.occupied", func() bool { return len(rcv.accepted(webhook.RoomOccupied)) == 1 })

	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- c.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("the server did not exit cleanly on SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not exit within 30s of SIGTERM")
	}

	c = startChild(t, data, args...)
	s = &testServer{t: t, URL: c.URL}
	// A webhook or a room's evaluation that the stopping node had fetched
	// but not finished goes to the restarted one after its ack wait (5 s
	// each, one after the other: the evaluation, then the announcement);
	// on a loaded machine under -race add the restart and the retries.
	deadline := time.Now().Add(45 * time.Second)
	for len(rcv.accepted(webhook.MemberLeft)) == 0 || len(rcv.accepted(webhook.RoomVacated)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after 45 s: member.left %d, room.vacated %d (want one of each); rooms waiting for evaluation %v, webhooks pending %v",
				len(rcv.accepted(webhook.MemberLeft)), len(rcv.accepted(webhook.RoomVacated)),
				metricValue(t, s, "roomcast_webhook_rooms_waiting"), metricValue(t, s, `roomcast_webhooks_pending{ns="default"}`))
		}
		time.Sleep(50 * time.Millisecond)
	}
	hooksSettled(t, s)
	// Delivery is at least once: an attempt cut by the shutdown may be
	// sent again, with the same id (receivers dedupe on it). Two ids would
	// be two events for one leave.
	left, vacated := uniqueHooks(rcv.accepted(webhook.MemberLeft)), uniqueHooks(rcv.accepted(webhook.RoomVacated))
	if len(left) != 1 || left[0].Data["connection"] != id || left[0].Data["room"] != "bye" {
		t.Errorf("member.left %+v, want one, for %s in bye", left, id)
	}
	if len(vacated) != 1 || vacated[0].Data["room"] != "bye" {
		t.Errorf("room.vacated %+v, want one, for bye", vacated)
	}
}

// uniqueHooks keeps the first delivery of each webhook id.
func uniqueHooks(hs []hook) []hook {
	seen := map[string]bool{}
	var out []hook
	for _, h := range hs {
		if !seen[h.ID] {
			seen[h.ID] = true
			out = append(out, h)
		}
	}
	return out
}
