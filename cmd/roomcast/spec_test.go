package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/golang-jwt/jwt/v5"

	"github.com/roomcast/roomcast"
	"github.com/roomcast/roomcast/internal/spectest"
)

// The tests of this file hold the real server to openapi.yaml: every REST
// operation is called with success and error cases, and every answer —
// status, headers, body — is validated against the spec with kin-openapi.
// Requests expected to succeed must also be valid by the spec, and requests
// refused for a rule the spec states (a pattern, a required field, an unknown
// field) must be invalid by the spec too, so that the spec's constraints and
// the server's validation cannot drift apart silently.

const specTimeout = 10 * time.Second

// specCheck validates real traffic against openapi.yaml.
type specCheck struct {
	s      *testServer
	doc    *openapi3.T
	router routers.Router
	// seen records, per operationId, the statuses validated (SSE events
	// validated are recorded as "event <name>").
	seen map[string]map[int]bool
}

func newSpecCheck(t *testing.T, s *testServer) *specCheck {
	t.Helper()
	doc, err := spectest.Load()
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	// Route against the test server rather than the documented one. The
	// legacy router, not gorillamux: it needs no module beyond kin-openapi.
	doc.Servers = openapi3.Servers{{URL: s.URL}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	return &specCheck{s: s, doc: doc, router: router, seen: map[string]map[int]bool{}}
}

// specReq is one call of the API.
type specReq struct {
	method, path string
	// body is nil, a string sent as is, or a value sent as JSON.
	body   any
	token  string            // sent as Authorization: Bearer <token>
	header map[string]string // more request headers
	want   int
	// specRejects says that the spec itself states the rule the request
	// breaks: request validation against the spec must fail too.
	specRejects bool
}

func (r specReq) String() string { return r.method + " " + r.path }

func (r specReq) bodyBytes(t *testing.T) []byte {
	t.Helper()
	switch b := r.body.(type) {
	case nil:
		return nil
	case string:
		return []byte(b)
	case []byte:
		return b
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		return buf
	}
}

func (c *specCheck) newRequest(t *testing.T, ctx context.Context, r specReq, body []byte) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.s.URL+r.path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	return req
}

// route finds the spec's operation for req; a request the spec does not
// describe at all is a failure.
func (c *specCheck) route(t *testing.T, req *http.Request) (*routers.Route, map[string]string) {
	t.Helper()
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s: no operation of openapi.yaml matches: %v", req.Method, req.URL.Path, err)
	}
	return route, params
}

// checkRequest validates req against the spec: it must be valid when the
// server accepts it and invalid when specRejects says so.
func (c *specCheck) checkRequest(t *testing.T, r specReq, req *http.Request) {
	t.Helper()
	wantValid := r.want < 300
	if !wantValid && !r.specRejects {
		return
	}
	route, params := c.route(t, req)
	err := openapi3filter.ValidateRequest(req.Context(), &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	})
	switch {
	case wantValid && err != nil:
		t.Errorf("%s: the server accepts this request but openapi.yaml does not: %v", r, err)
	case !wantValid && err == nil:
		t.Errorf("%s: the server refuses this request with %d but openapi.yaml accepts it", r, r.want)
	}
}

// call sends r, checks its status and validates the answer against the spec.
// It returns the answer's headers and body (nil for an event stream, which
// is closed at once).
func (c *specCheck) call(t *testing.T, r specReq) (http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), specTimeout)
	defer cancel()
	body := r.bodyBytes(t)
	c.checkRequest(t, r, c.newRequest(t, ctx, r, body))

	req := c.newRequest(t, ctx, r, body)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", r, err)
	}
	defer resp.Body.Close()
	var raw []byte
	if !specIsEventStream(resp.Header) {
		if raw, err = io.ReadAll(resp.Body); err != nil {
			t.Fatalf("%s: read body: %v", r, err)
		}
	}
	if resp.StatusCode != r.want {
		t.Errorf("%s: status %d, want %d; body %s", r, resp.StatusCode, r.want, raw)
	}
	c.checkResponse(t, req, resp, raw)
	return resp.Header, raw
}

func specIsEventStream(h http.Header) bool {
	return strings.HasPrefix(h.Get("Content-Type"), "text/event-stream")
}

// checkResponse validates resp (whose body raw has been read, unless it is an
// event stream) against the operation req matches.
func (c *specCheck) checkResponse(t *testing.T, req *http.Request, resp *http.Response, raw []byte) {
	t.Helper()
	route, params := c.route(t, req)
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}
	if specIsEventStream(resp.Header) {
		// An event stream never ends: its headers are validated here, its
		// events one by one (event).
		opts.ExcludeResponseBody = true
		rr := route.Operation.Responses.Status(resp.StatusCode)
		if rr == nil || rr.Value == nil || rr.Value.Content.Get("text/event-stream") == nil {
			t.Errorf("%s %s: answered %d text/event-stream, which openapi.yaml does not document", req.Method, req.URL.Path, resp.StatusCode)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Errorf("%s %s: Content-Type %q, want text/event-stream", req.Method, req.URL.Path, ct)
		}
	}
	err := openapi3filter.ValidateResponse(req.Context(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(raw)),
		Options:                opts,
	})
	if err != nil {
		t.Errorf("%s %s: the %d answer does not match openapi.yaml: %v\nbody: %s", req.Method, req.URL.Path, resp.StatusCode, err, raw)
	}
	c.record(route.Operation.OperationID, resp.StatusCode)
}

func (c *specCheck) record(op string, status int) {
	if c.seen[op] == nil {
		c.seen[op] = map[int]bool{}
	}
	c.seen[op][status] = true
}

// stream validates the answer that opened st (status, headers, content type)
// and that the request that opened it is valid by the spec.
func (c *specCheck) stream(t *testing.T, st *sseStream) {
	t.Helper()
	req := st.resp.Request
	r := specReq{method: req.Method, path: req.URL.RequestURI(), want: st.resp.StatusCode}
	check := req.Clone(context.Background())
	c.checkRequest(t, r, check)
	c.checkResponse(t, req, st.resp, nil)
}

// schema returns components/schemas/name.
func (c *specCheck) schema(t *testing.T, name string) *openapi3.Schema {
	t.Helper()
	ref := c.doc.Components.Schemas[name]
	if ref == nil || ref.Value == nil {
		t.Fatalf("openapi.yaml has no components/schemas/%s", name)
	}
	return ref.Value
}

// event validates an SSE event: its id against EventID and its data against
// the schema named (Connected, Reset, Envelope). It returns the data.
func (c *specCheck) event(t *testing.T, ev sseEvent, schema string) map[string]any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(ev.Data), &v); err != nil {
		t.Fatalf("event %q: data is not JSON: %q", ev.Event, ev.Data)
	}
	if err := c.schema(t, schema).VisitJSON(v, openapi3.MultiErrors()); err != nil {
		t.Errorf("event %q: data %s does not match %s: %v", ev.Event, ev.Data, schema, err)
	}
	if err := c.schema(t, "EventID").VisitJSON(ev.ID); err != nil {
		t.Errorf("event %q: id %q does not match EventID: %v", ev.Event, ev.ID, err)
	}
	c.record("event "+ev.Event, 0)
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("event %q: data %s is not an object", ev.Event, ev.Data)
	}
	return m
}

// requireSeen fails unless every operation of ops was validated with a 2xx
// answer and every status of statuses was validated at least once.
func (c *specCheck) requireSeen(t *testing.T, ops []string, statuses []int) {
	t.Helper()
	for _, op := range ops {
		ok := false
		for code := range c.seen[op] {
			ok = ok || code >= 200 && code < 300
		}
		if !ok {
			t.Errorf("operation %s was never validated with a success answer (seen %v)", op, specKeys(c.seen[op]))
		}
	}
	for _, code := range statuses {
		ok := false
		for _, m := range c.seen {
			ok = ok || m[code]
		}
		if !ok {
			t.Errorf("no %d answer was validated", code)
		}
	}
}

func specKeys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// operations lists the operationIds of the spec that have tag, or with tag
// "" those that have none of the streams, groups and security tags (each test
// covers one part; together they cover every operation).
func (c *specCheck) operations(tag string) []string {
	var out []string
	for _, item := range c.doc.Paths.Map() {
		for _, op := range item.Operations() {
			has := func(tag string) bool { return slices.Contains(op.Tags, tag) }
			if tag == "" && !has("streams") && !has("groups") && !has("security") || tag != "" && has(tag) {
				out = append(out, op.OperationID)
			}
		}
	}
	sort.Strings(out)
	return out
}

