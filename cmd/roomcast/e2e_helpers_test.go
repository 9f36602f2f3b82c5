package main

// Helpers of the end-to-end suite (e2e_*_test.go). They only add to the
// harness (harness_test.go) and are prefixed e2e so that they cannot clash
// with helpers added there by others.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// e2eTimeout bounds every single wait of the suite.
const e2eTimeout = 10 * time.Second

// e2eClient is an open SSE connection with what its `connected` event said.
type e2eClient struct {
	*sseStream
	ID       string   // public connection id
	Token    string   // secret token
	Rooms    []string // rooms listed by `connected`
	Restored bool     // `connected` said restored:true
	FirstID  string   // the `connected` event's SSE id
	LastID   string   // the SSE id of the last event read through e2e helpers
}

// e2eConnected decodes a `connected` event.
func e2eConnected(t testing.TB, ev sseEvent) (id, token string, rooms []string, restored bool) {
	t.Helper()
	var d struct {
		ID       string   `json:"id"`
		Token    string   `json:"token"`
		NS       string   `json:"ns"`
		Rooms    []string `json:"rooms"`
		Restored bool     `json:"restored"`
	}
	if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
		t.Fatalf("connected data %q: %v", ev.Data, err)
	}
	if d.ID == "" || d.Token == "" || d.NS != "default" {
		t.Fatalf("connected data %q: want id, token and ns default", ev.Data)
	}
	if d.ID == d.Token {
		t.Fatalf("connected data %q: the token must not be the public id", ev.Data)
	}
	return d.ID, d.Token, d.Rooms, d.Restored
}

// e2eOpen subscribes to path (with an optional Last-Event-ID header) and
// reads its `connected` event.
func e2eOpen(t testing.TB, s *testServer, path, lastEventID string) *e2eClient {
	t.Helper()
	st := s.subscribe(t, path, lastEventID)
	ev := st.Expect("connected")
	c := &e2eClient{sseStream: st, FirstID: ev.ID, LastID: ev.ID}
	c.ID, c.Token, c.Rooms, c.Restored = e2eConnected(t, ev)
	if !strings.HasSuffix(ev.ID, "."+c.Token) {
		t.Fatalf("connected id %q does not end with the connection's token", ev.ID)
	}
	return c
}

// e2eMsg is an application message read off a stream.
type e2eMsg struct {
	EventID string // SSE id (epoch-seq.token)
	Event   string // SSE event name
	Env     map[string]any
	Raw     string
}

// ID returns the envelope's message id.
func (m e2eMsg) ID() string { s, _ := m.Env["id"].(string); return s }

// recv reads the next event, which must be an application message whose
// envelope names the same event as the SSE event line.
func (c *e2eClient) recv(t testing.TB) e2eMsg {
	t.Helper()
	ev := c.Next(e2eTimeout)
	if ev.Event == "connected" || ev.Event == "reset" || ev.Event == "error" {
		t.Fatalf("got %q event (data %s), want an application message", ev.Event, ev.Data)
	}
	env := ev.envelope(t)
	if env["event"] != ev.Event {
		t.Fatalf("SSE event %q but envelope event %v", ev.Event, env["event"])
	}
	id, _ := env["id"].(string)
	if id == "" || !strings.HasPrefix(ev.ID, id+".") {
		t.Fatalf("SSE id %q does not start with the envelope id %q", ev.ID, id)
	}
	c.LastID = ev.ID
	return e2eMsg{EventID: ev.ID, Event: ev.Event, Env: env, Raw: ev.Raw}
}

// expect reads len(ids) messages and checks their ids, in order: no gap, no
// duplicate, no reordering.
func (c *e2eClient) expect(t testing.TB, ids ...string) []e2eMsg {
	t.Helper()
	out := make([]e2eMsg, 0, len(ids))
	for i, want := range ids {
		m := c.recv(t)
		if m.ID() != want {
			t.Fatalf("message %d of %d: got id %s (event %q, data %v), want %s; all wanted: %v",
				i+1, len(ids), m.ID(), m.Event, m.Env["data"], want, ids)
		}
		out = append(out, m)
	}
	return out
}

