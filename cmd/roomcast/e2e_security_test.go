package main

import (
	"bytes"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	secSecret = "test-secret-0123456789abcdef-0123456789"
	secAPIKey = "admin-key-0123456789abcdef"
	secOrigin = "https://app.example"
)

// startSecure runs a server with an open "default" namespace, a "secure"
// JWT namespace and a "limited" open namespace with tight limits.
func startSecure(t *testing.T, extra ...string) *testServer {
	t.Helper()
	cfg := fmt.Sprintf(`namespaces:
  - name: default
  - name: secure
    auth: jwt
    jwt_audience: roomcast
    jwt_issuer: https://issuer.test
    jwt_leeway: 0s
    jwt_keys:
      - id: hs1
        alg: HS256
        secret: %s
    api_keys: [%s]
    cors_origins: [%s]
  - name: limited
    rate_publish: 5/1s
    rate_join: 5/1s
    max_connections_per_ip: 3
    max_rooms_per_conn: 20
`, secSecret, secAPIKey, secOrigin)
	p := filepath.Join(t.TempDir(), "roomcast.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return startServer(t, append([]string{"--config", p, "--log-format", "json"}, extra...)...)
}

type grants map[string]any

// mint signs a token for user with grants; mod adjusts the claims.
func mint(t *testing.T, user string, g grants, mod func(jwt.MapClaims)) string {
	t.Helper()
	c := jwt.MapClaims{"sub": user, "aud": "roomcast", "iss": "https://issuer.test",
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "roomcast": g}
	if mod != nil {
		mod(c)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	tok.Header["kid"] = "hs1"
	s, err := tok.SignedString([]byte(secSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// authStream opens path with a bearer credential; it returns the stream
// (nil unless 200) and the status.
func authStream(t *testing.T, s *testServer, path, bearer string, hdr map[string]string) (*sseStream, int) {
	t.Helper()
	h := maps.Clone(hdr)
	if bearer != "" {
		if h == nil {
			h = map[string]string{}
		}
		h["Authorization"] = "Bearer " + bearer
	}
	return s.subscribeWith(t, path, h)
}

func TestSecureNamespaceRefusesAnonymous(t *testing.T) {
	t.Parallel()
	s := startSecure(t)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/ns/secure/events", ""},
		{"GET", "/ns/secure/rooms/a/events", ""},
		{"POST", "/ns/secure/rooms/a/messages", `{"event":"e"}`},
		{"POST", "/ns/secure/messages", `{"event":"e"}`},
		{"GET", "/ns/secure/rooms", ""},
		{"GET", "/ns/secure/rooms/a/members", ""},
		{"GET", "/ns/secure/rooms/a/messages", ""},
		{"POST", "/ns/secure/tickets", ""},
		{"PUT", "/ns/secure/rooms/a/groups/g", ""},
	} {
		var body any
		if c.body != "" {
			body = c.body
		}
		code, prob, hdr := s.do(t, c.method, c.path, body, "")
		if code != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") == "" || prob["status"] != float64(401) {
			t.Errorf("%s %s anonymously: %d %v (WWW-Authenticate %q)", c.method, c.path, code, prob, hdr.Get("WWW-Authenticate"))
		}
	}
	// The open namespace beside it stays open.
	s.publish(t, "/ns/default/rooms/a/messages", `{"event":"e"}`, "")
}

func TestSecureTokenKindsOnStreams(t *testing.T) {
	t.Parallel()
	s := startSecure(t)
	g := grants{"subscribe": []string{"a"}}
	none := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "x", "aud": "roomcast", "iss": "https://issuer.test", "exp": time.Now().Add(time.Hour).Unix(), "roomcast": g})
		s, _ := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		return s
	}()
	for name, c := range map[string]struct {
		token string
		want  int
	}{
		"valid":            {mint(t, "alice", g, nil), 200},
		"alg none":         {none, 401},
		"expired":          {mint(t, "alice", g, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }), 401},
		"not yet valid":    {mint(t, "alice", g, func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() }), 401},
		"wrong audience":   {mint(t, "alice", g, func(c jwt.MapClaims) { c["aud"] = "other" }), 401},
		"wrong issuer":     {mint(t, "alice", g, func(c jwt.MapClaims) { c["iss"] = "https://evil.test" }), 401},
		"no exp":           {mint(t, "alice", g, func(c jwt.MapClaims) { delete(c, "exp") }), 401},
		"tampered":         {mint(t, "alice", g, nil) + "x", 401},
		"not granted room": {mint(t, "alice", grants{"subscribe": []string{"b"}}, nil), 403},
	} {
		st, code := authStream(t, s, "/ns/secure/rooms/a/events", c.token, nil)
		if code != c.want {
			t.Errorf("%s: status %d, want %d", name, code, c.want)
		}
		if st != nil {
			ev := st.Expect("connected").envelope(t)
			if ev["user"] != "alice" {
				t.Errorf("%s: connected %v, want user alice", name, ev)
			}
			st.Close()
		}
	}
}