func specDecode(t *testing.T, what string, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: body is not a JSON object: %q", what, raw)
	}
	return m
}

// specFieldError fails unless the problem document raw lists field in errors.
func specFieldError(t *testing.T, what string, raw []byte, field string) {
	t.Helper()
	p := specDecode(t, what, raw)
	errs, _ := p["errors"].([]any)
	for _, e := range errs {
		if m, _ := e.(map[string]any); m["field"] == field {
			return
		}
	}
	t.Errorf("%s: problem %s does not name field %q", what, raw, field)
}

// specOtherEpoch returns a well-formed epoch different from the one of id.
func specOtherEpoch(t *testing.T, id string) string {
	t.Helper()
	epoch, _, ok := strings.Cut(id, "-")
	if !ok {
		t.Fatalf("message id %q has no epoch", id)
	}
	if epoch == "abcdef" {
		return "abcdee"
	}
	return "abcdef"
}

// TestSpecREST calls every REST operation of the real server with success
// and error answers and validates each against openapi.yaml.
func TestSpecREST(t *testing.T) {
	s := startServer(t, "--max-rooms-per-conn", "4")
	c := newSpecCheck(t, s)
	const ns = "/ns/default"
	const unknownID = "AAAAAAAAAAAAAAAAAAAAAA"

	a := s.subscribe(t, ns+"/events?rooms=lobby", "")
	aID, aTok, _ := a.connected()
	b := s.subscribe(t, ns+"/rooms/lobby/events", "")
	bID, bTok, _ := b.connected()
	big := `{"event":"x","data":"` + strings.Repeat("a", 65<<10) + `"}`

	t.Run("server", func(t *testing.T) {
		c.call(t, specReq{method: "GET", path: "/healthz", want: 200})
		c.call(t, specReq{method: "GET", path: "/readyz", want: 200})
		h, raw := c.call(t, specReq{method: "GET", path: "/openapi.yaml", want: 200})
		if !bytes.Equal(raw, roomcast.OpenAPI) {
			t.Errorf("/openapi.yaml serves %d bytes, not the embedded spec (%d bytes)", len(raw), len(roomcast.OpenAPI))
		}
		if ct := h.Get("Content-Type"); ct != "application/yaml" {
			t.Errorf("/openapi.yaml Content-Type %q, want application/yaml", ct)
		}
		c.call(t, specReq{method: "GET", path: "/", want: 200})
		if _, raw := c.call(t, specReq{method: "GET", path: "/metrics", want: 200}); !bytes.Contains(raw, []byte("# TYPE ")) {
			t.Errorf("/metrics: %.200s, want the Prometheus text format", raw)
		}
		_, raw = c.call(t, specReq{method: "GET", path: "/ns", want: 200})
		list, _ := specDecode(t, "/ns", raw)["namespaces"].([]any)
		if len(list) != 1 || list[0].(map[string]any)["name"] != "default" || list[0].(map[string]any)["connections"] != 2.0 {
			t.Errorf("/ns: %s, want the namespace default with 2 connections", raw)
		}
		_, raw = c.call(t, specReq{method: "GET", path: "/status", want: 200})
		st := specDecode(t, "/status", raw)
		nss, _ := st["namespaces"].([]any)
		nodes, _ := st["nodes"].([]any)
		if st["connections"] != 2.0 || st["cluster"] != nil || len(nodes) != 1 || len(nss) != 1 ||
			nss[0].(map[string]any)["auth"] != "open" || nss[0].(map[string]any)["credentials"] != false {
			t.Errorf("/status: %s, want 2 connections, no cluster, one node, namespace default open without credentials", raw)
		}
	})

	t.Run("namespace", func(t *testing.T) {
		c.call(t, specReq{method: "GET", path: "/ns/nope/rooms", want: 404})
		c.call(t, specReq{method: "POST", path: "/ns/nope/messages", body: `{"event":"x"}`, want: 404})
		_, raw := c.call(t, specReq{method: "GET", path: "/ns/bad.name/rooms", want: 400, specRejects: true})
		specFieldError(t, "malformed namespace", raw, "ns")
	})

	var firstMsg string
	t.Run("publish", func(t *testing.T) {
		p := ns + "/messages"
		_, raw := c.call(t, specReq{method: "POST", path: p, body: map[string]any{"event": "announcement", "data": "hi"}, want: 202})
		firstMsg, _ = specDecode(t, p, raw)["id"].(string)
		a.Expect("announcement")
		b.Expect("announcement")

		body := map[string]any{"event": "chat message", "data": map[string]any{"text": "hi"}, "rooms": []string{"lobby", "orders.eu"}, "except": []string{bID}, "id": "k-1"}
		_, raw = c.call(t, specReq{method: "POST", path: p, body: body, token: aTok, want: 202})
		first := specDecode(t, p, raw)
		_, raw = c.call(t, specReq{method: "POST", path: p, body: body, token: aTok, want: 202})
		again := specDecode(t, p, raw)
		if again["id"] != first["id"] || again["duplicate"] != true || first["duplicate"] != nil {
			t.Errorf("idempotent retry: first %v, then %v; want the same id, then duplicate true", first, again)
		}
		if env := a.Expect("chat message").envelope(t); env["from"] != aID {
			t.Errorf("from %v, want %s", env["from"], aID)
		}
		c.call(t, specReq{method: "POST", path: p, body: map[string]any{"event": "x", "data": nil, "rooms": []string{}}, want: 202})
		a.Expect("x")
		b.Expect("x")

		for _, bad := range []struct {
			body        any
			field       string
			specRejects bool
		}{
			{`{"event":"connected"}`, "event", true},
			{`{"event":""}`, "event", true},
			{`{"data":1}`, "event", true},
			{`{"event":"a\u0007b"}`, "event", true},
			{`{"event":"x","rooms":["a b"]}`, "rooms[0]", true},
			{`{"event":"x","except":["a..b"]}`, "except[0]", true},
			{map[string]any{"event": "x", "rooms": make([]string, 101)}, "rooms", true},
			{`{"event":"x","id":"caf\u00e9"}`, "id", true},
			{`{"event":"x","id":"` + strings.Repeat("k", 129) + `"}`, "id", true},
			{`{"event":"x","room":"lobby"}`, "", true},
			{`{"event":1}`, "", true},
			{`[]`, "", true},
			{``, "", true},
			{`{"event":"x"} {}`, "", false},
			{`{"event":"x","data":{]}`, "", false},
		} {
			_, raw := c.call(t, specReq{method: "POST", path: p, body: bad.body, want: 400, specRejects: bad.specRejects})
			if bad.field != "" {
				specFieldError(t, fmt.Sprintf("publish %v", bad.body), raw, bad.field)
			}
		}
		c.call(t, specReq{method: "POST", path: p, body: `{"event":"x"}`, token: unknownID, want: 401})
		c.call(t, specReq{method: "POST", path: p, body: `{"event":"x"}`, header: map[string]string{"Authorization": "Basic YTpi"}, want: 401})
		c.call(t, specReq{method: "POST", path: p, body: big, want: 413})
	})

	t.Run("publishBatch", func(t *testing.T) {
		p := ns + "/messages/batch"
		_, raw := c.call(t, specReq{method: "POST", path: p, token: aTok, want: 200,
			body: map[string]any{"messages": []any{
				map[string]any{"event": "batched", "data": 1, "rooms": []string{"lobby"}, "id": "kb-1"},
				map[string]any{"event": "batched", "data": 2, "rooms": []string{"lobby"}, "except": []string{aID}},
			}}})
		res, _ := specDecode(t, p, raw)["results"].([]any)
		if len(res) != 2 {
			t.Fatalf("batch results %s", raw)
		}
		a.Expect("batched")
		b.Expect("batched")
		b.Expect("batched")
		// (A message that breaks BatchMessage is answered 200 with its own
		// problem — lenient beyond the spec, which this check forbids: see
		// api's TestBatchReportsEachMessagesProblem and prism-check.)
		for _, bad := range []struct {
			body  any
			field string
		}{
			{`{"messages":[]}`, "messages"},
			{`{}`, "messages"},
			{`{"messages":[{"event":"x"}],"rooms":["lobby"]}`, ""},
			{`[]`, ""},
		} {
			_, raw := c.call(t, specReq{method: "POST", path: p, body: bad.body, want: 400, specRejects: true})
			if bad.field != "" {
				specFieldError(t, fmt.Sprintf("batch %v", bad.body), raw, bad.field)
			}
		}
		c.call(t, specReq{method: "POST", path: p, body: `{"messages":[{"event":"x"}]}`, token: unknownID, want: 401})
		c.call(t, specReq{method: "POST", path: p, body: `{"messages":[{"event":"x","data":"` + strings.Repeat("x", 1<<20) + `"}]}`, want: 413})
	})

	t.Run("publishToRoom", func(t *testing.T) {
		p := ns + "/rooms/lobby/messages"
		c.call(t, specReq{method: "POST", path: p, body: map[string]any{"event": "chat message", "data": map[string]any{"n": 1}, "except": []string{bID}, "id": "k-2"}, token: aTok, want: 202})
		a.Expect("chat message")
		c.call(t, specReq{method: "POST", path: ns + "/rooms/a..b/messages", body: `{"event":"x"}`, want: 400, specRejects: true})
		c.call(t, specReq{method: "POST", path: p, body: `{"event":"x","rooms":["a"]}`, want: 400, specRejects: true})
		c.call(t, specReq{method: "POST", path: p, body: `{"event":"x"}`, token: unknownID, want: 401})
		c.call(t, specReq{method: "POST", path: p, body: big, want: 413})
		c.call(t, specReq{method: "POST", path: "/ns/nope/rooms/lobby/messages", body: `{"event":"x"}`, want: 404})
	})

	t.Run("publishToConnection", func(t *testing.T) {
		c.call(t, specReq{method: "POST", path: ns + "/connections/" + aID + "/messages", body: `{"event":"private","data":{"text":"psst"},"id":"k-3"}`, want: 202})
		if env := a.Expect("private").envelope(t); env["to"] != aID {
			t.Errorf("direct message to %v, want %s", env["to"], aID)
		}
		// An unknown (well-formed) id is not an error: the message is stored.
		c.call(t, specReq{method: "POST", path: ns + "/connections/" + unknownID + "/messages", body: `{"event":"x"}`, want: 202})
		_, raw := c.call(t, specReq{method: "POST", path: ns + "/connections/short/messages", body: `{"event":"x"}`, want: 400, specRejects: true})
		specFieldError(t, "bad connection id", raw, "id")
		c.call(t, specReq{method: "POST", path: ns + "/connections/" + aID + "/messages", body: `{"event":"x","except":[]}`, want: 400, specRejects: true})
		c.call(t, specReq{method: "POST", path: ns + "/connections/" + aID + "/messages", body: `{"event":"x"}`, token: unknownID, want: 401})
		c.call(t, specReq{method: "POST", path: ns + "/connections/" + aID + "/messages", body: big, want: 413})
	})

	t.Run("rooms", func(t *testing.T) {
		_, raw := c.call(t, specReq{method: "GET", path: ns + "/rooms", want: 200})
		if rooms, _ := specDecode(t, "rooms", raw)["rooms"].([]any); len(rooms) != 1 || rooms[0].(map[string]any)["members"] != 2.0 {
			t.Errorf("rooms: %s, want lobby with 2 members", raw)
		}
		_, raw = c.call(t, specReq{method: "GET", path: ns + "/rooms/lobby", want: 200})
		if got := specDecode(t, "lobby", raw)["members"]; got != 2.0 {
			t.Errorf("lobby members %v, want 2", got)
		}
		_, raw = c.call(t, specReq{method: "GET", path: ns + "/rooms/orders.eu", want: 200})
		if got := specDecode(t, "orders.eu", raw)["members"]; got != 0.0 {
			t.Errorf("orders.eu members %v, want 0", got)
		}
		c.call(t, specReq{method: "GET", path: ns + "/rooms/.lobby", want: 400, specRejects: true})
		_, raw = c.call(t, specReq{method: "GET", path: ns + "/rooms/lobby/members", want: 200})
		if got, _ := specDecode(t, "members", raw)["members"].([]any); len(got) != 2 {
			t.Errorf("lobby members %s, want 2", raw)
		}
		c.call(t, specReq{method: "GET", path: ns + "/rooms/a%20b/members", want: 400, specRejects: true})
		c.call(t, specReq{method: "GET", path: "/ns/nope/rooms/lobby/members", want: 404})
	})

	t.Run("membership", func(t *testing.T) {
		m := func(room, id string) string { return ns + "/rooms/" + room + "/members/" + id }
		_, raw := c.call(t, specReq{method: "PUT", path: m("r1", aID), token: aTok, want: 200})
		if got := specDecode(t, "join", raw); got["changed"] != true || got["member"] != true {
			t.Errorf("join: %s, want changed and member", raw)
		}
		_, raw = c.call(t, specReq{method: "PUT", path: m("r1", aID), token: aTok, want: 200})
		if got := specDecode(t, "join again", raw); got["changed"] != false {
			t.Errorf("join again: %s, want changed false", raw)
		}
		c.call(t, specReq{method: "PUT", path: m("a..b", aID), token: aTok, want: 400, specRejects: true})
		c.call(t, specReq{method: "PUT", path: m("r1", "short"), token: aTok, want: 400, specRejects: true})
		c.call(t, specReq{method: "PUT", path: m("r1", aID), want: 401})
		c.call(t, specReq{method: "PUT", path: m("r1", aID), header: map[string]string{"Authorization": "Basic YTpi"}, want: 401})
		c.call(t, specReq{method: "PUT", path: m("r1", aID), token: "not-a-token", want: 401})
		c.call(t, specReq{method: "PUT", path: m("r1", bID), token: aTok, want: 403})
		c.call(t, specReq{method: "PUT", path: "/ns/nope/rooms/r1/members/" + aID, token: aTok, want: 404})
		c.call(t, specReq{method: "PUT", path: m("r2", aID), token: aTok, want: 200})
		c.call(t, specReq{method: "PUT", path: m("r3", aID), token: aTok, want: 200})
		c.call(t, specReq{method: "PUT", path: m("r4", aID), token: aTok, want: 409}) // lobby, r1–r3: the limit is 4

		_, raw = c.call(t, specReq{method: "DELETE", path: m("r1", aID), token: aTok, want: 200})
		if got := specDecode(t, "leave", raw); got["changed"] != true || got["member"] != false {
			t.Errorf("leave: %s, want changed and not member", raw)
		}
		_, raw = c.call(t, specReq{method: "DELETE", path: m("r1", aID), token: aTok, want: 200})
		if got := specDecode(t, "leave again", raw); got["changed"] != false {
			t.Errorf("leave again: %s, want changed false", raw)
		}
		c.call(t, specReq{method: "DELETE", path: m("r1", aID), want: 401})
		c.call(t, specReq{method: "DELETE", path: m("r1", bID), token: aTok, want: 403})
		c.call(t, specReq{method: "DELETE", path: m("r1", "short"), token: aTok, want: 400, specRejects: true})
	})

	t.Run("connections", func(t *testing.T) {
		_, raw := c.call(t, specReq{method: "GET", path: ns + "/connections/" + aID, want: 200})
		if got := specDecode(t, "connection", raw); got["id"] != aID || fmt.Sprint(got["rooms"]) != "[lobby r2 r3]" {
			t.Errorf("connection: %s, want %s in lobby, r2, r3", raw, aID)
		}
		c.call(t, specReq{method: "GET", path: ns + "/connections/" + unknownID, want: 404})
		c.call(t, specReq{method: "GET", path: ns + "/connections/bad!id", want: 400, specRejects: true})
	})

	t.Run("roomHistory", func(t *testing.T) {
		p := ns + "/rooms/lobby/messages"
		_, raw := c.call(t, specReq{method: "GET", path: p, want: 200})
		all, _ := specDecode(t, "history", raw)["messages"].([]any)
		if len(all) < 3 {
			t.Fatalf("history of lobby: %s, want at least 3 messages", raw)
		}
		_, raw = c.call(t, specReq{method: "GET", path: p + "?limit=1&after=" + firstMsg, want: 200})
		page := specDecode(t, "history page", raw)
		if msgs, _ := page["messages"].([]any); len(msgs) != 1 || page["last"] != msgs[0].(map[string]any)["id"] {
			t.Errorf("history after %s, limit 1: %s, want 1 message and last its id", firstMsg, raw)
		}
		// An SSE event id (with its token) is accepted as `after`.
		c.call(t, specReq{method: "GET", path: p + "?after=" + url.QueryEscape(firstMsg+"."+aTok), want: 200})
		_, raw = c.call(t, specReq{method: "GET", path: p + "?limit=0", want: 400, specRejects: true})
		specFieldError(t, "limit=0", raw, "limit")
		c.call(t, specReq{method: "GET", path: p + "?limit=many", want: 400, specRejects: true})
		_, raw = c.call(t, specReq{method: "GET", path: p + "?after=zz", want: 400, specRejects: true})
		specFieldError(t, "after=zz", raw, "after")
		c.call(t, specReq{method: "GET", path: p + "?after=" + specOtherEpoch(t, firstMsg) + "-1", want: 410})
		c.call(t, specReq{method: "GET", path: ns + "/rooms/a..b/messages", want: 400, specRejects: true})
		c.call(t, specReq{method: "GET", path: "/ns/nope/rooms/lobby/messages", want: 404})
	})

	t.Run("disconnect", func(t *testing.T) {
		p := ns + "/connections/" + bID
		c.call(t, specReq{method: "DELETE", path: ns + "/connections/short", token: bTok, want: 400, specRejects: true})
		c.call(t, specReq{method: "DELETE", path: p, want: 401})
		c.call(t, specReq{method: "DELETE", path: p, token: aTok, want: 403})
		c.call(t, specReq{method: "DELETE", path: p, token: bTok, want: 204})
		b.Ended(specTimeout)
		eventually(t, specTimeout, "the disconnected connection to be gone", func() bool {
			code, _, _ := s.do(t, "GET", p, nil, "")
			return code == http.StatusNotFound
		})
		c.call(t, specReq{method: "GET", path: p, want: 404})
		c.call(t, specReq{method: "DELETE", path: p, token: bTok, want: 401}) // its token died with it
	})

	t.Run("limits", func(t *testing.T) {
		// A JSON endpoint refuses other media types (the spec declares
		// application/json alone).
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded"} {
			_, raw := c.call(t, specReq{method: "POST", path: ns + "/rooms/lobby/messages", body: `{"event":"e"}`,
				header: map[string]string{"Content-Type": ct}, want: 415, specRejects: true})
			if !strings.Contains(string(raw), ct) {
				t.Errorf("415 for %s: %s, want it named", ct, raw)
			}
		}
		c.call(t, specReq{method: "PUT", path: ns + "/rooms/lobby/groups/g415", body: `{"ack_wait":"1m"}`,
			header: map[string]string{"Content-Type": "text/plain"}, want: 415, specRejects: true})
		// Headers past --max-header-bytes (32 KiB): a problem+json 431.
		c.call(t, specReq{method: "GET", path: ns + "/rooms", header: map[string]string{"X-Big": strings.Repeat("a", 40<<10)}, want: 431})
	})

	c.requireSeen(t, c.operations(""), []int{400, 401, 403, 404, 409, 410, 413, 415, 431})
}

