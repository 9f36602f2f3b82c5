package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/roomcast/roomcast/internal/hub"
)

// The router's own answers and middleware: 404, 405, undeclared
// namespaces, the service endpoints, the access log, CORS and the
// cross-origin guard.

// TestRouterNotFoundAndMethodNotAllowed: an unknown path is a problem+json
// 404; a known path with another method is a 405 listing the methods it
// has (RFC 9110).
func TestRouterNotFoundAndMethodNotAllowed(t *testing.T) {
	rig := newAPIRig(t, rigOptions{groups: true})
	p := wantProblem(t, rig.do("GET", "/nope", ""), 404, "an unknown path")
	if p.Instance != "/nope" || !strings.Contains(p.Detail, "no such endpoint") || p.RequestID == "" {
		t.Errorf("404: %+v", p)
	}
	for _, c := range []struct{ method, path, allow string }{
		{"PATCH", g1Path, "GET, PUT, DELETE"},
		{"DELETE", "/ns/default/rooms/r1/messages", "GET, POST"},
		{"POST", "/healthz", "GET"},
	} {
		rec := rig.do(c.method, c.path, "")
		p := wantProblem(t, rec, 405, c.method+" "+c.path)
		if got := rec.Header().Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
		if p.Instance != c.path || !strings.HasPrefix(p.Detail, c.method+" is not allowed here") {
			t.Errorf("%s %s: %+v", c.method, c.path, p)
		}
	}
}

// TestUndeclaredNamespaces: a namespace the server does not declare is a
// 404 naming those it serves (the first 10, by name); a malformed name is
// a 400 naming the ns parameter.
func TestUndeclaredNamespaces(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := testHub(t, nil, logger)
	decl := []Namespace{{Name: "default"}}
	for i := 10; i >= 0; i-- {
		name := fmt.Sprintf("n%02d", i)
		if _, err := h.AddNamespace(context.Background(), name, hub.NamespaceConfig{}); err != nil {
			t.Fatal(err)
		}
		decl = append(decl, Namespace{Name: name})
	}
	all, err := New(Config{Hub: h, Streams: &recStreams{}, Namespaces: decl, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	few, err := New(Config{Hub: h, Streams: &recStreams{}, Namespaces: decl[:10], Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	get := func(r http.Handler, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec
	}
	for _, c := range []struct {
		router http.Handler
		want   string
	}{
		{all, "serves default, n00, n01, n02, n03, n04, n05, n06, n07, n08, …: declare it"},
		{few, "serves default, n02, n03, n04, n05, n06, n07, n08, n09, n10: declare it"},
	} {
		for _, path := range []string{"/ns/chat", "/ns/chat/rooms/r1/messages"} {
			p := wantProblem(t, get(c.router, path), 404, path)
			if !strings.Contains(p.Detail, "namespace chat is not declared on this server, which "+c.want) {
				t.Errorf("%s: %q, want %q", path, p.Detail, c.want)
			}
		}
	}
	rec := get(all, "/ns/bad.name/rooms")
	wantField(t, rec, "ns", "1–64 of A-Z")
	// A declared namespace answers on its routes.
	if rec := get(all, "/ns/n10/rooms"); rec.Code != 200 {
		t.Fatalf("a declared namespace: %d %s", rec.Code, rec.Body)
	}
	// An unknown namespace in the config is refused at start.
	if _, err := New(Config{Hub: h, Namespaces: []Namespace{{Name: "missing"}}, Logger: logger}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("New with an undeclared hub namespace: %v", err)
	}
}

// TestServiceEndpoints: /healthz, /openapi.yaml, /ns (every namespace with
// its local counts, by name), /metrics and the web app when configured.
func TestServiceEndpoints(t *testing.T) {
	spec := []byte("openapi: 3.1.0\n")
	rig := newAPIRig(t, rigOptions{config: func(c *Config) {
		c.Spec = spec
		c.Metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "metrics here") })
		c.Web = func(notFound http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/app.js" {
					_, _ = io.WriteString(w, "app")
					return
				}
				notFound.ServeHTTP(w, r)
			})
		}
	}})
	if _, err := rig.hub.AddNamespace(context.Background(), "aaa", hub.NamespaceConfig{}); err != nil {
		t.Fatal(err)
	}
	rig.open(t, "", nil, "r1", "r2")
	rig.open(t, "", nil, "r1")
	var health map[string]string
	decodeJSON(t, rig.do("GET", "/healthz", ""), 200, &health)
	if health["status"] != "ok" {
		t.Fatalf("healthz: %v", health)
	}
	var ready map[string]string
	decodeJSON(t, rig.do("GET", "/readyz", ""), 200, &ready)
	if ready["status"] != "ready" {
		t.Fatalf("readyz without a Ready func: %v", ready)
	}
	rec := rig.do("GET", "/openapi.yaml", "")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/yaml" || rec.Body.String() != string(spec) {
		t.Fatalf("spec: %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var nss struct {
		Namespaces []namespaceInfo `json:"namespaces"`
	}
	decodeJSON(t, rig.do("GET", "/ns", ""), 200, &nss)
	if !slices.Equal(nss.Namespaces, []namespaceInfo{{"aaa", 0, 0}, {"default", 2, 2}}) {
		t.Fatalf("namespaces: %+v", nss.Namespaces)
	}
	if rec := rig.do("GET", "/metrics", ""); rec.Code != 200 || rec.Body.String() != "metrics here" {
		t.Fatalf("metrics: %d %q", rec.Code, rec.Body)
	}
	if rec := rig.do("GET", "/app.js", ""); rec.Code != 200 || rec.Body.String() != "app" {
		t.Fatalf("web app: %d %q", rec.Code, rec.Body)
	}
	wantProblem(t, rig.do("GET", "/missing.js", ""), 404, "a file the web app does not have")
	// Without them, neither is served.
	bare := newAPIRig(t, rigOptions{})
	wantProblem(t, bare.do("GET", "/metrics", ""), 404, "metrics when not configured")
	wantProblem(t, bare.do("GET", "/app.js", ""), 404, "the web app when not configured")
}