// TestSecurePermissionsPerRoom: a token for room a cannot subscribe, join,
// publish, list, read history of or consume room b.
func TestSecurePermissionsPerRoom(t *testing.T) {
	t.Parallel()
	s := startSecure(t)
	a := grants{"subscribe": []string{"a"}, "publish": []string{"a"}, "join": []string{"a", "a.*"},
		"presence": []string{"a"}, "history": []string{"a"}, "ack": []string{"a"}}
	tok := mint(t, "alice", a, nil)
	st, code := authStream(t, s, "/ns/secure/events", tok, nil)
	if code != 200 {
		t.Fatalf("namespace stream: %d", code)
	}
	id, ctok, _ := st.connected()
	admin := secAPIKey
	for _, c := range []struct {
		name, method, path, body, cred string
		want                           int
	}{
		{"join a with its own token", "PUT", "/ns/secure/rooms/a/members/" + id, "", ctok, 200},
		{"join a.x (pattern)", "PUT", "/ns/secure/rooms/a.x/members/" + id, "", ctok, 200},
		{"join b", "PUT", "/ns/secure/rooms/b/members/" + id, "", ctok, 403},
		{"publish to a as the connection", "POST", "/ns/secure/rooms/a/messages", `{"event":"e","data":1}`, ctok, 202},
		{"publish to b", "POST", "/ns/secure/rooms/b/messages", `{"event":"e"}`, ctok, 403},
		{"publish to a and b", "POST", "/ns/secure/messages", `{"event":"e","rooms":["a","b"]}`, tok, 403},
		{"publish namespace-wide", "POST", "/ns/secure/messages", `{"event":"e"}`, tok, 403},
		{"direct message", "POST", "/ns/secure/connections/" + id + "/messages", `{"event":"e"}`, tok, 403},
		{"members of a", "GET", "/ns/secure/rooms/a/members", "", tok, 200},
		{"members of b", "GET", "/ns/secure/rooms/b/members", "", tok, 403},
		{"history of a", "GET", "/ns/secure/rooms/a/messages", "", tok, 200},
		{"history of b", "GET", "/ns/secure/rooms/b/messages", "", tok, 403},
		{"group of b", "GET", "/ns/secure/rooms/b/groups", "", tok, 403},
		{"create a group (admin only)", "PUT", "/ns/secure/rooms/a/groups/g", "", tok, 403},
		{"create a group with the API key", "PUT", "/ns/secure/rooms/a/groups/g", "", admin, 200},
		{"publish namespace-wide with the API key", "POST", "/ns/secure/messages", `{"event":"e"}`, admin, 202},
		{"ticket with the JWT", "POST", "/ns/secure/tickets", "", tok, 201},
		{"ticket with a connection token", "POST", "/ns/secure/tickets", "", ctok, 401},
	} {
		var body any
		if c.body != "" {
			body = c.body
		}
		code, prob, _ := s.do(t, c.method, c.path, body, c.cred)
		if code != c.want {
			t.Errorf("%s: %d, want %d (%v)", c.name, code, c.want, prob)
		}
	}
	// Room listing shows only rooms whose presence the caller may see.
	b := mint(t, "bob", grants{"subscribe": []string{"b"}, "presence": []string{"b"}}, nil)
	bst, code := authStream(t, s, "/ns/secure/rooms/b/events", b, nil)
	if code != 200 {
		t.Fatalf("bob's stream: %d", code)
	}
	bst.connected()
	_, list, _ := s.do(t, "GET", "/ns/secure/rooms", nil, tok)
	for _, r := range list["rooms"].([]any) {
		if name := r.(map[string]any)["name"]; name == "b" {
			t.Errorf("alice sees room b in %v", list)
		}
	}
	for _, path := range []string{"/ns/secure/rooms/b/events?group=g", "/ns/secure/rooms/b/events"} {
		if _, code := authStream(t, s, path, tok, nil); code != 403 {
			t.Errorf("%s with a token for a: %d, want 403", path, code)
		}
	}
}