// expectReset reads a `reset` event and returns its data.
func (c *e2eClient) expectReset(t testing.TB) map[string]any {
	t.Helper()
	ev := c.Expect("reset")
	var d map[string]any
	if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
		t.Fatalf("reset data %q: %v", ev.Data, err)
	}
	if r, _ := d["reason"].(string); r == "" {
		t.Fatalf("reset data %q: no reason", ev.Data)
	}
	if !strings.HasSuffix(ev.ID, "."+c.Token) {
		t.Fatalf("reset id %q does not carry the connection's token", ev.ID)
	}
	c.LastID = ev.ID
	return d
}

// e2eSeq parses the sequence of a message id or SSE id (epoch-seq[.token]).
func e2eSeq(t testing.TB, id string) uint64 {
	t.Helper()
	pos, _, _ := strings.Cut(id, ".")
	_, seq, ok := strings.Cut(pos, "-")
	n, err := strconv.ParseUint(seq, 10, 64)
	if !ok || err != nil {
		t.Fatalf("id %q: want epoch-seq[.token]", id)
	}
	return n
}

// e2eEpoch returns the epoch of a message id.
func e2eEpoch(t testing.TB, id string) string {
	t.Helper()
	epoch, _, ok := strings.Cut(id, "-")
	if !ok || epoch == "" {
		t.Fatalf("id %q: want epoch-seq", id)
	}
	return epoch
}

// e2ePosition drops the token of an SSE id: epoch-seq.
func e2ePosition(id string) string {
	pos, _, _ := strings.Cut(id, ".")
	return pos
}

// e2eSentinel publishes a namespace-wide message: every connection receives
// it, in order after everything published before. A client whose next
// message is the sentinel did not receive what was published before it.
func e2eSentinel(t testing.TB, s *testServer) string {
	t.Helper()
	return s.publish(t, "/ns/default/messages", map[string]any{"event": "sentinel", "data": time.Now().UnixNano()}, "")
}

// e2ePub publishes event with data to path and returns the message id.
func e2ePub(t testing.TB, s *testServer, path, event string, data any, token string) string {
	t.Helper()
	return s.publish(t, path, map[string]any{"event": event, "data": data}, token)
}

// e2eReq sends a request with arbitrary headers and returns the raw answer.
func e2eReq(t testing.TB, s *testServer, method, path string, body any, headers map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, requestBody(t, body))
	if err != nil {
		t.Fatalf("%s %q: %v", method, path, err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	client := &http.Client{Timeout: e2eTimeout}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %q: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %q: read body: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, raw
}

// e2eProblem sends a request that must fail with status want and an RFC 9457
// problem+json body; it returns the problem.
func e2eProblem(t testing.TB, s *testServer, method, path string, body any, headers map[string]string, want int) map[string]any {
	t.Helper()
	code, hdr, raw := e2eReq(t, s, method, path, body, headers)
	if code != want {
		t.Fatalf("%s %q: status %d, want %d; body %s", method, path, code, want, raw)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%s %q: Content-Type %q, want application/problem+json; body %s", method, path, ct, raw)
	}
	var p map[string]any
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("%s %q: problem is not JSON: %q", method, path, raw)
	}
	if st, _ := p["status"].(float64); int(st) != want {
		t.Fatalf("%s %q: problem status %v, want %d", method, path, p["status"], want)
	}
	if title, _ := p["title"].(string); title == "" {
		t.Fatalf("%s %q: problem without title: %s", method, path, raw)
	}
	return p
}

// e2eFieldError checks that a 400 problem names field (or one of the
// names separated by |) among its errors.
func e2eFieldError(t testing.TB, p map[string]any, field string) {
	t.Helper()
	errs, _ := p["errors"].([]any)
	for _, e := range errs {
		m, _ := e.(map[string]any)
		if name, _ := m["field"].(string); name != "" && strings.Contains("|"+field+"|", "|"+name+"|") {
			if msg, _ := m["message"].(string); msg == "" {
				t.Fatalf("field error %v has no message", m)
			}
			return
		}
	}
	t.Fatalf("problem %v: want a field error for %q", p, field)
}