type observed struct {
	route, method string
	code          int
	streaming     bool
}

// TestAccessLogAndRequestMetrics: each request is observed with its route
// pattern (never its path), method, status and whether it streamed, and
// logged without its query string (it may carry a connection token).
func TestAccessLogAndRequestMetrics(t *testing.T) {
	var mu sync.Mutex
	var obs []observed
	logs := &lockedBuffer{}
	rig := newAPIRig(t, rigOptions{
		logger: slog.New(slog.NewTextHandler(logs, nil)),
		config: func(c *Config) {
			c.ObserveRequest = func(route, method string, code int, _ time.Duration, streaming bool) {
				mu.Lock()
				obs = append(obs, observed{route, method, code, streaming})
				mu.Unlock()
			}
		},
	})
	rig.do("POST", "/ns/default/rooms/r1/messages", `{"event":"e"}`)
	rig.do("GET", "/ns/default/events?last_event_id=e1-0.SECRETSECRETSECRETSECR", "")
	rig.do("GET", "/nope", "")
	want := []observed{
		{"/ns/default/rooms/{room}/messages", "POST", 202, false},
		{"/ns/default/events", "GET", 200, true},
		{"unmatched", "GET", 404, false},
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(obs, want) {
		t.Fatalf("observed %+v, want %+v", obs, want)
	}
	out := logs.String()
	if strings.Contains(out, "SECRET") || !strings.Contains(out, "path=/ns/default/events ") || !strings.Contains(out, "status=202") ||
		strings.Count(out, "msg=request ") != 3 {
		t.Fatalf("access log:\n%s", out)
	}
	// At warn level no line is written.
	quiet := &lockedBuffer{}
	rig = newAPIRig(t, rigOptions{logger: slog.New(slog.NewTextHandler(quiet, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	rig.do("GET", "/healthz", "")
	if quiet.String() != "" {
		t.Fatalf("logged at warn level: %s", quiet)
	}
}

// TestCORS: the namespace's origins may call with credentials (preflight
// answered with what they may send); any other origin gets no CORS
// headers, and its cross-site writes are refused.
func TestCORS(t *testing.T) {
	const app = "https://app.example"
	rig := newAPIRig(t, rigOptions{sec: Security{CORSOrigins: []string{app}}})
	preflight := func(origin, method, headers string) *httptest.ResponseRecorder {
		h := []string{"Origin: " + origin, "Access-Control-Request-Method: " + method}
		if headers != "" {
			h = append(h, "Access-Control-Request-Headers: "+headers)
		}
		return rig.do("OPTIONS", "/ns/default/rooms/r1/messages", "", h...)
	}
	rec := preflight(app, "POST", "authorization,content-type,last-event-id")
	hd := rec.Header()
	if rec.Code != 200 || hd.Get("Access-Control-Allow-Origin") != app || hd.Get("Access-Control-Allow-Credentials") != "true" ||
		hd.Get("Access-Control-Allow-Methods") != "POST" || hd.Get("Access-Control-Max-Age") != "600" ||
		!strings.EqualFold(hd.Get("Access-Control-Allow-Headers"), "authorization, content-type, last-event-id") {
		t.Fatalf("preflight from the app: %d %v", rec.Code, hd)
	}
	for _, c := range []struct{ origin, method, headers string }{
		{"https://evil.example", "POST", ""},
		{app, "PATCH", ""},
		{app, "POST", "x-other"},
	} {
		if got := preflight(c.origin, c.method, c.headers).Header().Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("preflight %+v: Access-Control-Allow-Origin %q, want none", c, got)
		}
	}
	rec = rig.do("POST", "/ns/default/rooms/r1/messages", `{"event":"e"}`, "Origin: "+app, "Sec-Fetch-Site: cross-site")
	if rec.Code != 202 || rec.Header().Get("Access-Control-Allow-Origin") != app || rec.Header().Get("Access-Control-Expose-Headers") != "Retry-After" {
		t.Fatalf("a cross-site publish from the app: %d %v", rec.Code, rec.Header())
	}
	rec = rig.do("POST", "/ns/default/rooms/r1/messages", `{"event":"e"}`, "Origin: https://evil.example", "Sec-Fetch-Site: cross-site")
	p := wantProblem(t, rec, 403, "a cross-site publish from another origin")
	if !strings.Contains(p.Detail, "cross-origin request refused") || rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("a cross-site publish from another origin: %q %v", p.Detail, rec.Header())
	}
	if n := rig.stored(t); n != 1 {
		t.Fatalf("%d messages stored, want the app's one", n)
	}
	// Without origins: no CORS at all, a preflight is a 405.
	bare := newAPIRig(t, rigOptions{})
	rec = bare.do("OPTIONS", "/ns/default/rooms/r1/messages", "", "Origin: "+app, "Access-Control-Request-Method: POST")
	wantProblem(t, rec, 405, "a preflight where CORS is off")
	if rec.Header().Get("Access-Control-Allow-Origin") != "" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("a preflight where CORS is off: %v", rec.Header())
	}
	// An origin that is not one is refused at start.
	for _, bad := range []string{"app.example", "https://app.example/path"} {
		_, err := New(Config{Hub: rig.hub, Streams: &recStreams{}, Namespaces: []Namespace{{Name: "default", Security: Security{CORSOrigins: []string{bad}}}}})
		if err == nil || !strings.Contains(err.Error(), "namespace default: cors origin") {
			t.Errorf("origin %q: %v", bad, err)
		}
	}
}

// TestProblemTable: every class of error gets its status and title, and
// the headers a client needs to act on it.
func TestProblemTable(t *testing.T) {
	for _, c := range []struct {
		err    error
		code   int
		title  string
		header string // "Name: value" expected, if any
	}{
		{fmt.Errorf("x: %w: %w", errBodyTimeout, hub.ErrInvalid), 408, "request timeout", "Connection: close"},
		{fmt.Errorf("x: %w: %w", errUnsupportedType, hub.ErrInvalid), 415, "unsupported media type", "Accept: application/json"},
		{fmt.Errorf("x: %w: %w", errHeaderTooLarge, hub.ErrInvalid), 431, "request header fields too large", ""},
		{fmt.Errorf("x: %w: %w", hub.ErrInvalid, hub.ErrUnauthorized), 400, "invalid request", ""},
		{fmt.Errorf("x: %w: %w", hub.ErrUnauthorized, hub.ErrForbidden), 401, "unauthorized", `WWW-Authenticate: Bearer realm="roomcast"`},
		{fmt.Errorf("x: %w: %w", hub.ErrForbidden, hub.ErrNotFound), 403, "forbidden", ""},
		{fmt.Errorf("x: %w: %w", hub.ErrNotFound, hub.ErrTooLarge), 404, "not found", ""},
		{fmt.Errorf("x: %w: %w", hub.ErrTooLarge, hub.ErrLimit), 413, "request too large", ""},
		{fmt.Errorf("x: %w: %w", hub.ErrLimit, hub.ErrSuperseded), 409, "limit reached", ""},
		{fmt.Errorf("x: %w: %w", hub.ErrSuperseded, hub.ErrRateLimited), 409, "delivery superseded", ""},
		{fmt.Errorf("x: %w: %w", hub.ErrRateLimited, hub.ErrResumeExpired), 429, "too many requests", "Retry-After: 1"},
		{fmt.Errorf("x: %w: %w", hub.ErrResumeExpired, hub.ErrStorageFull), 410, "position no longer available", ""},
		{fmt.Errorf("x: %w: %w", hub.ErrStorageFull, hub.ErrUnavailable), 507, "insufficient storage", "Retry-After: 5"},
		{fmt.Errorf("x: %w: %w", hub.ErrUnavailable, hub.ErrClosed), 503, "service unavailable", "Retry-After: 1"},
		{fmt.Errorf("x: %w", hub.ErrClosed), 503, "service unavailable", "Retry-After: 1"},
		{fmt.Errorf("x: %w", hub.ErrSlowConsumer), 500, "internal error", ""},
	} {
		logs := &lockedBuffer{}
		rec := httptest.NewRecorder()
		writeError(rec, httptest.NewRequest("GET", "/p", nil), slog.New(slog.NewTextHandler(logs, nil)), c.err)
		var p Problem
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || rec.Code != c.code || p.Status != c.code || p.Title != c.title ||
			p.Type != "about:blank" || p.Instance != "/p" || rec.Header().Get("Content-Type") != "application/problem+json" ||
			rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%v: %d %s, want %d %q", c.err, rec.Code, rec.Body, c.code, c.title)
			continue
		}
		if c.header != "" {
			k, v, _ := strings.Cut(c.header, ": ")
			if got := rec.Header().Get(k); got != v {
				t.Errorf("%v: %s %q, want %q", c.err, k, got, v)
			}
		}
		switch c.code {
		case 500:
			if p.Detail != "an unexpected error occurred; the request id identifies it in the server log" || !strings.Contains(logs.String(), "slow consumer") {
				t.Errorf("500: detail %q, log %q: the error must be logged, not shown", p.Detail, logs)
			}
		case 507:
			if !strings.HasPrefix(p.Detail, "the message was not stored: the server's data volume is full") {
				t.Errorf("507: detail %q", p.Detail)
			}
		default:
			if logs.String() != "" {
				t.Errorf("%v: logged %q", c.err, logs)
			}
		}
	}
	// A 429 keeps a Retry-After already set (the rate limiter's).
	rec := httptest.NewRecorder()
	rec.Header().Set("Retry-After", "7")
	writeError(rec, httptest.NewRequest("GET", "/p", nil), nil, hub.ErrRateLimited)
	if rec.Code != 429 || rec.Header().Get("Retry-After") != "7" {
		t.Fatalf("429 with a Retry-After set: %d %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	// A validation error lists its fields, and its detail says each.
	rec = httptest.NewRecorder()
	writeError(rec, httptest.NewRequest("GET", "/p", nil), nil, &validationError{fields: []FieldError{{"a", "is required"}, {"b[0]", "must be x"}}})
	var p Problem
	_ = json.Unmarshal(rec.Body.Bytes(), &p)
	if rec.Code != 400 || p.Detail != "a is required; b[0] must be x" || len(p.Errors) != 2 || p.Errors[1] != (FieldError{"b[0]", "must be x"}) {
		t.Fatalf("validation error: %d %+v", rec.Code, p)
	}
	if got := (&validationError{fields: []FieldError{{"a", "x"}, {"b", "y"}}}).Error(); got != "invalid request: a: x; b: y" {
		t.Fatalf("validationError.Error() = %q", got)
	}
}

// TestReadyzAsksWithADeadline: /readyz gives the engine's check 2 s.
func TestReadyzAsksWithADeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var left time.Duration
		rig := newAPIRig(t, rigOptions{config: func(c *Config) {
			c.Ready = func(ctx context.Context) error {
				if d, ok := ctx.Deadline(); ok {
					left = time.Until(d)
				}
				return nil
			}
		}})
		if rec := rig.do("GET", "/readyz", ""); rec.Code != 200 || left != 2*time.Second {
			t.Fatalf("readyz %d, the check had %v, want 2s", rec.Code, left)
		}
	})
}