// TestSecureJoinOnlyOwnUsersConnections: a backend holding a user's JWT may
// join that user's connections, never another user's.
func TestSecureJoinOnlyOwnUsersConnections(t *testing.T) {
	t.Parallel()
	s := startSecure(t)
	g := grants{"subscribe": []string{">"}, "join": []string{">"}}
	alice := mint(t, "alice", g, nil)
	bob := mint(t, "bob", g, nil)
	st, _ := authStream(t, s, "/ns/secure/events", alice, nil)
	id, _, _ := st.connected()
	for _, c := range []struct {
		name, cred string
		want       int
	}{{"bob's JWT", bob, 403}, {"alice's JWT", alice, 200}, {"the API key", secAPIKey, 200}, {"nothing", "", 401}} {
		if code, prob, _ := s.do(t, "PUT", "/ns/secure/rooms/x/members/"+id, nil, c.cred); code != c.want {
			t.Errorf("%s joins alice's connection: %d, want %d (%v)", c.name, code, c.want, prob)
		}
	}
	if code, _, _ := s.do(t, "DELETE", "/ns/secure/connections/"+id, nil, bob); code != 403 {
		t.Errorf("bob disconnects alice: %d", code)
	}
	if code, _, _ := s.do(t, "DELETE", "/ns/secure/connections/"+id, nil, secAPIKey); code != 204 {
		t.Errorf("admin disconnects alice: %d", code)
	}
	st.Ended(10 * time.Second)
}

// TestSecureTicketsAndCookie: EventSource's ways in — a single-use ticket in
// the URL, or the JWT cookie.
func TestSecureTicketsAndCookie(t *testing.T) {
	t.Parallel()
	s := startSecure(t)
	tok := mint(t, "alice", grants{"subscribe": []string{"a"}}, nil)
	code, body, _ := s.do(t, "POST", "/ns/secure/tickets", nil, tok)
	ticket, _ := body["ticket"].(string)
	if code != 201 || ticket == "" {
		t.Fatalf("ticket: %d %v", code, body)
	}
	st, code := authStream(t, s, "/ns/secure/rooms/a/events?ticket="+url.QueryEscape(ticket), "", nil)
	if code != 200 {
		t.Fatalf("stream with ticket: %d", code)
	}
	if ev := st.Expect("connected").envelope(t); ev["user"] != "alice" {
		t.Fatalf("connected %v", ev)
	}
	if _, code := authStream(t, s, "/ns/secure/rooms/a/events?ticket="+url.QueryEscape(ticket), "", nil); code != 401 {
		t.Errorf("ticket used twice: %d, want 401", code)
	}
	if _, code := authStream(t, s, "/ns/secure/rooms/a/events?ticket=forged", "", nil); code != 401 {
		t.Errorf("forged ticket: %d", code)
	}
	if _, code := authStream(t, s, "/ns/secure/rooms/a/events", "", map[string]string{"Cookie": "roomcast_token=" + tok}); code != 200 {
		t.Errorf("stream with the JWT cookie: %d", code)
	}
	logs := s.logs.String()
	for _, secret := range []string{tok, ticket, secAPIKey} {
		if strings.Contains(logs, secret) {
			t.Errorf("a credential appears in the log")
		}
	}
}

// TestSecureStreamEndsWhenTokenExpires.
func TestSecureStreamEndsWhenTokenExpires(t *testing.T) {
	t.Parallel()
	s := startSecure(t)
	tok := mint(t, "alice", grants{"subscribe": []string{"a"}}, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(2 * time.Second).Unix() })
	st, code := authStream(t, s, "/ns/secure/rooms/a/events", tok, nil)
	if code != 200 {
		t.Fatalf("stream: %d", code)
	}
	st.connected()
	began := time.Now()
	st.Ended(15 * time.Second)
	if time.Since(began) > 10*time.Second {
		t.Fatalf("stream outlived its token by far")
	}
	eventually(t, 5*time.Second, "the disconnect line", func() bool {
		return strings.Contains(s.logs.String(), "credentials expired")
	})
}