// e2eGet does a GET that must answer 200 with JSON.
func e2eGet(t testing.TB, s *testServer, path string) map[string]any {
	t.Helper()
	code, out, _ := s.do(t, http.MethodGet, path, nil, "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200: %v", path, code, out)
	}
	return out
}

// e2eMembers returns a room's member count from GET /rooms/{room}.
func e2eMembers(t testing.TB, s *testServer, room string) int {
	t.Helper()
	out := e2eGet(t, s, "/ns/default/rooms/"+room)
	if out["name"] != room {
		t.Fatalf("GET room %s: name %v", room, out["name"])
	}
	n, ok := out["members"].(float64)
	if !ok {
		t.Fatalf("GET room %s: members %v", room, out["members"])
	}
	return int(n)
}

// e2eLogRecord is one server log line as key → value, whether the logger
// writes JSON or text (--log-format).
type e2eLogRecord map[string]string

// e2eParseLog parses one log line of either format.
func e2eParseLog(line string) e2eLogRecord {
	rec := e2eLogRecord{}
	if strings.HasPrefix(line, "{") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			return nil
		}
		for k, v := range m {
			if s, ok := v.(string); ok {
				rec[k] = s
			} else {
				b, _ := json.Marshal(v)
				rec[k] = string(b)
			}
		}
		return rec
	}
	rest := line
	for rest != "" {
		key, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		var val string
		if strings.HasPrefix(after, `"`) {
			q, err := strconv.QuotedPrefix(after)
			if err != nil {
				return rec
			}
			val, _ = strconv.Unquote(q)
			after = after[len(q):]
		} else {
			val, after, _ = strings.Cut(after, " ")
			after = " " + after
		}
		rec[strings.TrimSpace(key)] = val
		rest = strings.TrimLeft(after, " ")
	}
	return rec
}

// e2eLogs returns the server log records whose fields have the given values
// (pairs of key, value).
func e2eLogs(s *testServer, kv ...string) []e2eLogRecord {
	var out []e2eLogRecord
lines:
	for _, line := range strings.Split(s.logs.String(), "\n") {
		for i := 1; i < len(kv); i += 2 {
			if !strings.Contains(line, kv[i]) { // cheap filter before parsing
				continue lines
			}
		}
		rec := e2eParseLog(line)
		if rec == nil {
			continue
		}
		ok := true
		for i := 0; i+1 < len(kv); i += 2 {
			if rec[kv[i]] != kv[i+1] {
				ok = false
				break
			}
		}
		if ok && len(rec) > 0 {
			out = append(out, rec)
		}
	}
	return out
}

// e2eLogLines returns the raw server log lines containing every one of subs.
func e2eLogLines(s *testServer, subs ...string) []string {
	var out []string
	for _, line := range strings.Split(s.logs.String(), "\n") {
		ok := true
		for _, sub := range subs {
			if !strings.Contains(line, sub) {
				ok = false
				break
			}
		}
		if ok && line != "" {
			out = append(out, line)
		}
	}
	return out
}

// e2eWaitDisconnects waits until the server has logged n disconnects of
// connection id. The line is written once the connection is removed and its
// session saved, so a resume after it is deterministic.
func e2eWaitDisconnects(t testing.TB, s *testServer, id string, n int) e2eLogRecord {
	t.Helper()
	var recs []e2eLogRecord
	eventually(t, e2eTimeout, fmt.Sprintf("%d disconnect(s) of %s in the server log", n, id), func() bool {
		recs = e2eLogs(s, "msg", "disconnect", "conn_id", id)
		return len(recs) >= n
	})
	return recs[n-1]
}

// e2eLogTime returns the time of a log record.
func e2eLogTime(t testing.TB, rec e2eLogRecord) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, rec["time"])
	if err != nil {
		t.Fatalf("log record time %q: %v", rec["time"], err)
	}
	return ts
}

// e2eEqualJSON reports whether got (decoded JSON) equals want once want is
// itself encoded and decoded.
func e2eEqualJSON(t testing.TB, got, want any) bool {
	t.Helper()
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var w any
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(got, w)
}
