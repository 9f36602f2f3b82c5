package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// testServer is the real program (run) serving on a loopback port with its
// embedded engine on a temp dir.
type testServer struct {
	t      testing.TB
	URL    string
	Data   string
	cancel context.CancelFunc
	done   chan error
	logs   *syncBuffer
	// transport carries do's and subscribe's requests when set (a TLS
	// server's tests trust its certificate through it); nil: the default.
	transport http.RoundTripper
}

// httpClient is def, on s.transport when one is set.
func (s *testServer) httpClient(def *http.Client) *http.Client {
	if s.transport == nil {
		return def
	}
	return &http.Client{Transport: s.transport, Timeout: def.Timeout}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// addrWriter captures the "listening on http://…" (or https://) line.
type addrWriter struct {
	once sync.Once
	addr chan string
}

func (w *addrWriter) Write(p []byte) (int, error) {
	if u, ok := listenURL(string(p)); ok {
		w.once.Do(func() { w.addr <- u })
	}
	return len(p), nil
}

// listenURL finds the server's base URL (http:// or https://) in its output.
func listenURL(out string) (string, bool) {
	i := strings.Index(out, "http://")
	if j := strings.Index(out, "https://"); j >= 0 && (i < 0 || j < i) {
		i = j
	}
	if i < 0 {
		return "", false
	}
	return strings.Fields(out[i:])[0], true // the URL, without what follows it
}

// startServer runs the server with args added to --addr and --data (a new
// temp dir unless data is given via withData).
func startServer(t testing.TB, args ...string) *testServer {
	t.Helper()
	return startServerData(t, t.TempDir(), args...)
}

func startServerData(t testing.TB, data string, args ...string) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{t: t, Data: data, cancel: cancel, done: make(chan error, 1), logs: &syncBuffer{}}
	aw := &addrWriter{addr: make(chan string, 1)}
	full := append([]string{"--addr", "127.0.0.1:0", "--data", data, "--log-level", "debug", "--shutdown-timeout", "5s"}, args...)
	go func() { s.done <- run(ctx, full, func(string) string { return "" }, aw, s.logs) }()
	select {
	case s.URL = <-aw.addr:
	case err := <-s.done:
		cancel()
		t.Fatalf("server did not start: %v\nlogs:\n%s", err, s.logs.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("server did not start within 30s\nlogs:\n%s", s.logs.String())
	}
	t.Cleanup(s.Stop)
	return s
}

// Stop shuts the server down gracefully and waits for run to return.
func (s *testServer) Stop() {
	s.t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("run returned %v\nlogs:\n%s", err, s.logs.String())
		}
	case <-time.After(30 * time.Second):
		s.t.Errorf("server did not stop within 30s\nlogs:\n%s", s.logs.String())
	}
}

// requestClient bounds every request of do: the server's own retries end
// well within it (publish 8 s + 3 s, reads 10 s), a hang fails the test.
var requestClient = &http.Client{Timeout: time.Minute}

// do sends a JSON request (body may be nil, a string sent as is, or a value
// to encode) and decodes a JSON answer into a map.
func (s *testServer) do(t testing.TB, method, path string, body any, token string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, requestBody(t, body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.httpClient(requestClient).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: status %d, body is not JSON: %q", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, out, resp.Header
}

// requestBody is a request's body: nil, a string or []byte sent as is, an
// io.Reader sent chunked (no Content-Length), or a value encoded as JSON.
func requestBody(t testing.TB, body any) io.Reader {
	t.Helper()
	switch b := body.(type) {
	case nil:
		return nil
	case string:
		return strings.NewReader(b)
	case []byte:
		return bytes.NewReader(b)
	case io.Reader:
		return b
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.NewReader(buf)
	}
}

// publish posts to path and fails unless the answer is 202; it returns the
// message id.
func (s *testServer) publish(t testing.TB, path string, body any, token string) string {
	t.Helper()
	code, out, _ := s.do(t, http.MethodPost, path, body, token)
	if code != http.StatusAccepted {
		t.Fatalf("POST %s: status %d, want 202: %v", path, code, out)
	}
	id, _ := out["id"].(string)
	if id == "" {
		t.Fatalf("POST %s: no id in %v", path, out)
	}
	return id
}

// sseEvent is one event as read off the wire by the strict reader.
type sseEvent struct {
	ID    string
	Event string
	Data  string
	Retry string
	Raw   string // the exact lines of the event, comments included
}

func (e sseEvent) envelope(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(e.Data), &m); err != nil {
		t.Fatalf("event %q: data is not JSON: %q", e.Event, e.Data)
	}
	return m
}

// sseStream is a strict hand-written SSE reader: it checks that every line
// is a known field or a comment and keeps the raw bytes.
type sseStream struct {
	t        testing.TB
	resp     *http.Response
	cancel   context.CancelFunc
	events   chan sseEvent
	err      chan error
	Comments chan string
}