// TestSecureResumeRechecksPermissions: a reconnect with a narrower token
// gets its session back minus the rooms it may no longer receive, and the
// replay holds none of their messages.
func TestSecureResumeRechecksPermissions(t *testing.T) {
	t.Parallel()
	s := startSecure(t)
	wide := mint(t, "alice", grants{"subscribe": []string{"a", "b"}, "join": []string{"a", "b"}}, nil)
	narrow := mint(t, "alice", grants{"subscribe": []string{"a"}, "join": []string{"a"}}, nil)
	st, _ := authStream(t, s, "/ns/secure/events", wide, nil)
	id, ctok, _ := st.connected()
	for _, room := range []string{"a", "b"} {
		if code, _, _ := s.do(t, "PUT", "/ns/secure/rooms/"+room+"/members/"+id, nil, ctok); code != 200 {
			t.Fatalf("join %s: %d", room, code)
		}
	}
	first := s.publish(t, "/ns/secure/rooms/a/messages", `{"event":"e","data":"a0"}`, secAPIKey)
	ev := st.Expect("e")
	last := ev.ID
	if ev.envelope(t)["id"] != first {
		t.Fatal("first message")
	}
	st.Close()
	eventually(t, 10*time.Second, "the stream to be gone", func() bool {
		_, body, _ := s.do(t, "GET", "/ns/secure/rooms/a/members", nil, secAPIKey)
		ms, _ := body["members"].([]any)
		return len(ms) == 0
	})
	s.publish(t, "/ns/secure/rooms/b/messages", `{"event":"e","data":"b1"}`, secAPIKey)
	s.publish(t, "/ns/secure/rooms/a/messages", `{"event":"e","data":"a1"}`, secAPIKey)
	back, code := authStream(t, s, "/ns/secure/events", narrow, map[string]string{"Last-Event-ID": last})
	if code != 200 {
		t.Fatalf("resume: %d", code)
	}
	c := back.Expect("connected").envelope(t)
	if c["restored"] != true || c["id"] != id {
		t.Fatalf("connected %v, want restored %s", c, id)
	}
	if rooms := c["rooms"].([]any); len(rooms) != 1 || rooms[0] != "a" {
		t.Fatalf("restored rooms %v, want [a]", rooms)
	}
	if d := back.Expect("e").envelope(t)["data"]; d != "a1" {
		t.Fatalf("replayed %v, want a1 only", d)
	}
	back.NothingBefore(s, "secure", id, secAPIKey)
	// Another user cannot take the session over, even with the resume id.
	bob := mint(t, "bob", grants{"subscribe": []string{"a"}}, nil)
	back.Close()
	eventually(t, 10*time.Second, "the stream to be gone", func() bool {
		_, body, _ := s.do(t, "GET", "/ns/secure/rooms/a/members", nil, secAPIKey)
		ms, _ := body["members"].([]any)
		return len(ms) == 0
	})
	other, code := authStream(t, s, "/ns/secure/events", bob, map[string]string{"Last-Event-ID": last})
	if code != 200 {
		t.Fatalf("bob's resume: %d", code)
	}
	if c := other.Expect("connected").envelope(t); c["restored"] == true || c["id"] == id {
		t.Fatalf("bob restored alice's connection: %v", c)
	}
	// …nor destroy it: alice still gets her session back.
	again, code := authStream(t, s, "/ns/secure/events", narrow, map[string]string{"Last-Event-ID": last})
	if code != 200 {
		t.Fatalf("alice's resume after bob's attempt: %d", code)
	}
	if c := again.Expect("connected").envelope(t); c["restored"] != true || c["id"] != id {
		t.Fatalf("alice's session after bob's attempt: %v, want restored %s", c, id)
	}
}

// TestSecureCORS: the allow-listed origin gets CORS headers with
// credentials; a foreign origin gets none, and its state-changing browser
// requests are refused; curl (no Origin) works.
func TestSecureCORS(t *testing.T) {
	t.Parallel()
	s := startSecure(t)
	tok := mint(t, "alice", grants{"publish": []string{"a"}}, nil)
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, s.URL+"/ns/secure/rooms/a/messages", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := preflight(secOrigin); r.Header.Get("Access-Control-Allow-Origin") != secOrigin || r.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("allowed origin preflight: %d %v", r.StatusCode, r.Header)
	}
	if r := preflight("https://evil.example"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign origin got Access-Control-Allow-Origin %q", r.Header.Get("Access-Control-Allow-Origin"))
	}
	post := func(origin, site string) (int, http.Header) {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/ns/secure/rooms/a/messages", strings.NewReader(`{"event":"e"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		if origin != "" {
			req.Header.Set("Origin", origin)
			req.Header.Set("Sec-Fetch-Site", site)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	if code, h := post(secOrigin, "cross-site"); code != 202 || h.Get("Access-Control-Allow-Origin") != secOrigin {
		t.Errorf("credentialed POST from the allowed origin: %d ACAO %q", code, h.Get("Access-Control-Allow-Origin"))
	}
	if code, h := post("https://evil.example", "cross-site"); code != 403 || h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("POST from a foreign site: %d ACAO %q, want 403 and none", code, h.Get("Access-Control-Allow-Origin"))
	}
	if code, _ := post("", ""); code != 202 {
		t.Errorf("POST without Origin (curl): %d", code)
	}
}