// TestSpecSSE opens streams on both SSE routes and validates their answers,
// the connected, reset and message events against openapi.yaml, and the
// problems the SSE routes answer before streaming.
func TestSpecSSE(t *testing.T) {
	s := startServer(t, "--max-rooms-per-conn", "4", "--heartbeat", "100ms")
	c := newSpecCheck(t, s)
	const ns = "/ns/default"

	a := s.subscribe(t, ns+"/events?rooms=lobby,orders.eu", "")
	c.stream(t, a)
	ev := a.Expect("connected")
	conn := c.event(t, ev, "Connected")
	if ev.Retry != "2000" {
		t.Errorf("connected event: retry %q, want the documented default 2000: %q", ev.Retry, ev.Raw)
	}
	if fmt.Sprint(conn["rooms"]) != "[lobby orders.eu]" || conn["ns"] != "default" || conn["restored"] != false {
		t.Errorf("connected data %s, want rooms lobby and orders.eu of default, not restored", ev.Data)
	}
	aID, aTok := conn["id"].(string), conn["token"].(string)
	if !strings.HasSuffix(ev.ID, "."+aTok) {
		t.Errorf("connected id %q does not end with the token", ev.ID)
	}

	b := s.subscribe(t, ns+"/rooms/lobby/events", "")
	c.stream(t, b)
	ev = b.Expect("connected")
	bConn := c.event(t, ev, "Connected")
	bID, bTok := bConn["id"].(string), bConn["token"].(string)

	// One envelope of each shape: namespace-wide, one room with a sender,
	// several rooms, direct.
	pub := func(path string, body any, token string) string {
		t.Helper()
		_, raw := c.call(t, specReq{method: "POST", path: path, body: body, token: token, want: 202})
		id, _ := specDecode(t, path, raw)["id"].(string)
		return id
	}
	lastID := map[*sseStream]string{} // the id: of the last event read, per stream
	expectEnvelope := func(st *sseStream, event, id string) map[string]any {
		t.Helper()
		ev := st.Expect(event)
		env := c.event(t, ev, "Envelope")
		if env["id"] != id || !strings.HasPrefix(ev.ID, id+".") {
			t.Errorf("event %q: envelope id %v, event id %q; want %s", event, env["id"], ev.ID, id)
		}
		lastID[st] = ev.ID
		return env
	}
	id := pub(ns+"/messages", map[string]any{"event": "announcement", "data": "hello"}, "")
	if env := expectEnvelope(a, "announcement", id); env["room"] != nil || env["from"] != nil {
		t.Errorf("namespace-wide envelope %v, want room and from null", env)
	}
	expectEnvelope(b, "announcement", id)

	id = pub(ns+"/rooms/lobby/messages", map[string]any{"event": "chat message", "data": map[string]any{"text": "hi"}, "except": []string{aID}}, aTok)
	if env := expectEnvelope(b, "chat message", id); env["room"] != "lobby" || env["from"] != aID {
		t.Errorf("room envelope %v, want room lobby from %s", env, aID)
	}

	id = pub(ns+"/messages", map[string]any{"event": "multi", "data": []any{1, true}, "rooms": []string{"orders.eu", "lobby"}}, bTok)
	env := expectEnvelope(a, "multi", id)
	if fmt.Sprint(env["rooms"]) != "[orders.eu lobby]" || env["room"] != nil || env["from"] != bID {
		t.Errorf("multi-room envelope %v, want rooms [orders.eu lobby], room null, from %s", env, bID)
	}
	expectEnvelope(b, "multi", id)

	id = pub(ns+"/connections/"+aID+"/messages", map[string]any{"event": "private", "data": nil}, "")
	if env := expectEnvelope(a, "private", id); env["to"] != aID || env["data"] != nil {
		t.Errorf("direct envelope %v, want to %s, data null", env, aID)
	}

	// The last event id resumes b with its id and rooms (Last-Event-ID
	// header) and replays what came after it. The server still holds b's
	// stream, as when a client reconnects before the server noticed the
	// drop: the new stream takes b's place and the old one ends.
	missed := pub(ns+"/rooms/lobby/messages", map[string]any{"event": "while away", "data": 1}, "")
	b2 := s.subscribe(t, ns+"/rooms/lobby/events", lastID[b])
	c.stream(t, b2)
	ev = b2.Expect("connected")
	if got := c.event(t, ev, "Connected"); got["id"] != bID || got["restored"] != true {
		t.Errorf("resumed connection %s, want %s restored", ev.Data, bID)
	}
	expectEnvelope(b2, "while away", missed)
	b.Ended(specTimeout)

	// A position from another epoch of the store: connected, then reset
	// (last_event_id query).
	r := s.subscribe(t, ns+"/events?rooms=lobby&last_event_id="+specOtherEpoch(t, id)+"-1", "")
	c.stream(t, r)
	c.event(t, r.Expect("connected"), "Connected")
	reset := c.event(t, r.Expect("reset"), "Reset")
	if reason, _ := reset["reason"].(string); reason == "" {
		t.Errorf("reset without a reason: %v", reset)
	}
	// After the reset the stream is live.
	id = pub(ns+"/rooms/lobby/messages", map[string]any{"event": "after reset"}, "")
	expectEnvelope(r, "after reset", id)

	// Problems answered before streaming.
	for _, bad := range []specReq{
		{method: "GET", path: ns + "/events?rooms=a..b", want: 400, specRejects: true},
		{method: "GET", path: ns + "/events?rooms=lobby,", want: 400, specRejects: true},
		{method: "GET", path: ns + "/events?last_event_id=garbage", want: 400, specRejects: true},
		{method: "GET", path: ns + "/events", header: map[string]string{"Last-Event-ID": "1-2.short"}, want: 400, specRejects: true},
		{method: "GET", path: ns + "/events?rooms=a,b,c,d,e", want: 409},
		{method: "GET", path: "/ns/nope/events", want: 404},
		{method: "GET", path: ns + "/rooms/a..b/events", want: 400, specRejects: true},
		{method: "GET", path: ns + "/rooms/lobby/events", header: map[string]string{"Last-Event-ID": "garbage"}, want: 400, specRejects: true},
		{method: "GET", path: "/ns/nope/rooms/lobby/events", want: 404},
	} {
		c.call(t, bad)
	}

	// Heartbeats are SSE comments.
	select {
	case comment := <-a.Comments:
		if comment != "heartbeat" {
			t.Errorf("comment %q, want heartbeat", comment)
		}
	case <-time.After(specTimeout):
		t.Error("no heartbeat comment")
	}

	c.requireSeen(t, c.operations("streams"), []int{400, 404, 409})
	for _, name := range []string{"connected", "reset", "announcement"} {
		if c.seen["event "+name] == nil {
			t.Errorf("no %s event was validated", name)
		}
	}
}

