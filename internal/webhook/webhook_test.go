package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/engine"
	"github.com/roomcast/roomcast/internal/hub"
	"github.com/roomcast/roomcast/internal/webhook"
)

var secret = []byte("0123456789abcdef0123456789abcdef-test")

// delivery is one POST a receiver accepted.
type delivery struct {
	ID, Type string
	Attempt  int
	NS       string
	Data     map[string]any
	Time     time.Time
	Sig      string
	Body     []byte
}

// receiver is a webhook endpoint on loopback: it verifies every POST's
// signature as a backend would, answers what fail says, and keeps the
// POSTs it accepted.
type receiver struct {
	t    testing.TB
	srv  *httptest.Server
	fail func(id string, attempt int) int // status to answer (0: 204)

	mu       sync.Mutex
	got      []delivery
	attempts map[string]int // by webhook id, every POST
	bad      []string       // why POSTs were refused as not genuine
}

func newReceiver(t testing.TB, fail func(id string, attempt int) int) *receiver {
	t.Helper()
	r := &receiver{t: t, fail: fail, attempts: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if err := webhook.Verify(req.Header.Get(webhook.HeaderSignature), body, secret, webhook.DefaultTolerance, time.Now()); err != nil {
		r.mu.Lock()
		r.bad = append(r.bad, err.Error())
		r.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var p struct {
		webhook.Payload
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(body, &p); err != nil || req.Header.Get("Content-Type") != "application/json" {
		r.mu.Lock()
		r.bad = append(r.bad, fmt.Sprintf("body %s: %v", body, err))
		r.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	attempt, _ := strconv.Atoi(req.Header.Get(webhook.HeaderAttempt))
	d := delivery{ID: req.Header.Get(webhook.HeaderID), Type: req.Header.Get(webhook.HeaderEvent), Attempt: attempt,
		NS: p.NS, Data: p.Data, Time: p.Time, Sig: req.Header.Get(webhook.HeaderSignature), Body: body}
	if d.ID != p.ID || d.Type != p.Type {
		r.mu.Lock()
		r.bad = append(r.bad, fmt.Sprintf("headers %s/%s, body %s/%s", d.ID, d.Type, p.ID, p.Type))
		r.mu.Unlock()
	}
	r.mu.Lock()
	r.attempts[d.ID]++
	r.mu.Unlock()
	code := http.StatusNoContent
	if r.fail != nil {
		if c := r.fail(d.ID, attempt); c != 0 {
			code = c
		}
	}
	if code < 300 {
		r.mu.Lock()
		r.got = append(r.got, d)
		r.mu.Unlock()
	}
	w.WriteHeader(code)
}

// deliveries returns the accepted POSTs of event type typ ("" for all).
func (r *receiver) deliveries(typ string) []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []delivery
	for _, d := range r.got {
		if typ == "" || d.Type == typ {
			out = append(out, d)
		}
	}
	return out
}

func (r *receiver) refused() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.bad)
}

// rooms lists the rooms of the accepted POSTs of type typ, in order.
func (r *receiver) rooms(typ string) []string {
	var out []string
	for _, d := range r.deliveries(typ) {
		out = append(out, d.Data["room"].(string))
	}
	return out
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// counts is a webhook.Metrics that counts.
type counts struct {
	mu                          sync.Mutex
	sent, failed, parked, dropd map[string]int // by event (dropped by ns)
}

func newCounts() *counts {
	return &counts{sent: map[string]int{}, failed: map[string]int{}, parked: map[string]int{}, dropd: map[string]int{}}
}

func (c *counts) Sent(_, ev string)   { c.mu.Lock(); c.sent[ev]++; c.mu.Unlock() }
func (c *counts) Failed(_, ev string) { c.mu.Lock(); c.failed[ev]++; c.mu.Unlock() }
func (c *counts) Parked(_, ev string) { c.mu.Lock(); c.parked[ev]++; c.mu.Unlock() }
func (c *counts) Dropped(ns string)   { c.mu.Lock(); c.dropd[ns]++; c.mu.Unlock() }

func (c *counts) get(m map[string]int, ev string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return m[ev]
}

// sink is a connection's outbound side that accepts everything.
type sink struct{}

func (sink) Hello(hub.Event) error                     { return nil }
func (sink) Send(hub.Event) bool                       { return true }
func (sink) SendWait(context.Context, hub.Event) error { return nil }
func (sink) Close(error, string)                       {}

// stack is a node: the real engine on a temp dir, the hub, and webhooks.
type stack struct {
	eng *engine.Engine
	out *engine.Outbox
	occ *engine.Occupancy
	svc *webhook.Service
	ns  *hub.Namespace
	m   *counts
}

func newStack(t *testing.T, cfg webhook.Config) *stack {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := engine.Open(ctx, engine.Config{DataDir: t.TempDir()}, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	out, err := eng.OpenOutbox(ctx, engine.OutboxConfig{AckWait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	occ, err := eng.OpenOccupancy(ctx, engine.OccupancyConfig{NodeTTL: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m := newCounts()
	svc, err := webhook.New(cfg, webhook.Deps{Outbox: out, Occupancy: occ, Metrics: m, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	h, err := hub.New(hub.Deps{Log: eng, Sessions: eng, Observer: svc, Logger: logger}, hub.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := h.AddNamespace(ctx, "chat", hub.NamespaceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); svc.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	return &stack{eng: eng, out: out, occ: occ, svc: svc, ns: ns, m: m}
}

func (s *stack) connect(t *testing.T, rooms ...string) *hub.Conn {
	t.Helper()
	c, err := s.ns.Open(context.Background(), hub.OpenRequest{Rooms: rooms, Sink: sink{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// settled waits until every room change was evaluated and every webhook
// in the outbox was sent.
func (s *stack) settled(t *testing.T) {
	t.Helper()
	waitFor(t, 20*time.Second, "occupancy evaluated and the outbox empty", func() bool {
		ok, err := s.occ.Settled(context.Background())
		if err != nil || !ok {
			return false
		}
		for _, b := range s.svc.Backlog(context.Background()) {
			if b.Pending > 0 {
				return false
			}
		}
		return true
	})
}

func config(url string, debounce time.Duration, events ...string) webhook.Config {
	return webhook.Config{Backoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Namespaces: map[string]webhook.Namespace{"chat": {Debounce: debounce,
			Endpoints: []webhook.Endpoint{{URL: url, Events: events, Secret: secret}}}}}
}

// TestOccupiedAndVacatedAreDebounced: a room's first member makes it
// occupied once the debounce passed; a room that empties and refills
// within the debounce sends nothing; one that stays empty is vacated.
func TestOccupiedAndVacatedAreDebounced(t *testing.T) {
	rcv := newReceiver(t, nil)
	const debounce = time.Second
	s := newStack(t, config(rcv.srv.URL, debounce, webhook.RoomOccupied, webhook.RoomVacated))
	ctx := context.Background()

	began := time.Now()
	a := s.connect(t, "lobby")
	waitFor(t, 10*time.Second, "room.occupied", func() bool { return len(rcv.deliveries(webhook.RoomOccupied)) == 1 })
	if took := time.Since(began); took < debounce {
		t.Errorf("occupied after %v, before the debounce (%v) passed", took, debounce)
	}
	occ := rcv.deliveries(webhook.RoomOccupied)[0]
	if occ.Data["room"] != "lobby" || occ.NS != "chat" || occ.Attempt != 1 || occ.Time.Before(began.Add(-time.Second)) {
		t.Errorf("occupied webhook %+v, want room lobby of chat, first attempt, a time of now", occ)
	}

	// Empties and refills within the debounce: nothing. (It refills once
	// its emptying is stored and waits for its evaluation.)
	s.settled(t)
	if _, err := s.ns.Leave(ctx, a.ID, "lobby"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the room's evaluation asked for", func() bool {
		n, err := s.occ.Waiting(ctx)
		return err == nil && n == 1
	})
	if _, err := s.ns.Join(ctx, a.ID, "lobby", false); err != nil {
		t.Fatal(err)
	}
	b := s.connect(t, "lobby") // a second member: still occupied
	if err := b.Detach(); err != nil {
		t.Fatal(err)
	}
	s.settled(t)
	if got := rcv.rooms(""); !slices.Equal(got, []string{"lobby"}) {
		t.Fatalf("after emptying and refilling within the debounce: webhooks for %v, want only the first occupied", got)
	}

	// Empties for good: vacated, once.
	if err := a.Detach(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "room.vacated", func() bool { return len(rcv.deliveries(webhook.RoomVacated)) == 1 })
	s.settled(t)
	if got, want := len(rcv.deliveries("")), 2; got != want {
		t.Errorf("%d webhooks, want %d (occupied, vacated)", got, want)
	}
	vac := rcv.deliveries(webhook.RoomVacated)[0]
	if vac.ID == occ.ID || vac.Data["room"] != "lobby" {
		t.Errorf("vacated %+v: want lobby with an id of its own", vac)
	}
	if bad := rcv.refused(); len(bad) > 0 {
		t.Errorf("POSTs refused as not genuine: %v", bad)
	}
	// What the receiver verified, tampered with or replayed late, fails.
	if err := webhook.Verify(occ.Sig, occ.Body, secret, webhook.DefaultTolerance, time.Now()); err != nil {
		t.Fatalf("a genuine POST: %v", err)
	}
	tampered := []byte(strings.Replace(string(occ.Body), "lobby", "lobbx", 1))
	if err := webhook.Verify(occ.Sig, tampered, secret, webhook.DefaultTolerance, time.Now()); !errors.Is(err, webhook.ErrMismatch) {
		t.Errorf("a tampered body: %v, want ErrMismatch", err)
	}
	if err := webhook.Verify(occ.Sig, occ.Body, secret, webhook.DefaultTolerance, time.Now().Add(10*time.Minute)); !errors.Is(err, webhook.ErrTooOld) {
		t.Errorf("replayed 10 minutes later: %v, want ErrTooOld", err)
	}
}

// TestReceiverRecoversAfterThreeFailures: a receiver that fails each
// webhook's first 3 attempts gets every webhook once it recovers, each
// accepted once, on its 4th attempt.
func TestReceiverRecoversAfterThreeFailures(t *testing.T) {
	rcv := newReceiver(t, func(_ string, attempt int) int {
		if attempt <= 3 {
			return http.StatusInternalServerError
		}
		return 0
	})
	s := newStack(t, config(rcv.srv.URL, 0, webhook.MemberJoined, webhook.MemberLeft))
	const n = 5
	var conns []*hub.Conn
	for i := range n {
		conns = append(conns, s.connect(t, fmt.Sprintf("room-%d", i)))
	}
	if _, err := s.ns.Leave(context.Background(), conns[0].ID, "room-0"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "every webhook accepted", func() bool { return len(rcv.deliveries("")) >= n+1 })
	s.settled(t)
	got := rcv.deliveries("")
	if len(got) != n+1 {
		t.Fatalf("%d webhooks accepted, want %d (each once)", len(got), n+1)
	}
	seen := map[string]bool{}
	for _, d := range got {
		if seen[d.ID] {
			t.Errorf("webhook %s accepted twice", d.ID)
		}
		seen[d.ID] = true
		if d.Attempt != 4 {
			t.Errorf("webhook %s accepted on attempt %d, want 4", d.ID, d.Attempt)
		}
	}
	joined := rcv.deliveries(webhook.MemberJoined)
	if len(joined) != n || len(rcv.deliveries(webhook.MemberLeft)) != 1 {
		t.Fatalf("got %d joined and %d left, want %d and 1", len(joined), len(rcv.deliveries(webhook.MemberLeft)), n)
	}
	for _, d := range joined {
		if d.Data["connection"] == "" || d.Data["room"] == "" {
			t.Errorf("joined %+v: want a connection and a room", d.Data)
		}
	}
	if s.m.get(s.m.failed, webhook.MemberJoined) != 3*n || s.m.get(s.m.sent, webhook.MemberJoined) != n {
		t.Errorf("metrics: %d failed and %d sent joins, want %d and %d", s.m.get(s.m.failed, webhook.MemberJoined),
			s.m.get(s.m.sent, webhook.MemberJoined), 3*n, n)
	}
}

// TestParkedAfterMaxAttempts: a webhook that keeps failing is tried
// MaxAttempts times, then parked (kept in the parked stream with the
// reason), counted, and no longer pending.
func TestParkedAfterMaxAttempts(t *testing.T) {
	rcv := newReceiver(t, func(string, int) int { return http.StatusServiceUnavailable })
	cfg := config(rcv.srv.URL, 0, webhook.MemberJoined)
	cfg.MaxAttempts = 3
	s := newStack(t, cfg)
	s.connect(t, "lobby")
	waitFor(t, 20*time.Second, "the webhook parked", func() bool { return s.m.get(s.m.parked, webhook.MemberJoined) == 1 })
	s.settled(t)
	rcv.mu.Lock()
	attempts := rcv.attempts
	rcv.mu.Unlock()
	if len(attempts) != 1 {
		t.Fatalf("attempts %v, want one webhook", attempts)
	}
	for id, n := range attempts {
		if n != 3 {
			t.Errorf("webhook %s tried %d times, want 3", id, n)
		}
		parked, err := s.out.Parked(context.Background(), webhook.EndpointKey("chat", rcv.srv.URL), 10)
		if err != nil || len(parked) != 1 || parked[0].Reason == "" || parked[0].Attempts != "3" {
			t.Fatalf("parked %+v (%v), want the webhook after 3 attempts with a reason", parked, err)
		}
		var p webhook.Payload
		if err := json.Unmarshal(parked[0].Body, &p); err != nil || p.ID != id {
			t.Errorf("parked body %s: want webhook %s", parked[0].Body, id)
		}
	}
	if len(rcv.deliveries("")) != 0 {
		t.Errorf("accepted %d, want none", len(rcv.deliveries("")))
	}
}

// TestBacklogWhileFailing: while a receiver fails, the backlog counts the
// webhooks pending and retrying, and how old the oldest is.
func TestBacklogWhileFailing(t *testing.T) {
	var mu sync.Mutex
	down := true
	rcv := newReceiver(t, func(string, int) int {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return http.StatusBadGateway
		}
		return 0
	})
	s := newStack(t, config(rcv.srv.URL, 0, webhook.MemberJoined))
	began := time.Now()
	s.connect(t, "a")
	s.connect(t, "b")
	waitFor(t, 10*time.Second, "two webhooks retrying", func() bool {
		bl := s.svc.Backlog(context.Background())
		return len(bl) == 1 && bl[0].Pending == 2 && bl[0].Retrying == 2
	})
	bl := s.svc.Backlog(context.Background())[0]
	if bl.NS != "chat" || bl.Oldest.Before(began.Add(-time.Second)) || bl.Oldest.After(time.Now()) {
		t.Errorf("backlog %+v: want chat, oldest stored since the test began", bl)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	s.settled(t)
	if bl := s.svc.Backlog(context.Background()); len(bl) != 1 || bl[0].Pending != 0 || !bl[0].Oldest.IsZero() {
		t.Errorf("backlog after recovery %+v, want nothing pending", bl)
	}
}

// TestNewRefusesBadEndpoints: a short secret, an unknown event, a non-HTTP
// URL and a URL listed twice are refused at start.
func TestNewRefusesBadEndpoints(t *testing.T) {
	ok := webhook.Endpoint{URL: "https://example.com/hooks", Events: []string{webhook.MemberJoined}, Secret: secret}
	for name, eps := range map[string][]webhook.Endpoint{
		"short secret":  {{URL: ok.URL, Events: ok.Events, Secret: []byte("short")}},
		"unknown event": {{URL: ok.URL, Events: []string{"room.created"}, Secret: secret}},
		"no event":      {{URL: ok.URL, Secret: secret}},
		"ftp":           {{URL: "ftp://example.com/x", Events: ok.Events, Secret: secret}},
		"twice":         {ok, ok},
	} {
		_, err := webhook.New(webhook.Config{Namespaces: map[string]webhook.Namespace{"chat": {Endpoints: eps}}},
			webhook.Deps{Outbox: nopOutbox{}})
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := webhook.New(webhook.Config{Namespaces: map[string]webhook.Namespace{"chat": {
		Endpoints: []webhook.Endpoint{{URL: ok.URL, Events: []string{webhook.RoomOccupied}, Secret: secret}}}}},
		webhook.Deps{Outbox: nopOutbox{}}); err == nil {
		t.Error("room.occupied without an occupancy tracker: accepted")
	}
}

type nopOutbox struct{}

func (nopOutbox) Enqueue(context.Context, string, string, []byte) error { return nil }
func (nopOutbox) Deliver(context.Context, string, int, func(context.Context, string, []byte, int, time.Time) (time.Duration, string)) error {
	return nil
}
func (nopOutbox) Backlog(context.Context, string) (uint64, uint64, time.Time, error) {
	return 0, 0, time.Time{}, nil
}

var (
	_ webhook.Outbox    = (*engine.Outbox)(nil)
	_ webhook.Occupancy = (*engine.Occupancy)(nil)
)

// TestEndpointsDoNotHoldEachOtherUp: an endpoint that is down (here one that
// answers with a redirect, which is not a delivery) keeps retrying its own
// webhooks while another endpoint of the namespace gets every one of its.
func TestEndpointsDoNotHoldEachOtherUp(t *testing.T) {
	up := newReceiver(t, nil)
	redirected := 0
	var mu sync.Mutex
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		redirected++
		mu.Unlock()
		http.Redirect(w, r, up.srv.URL, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(down.Close)
	cfg := webhook.Config{Backoff: 200 * time.Millisecond, MaxBackoff: 400 * time.Millisecond, Workers: 2, MaxAttempts: 3,
		Namespaces: map[string]webhook.Namespace{"chat": {Endpoints: []webhook.Endpoint{
			{URL: down.URL, Events: []string{webhook.MemberJoined}, Secret: secret},
			{URL: up.srv.URL, Events: []string{webhook.MemberJoined}, Secret: secret},
		}}}}
	s := newStack(t, cfg)
	const n = 20
	for i := range n {
		s.connect(t, fmt.Sprintf("r%d", i))
	}
	waitFor(t, 20*time.Second, "every webhook at the endpoint that is up", func() bool { return len(up.deliveries("")) >= n })
	for _, b := range s.svc.Backlog(context.Background()) {
		if b.Pending < n {
			t.Errorf("backlog %+v: want the redirecting endpoint's %d webhooks pending", b, n)
		}
	}
	waitFor(t, 20*time.Second, "the redirected webhooks parked", func() bool { return s.m.get(s.m.parked, webhook.MemberJoined) == n })
	if got := len(up.deliveries("")); got != n {
		t.Errorf("the endpoint that is up got %d POSTs, want %d (redirects are not followed)", got, n)
	}
	mu.Lock()
	defer mu.Unlock()
	if redirected < n {
		t.Errorf("the redirecting endpoint got %d POSTs, want at least %d (each webhook tried)", redirected, n)
	}
	if got := s.m.get(s.m.failed, webhook.MemberJoined); got < n {
		t.Errorf("%d failed attempts counted, want at least %d (a redirect is not a delivery)", got, n)
	}
	for _, d := range up.deliveries("") {
		if d.Attempt != 1 {
			t.Errorf("webhook %s reached the endpoint that is up on attempt %d, want 1", d.ID, d.Attempt)
		}
	}
}