// TestLimitsRateAndConnections: publish and join rates give 429 with
// Retry-After; connections per IP give 429; rooms per connection 409.
func TestLimitsRateAndConnections(t *testing.T) {
	t.Parallel()
	s := startSecure(t)
	var limited int
	for i := 0; i < 12; i++ {
		code, prob, hdr := s.do(t, "POST", "/ns/limited/rooms/r/messages", `{"event":"e"}`, "")
		if code == 429 {
			limited++
			if hdr.Get("Retry-After") == "" || prob["status"] != float64(429) {
				t.Errorf("429 without Retry-After or problem: %v %v", hdr, prob)
			}
		} else if code != 202 {
			t.Fatalf("publish: %d %v", code, prob)
		}
	}
	if limited == 0 {
		t.Error("12 publishes at once under a 5/1s limit: none refused")
	}
	var streams []*sseStream
	for i := 0; i < 3; i++ {
		st, code := authStream(t, s, "/ns/limited/events", "", nil)
		if code != 200 {
			t.Fatalf("stream %d: %d", i, code)
		}
		streams = append(streams, st)
	}
	if _, code := authStream(t, s, "/ns/limited/events", "", nil); code != 429 {
		t.Errorf("4th connection from one IP: %d, want 429", code)
	}
	// The client IP is the TCP peer's: a forged X-Forwarded-For does not
	// make a fourth connection from another address.
	if _, code := authStream(t, s, "/ns/limited/events", "", map[string]string{"X-Forwarded-For": "203.0.113.7"}); code != 429 {
		t.Errorf("4th connection with X-Forwarded-For: %d, want 429", code)
	}
	// The limit is per namespace: the default namespace still takes it.
	if _, code := authStream(t, s, "/ns/default/events", "", nil); code != 200 {
		t.Errorf("default namespace: %d", code)
	}
	id, tok, _ := streams[0].connected()
	var joins, rateLimited, full int
	for i := 0; i < 40; i++ {
		code, _, _ := s.do(t, "PUT", fmt.Sprintf("/ns/limited/rooms/r%d/members/%s", i, id), nil, tok)
		switch code {
		case 200:
			joins++
		case 429:
			rateLimited++
		case 409:
			full++
		default:
			t.Fatalf("join %d: %d", i, code)
		}
	}
	if rateLimited == 0 {
		t.Errorf("40 joins at once under a 5/1s limit: none refused (joins %d)", joins)
	}
	// 409 (room limit) only once the connection holds max_rooms_per_conn.
	if joins > 20 || full > 0 && joins < 20 {
		t.Errorf("%d joins and %d refused as full with max_rooms_per_conn 20", joins, full)
	}
	streams[0].Close()
	eventually(t, 10*time.Second, "a slot to free up", func() bool {
		st, code := authStream(t, s, "/ns/limited/events", "", nil)
		if st != nil {
			st.Close()
		}
		return code == 200
	})
}