// TestSpecCheckFails makes sure the checker itself can fail: answers that
// break the spec must be reported.
func TestSpecCheckFails(t *testing.T) {
	s := startServer(t)
	c := newSpecCheck(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), specTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", s.URL+"/ns/default/rooms/lobby", nil)
	if err != nil {
		t.Fatal(err)
	}
	route, params := c.route(t, req)
	for _, tc := range []struct {
		name   string
		status int
		ct     string
		body   string
	}{
		{"undocumented status", 418, "application/problem+json", `{"type":"about:blank","title":"x","status":418}`},
		{"missing field", 200, "application/json", `{"name":"lobby"}`},
		{"extra field", 200, "application/json", `{"name":"lobby","members":1,"extra":true}`},
		{"bad room name", 200, "application/json", `{"name":"a..b","members":1}`},
		{"problem without title", 404, "application/problem+json", `{"type":"about:blank","status":404}`},
		{"wrong content type", 200, "text/plain", `{"name":"lobby","members":1}`},
	} {
		err := openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
			Status:                 tc.status,
			Header:                 http.Header{"Content-Type": {tc.ct}},
			Body:                   io.NopCloser(strings.NewReader(tc.body)),
			Options:                &openapi3filter.Options{IncludeResponseStatus: true},
		})
		var re *openapi3filter.ResponseError
		if !errors.As(err, &re) {
			t.Errorf("%s: ValidateResponse returned %v, want a ResponseError", tc.name, err)
		}
	}
	var v any = map[string]any{"id": "x", "token": "y", "ns": "default", "rooms": []any{}, "restored": false}
	if err := c.schema(t, "Connected").VisitJSON(v); err == nil {
		t.Error("a connected event with malformed id and token validates against Connected")
	}
	v = map[string]any{"id": "1-1", "ns": "default", "room": nil, "event": "x", "from": nil, "ts": "yesterday", "data": nil}
	if err := c.schema(t, "Envelope").VisitJSON(v); err == nil {
		t.Error("an envelope with a malformed ts validates against Envelope")
	}
}

