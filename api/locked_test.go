package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomcast/roomcast/internal/auth"
	"github.com/roomcast/roomcast/internal/hub"
	"github.com/roomcast/roomcast/internal/hub/hubtest"
)

// The locked-namespace rig: the API's authentication and authorization
// over an in-memory hub, without an engine or a network. Every request
// goes through the real router and middleware; the streams it opens are
// recorded, not served.

const (
	rigSecret = "rig-secret-of-at-least-32-bytes-long"
	rigAPIKey = "rig-api-key-0123456789"
)

// memTickets is an in-memory TicketStore.
type memTickets struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (t *memTickets) PutTicket(_ context.Context, key string, v []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string][]byte{}
	}
	t.m[key] = v
	return nil
}

func (t *memTickets) TakeTicket(_ context.Context, key string) ([]byte, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.m[key]
	delete(t.m, key)
	return v, ok, nil
}

// recStreams records the streams the API would open and answers 200.
type recStreams struct {
	mu   sync.Mutex
	reqs []hub.OpenRequest
}

func (s *recStreams) Serve(w http.ResponseWriter, _ *http.Request, _ *hub.Namespace, req hub.OpenRequest) error {
	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *recStreams) last(t *testing.T) hub.OpenRequest {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		t.Fatal("no stream was opened")
	}
	return s.reqs[len(s.reqs)-1]
}

// nullSink takes whatever a connection is sent.
type nullSink struct{}

func (nullSink) Hello(hub.Event) error                     { return nil }
func (nullSink) Send(hub.Event) bool                       { return true }
func (nullSink) SendWait(context.Context, hub.Event) error { return nil }
func (nullSink) Close(error, string)                       {}