// subscribe opens path with an optional Last-Event-ID and returns the stream
// after checking the status and headers.
func (s *testServer) subscribe(t testing.TB, path, lastEventID string) *sseStream {
	t.Helper()
	st, code := s.trySubscribe(t, path, lastEventID)
	if code != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200", path, code)
	}
	return st
}

func (s *testServer) trySubscribe(t testing.TB, path, lastEventID string) (*sseStream, int) {
	t.Helper()
	var header map[string]string
	if lastEventID != "" {
		header = map[string]string{"Last-Event-ID": lastEventID}
	}
	return s.subscribeWith(t, path, header)
}

// subscribeWith opens an SSE stream with request headers; it returns nil
// and the status when the answer is not 200.
func (s *testServer) subscribeWith(t testing.TB, path string, header map[string]string) (*sseStream, int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := s.httpClient(http.DefaultClient).Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, resp.StatusCode
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q, want text/event-stream", ct)
	}
	if xa := resp.Header.Get("X-Accel-Buffering"); xa != "no" {
		t.Errorf("X-Accel-Buffering %q, want no", xa)
	}
	if rp := resp.Header.Get("Referrer-Policy"); rp != "no-referrer" {
		t.Errorf("Referrer-Policy %q, want no-referrer (the URL may carry a ticket)", rp)
	}
	st := &sseStream{t: t, resp: resp, cancel: cancel, events: make(chan sseEvent, 4096), err: make(chan error, 1), Comments: make(chan string, 64)}
	go st.read()
	t.Cleanup(st.Close)
	return st, resp.StatusCode
}

func (st *sseStream) read() {
	defer close(st.events)
	sc := bufio.NewScanner(st.resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var ev sseEvent
	var raw strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if ev.Data != "" || ev.Event != "" || ev.ID != "" {
				ev.Raw = raw.String()
				st.events <- ev
			}
			ev = sseEvent{}
			raw.Reset()
			continue
		}
		raw.WriteString(line + "\n")
		if strings.HasPrefix(line, ":") {
			select {
			case st.Comments <- strings.TrimSpace(line[1:]):
			default:
			}
			continue
		}
		field, value, ok := strings.Cut(line, ": ")
		if !ok {
			st.err <- fmt.Errorf("malformed SSE line %q", line)
			return
		}
		switch field {
		case "id":
			ev.ID = value
		case "event":
			ev.Event = value
		case "data":
			if ev.Data != "" {
				st.err <- fmt.Errorf("multi-line data in one event: %q", line)
				return
			}
			ev.Data = value
		case "retry":
			ev.Retry = value
		default:
			st.err <- fmt.Errorf("unknown SSE field in %q", line)
			return
		}
	}
	st.err <- sc.Err()
}

// Close ends the stream from the client side.
func (st *sseStream) Close() {
	st.cancel()
	st.resp.Body.Close()
}

// Next returns the next event or fails after timeout.
func (st *sseStream) Next(timeout time.Duration) sseEvent {
	st.t.Helper()
	select {
	case ev, ok := <-st.events:
		if !ok {
			st.t.Fatalf("stream ended while waiting for an event: %v", st.readErr())
		}
		return ev
	case <-time.After(timeout):
		st.t.Fatalf("no event within %s", timeout)
	}
	return sseEvent{}
}

// Expect reads the next event and checks its name.
func (st *sseStream) Expect(event string) sseEvent {
	st.t.Helper()
	ev := st.Next(10 * time.Second)
	if ev.Event != event {
		st.t.Fatalf("got event %q (data %s), want %q", ev.Event, ev.Data, event)
	}
	return ev
}

// NothingBefore checks that nothing arrived on the stream before a
// sentinel: it sends the sentinel as a direct message to connection id
// (with token, the credential to send it with) and expects it as the very
// next event — an absence proven by the order of one stream, not by a wait.
func (st *sseStream) NothingBefore(s *testServer, ns, id, token string) {
	st.t.Helper()
	s.publish(st.t, "/ns/"+ns+"/connections/"+id+"/messages", `{"event":"sentinel","data":null}`, token)
	st.Expect("sentinel")
}

// Ended waits until the server ends the stream.
func (st *sseStream) Ended(timeout time.Duration) {
	st.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case _, ok := <-st.events:
			if !ok {
				return
			}
		case <-deadline:
			st.t.Fatalf("stream still open after %s", timeout)
		}
	}
}

func (st *sseStream) readErr() error {
	select {
	case err := <-st.err:
		return err
	default:
		return nil
	}
}

// connected reads the `connected` event and returns its id and token.
func (st *sseStream) connected() (id, token, eventID string) {
	st.t.Helper()
	ev := st.Expect("connected")
	var d struct{ ID, Token string }
	if err := json.Unmarshal([]byte(ev.Data), &d); err != nil || d.ID == "" || d.Token == "" {
		st.t.Fatalf("connected data %q: %v", ev.Data, err)
	}
	return d.ID, d.Token, ev.ID
}

// eventually polls cond until it holds or fails after timeout.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