// TestSpecGroups drives a consumer group through its whole life — created
// ahead, a member's stream, deliveries acknowledged, refused, parked,
// replayed and dropped, deleted — and validates every answer and delivery
// against openapi.yaml.
func TestSpecGroups(t *testing.T) {
	s := startServer(t)
	c := newSpecCheck(t, s)
	const ns = "/ns/default"
	const g = ns + "/rooms/orders/groups/drivers"

	c.call(t, specReq{method: "GET", path: g, want: 404})
	c.call(t, specReq{method: "GET", path: g + "/dead", want: 404})
	c.call(t, specReq{method: "DELETE", path: ns + "/rooms/orders/groups/missing", want: 404})
	c.call(t, specReq{method: "GET", path: ns + "/rooms/orders/groups/bad.name", want: 400, specRejects: true})

	// Created ahead with max_deliver 1, so that a refused delivery is parked.
	_, raw := c.call(t, specReq{method: "PUT", path: g, body: map[string]any{"ack_wait": "1m", "max_deliver": 1, "max_in_flight": 5}, want: 200})
	if cfg, _ := specDecode(t, "PUT group", raw)["config"].(map[string]any); cfg["max_deliver"] != 1.0 || cfg["ack_wait"] != "1m0s" {
		t.Errorf("PUT group: %s, want max_deliver 1 and ack_wait 1m0s", raw)
	}
	c.call(t, specReq{method: "PUT", path: g, want: 200}) // no body: idempotent
	for _, bad := range []string{`{"ack_wait":"forever"}`, `{"max_in_flight":-1}`, `{"max_deliver":1001}`, `{"nope":1}`} {
		c.call(t, specReq{method: "PUT", path: g, body: bad, want: 400, specRejects: true})
	}
	c.call(t, specReq{method: "PUT", path: g, body: `{"ack_wait":"1h"}` + strings.Repeat(" ", 17<<10), want: 413})
	_, raw = c.call(t, specReq{method: "GET", path: ns + "/rooms/orders/groups", want: 200})
	if groups, _ := specDecode(t, "groups", raw)["groups"].([]any); len(groups) != 1 {
		t.Errorf("groups of orders: %s, want drivers alone", raw)
	}
	c.call(t, specReq{method: "GET", path: ns + "/rooms/a..b/groups", want: 400, specRejects: true})
	c.call(t, specReq{method: "GET", path: ns + "/rooms/orders/events?group=bad.name", want: 400, specRejects: true})

	m := s.subscribe(t, ns+"/rooms/orders/events?group=drivers", "")
	c.stream(t, m)
	conn := c.event(t, m.Expect("connected"), "Connected")
	token, _ := conn["token"].(string)
	other := s.subscribe(t, ns+"/events", "")
	_, otherTok, _ := other.connected()
	eventually(t, specTimeout, "the member to join the group", func() bool {
		_, st, _ := s.do(t, "GET", g, nil, "")
		ms, _ := st["members"].([]any)
		return len(ms) == 1
	})

	// delivered expects the next group delivery of message id.
	delivered := func(id string, count float64) string {
		t.Helper()
		env := c.event(t, m.Expect("job"), "Envelope")
		ack, _ := env["ack_id"].(string)
		if (id != "" && env["id"] != id) || env["delivery"] != count || ack == "" {
			t.Fatalf("group delivery %v, want message %s, delivery %v, an ack_id", env, id, count)
		}
		return ack
	}
	publish := func(data string) string {
		t.Helper()
		_, raw := c.call(t, specReq{method: "POST", path: ns + "/rooms/orders/messages", body: `{"event":"job","data":"` + data + `"}`, want: 202})
		id, _ := specDecode(t, "publish", raw)["id"].(string)
		return id
	}
	deadLetter := func(id string) float64 {
		t.Helper()
		var seq float64
		eventually(t, specTimeout, "message "+id+" to be parked", func() bool {
			_, body, _ := s.do(t, "GET", g+"/dead", nil, "")
			dead, _ := body["dead_letters"].([]any)
			for _, d := range dead {
				dm, _ := d.(map[string]any)
				if msg, _ := dm["message"].(map[string]any); msg["id"] == id {
					seq, _ = dm["seq"].(float64)
					return true
				}
			}
			return false
		})
		return seq
	}

	id1 := publish("parcel 1")
	ack := delivered(id1, 1)
	acks := g + "/acks"
	c.call(t, specReq{method: "POST", path: acks, body: map[string]any{"ids": []string{ack}}, want: 401})
	c.call(t, specReq{method: "POST", path: acks, body: map[string]any{"ids": []string{ack}}, token: otherTok, want: 403})
	c.call(t, specReq{method: "POST", path: acks, body: map[string]any{"ids": []string{}}, token: token, want: 400, specRejects: true})
	c.call(t, specReq{method: "POST", path: acks, body: map[string]any{"ids": []string{ack}, "all": true}, token: token, want: 400, specRejects: true})
	c.call(t, specReq{method: "POST", path: ns + "/rooms/orders/groups/other/acks", body: map[string]any{"ids": []string{ack}}, token: token, want: 403})
	c.call(t, specReq{method: "POST", path: acks, body: map[string]any{"ids": []string{ack + "x"}}, token: token, want: 400})
	c.call(t, specReq{method: "POST", path: acks, body: `{"ids":["` + strings.Repeat("a", 65<<10) + `"]}`, token: token, want: 413})

	_, raw = c.call(t, specReq{method: "GET", path: g + "/messages", want: 200})
	if msgs, _ := specDecode(t, "group messages", raw)["messages"].([]any); len(msgs) != 1 || msgs[0].(map[string]any)["id"] != id1 {
		t.Errorf("unacknowledged messages: %s, want %s alone", raw, id1)
	}
	c.call(t, specReq{method: "GET", path: g + "/messages?limit=0", want: 400, specRejects: true})

	// Refused with max_deliver 1: parked, then replayed to the group.
	c.call(t, specReq{method: "POST", path: g + "/progress", body: map[string]any{"ids": []string{ack}}, token: token, want: 204})
	c.call(t, specReq{method: "POST", path: g + "/nacks", body: map[string]any{"ids": []string{ack}, "delay": "never"}, token: token, want: 400, specRejects: true})
	c.call(t, specReq{method: "POST", path: g + "/nacks", body: map[string]any{"ids": []string{ack}}, token: token, want: 204})
	seq := deadLetter(id1)
	// The park is announced to the member: a dead_letter notice, an
	// Envelope whose data is a DeadLetterNotice.
	notice := c.event(t, m.Expect("dead_letter"), "Envelope")
	if err := c.schema(t, "DeadLetterNotice").VisitJSON(notice["data"], openapi3.MultiErrors()); err != nil {
		t.Errorf("dead_letter data %v does not match DeadLetterNotice: %v", notice["data"], err)
	}
	// The acknowledged-then-parked delivery is no longer held: 409.
	c.call(t, specReq{method: "POST", path: acks, body: map[string]any{"ids": []string{ack}}, token: token, want: 409})
	c.call(t, specReq{method: "GET", path: g + "/dead?limit=10", want: 200})
	c.call(t, specReq{method: "GET", path: g + "/dead?limit=0", want: 400, specRejects: true})
	_, raw = c.call(t, specReq{method: "GET", path: g, want: 200})
	if got := specDecode(t, "group", raw)["dead_letters"]; got != 1.0 {
		t.Errorf("group: %s, want 1 dead letter", raw)
	}
	c.call(t, specReq{method: "POST", path: g + "/dead/abc/replay", want: 400, specRejects: true})
	c.call(t, specReq{method: "POST", path: g + "/dead/0/replay", want: 400, specRejects: true})
	c.call(t, specReq{method: "POST", path: fmt.Sprintf("%s/dead/%d/replay", g, int64(seq)+1000), want: 404})
	c.call(t, specReq{method: "POST", path: fmt.Sprintf("%s/dead/%d/replay", g, int64(seq)), want: 202})
	ack = delivered("", 1) // a new message id: the replay is stored again
	c.call(t, specReq{method: "POST", path: acks, body: map[string]any{"ids": []string{ack}}, token: token, want: 204})

	// Another one parked, then dropped.
	id2 := publish("parcel 2")
	c.call(t, specReq{method: "POST", path: g + "/nacks", body: map[string]any{"ids": []string{delivered(id2, 1)}}, token: token, want: 204})
	seq = deadLetter(id2)
	c.event(t, m.Expect("dead_letter"), "Envelope")
	dead := fmt.Sprintf("%s/dead/%d", g, int64(seq))
	c.call(t, specReq{method: "DELETE", path: dead, want: 204})
	c.call(t, specReq{method: "DELETE", path: dead, want: 404})
	c.call(t, specReq{method: "DELETE", path: g + "/dead/x", want: 400, specRejects: true})

	m.Close()
	c.call(t, specReq{method: "DELETE", path: g, want: 204})
	c.call(t, specReq{method: "GET", path: g, want: 404})

	c.requireSeen(t, c.operations("groups"), []int{400, 401, 403, 404, 413})
	if !c.seen["roomEvents"][200] {
		t.Error("the group stream was not validated")
	}
}

