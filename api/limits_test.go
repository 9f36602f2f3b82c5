package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/hub"
)

// holdStreams is an SSE endpoint that writes its headers and holds the
// stream until the request's context ends or hold passes; ended reports
// which (true: the context was cancelled first).
type holdStreams struct {
	hold  time.Duration
	ended chan bool
}

func (s holdStreams) Serve(w http.ResponseWriter, r *http.Request, _ *hub.Namespace, _ hub.OpenRequest) error {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	_ = http.NewResponseController(w).Flush()
	select {
	case <-r.Context().Done():
		s.ended <- true
	case <-time.After(s.hold):
		s.ended <- false
	}
	return nil
}

// limitsServer serves the API with lim on a loopback port.
func limitsServer(t *testing.T, lim Limits, streams Streams) (*httptest.Server, *recLog) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	log := &recLog{}
	h := testHub(t, log, logger)
	if streams == nil {
		streams = refuseStreams{}
	}
	r, err := New(Config{Hub: h, Streams: streams, Namespaces: []Namespace{{Name: "default", MaxBody: 64 << 10}}, Logger: logger, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(r)
	srv.Config.MaxHeaderBytes = ServerHeaderBytes(lim.MaxHeaderBytes)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, log
}

// rawConn sends a request by hand from source address from (e.g.
// "127.0.0.2"; "" for any), so that tests can send headers and part of a
// body and stop.
func rawConn(t *testing.T, srv *httptest.Server, from string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// slowPublish sends a publish's headers announcing 65,000 bytes of body and
// one byte of it.
func slowPublish(t *testing.T, c net.Conn) {
	t.Helper()
	if _, err := fmt.Fprintf(c, "POST /ns/default/rooms/lobby/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 65000\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
}

// answer reads the response on c (within limit) and then checks that the
// server closes the connection; it returns the response and its problem.
func answer(t *testing.T, c net.Conn, limit time.Duration) (*http.Response, Problem) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(limit))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer within %s: %v", limit, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var p Problem
	if err := json.Unmarshal(body, &p); err != nil || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("status %d, %s %q: not a problem+json answer", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	// The connection is closed by the server: no file held.
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("after the %d answer the connection is still open (%v)", resp.StatusCode, err)
	}
	return resp, p
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// TestSlowBodyIsCut: a body that does not arrive within BodyTimeout is
// answered 408 problem+json and its connection closed; nothing is stored.
func TestSlowBodyIsCut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	srv, log := limitsServer(t, Limits{BodyTimeout: timeout}, nil)
	c := rawConn(t, srv, "")
	start := time.Now()
	slowPublish(t, c)
	resp, p := answer(t, c, 10*time.Second)
	took := time.Since(start)
	if resp.StatusCode != http.StatusRequestTimeout || p.Status != http.StatusRequestTimeout || !strings.Contains(p.Detail, timeout.String()) {
		t.Fatalf("slow body answered %d %+v, want 408 naming %s", resp.StatusCode, p, timeout)
	}
	if took < timeout || took > timeout+5*time.Second {
		t.Errorf("slow body cut after %s, want about %s", took, timeout)
	}
	if n, _ := log.last(); n != 0 {
		t.Errorf("%d messages stored from a cut body", n)
	}
}

// TestBodyDeadlineSparesStreamsAndSlowHandlers: the deadline is set only on
// requests with a body and lifted once it is read whole, so an SSE stream
// (no body) lives past it, and a publish whose body arrived in time is
// answered even when its handler takes longer than the deadline.
func TestBodyDeadlineSparesStreamsAndSlowHandlers(t *testing.T) {
	const timeout = 200 * time.Millisecond
	streams := holdStreams{hold: 5 * timeout, ended: make(chan bool, 1)}
	srv, _ := limitsServer(t, Limits{BodyTimeout: timeout, MaxRequestsPerIP: 1}, streams)
	resp, err := http.Get(srv.URL + "/ns/default/rooms/lobby/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	// A stream does not count against MaxRequestsPerIP (1): a publish from
	// the same address is served while it is open.
	pub, err := http.Post(srv.URL+"/ns/default/rooms/lobby/messages", "application/json", strings.NewReader(`{"event":"e"}`))
	if err != nil {
		t.Fatal(err)
	}
	pub.Body.Close()
	if pub.StatusCode != http.StatusAccepted {
		t.Errorf("publish beside an open stream: %d, want 202", pub.StatusCode)
	}
	if cancelled := <-streams.ended; cancelled {
		t.Fatalf("the stream's context was cancelled before %s: the body deadline reached a bodiless request", 5*timeout)
	}

	// A handler slower than the deadline, after its body arrived whole:
	// hold it inside the API by a slow engine.
	slow := &slowLog{delay: 3 * timeout}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := testHub(t, slow, logger)
	r, err := New(Config{Hub: h, Streams: refuseStreams{}, Namespaces: []Namespace{{Name: "default", MaxBody: 1024}}, Logger: logger, Limits: Limits{BodyTimeout: timeout}})
	if err != nil {
		t.Fatal(err)
	}
	srv2 := httptest.NewServer(r)
	defer srv2.Close()
	pub, err = http.Post(srv2.URL+"/ns/default/rooms/lobby/messages", "application/json", strings.NewReader(`{"event":"e"}`))
	if err != nil {
		t.Fatal(err)
	}
	pub.Body.Close()
	if pub.StatusCode != http.StatusAccepted {
		t.Fatalf("publish whose store took %s (deadline %s): %d, want 202", slow.delay, timeout, pub.StatusCode)
	}
}

// slowLog stores after delay, unless the request is cancelled first.
type slowLog struct {
	recLog
	delay time.Duration
}

func (l *slowLog) Publish(ctx context.Context, ns string, o *hub.Outgoing) (hub.Position, bool, error) {
	select {
	case <-ctx.Done():
		return hub.Position{}, false, fmt.Errorf("publish: %w: %w", hub.ErrUnavailable, ctx.Err())
	case <-time.After(l.delay):
	}
	return l.recLog.Publish(ctx, ns, o)
}

// blockLog holds every publish until release is closed, counting those
// waiting.
type blockLog struct {
	recLog
	waiting atomic.Int64
	release chan struct{}
}

func (l *blockLog) Publish(ctx context.Context, ns string, o *hub.Outgoing) (hub.Position, bool, error) {
	l.waiting.Add(1)
	defer l.waiting.Add(-1)
	<-l.release
	return l.recLog.Publish(ctx, ns, o)
}

// TestRequestsPerIPAreCapped: with MaxRequestsPerIP requests in progress
// from one address, the next one from it is answered 429 at once without
// waiting for its body, and its connection closed, while another address
// is served; once they end the address is served again.
func TestRequestsPerIPAreCapped(t *testing.T) {
	const perIP = 5
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	log := &blockLog{release: make(chan struct{})}
	h := testHub(t, log, logger)
	r, err := New(Config{Hub: h, Streams: refuseStreams{}, Namespaces: []Namespace{{Name: "default", MaxBody: 1024}}, Logger: logger,
		Limits: Limits{BodyTimeout: time.Minute, MaxRequestsPerIP: perIP}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	defer srv.Close()
	local := func(ip string) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext,
		}}
	}
	one := local("127.0.0.1")
	var wg sync.WaitGroup
	for i := 0; i < perIP; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := one.Post(srv.URL+"/ns/default/rooms/lobby/messages", "application/json", strings.NewReader(`{"event":"e"}`))
			if err != nil {
				t.Errorf("held publish: %v", err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Errorf("held publish: %d, want 202 once released", resp.StatusCode)
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for log.waiting.Load() < perIP {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d publishes reached the store", log.waiting.Load(), perIP)
		}
		time.Sleep(time.Millisecond)
	}
	// One more from the same address, with a body that never comes: the
	// refusal does not wait for it.
	c := rawConn(t, srv, "127.0.0.1")
	start := time.Now()
	slowPublish(t, c)
	resp, p := answer(t, c, 5*time.Second)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the refusal took %s: it should not wait for the body", took)
	}
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(p.Detail, fmt.Sprint(perIP)) {
		t.Fatalf("request %d from one address: %d %+v (Retry-After %q), want 429 naming the cap", perIP+1, resp.StatusCode, p, resp.Header.Get("Retry-After"))
	}
	// Another address is served meanwhile.
	other, err := local("127.0.0.2").Get(srv.URL + "/ns/default/rooms")
	if err != nil {
		t.Fatal(err)
	}
	other.Body.Close()
	if other.StatusCode != http.StatusOK {
		t.Fatalf("a request from another address while one is at its cap: %d, want 200", other.StatusCode)
	}
	close(log.release)
	wg.Wait()
	ok, err := one.Get(srv.URL + "/ns/default/rooms")
	if err != nil {
		t.Fatal(err)
	}
	ok.Body.Close()
	if ok.StatusCode != http.StatusOK {
		t.Fatalf("a request once the others ended: %d, want 200", ok.StatusCode)
	}
}

// TestHeaderLimitIsProblemJSON: request headers past MaxHeaderBytes get a
// problem+json 431 from the API, up to the server's own cap
// (ServerHeaderBytes); past that, net/http answers in plain text before any
// handler runs (no hook exists), as documented.
func TestHeaderLimitIsProblemJSON(t *testing.T) {
	const limit = 8 << 10
	srv, _ := limitsServer(t, Limits{MaxHeaderBytes: limit}, nil)
	send := func(size int) (*http.Response, []byte) {
		c := rawConn(t, srv, "")
		fmt.Fprintf(c, "GET /ns/default/rooms HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", size))
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("headers of %d bytes: %v", size, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, body
	}
	if resp, body := send(limit / 2); resp.StatusCode != http.StatusOK {
		t.Fatalf("headers under the limit: %d %s", resp.StatusCode, body)
	}
	resp, body := send(limit + 1)
	var p Problem
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || resp.Header.Get("Content-Type") != "application/problem+json" ||
		json.Unmarshal(body, &p) != nil || p.Status != 431 || !strings.Contains(p.Detail, fmt.Sprint(limit)) {
		t.Fatalf("headers over the limit: %d %s %s, want a problem+json 431 naming %d", resp.StatusCode, resp.Header.Get("Content-Type"), body, limit)
	}
	resp, body = send(ServerHeaderBytes(limit) + 8<<10)
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("headers over the server's cap: %d %s %q, want net/http's plain-text 431", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

// TestMalformedRequestLineIsPlainText pins what README documents: a request
// line net/http cannot parse is answered by net/http itself, before any
// handler (no hook exists), in plain text.
func TestMalformedRequestLineIsPlainText(t *testing.T) {
	srv, _ := limitsServer(t, Limits{}, nil)
	c := rawConn(t, srv, "")
	fmt.Fprintf(c, "GET /ns/default/rooms with spaces HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("malformed request line: %d %s, want net/http's plain-text 400", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// TestJSONBodiesNeedJSONContentType: a publish labelled with another media
// type than application/json is refused 415 problem+json (nothing stored);
// JSON with parameters, in any case, or without a Content-Type is taken.
func TestJSONBodiesNeedJSONContentType(t *testing.T) {
	for _, tt := range []struct {
		ct   string
		want int
	}{
		{"", 202},
		{"application/json", 202},
		{"application/json; charset=utf-8", 202},
		{"Application/JSON", 202},
		{"text/plain", 415},
		{"text/plain;charset=UTF-8", 415},
		{"application/x-www-form-urlencoded", 415},
		{"multipart/form-data; boundary=x", 415},
		{"application/problem+json", 415},
		{"text/json", 415},
		{"application/json;;", 415},
	} {
		t.Run(tt.ct, func(t *testing.T) {
			rig := newPublishRig(t)
			req := httptest.NewRequest(http.MethodPost, "/ns/default/rooms/lobby/messages", strings.NewReader(`{"event":"e"}`))
			if tt.ct != "" {
				req.Header.Set("Content-Type", tt.ct)
			}
			rec := httptest.NewRecorder()
			rig.router.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("Content-Type %q: %d %s, want %d", tt.ct, rec.Code, rec.Body, tt.want)
			}
			n, _ := rig.log.last()
			if tt.want != 202 {
				var p Problem
				if n != 0 || rec.Header().Get("Content-Type") != "application/problem+json" || json.Unmarshal(rec.Body.Bytes(), &p) != nil || p.Status != 415 {
					t.Fatalf("Content-Type %q: stored %d, answer %s %s, want a problem+json 415 and nothing stored", tt.ct, n, rec.Header().Get("Content-Type"), rec.Body)
				}
				if rec.Header().Get("Accept") != "application/json" {
					t.Errorf("415 without Accept: application/json")
				}
			}
		})
	}
}

func TestIsStream(t *testing.T) {
	for _, tt := range []struct {
		method, path string
		want         bool
	}{
		{"GET", "/ns/default/events", true},
		{"GET", "/ns/default/rooms/lobby/events", true},
		{"HEAD", "/ns/default/rooms/lobby/events", true},
		{"POST", "/ns/default/rooms/lobby/events", false},
		{"GET", "/ns/default/rooms/events", false}, // the room named events
		{"GET", "/ns/default/rooms/events/members", false},
		{"GET", "/ns/default/rooms/lobby/groups/events", false},
		{"GET", "/events", false},
		{"GET", "/x/default/events", false},
	} {
		r := httptest.NewRequest(tt.method, tt.path, nil)
		if got := isStream(r); got != tt.want {
			t.Errorf("isStream(%s %s) = %v, want %v", tt.method, tt.path, got, tt.want)
		}
	}
}