// TestBarrage: bad JSON, huge bodies, control characters in names, forged
// resume ids, 10,000 joins on one connection and 2,000 connections from
// one IP each get their documented 4xx, nothing panics, and a control
// subscriber keeps receiving throughout.
func TestBarrage(t *testing.T) {
	t.Parallel()
	s := startSecure(t, "--max-body", "4096", "--max-rooms-per-conn", "50")
	control := s.subscribe(t, "/ns/default/rooms/control/events", "")
	control.connected()
	var sent atomic.Int64
	stop := make(chan struct{})
	var pub sync.WaitGroup
	pub.Add(1)
	go func() { // the control traffic, bounded in count
		defer pub.Done()
		for i := 0; i < 400; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			code, _, _ := s.do(t, "POST", "/ns/default/rooms/control/messages", fmt.Sprintf(`{"event":"tick","data":%d}`, i), "")
			if code != 202 {
				t.Errorf("control publish %d: %d", i, code)
				return
			}
			sent.Add(1)
		}
	}()
	var received atomic.Int64
	recvStop, recvDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(recvDone)
		for {
			select {
			case ev, ok := <-control.events:
				if !ok {
					return
				}
				if ev.Event == "tick" {
					received.Add(1)
				}
			case <-recvStop:
				return
			}
		}
	}()

	expect := func(what string, code, want int) {
		t.Helper()
		if code != want {
			t.Errorf("%s: %d, want %d", what, code, want)
		}
	}
	huge := bytes.Repeat([]byte("x"), 1<<20)
	for _, c := range []struct {
		name, method, path string
		body               any
		want               int
	}{
		{"bad JSON", "POST", "/ns/default/rooms/x/messages", `{"event":`, 400},
		{"not an object", "POST", "/ns/default/rooms/x/messages", `[1,2]`, 400},
		{"huge body", "POST", "/ns/default/rooms/x/messages", append([]byte(`{"event":"e","data":"`), huge...), 413},
		{"NUL in event", "POST", "/ns/default/rooms/x/messages", "{\"event\":\"a\\u0000b\"}", 400},
		{"CR LF in event", "POST", "/ns/default/rooms/x/messages", "{\"event\":\"a\\r\\nid: 1\"}", 400},
		{"LF in room (path)", "POST", "/ns/default/rooms/a%0Ab/messages", `{"event":"e"}`, 400},
		{"NUL in room (path)", "POST", "/ns/default/rooms/a%00b/messages", `{"event":"e"}`, 400},
		{"CR in rooms list", "POST", "/ns/default/messages", "{\"event\":\"e\",\"rooms\":[\"a\\rb\"]}", 400},
		{"wildcard room", "POST", "/ns/default/rooms/%3E/messages", `{"event":"e"}`, 400},
		{"NUL in namespace", "GET", "/ns/a%00b/rooms", nil, 400},
	} {
		code, _, _ := s.do(t, c.method, c.path, c.body, "")
		expect(c.name, code, c.want)
	}
	for _, forged := range []string{"1", "x-1", "deadbeef-1.AAAA", "deadbeef-99999999999999999999", "deadbeef-1.\r\nX: y", strings.Repeat("a", 10000)} {
		req, _ := http.NewRequest("GET", s.URL+"/ns/default/rooms/x/events?last_event_id="+url.QueryEscape(forged), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		expect("forged resume id "+strings.ReplaceAll(forged[:min(len(forged), 20)], "\r\n", `\r\n`), resp.StatusCode, 400)
	}
	// 10,000 joins on one connection: the first 50 rooms, then 409.
	victim := s.subscribe(t, "/ns/default/events", "")
	vid, vtok, _ := victim.connected()
	var ok, full int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	others := map[int]int{}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			for i := w; i < 10000; i += 8 {
				req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/ns/default/rooms/j%d/members/%s", s.URL, i, vid), nil)
				req.Header.Set("Authorization", "Bearer "+vtok)
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				mu.Lock()
				switch resp.StatusCode {
				case 200:
					ok++
				case 409:
					full++
				default:
					others[resp.StatusCode]++
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	if ok != 50 || full != 9950 || len(others) != 0 {
		t.Errorf("10,000 joins: %d joined, %d refused with 409, others %v; want 50 and 9950", ok, full, others)
	}
	// 2,000 connections from one IP against a limit of 3 in "limited".
	var accepted, refused atomic.Int64
	var conns []net.Conn
	var cmu sync.Mutex
	u, _ := url.Parse(s.URL)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 250; i++ {
				c, err := net.Dial("tcp", u.Host)
				if err != nil {
					t.Error(err)
					return
				}
				fmt.Fprintf(c, "GET /ns/limited/events HTTP/1.1\r\nHost: %s\r\n\r\n", u.Host)
				buf := make([]byte, 12)
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Read(buf); err != nil {
					t.Error(err)
					c.Close()
					return
				}
				switch string(buf[9:12]) {
				case "200":
					accepted.Add(1)
					cmu.Lock()
					conns = append(conns, c) // held open
					cmu.Unlock()
					continue
				case "429":
					refused.Add(1)
				default:
					t.Errorf("connection: status %q", buf)
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	for _, c := range conns {
		c.Close()
	}
	if accepted.Load() != 3 || refused.Load() != 1997 {
		t.Errorf("2,000 connections from one IP: %d accepted, %d refused, want 3 and 1997", accepted.Load(), refused.Load())
	}
	close(stop)
	pub.Wait()
	eventually(t, 10*time.Second, "the control subscriber to get every tick", func() bool {
		return received.Load() == sent.Load()
	})
	close(recvStop)
	<-recvDone
	if sent.Load() < 10 {
		t.Errorf("only %d control messages went out during the barrage", sent.Load())
	}
}