// specSecret is the HS256 key of the jwt namespaces of TestSpecSecurity.
const specSecret = "spec-secret-0123456789abcdef-0123456789"

// specSecurityConfig declares two namespaces with auth: jwt: secure, without
// limits, and limited, with tight rate and connection limits (its counters
// are shared by every request of the test, which all come from loopback).
const specSecurityConfig = `namespaces:
  - name: secure
    auth: jwt
    jwt_audience: roomcast-spec
    jwt_issuer: spec-issuer
    jwt_keys:
      - alg: HS256
        secret: "` + specSecret + `"
    api_keys: ["spec-admin-key-0123456789"]
  - name: limited
    auth: jwt
    jwt_audience: roomcast-spec
    jwt_keys:
      - alg: HS256
        secret: "` + specSecret + `"
    rate_connect: 3/1m
    rate_publish: 2/1m
    rate_join: 2/1m
    max_connections_per_user: 1
`

// specJWT mints a token of the jwt namespaces: claims are added to
// sub/aud/iss/exp, which a nil value removes.
func specJWT(t *testing.T, method jwt.SigningMethod, secret, sub string, grants map[string]any, claims map[string]any) string {
	t.Helper()
	mc := jwt.MapClaims{"sub": sub, "aud": "roomcast-spec", "iss": "spec-issuer", "exp": time.Now().Add(time.Hour).Unix(), "roomcast": grants}
	for k, v := range claims {
		if v == nil {
			delete(mc, k)
		} else {
			mc[k] = v
		}
	}
	tok, err := jwt.NewWithClaims(method, mc).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestSpecSecurity holds namespaces with auth: jwt to openapi.yaml: every
// operation under /ns/{ns} is called anonymously (401), with a credential
// that lacks its documented permission (403) and with one that has it
// (2xx); bad JWTs, tickets, cross-site requests, rate and connection limits
// (429 with Retry-After) and the 204 of a stream resuming a connection
// disconnected on request are validated against the spec too.
func TestSpecSecurity(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "roomcast.yaml")
	if err := os.WriteFile(cfg, []byte(specSecurityConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--config", cfg)
	c := newSpecCheck(t, s)
	const ns = "/ns/secure"
	const apiKey = "spec-admin-key-0123456789"
	const unknownID = "AAAAAAAAAAAAAAAAAAAAAA"
	hs := jwt.SigningMethodHS256

	alice := specJWT(t, hs, specSecret, "alice", map[string]any{
		"subscribe": []string{"chat", "orders.*"}, "publish": []string{"chat"}, "join": []string{"chat", "news"},
		"presence": []string{"chat"}, "history": []string{"chat"}, "ack": []string{"orders.*"},
	}, nil)
	bob := specJWT(t, hs, specSecret, "bob", map[string]any{"subscribe": []string{"chat"}}, nil)
	root := specJWT(t, hs, specSecret, "root", map[string]any{"admin": true}, nil)
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

	t.Run("documented", func(t *testing.T) {
		// Each operation of a namespace states its credentials, its
		// permission and the refusals it may answer: 429 everywhere
		// (streams: rate and connection limits; the rest: the bound on
		// requests in progress per address, api/limits.go), 431, and for a
		// body 408 and 415.
		for path, item := range c.doc.Paths.Map() {
			if !strings.HasPrefix(path, "/ns/{ns}/") {
				continue
			}
			for method, op := range item.Operations() {
				where := method + " " + path
				if op.Security == nil || len(*op.Security) == 0 {
					t.Errorf("%s declares no security alternatives", where)
				}
				if !strings.Contains(op.Description, "**Permission**") {
					t.Errorf("%s: its description does not state the permission it needs", where)
				}
				codes := []int{401, 403}
				if op.OperationID == "listRooms" {
					codes = []int{401} // filtered by presence, never 403
				}
				codes = append(codes, 429, 431)
				if op.RequestBody != nil {
					codes = append(codes, 408, 415)
				}
				for _, code := range codes {
					if op.Responses.Status(code) == nil {
						t.Errorf("%s does not document %d", where, code)
					}
				}
			}
		}
	})

	// A stream opened with a JWT carries its user into connected.
	a, code := s.subscribeWith(t, ns+"/events?rooms=chat", bearer(alice))
	if code != http.StatusOK {
		t.Fatalf("alice's stream: %d", code)
	}
	c.stream(t, a)
	conn := c.event(t, a.Expect("connected"), "Connected")
	if conn["user"] != "alice" {
		t.Errorf("alice's connected event: %v, want user alice", conn)
	}
	aID, aTok := conn["id"].(string), conn["token"].(string)

	t.Run("tickets", func(t *testing.T) {
		p := ns + "/tickets"
		c.call(t, specReq{method: "POST", path: p, want: 401})
		c.call(t, specReq{method: "POST", path: p, token: aTok, want: 401}) // a connection token
		c.call(t, specReq{method: "POST", path: p, token: bob, header: map[string]string{"Sec-Fetch-Site": "cross-site"}, want: 403})
		_, raw := c.call(t, specReq{method: "POST", path: p, token: bob, want: 201})
		ticket, _ := specDecode(t, "ticket", raw)["ticket"].(string)
		if ticket == "" {
			t.Fatalf("ticket: %s", raw)
		}
		b := s.subscribe(t, ns+"/rooms/chat/events?ticket="+url.QueryEscape(ticket), "")
		c.stream(t, b)
		if got := c.event(t, b.Expect("connected"), "Connected"); got["user"] != "bob" || fmt.Sprint(got["rooms"]) != "[chat]" {
			t.Errorf("ticket stream connected %v, want bob in chat", got)
		}
		// Single use, and only for what the JWT grants.
		c.call(t, specReq{method: "GET", path: ns + "/rooms/chat/events?ticket=" + url.QueryEscape(ticket), want: 401})
		c.call(t, specReq{method: "GET", path: ns + "/events?ticket=nope", want: 401})
		_, raw = c.call(t, specReq{method: "POST", path: p, token: bob, want: 201})
		ticket, _ = specDecode(t, "ticket", raw)["ticket"].(string)
		c.call(t, specReq{method: "GET", path: ns + "/rooms/orders.eu/events?ticket=" + url.QueryEscape(ticket), want: 403})
		_, raw = c.call(t, specReq{method: "POST", path: p, token: apiKey, want: 201})
		ticket, _ = specDecode(t, "ticket", raw)["ticket"].(string)
		k := s.subscribe(t, ns+"/events?rooms=secret&ticket="+url.QueryEscape(ticket), "")
		c.stream(t, k)
		if got := c.event(t, k.Expect("connected"), "Connected"); got["user"] != nil {
			t.Errorf("API key ticket stream connected %v, want no user", got)
		}
	})

	t.Run("credentials", func(t *testing.T) {
		// Refused JWTs: every one answers 401 with WWW-Authenticate.
		for name, tok := range map[string]string{
			"expired":        specJWT(t, hs, specSecret, "alice", nil, map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}),
			"no exp":         specJWT(t, hs, specSecret, "alice", nil, map[string]any{"exp": nil}),
			"audience":       specJWT(t, hs, specSecret, "alice", nil, map[string]any{"aud": "another-service"}),
			"issuer":         specJWT(t, hs, specSecret, "alice", nil, map[string]any{"iss": "mallory"}),
			"key":            specJWT(t, hs, "another-secret-0123456789abcdef-0123", "alice", nil, nil),
			"algorithm":      specJWT(t, jwt.SigningMethodHS512, specSecret, "alice", nil, nil),
			"bad pattern":    specJWT(t, hs, specSecret, "alice", map[string]any{"presence": []string{"a..b"}}, nil),
			"unknown token":  unknownID,
			"unknown apikey": "not-the-admin-key-0123456789",
		} {
			h, _ := c.call(t, specReq{method: "GET", path: ns + "/rooms/chat", token: tok, want: 401})
			if h.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: 401 without WWW-Authenticate", name)
			}
		}
		c.call(t, specReq{method: "GET", path: ns + "/rooms/chat", header: map[string]string{"Authorization": "Basic YTpi"}, want: 401})
		c.call(t, specReq{method: "GET", path: ns + "/rooms/chat", header: map[string]string{"Cookie": "roomcast_token=" + alice}, want: 200})
		c.call(t, specReq{method: "GET", path: ns + "/events", token: aTok, want: 401}) // a connection token opens no stream
		// A cross-site state-changing request is refused whatever its
		// credential; a cross-site GET is not.
		cross := map[string]string{"Sec-Fetch-Site": "cross-site"}
		c.call(t, specReq{method: "POST", path: ns + "/rooms/chat/messages", body: `{"event":"x"}`, token: alice, header: cross, want: 403})
		c.call(t, specReq{method: "GET", path: ns + "/rooms/chat", token: alice, header: cross, want: 200})
	})

	// The state the operations below act on: bob in chat (with his own
	// JWT), alice's group member on orders.eu, a group created by admin.
	b, code := s.subscribeWith(t, ns+"/rooms/chat/events", bearer(bob))
	if code != http.StatusOK {
		t.Fatalf("bob's stream: %d", code)
	}
	bConn := c.event(t, b.Expect("connected"), "Connected")
	bID := bConn["id"].(string)
	g := ns + "/rooms/orders.eu/groups/drivers"
	c.call(t, specReq{method: "PUT", path: g, body: map[string]any{"max_deliver": 1}, token: root, want: 200})
	m, code := s.subscribeWith(t, ns+"/rooms/orders.eu/events?group=drivers", bearer(alice))
	if code != http.StatusOK {
		t.Fatalf("alice's group stream: %d", code)
	}
	c.stream(t, m)
	mTok := c.event(t, m.Expect("connected"), "Connected")["token"].(string)
	c.call(t, specReq{method: "POST", path: ns + "/rooms/orders.eu/messages", body: `{"event":"job","data":1}`, token: apiKey, want: 202})
	c.call(t, specReq{method: "POST", path: ns + "/rooms/orders.eu/messages", body: `{"event":"job","data":2}`, token: apiKey, want: 202})
	ack1, _ := c.event(t, m.Expect("job"), "Envelope")["ack_id"].(string)
	ack2, _ := c.event(t, m.Expect("job"), "Envelope")["ack_id"].(string)

	// Every operation: anonymous (401), without the permission (403, nil
	// when none can be lacking), with it (the status wanted).
	type opCase struct {
		op, method, path string
		body             any
		denied           string // a credential lacking the permission
		allowed          string // one having it
		want             int
		check            func(t *testing.T, raw []byte)
	}
	mem := func(room, id string) string { return ns + "/rooms/" + room + "/members/" + id }
	users := func(raw []byte) string {
		var out []string
		ms, _ := specDecode(t, "members", raw)["members"].([]any)
		for _, m := range ms {
			u, _ := m.(map[string]any)["user"].(string)
			out = append(out, u)
		}
		sort.Strings(out)
		return fmt.Sprint(out)
	}
	for _, tc := range []opCase{
		{op: "listRooms", method: "GET", path: ns + "/rooms", allowed: alice, want: 200, check: func(t *testing.T, raw []byte) {
			// Only rooms with presence granted: chat, not secret.
			if rooms, _ := specDecode(t, "rooms", raw)["rooms"].([]any); len(rooms) != 1 || rooms[0].(map[string]any)["name"] != "chat" {
				t.Errorf("alice's rooms: %s, want chat alone", raw)
			}
		}},
		{op: "getRoom", method: "GET", path: ns + "/rooms/chat", denied: bob, allowed: alice, want: 200},
		{op: "getRoom (other room)", method: "GET", path: ns + "/rooms/secret", denied: alice, allowed: apiKey, want: 200},
		{op: "listMembers", method: "GET", path: ns + "/rooms/chat/members", denied: bob, allowed: aTok, want: 200, check: func(t *testing.T, raw []byte) {
			if got := users(raw); got != "[alice bob]" {
				t.Errorf("members of chat: users %s, want [alice bob]; %s", got, raw)
			}
		}},
		{op: "roomHistory", method: "GET", path: ns + "/rooms/chat/messages", denied: bob, allowed: alice, want: 200},
		{op: "publish", method: "POST", path: ns + "/messages", body: `{"event":"x","rooms":["chat"]}`, denied: bob, allowed: alice, want: 202},
		{op: "publish (namespace-wide)", method: "POST", path: ns + "/messages", body: `{"event":"x"}`, denied: alice, allowed: root, want: 202},
		{op: "publishBatch", method: "POST", path: ns + "/messages/batch", body: `{"messages":[{"event":"x","rooms":["chat"]},{"event":"y"}]}`, denied: bob, allowed: root, want: 200},
		{op: "publishToRoom", method: "POST", path: ns + "/rooms/chat/messages", body: `{"event":"x"}`, denied: bob, allowed: aTok, want: 202},
		{op: "publishToConnection", method: "POST", path: ns + "/connections/" + bID + "/messages", body: `{"event":"x"}`, denied: alice, allowed: apiKey, want: 202},
		{op: "joinRoom", method: "PUT", path: mem("news", aID), denied: bob, allowed: alice, want: 200},
		{op: "joinRoom (no join grant)", method: "PUT", path: mem("secret", aID), denied: alice, allowed: root, want: 200},
		{op: "leaveRoom", method: "DELETE", path: mem("news", aID), denied: bob, allowed: aTok, want: 200},
		{op: "getConnection", method: "GET", path: ns + "/connections/" + aID, denied: bob, allowed: alice, want: 200, check: func(t *testing.T, raw []byte) {
			if got := specDecode(t, "connection", raw); got["user"] != "alice" || fmt.Sprint(got["rooms"]) != "[chat secret]" {
				t.Errorf("alice's connection: %s, want user alice in chat and secret", raw)
			}
		}},
		{op: "listGroups", method: "GET", path: ns + "/rooms/orders.eu/groups", denied: bob, allowed: alice, want: 200},
		{op: "getGroup", method: "GET", path: g, denied: bob, allowed: mTok, want: 200},
		{op: "putGroup", method: "PUT", path: ns + "/rooms/orders.eu/groups/spare", denied: alice, allowed: apiKey, want: 200},
		{op: "deleteGroup", method: "DELETE", path: ns + "/rooms/orders.eu/groups/spare", denied: alice, allowed: root, want: 204},
		{op: "groupMessages", method: "GET", path: g + "/messages", denied: bob, allowed: alice, want: 200},
		{op: "progress", method: "POST", path: g + "/progress", body: map[string]any{"ids": []string{ack1}}, denied: aTok, allowed: mTok, want: 204},
		{op: "ack", method: "POST", path: g + "/acks", body: map[string]any{"ids": []string{ack1}}, denied: aTok, allowed: mTok, want: 204},
		{op: "nack", method: "POST", path: g + "/nacks", body: map[string]any{"ids": []string{ack2}}, denied: aTok, allowed: mTok, want: 204},
		{op: "listDead", method: "GET", path: g + "/dead", denied: alice, allowed: root, want: 200},
		{op: "replayDead", method: "POST", path: g + "/dead/1000/replay", denied: alice, allowed: apiKey, want: 404},
		{op: "dropDead", method: "DELETE", path: g + "/dead/1000", denied: alice, allowed: apiKey, want: 404},
		{op: "disconnect", method: "DELETE", path: ns + "/connections/" + bID, denied: alice, allowed: bob, want: 204},
	} {
		t.Run(tc.op, func(t *testing.T) {
			c.call(t, specReq{method: tc.method, path: tc.path, body: tc.body, want: 401})
			if tc.denied != "" {
				c.call(t, specReq{method: tc.method, path: tc.path, body: tc.body, token: tc.denied, want: 403})
			}
			_, raw := c.call(t, specReq{method: tc.method, path: tc.path, body: tc.body, token: tc.allowed, want: tc.want})
			if tc.check != nil {
				tc.check(t, raw)
			}
		})
	}
	// A JWT acknowledges nothing: deliveries are bound to a connection.
	c.call(t, specReq{method: "POST", path: g + "/acks", body: map[string]any{"ids": []string{ack1}}, token: alice, want: 401})
	// Streams: anonymous 401; a room not granted, or a group without ack, 403.
	c.call(t, specReq{method: "GET", path: ns + "/events", want: 401})
	c.call(t, specReq{method: "GET", path: ns + "/rooms/chat/events", want: 401})
	c.call(t, specReq{method: "GET", path: ns + "/events?rooms=chat,secret", token: alice, want: 403})
	c.call(t, specReq{method: "GET", path: ns + "/rooms/orders.eu/events?group=drivers", token: bob, want: 403})
	b.Ended(specTimeout)

	t.Run("disconnected resume", func(t *testing.T) {
		// Disconnected on request: the resume is answered 204, which
		// stops an EventSource.
		st, code := s.subscribeWith(t, ns+"/events?rooms=chat", bearer(alice))
		if code != http.StatusOK {
			t.Fatalf("stream: %d", code)
		}
		ev := st.Expect("connected")
		d := c.event(t, ev, "Connected")
		p := ns + "/connections/" + d["id"].(string)
		c.call(t, specReq{method: "DELETE", path: p, token: d["token"].(string), want: 204})
		st.Ended(specTimeout)
		c.call(t, specReq{method: "GET", path: ns + "/events?rooms=chat", token: alice, header: map[string]string{"Last-Event-ID": ev.ID}, want: 204})
	})

	t.Run("limits", func(t *testing.T) {
		const lns = "/ns/limited"
		// max_connections_per_user 1, then rate_connect 3/1m.
		st, code := s.subscribeWith(t, lns+"/events?rooms=chat", bearer(alice))
		if code != http.StatusOK {
			t.Fatalf("limited stream: %d", code)
		}
		c.stream(t, st)
		st.Expect("connected")
		h, _ := c.call(t, specReq{method: "GET", path: lns + "/events?rooms=chat", token: alice, want: 429})
		if h.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		c.call(t, specReq{method: "GET", path: lns + "/rooms/chat/events", want: 401})
		c.call(t, specReq{method: "GET", path: lns + "/rooms/chat/events", token: bob, want: 429})
		// rate_publish 2/1m.
		for range 2 {
			c.call(t, specReq{method: "POST", path: lns + "/rooms/chat/messages", body: `{"event":"x"}`, token: alice, want: 202})
		}
		c.call(t, specReq{method: "POST", path: lns + "/rooms/chat/messages", body: `{"event":"x"}`, token: alice, want: 429})
		c.call(t, specReq{method: "POST", path: lns + "/messages", body: `{"event":"x"}`, token: root, want: 429})
		c.call(t, specReq{method: "POST", path: lns + "/messages/batch", body: `{"messages":[{"event":"x","rooms":["chat"]}]}`, token: alice, want: 429})
		// rate_join 2/1m counts joins and leaves.
		c.call(t, specReq{method: "PUT", path: "/ns/limited/rooms/news/members/" + unknownID, want: 401})
		c.call(t, specReq{method: "DELETE", path: "/ns/limited/rooms/news/members/" + unknownID, want: 401})
		c.call(t, specReq{method: "PUT", path: "/ns/limited/rooms/news/members/" + unknownID, token: alice, want: 429})
		// Limits are per namespace: secure is not limited.
		c.call(t, specReq{method: "POST", path: ns + "/rooms/chat/messages", body: `{"event":"x"}`, token: alice, want: 202})
	})

	c.requireSeen(t, c.operations("security"), []int{201, 204, 401, 403, 429})
	// Every operation of a namespace was refused anonymously and, where a
	// permission can be lacking, for the lack of it.
	for path, item := range c.doc.Paths.Map() {
		if !strings.HasPrefix(path, "/ns/{ns}/") {
			continue
		}
		for _, op := range item.Operations() {
			if !c.seen[op.OperationID][401] {
				t.Errorf("%s was never validated with a 401", op.OperationID)
			}
			if op.OperationID != "listRooms" && !c.seen[op.OperationID][403] {
				t.Errorf("%s was never validated with a 403", op.OperationID)
			}
		}
	}
}