// open opens a connection in rooms, as the SSE server would, and closes it
// when the test ends.
func (rig *lockedRig) open(t *testing.T, user string, perms hub.Perms, rooms ...string) *hub.Conn {
	t.Helper()
	ns, err := rig.hub.Namespace("default")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ns.Open(context.Background(), hub.OpenRequest{Rooms: rooms, User: user, Perms: perms, Sink: nullSink{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(nil) })
	return c
}

// stored is the number of messages in the namespace's log.
func (rig *lockedRig) stored(t *testing.T) uint64 {
	t.Helper()
	st, err := rig.log.State(context.Background(), "default")
	if err != nil {
		t.Fatal(err)
	}
	return st.Last
}

type lockedRig struct {
	router  http.Handler
	hub     *hub.Hub
	streams *recStreams
	log     *hubtest.MemLog
}

func newLockedRig(t *testing.T, sec Security) *lockedRig {
	t.Helper()
	v, err := auth.New(auth.Config{
		Audience: "roomcast",
		Keys:     []auth.KeyConfig{{Alg: "HS256", Secret: rigSecret}},
		APIKeys:  []string{rigAPIKey},
	}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	sec.Verifier = v
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	rig := &lockedRig{streams: &recStreams{}, log: &hubtest.MemLog{}}
	rig.hub = testHub(t, rig.log, logger)
	r, err := New(Config{
		Hub: rig.hub, Streams: rig.streams, Logger: logger, Tickets: &memTickets{},
		Namespaces: []Namespace{{Name: "default", MaxBody: 4 << 10, Security: sec}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rig.router = r
	return rig
}

// token signs a JWT for sub with grants, valid for ttl.
func rigToken(t *testing.T, sub string, g auth.Grants, ttl time.Duration) string {
	t.Helper()
	claims := auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: sub, Audience: jwt.ClaimStrings{"roomcast"}, ExpiresAt: jwt.NewNumericDate(time.Now().Add(ttl))},
		Roomcast:         g,
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(rigSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// do sends method path with body (JSON when not empty) and the headers in
// hdr ("Name: value").
func (rig *lockedRig) do(method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range hdr {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Add(k, v)
	}
	rec := httptest.NewRecorder()
	rig.router.ServeHTTP(rec, req)
	return rec
}

func bearer(tok string) string { return "Authorization: Bearer " + tok }

// wantProblem checks that rec is a problem+json answer with code.
func wantProblem(t *testing.T, rec *httptest.ResponseRecorder, code int, what string) Problem {
	t.Helper()
	if rec.Code != code {
		t.Fatalf("%s: status %d, want %d (%s)", what, rec.Code, code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%s: Content-Type %q, want application/problem+json", what, ct)
	}
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("%s: body %q: %v", what, rec.Body, err)
	}
	if p.Status != code || p.Detail == "" {
		t.Fatalf("%s: problem %+v", what, p)
	}
	return p
}

// lockedRoutes is every namespace route with a body it accepts.
var lockedRoutes = []struct{ method, path, body string }{
	{"GET", "/ns/default/events", ""},
	{"GET", "/ns/default/rooms/r1/events", ""},
	{"GET", "/ns/default/rooms/r1/events?group=g1", ""},
	{"POST", "/ns/default/tickets", ""},
	{"POST", "/ns/default/messages", `{"event":"e","data":1,"rooms":["r1"]}`},
	{"POST", "/ns/default/messages/batch", `{"messages":[{"event":"e","data":1,"rooms":["r1"]}]}`},
	{"GET", "/ns/default/rooms", ""},
	{"GET", "/ns/default/rooms/r1", ""},
	{"POST", "/ns/default/rooms/r1/messages", `{"event":"e","data":1}`},
	{"GET", "/ns/default/rooms/r1/messages", ""},
	{"GET", "/ns/default/rooms/r1/members", ""},
	{"PUT", "/ns/default/rooms/r1/members/c1", ""},
	{"DELETE", "/ns/default/rooms/r1/members/c1", ""},
	{"GET", "/ns/default/connections/c1", ""},
	{"DELETE", "/ns/default/connections/c1", ""},
	{"POST", "/ns/default/connections/c1/messages", `{"event":"e","data":1}`},
	{"GET", "/ns/default/rooms/r1/groups", ""},
	{"GET", "/ns/default/rooms/r1/groups/g1", ""},
	{"PUT", "/ns/default/rooms/r1/groups/g1", `{}`},
	{"DELETE", "/ns/default/rooms/r1/groups/g1", ""},
	{"GET", "/ns/default/rooms/r1/groups/g1/messages", ""},
	{"POST", "/ns/default/rooms/r1/groups/g1/acks", `{"ids":["x"]}`},
	{"POST", "/ns/default/rooms/r1/groups/g1/nacks", `{"ids":["x"]}`},
	{"POST", "/ns/default/rooms/r1/groups/g1/progress", `{"ids":["x"]}`},
	{"GET", "/ns/default/rooms/r1/groups/g1/dead", ""},
	{"POST", "/ns/default/rooms/r1/groups/g1/dead/1/replay", ""},
	{"DELETE", "/ns/default/rooms/r1/groups/g1/dead/1", ""},
}

// connPath puts a valid connection id in the routes' c1.
func connPath(p string) string {
	return strings.ReplaceAll(p, "/c1", "/AAAAAAAAAAAAAAAAAAAAAA")
}

func TestLockedAnonymousIs401Everywhere(t *testing.T) {
	rig := newLockedRig(t, Security{Locked: true})
	for _, rt := range lockedRoutes {
		rec := rig.do(rt.method, connPath(rt.path), rt.body)
		p := wantProblem(t, rec, http.StatusUnauthorized, rt.method+" "+rt.path)
		if got := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
			t.Errorf("%s %s: WWW-Authenticate %q", rt.method, rt.path, got)
		}
		if strings.Contains(p.Detail, "unauthorized") {
			t.Errorf("%s %s: detail repeats the title: %q", rt.method, rt.path, p.Detail)
		}
	}
	if n := rig.stored(t); n != 0 {
		t.Fatalf("anonymous requests stored %d messages", n)
	}
	if len(rig.streams.reqs) != 0 {
		t.Fatalf("anonymous requests opened %d streams", len(rig.streams.reqs))
	}
}

func TestLockedMalformedCredentials(t *testing.T) {
	rig := newLockedRig(t, Security{Locked: true})
	expired := rigToken(t, "u1", auth.Grants{Admin: true}, -time.Minute)
	forged := rigToken(t, "u1", auth.Grants{Admin: true}, time.Hour)
	forged = forged[:len(forged)-2] + "AA"
	for _, h := range []string{
		"Authorization: Basic dXNlcjpwYXNz",
		"Authorization: Bearer",
		"Authorization: Bearer    ",
		"Authorization: " + rigAPIKey, // no scheme
		"Authorization: Bearer " + strings.Repeat("a", auth.MaxTokenLen+1),
		"Authorization: Bearer not-a-key-nor-a-token",
		"Authorization: Bearer " + expired,
		"Authorization: Bearer " + forged,
		"Authorization: Bearer eyJ.eyJ.x",
	} {
		rec := rig.do("POST", "/ns/default/rooms/r1/messages", `{"event":"e","data":1}`, h)
		wantProblem(t, rec, http.StatusUnauthorized, h[:min(len(h), 60)])
	}
	if n := rig.stored(t); n != 0 {
		t.Fatalf("bad credentials stored %d messages", n)
	}
	// A bad header is not rescued by a good cookie: the header wins.
	rec := rig.do("POST", "/ns/default/rooms/r1/messages", `{"event":"e","data":1}`,
		"Authorization: Basic eA==", "Cookie: "+CookieName+"="+rigToken(t, "u1", auth.Grants{Admin: true}, time.Hour))
	wantProblem(t, rec, http.StatusUnauthorized, "bad header with a good cookie")
}

func TestLockedPerRoomRights(t *testing.T) {
	rig := newLockedRig(t, Security{Locked: true})
	tok := rigToken(t, "alice", auth.Grants{
		Publish:   []string{"orders.*"},
		Subscribe: []string{"orders.>"},
		History:   []string{"orders.eu"},
		Presence:  []string{"orders.eu"},
		Ack:       []string{"jobs"},
	}, time.Hour)
	cases := []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/ns/default/rooms/orders.eu/messages", `{"event":"e","data":1}`, 202},
		{"POST", "/ns/default/rooms/orders.eu.paris/messages", `{"event":"e","data":1}`, 403},
		{"POST", "/ns/default/rooms/chat/messages", `{"event":"e","data":1}`, 403},
		{"POST", "/ns/default/messages", `{"event":"e","data":1,"rooms":["orders.eu","orders.us"]}`, 202},
		{"POST", "/ns/default/messages", `{"event":"e","data":1,"rooms":["orders.eu","chat"]}`, 403},
		{"POST", "/ns/default/messages", `{"event":"e","data":1}`, 403}, // namespace-wide: admin
		{"GET", "/ns/default/rooms/orders.eu/messages", "", 200},
		{"GET", "/ns/default/rooms/orders.us/messages", "", 403},
		{"GET", "/ns/default/rooms/orders.eu/members", "", 200},
		{"GET", "/ns/default/rooms/orders.us", "", 403},
		{"GET", "/ns/default/rooms/orders.eu.paris/events", "", 200},
		{"GET", "/ns/default/rooms/chat/events", "", 403},
		{"GET", "/ns/default/events?rooms=orders.eu,chat", "", 403},
		{"GET", "/ns/default/rooms/jobs/events?group=g1", "", 200},
		{"GET", "/ns/default/rooms/orders.eu/events?group=g1", "", 403},
		{"GET", "/ns/default/rooms/jobs/groups/g1/dead", "", 403},               // managing a group: admin
		{"PUT", "/ns/default/rooms/jobs/groups/g1", `{}`, 403},                  // admin
		{"DELETE", "/ns/default/rooms/jobs/groups/g1", "", 403},                 // admin
		{"POST", "/ns/default/rooms/chat/groups/g1/acks", `{"ids":["x"]}`, 401}, // a connection's token settles
	}
	for _, c := range cases {
		rec := rig.do(c.method, c.path, c.body, bearer(tok))
		if rec.Code != c.want {
			t.Errorf("%s %s: %d, want %d (%s)", c.method, c.path, rec.Code, c.want, rec.Body)
			continue
		}
		if c.want == 403 {
			wantProblem(t, rec, 403, c.method+" "+c.path)
		}
	}
	if n := rig.stored(t); n != 2 {
		t.Fatalf("%d messages stored, want the 2 allowed publishes", n)
	}
	// The stream carries the JWT's user, expiry and grants.
	rec := rig.do("GET", "/ns/default/rooms/orders.eu/events", "", bearer(tok))
	if rec.Code != 200 {
		t.Fatalf("stream: %d", rec.Code)
	}
	req := rig.streams.last(t)
	if req.User != "alice" || req.Expires.IsZero() || req.Perms == nil || !req.Perms.Allowed(hub.ActSubscribe, "orders.eu") || req.Perms.Allowed(hub.ActSubscribe, "chat") {
		t.Fatalf("stream request %+v", req)
	}
	// Listing rooms shows only those whose presence the caller may see.
	rig.open(t, "", nil, "orders.eu", "orders.us")
	rec = rig.do("GET", "/ns/default/rooms", "", bearer(tok))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"orders.eu"`) || strings.Contains(rec.Body.String(), `"orders.us"`) {
		t.Fatalf("rooms: %d %s", rec.Code, rec.Body)
	}
}

func TestLockedAdminCredentials(t *testing.T) {
	rig := newLockedRig(t, Security{Locked: true})
	for name, h := range map[string]string{
		"api key":   bearer(rigAPIKey),
		"admin jwt": bearer(rigToken(t, "ops", auth.Grants{Admin: true}, time.Hour)),
	} {
		rec := rig.do("POST", "/ns/default/messages", `{"event":"e","data":1}`, h)
		if rec.Code != 202 {
			t.Fatalf("%s: namespace-wide publish %d %s", name, rec.Code, rec.Body)
		}
		// Group administration gets past authorization (the in-memory hub
		// has no consumer groups: 503 says so).
		rec = rig.do("PUT", "/ns/default/rooms/jobs/groups/g1", `{}`, h)
		p := wantProblem(t, rec, 503, name+": put group")
		if !strings.Contains(p.Detail, "consumer groups are not enabled") {
			t.Fatalf("%s: put group: %q", name, p.Detail)
		}
	}
}

func TestLockedCookie(t *testing.T) {
	rig := newLockedRig(t, Security{Locked: true})
	tok := rigToken(t, "bob", auth.Grants{Publish: []string{"chat"}, Subscribe: []string{"chat"}}, time.Hour)
	rec := rig.do("POST", "/ns/default/rooms/chat/messages", `{"event":"e","data":1}`, "Cookie: "+CookieName+"="+tok)
	if rec.Code != 202 {
		t.Fatalf("publish with the cookie: %d %s", rec.Code, rec.Body)
	}
	rec = rig.do("GET", "/ns/default/rooms/chat/events", "", "Cookie: "+CookieName+"="+tok)
	if rec.Code != 200 || rig.streams.last(t).User != "bob" {
		t.Fatalf("stream with the cookie: %d %s", rec.Code, rec.Body)
	}
	rec = rig.do("POST", "/ns/default/rooms/chat/messages", `{"event":"e","data":1}`, "Cookie: other="+tok)
	wantProblem(t, rec, 401, "another cookie's name")
	// A browser on another site cannot ride the cookie.
	rec = rig.do("POST", "/ns/default/rooms/chat/messages", `{"event":"e","data":1}`,
		"Cookie: "+CookieName+"="+tok, "Sec-Fetch-Site: cross-site", "Origin: https://evil.example")
	wantProblem(t, rec, 403, "cross-site with the cookie")
	if n := rig.stored(t); n != 1 {
		t.Fatalf("%d messages stored, want 1", n)
	}
}

func TestLockedTickets(t *testing.T) {
	rig := newLockedRig(t, Security{Locked: true})
	tok := rigToken(t, "carol", auth.Grants{Subscribe: []string{"chat"}}, time.Hour)
	rec := rig.do("POST", "/ns/default/tickets", "", bearer(tok))
	if rec.Code != 201 {
		t.Fatalf("ticket: %d %s", rec.Code, rec.Body)
	}
	var tr ticketResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &tr); err != nil || tr.Ticket == "" || time.Until(tr.ExpiresAt) > ticketTTL || time.Until(tr.ExpiresAt) < ticketTTL/2 {
		t.Fatalf("ticket response %s (%v)", rec.Body, err)
	}
	// A ticket is not a credential for the REST calls.
	rec = rig.do("GET", "/ns/default/rooms/chat/messages?ticket="+tr.Ticket, "")
	wantProblem(t, rec, 401, "ticket on a REST call")
	// It opens one stream, with the JWT's rights, once.
	rec = rig.do("GET", "/ns/default/rooms/chat/events?ticket="+tr.Ticket, "")
	if rec.Code != 200 || rig.streams.last(t).User != "carol" {
		t.Fatalf("stream with the ticket: %d %s", rec.Code, rec.Body)
	}
	rec = rig.do("GET", "/ns/default/rooms/chat/events?ticket="+tr.Ticket, "")
	wantProblem(t, rec, 401, "a used ticket")
	// The rights are the JWT's: another room is forbidden.
	rec = rig.do("POST", "/ns/default/tickets", "", bearer(tok))
	_ = json.Unmarshal(rec.Body.Bytes(), &tr)
	rec = rig.do("GET", "/ns/default/rooms/orders/events?ticket="+tr.Ticket, "")
	wantProblem(t, rec, 403, "ticket for a room the JWT does not grant")
	for _, bad := range []string{"nope", strings.Repeat("x", 65)} {
		rec = rig.do("GET", "/ns/default/rooms/chat/events?ticket="+bad, "")
		wantProblem(t, rec, 401, "ticket "+bad[:4])
	}
	// Tickets are issued for JWTs and API keys, not for anonymous callers.
	rec = rig.do("POST", "/ns/default/tickets", "")
	wantProblem(t, rec, 401, "anonymous ticket")
}

func TestLockedConnectionToken(t *testing.T) {
	rig := newLockedRig(t, Security{Locked: true})
	alice := rig.open(t, "alice", auth.Grants{Subscribe: []string{"chat"}, Join: []string{"chat.*"}}, "chat")
	other := rig.open(t, "", auth.Grants{})
	tok := alice.Token
	path := "/ns/default/connections/" + string(alice.ID)
	if rec := rig.do("GET", path, "", bearer(tok)); rec.Code != 200 {
		t.Fatalf("own connection: %d %s", rec.Code, rec.Body)
	}
	rec := rig.do("GET", "/ns/default/connections/"+string(other.ID), "", bearer(tok))
	wantProblem(t, rec, 403, "another connection with a connection token")
	// A connection token cannot open a stream (resume with Last-Event-ID).
	rec = rig.do("GET", "/ns/default/rooms/chat/events", "", bearer(tok))
	wantProblem(t, rec, 401, "stream with a connection token")
	// A user's JWT acts for that user's connections only.
	rec = rig.do("DELETE", path, "", bearer(rigToken(t, "mallory", auth.Grants{}, time.Hour)))
	wantProblem(t, rec, 403, "disconnect another user's connection")
	if rec := rig.do("GET", path, "", bearer(rigToken(t, "alice", auth.Grants{}, time.Hour))); rec.Code != 200 {
		t.Fatalf("alice's JWT reads alice's connection: %d %s", rec.Code, rec.Body)
	}
	// Joining for itself, a connection uses its own rights.
	rec = rig.do("PUT", "/ns/default/rooms/orders/members/"+string(alice.ID), "", bearer(tok))
	wantProblem(t, rec, 403, "join without the connection's join right")
	if rec := rig.do("PUT", "/ns/default/rooms/chat.fr/members/"+string(alice.ID), "", bearer(tok)); rec.Code != 200 {
		t.Fatalf("join with the connection's join right: %d %s", rec.Code, rec.Body)
	}
	if rec := rig.do("DELETE", path, "", bearer(rigAPIKey)); rec.Code != 204 {
		t.Fatalf("admin disconnect: %d %s", rec.Code, rec.Body)
	}
}

func TestIdempotencyKeysAreScopedBySender(t *testing.T) {
	rig := newLockedRig(t, Security{Locked: true})
	grants := auth.Grants{Publish: []string{">"}}
	send := func(sub, id string) publishResponse {
		t.Helper()
		rec := rig.do("POST", "/ns/default/rooms/r1/messages", `{"event":"e","data":1,"id":"`+id+`"}`, bearer(rigToken(t, sub, grants, time.Hour)))
		if rec.Code != 202 {
			t.Fatalf("publish as %s with id %s: %d %s", sub, id, rec.Code, rec.Body)
		}
		var r publishResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	first := send("alice", "k1")
	if again := send("alice", "k1"); !again.Duplicate || again.ID != first.ID {
		t.Fatalf("the same sender's retry: %+v, want a duplicate of %s", again, first.ID)
	}
	if bob := send("bob", "k1"); bob.Duplicate {
		t.Fatalf("another user's key k1 was swallowed as a duplicate of alice's")
	}
	// The parts of the scope cannot run into each other: user "a/b" with
	// key "c" is not user "a" with key "b/c".
	send("a/b", "c")
	if r := send("a", "b/c"); r.Duplicate {
		t.Fatalf("user a's key b/c was taken for user a/b's key c")
	}
}

func TestLockedRateLimit(t *testing.T) {
	rig := newLockedRig(t, Security{Locked: true, Publish: Rate{N: 2, Per: time.Minute}})
	tok := rigToken(t, "dave", auth.Grants{Publish: []string{">"}}, time.Hour)
	for i := range 2 {
		if rec := rig.do("POST", "/ns/default/rooms/r1/messages", `{"event":"e","data":1}`, bearer(tok)); rec.Code != 202 {
			t.Fatalf("publish %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	rec := rig.do("POST", "/ns/default/rooms/r1/messages", `{"event":"e","data":1}`, bearer(tok))
	wantProblem(t, rec, 429, "third publish in a minute")
	if ra := rec.Header().Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("Retry-After %q", ra)
	}
	if n := rig.stored(t); n != 2 {
		t.Fatalf("%d messages stored, want 2", n)
	}
	// Reads are not publishes: they are not limited.
	if rec := rig.do("GET", "/ns/default/rooms/r1/messages", "", bearer(rigAPIKey)); rec.Code != 200 {
		t.Fatalf("history after the limit: %d", rec.Code)
	}
}

func TestOpenNamespaceTakesNoCredential(t *testing.T) {
	rig := newLockedRig(t, Security{})
	if rec := rig.do("POST", "/ns/default/rooms/r1/messages", `{"event":"e","data":1}`); rec.Code != 202 {
		t.Fatalf("anonymous publish in an open namespace: %d %s", rec.Code, rec.Body)
	}
	if rec := rig.do("GET", "/ns/default/rooms/r1/events", ""); rec.Code != 200 || rig.streams.last(t).Perms != nil {
		t.Fatalf("anonymous stream in an open namespace: %d, perms %v", rec.Code, rig.streams.last(t).Perms)
	}
	// A credential, when sent, must still be valid.
	rec := rig.do("POST", "/ns/default/rooms/r1/messages", `{"event":"e","data":1}`, "Authorization: Bearer eyJ.eyJ.x")
	wantProblem(t, rec, 401, "a bad JWT in an open namespace")
	// Namespace-wide publishes stay server-side actions unless open.
	if rec := rig.do("POST", "/ns/default/messages", `{"event":"e","data":1}`); rec.Code != 202 {
		t.Fatalf("namespace-wide publish in an open namespace: %d %s", rec.Code, rec.Body)
	}
	// A JWT's grants bind even in an open namespace.
	tok := rigToken(t, "erin", auth.Grants{Publish: []string{"chat"}}, time.Hour)
	rec = rig.do("POST", "/ns/default/rooms/r1/messages", `{"event":"e","data":1}`, bearer(tok))
	wantProblem(t, rec, 403, "a JWT without the room in an open namespace")
}

// TestLockedBatchRights: each message of a batch is authorized as a single
// publish is (per room; no rooms: admin), with its own 403 beside the
// others' ids; a credential that may publish none of them is refused as a
// whole; a connection's token makes it the sender (except-sender works).
func TestLockedBatchRights(t *testing.T) {
	rig := newLockedRig(t, Security{Locked: true})
	tok := rigToken(t, "alice", auth.Grants{Publish: []string{"orders.*"}, Subscribe: []string{"orders.>"}}, time.Hour)
	rec := rig.do("POST", "/ns/default/messages/batch", `{"messages":[
		{"event":"ok","rooms":["orders.eu"]},
		{"event":"other-room","rooms":["chat"]},
		{"event":"one-room-of-two","rooms":["orders.eu","chat"]},
		{"event":"namespace-wide"},
		{"event":"ok2","rooms":["orders.us"]}]}`, bearer(tok))
	if rec.Code != http.StatusOK {
		t.Fatalf("batch: %d, want 200 (%s)", rec.Code, rec.Body)
	}
	var resp batchResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 5 {
		t.Fatalf("%d results, want 5: %s", len(resp.Results), rec.Body)
	}
	for i, want := range []int{0, 403, 403, 403, 0} {
		r := resp.Results[i]
		switch {
		case want == 0 && (r.ID == "" || r.Error != nil):
			t.Errorf("result %d: %+v, want an id", i, r)
		case want != 0 && (r.Error == nil || r.Error.Status != want || r.ID != ""):
			t.Errorf("result %d: %+v, want a %d problem", i, r, want)
		}
	}
	if n := rig.stored(t); n != 2 {
		t.Fatalf("%d messages stored, want the 2 allowed", n)
	}

	// Nothing this credential may publish: the request fails as a whole.
	rec = rig.do("POST", "/ns/default/messages/batch", `{"messages":[{"event":"a","rooms":["chat"]},{"event":"b"}]}`, bearer(tok))
	wantProblem(t, rec, http.StatusForbidden, "a batch of messages none of which may be published")
	// An admin may publish namespace-wide.
	rec = rig.do("POST", "/ns/default/messages/batch", `{"messages":[{"event":"all"}]}`, bearer(rigAPIKey))
	if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), `"error"`) {
		t.Fatalf("admin batch: %d %s", rec.Code, rec.Body)
	}
	if n := rig.stored(t); n != 3 {
		t.Fatalf("%d messages stored, want 3", n)
	}

	// A connection's token: the batch's messages come from it.
	c := rig.open(t, "alice", auth.Grants{Publish: []string{"orders.*"}, Subscribe: []string{"orders.>"}}, "orders.eu")
	rec = rig.do("POST", "/ns/default/messages/batch", `{"messages":[{"event":"mine","rooms":["orders.eu"]}]}`, bearer(c.Token))
	if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), `"error"`) {
		t.Fatalf("batch with a connection token: %d %s", rec.Code, rec.Body)
	}
	var from hub.ConnID
	if err := rig.log.Read(context.Background(), "default", 4, 4, hub.Filter{Rooms: []string{"orders.eu"}}, func(m *hub.Message) bool {
		from = m.From
		return false
	}); err != nil {
		t.Fatal(err)
	}
	if from != c.ID {
		t.Fatalf("the batch's message is from %q, want the connection %s", from, c.ID)
	}
}
