package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/auth"
	"github.com/roomcast/roomcast/internal/hub"
	"github.com/roomcast/roomcast/internal/hub/hubtest"
)

// TestHeaderBytesCountsTheWire: the request line and each header as sent,
// names, values, ": " and CRLF included, and the blank line.
func TestHeaderBytesCountsTheWire(t *testing.T) {
	r := &http.Request{Method: "GET", RequestURI: "/x?a=1", Proto: "HTTP/1.1", Host: "h",
		Header: http.Header{"A": {"bc", "d"}, "Long-Name": {""}}}
	// "GET /x?a=1 HTTP/1.1\r\n" 21, "Host: h\r\n" 9, "A: bc\r\n" 7,
	// "A: d\r\n" 6, "Long-Name: \r\n" 13, "\r\n" 2.
	if got := headerBytes(r); got != 21+9+7+6+13+2 {
		t.Fatalf("headerBytes = %d, want %d", got, 21+9+7+6+13+2)
	}
	r.Host = ""
	if got := headerBytes(r); got != 21+7+6+13+2 {
		t.Fatalf("headerBytes without Host = %d, want %d", got, 21+7+6+13+2)
	}
}

func TestServerHeaderBytes(t *testing.T) {
	for limit, want := range map[int]int{0: http.DefaultMaxHeaderBytes, -5: http.DefaultMaxHeaderBytes, 1: 4, 8 << 10: 32 << 10} {
		if got := ServerHeaderBytes(limit); got != want {
			t.Errorf("ServerHeaderBytes(%d) = %d, want %d", limit, got, want)
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{{"abc", 3, "abc"}, {"abcd", 3, "abc…"}, {"", 0, ""}, {"ab", 5, "ab"}} {
		if got := truncate(c.s, c.n); got != c.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
	// A long Content-Type is named clipped in a 415.
	err := checkJSON(&http.Request{Header: http.Header{"Content-Type": {"text/" + strings.Repeat("x", 100)}}})
	if !errors.Is(err, errUnsupportedType) || !strings.Contains(err.Error(), `"text/`+strings.Repeat("x", 59)+`…"`) {
		t.Fatalf("checkJSON of a long type: %v", err)
	}
}

// TestPerIPCountsRequestsInProgress: up to limit per address, others
// unaffected, and an address's count goes away with its last request.
func TestPerIPCountsRequestsInProgress(t *testing.T) {
	p := &perIP{n: map[string]int{}}
	for i := range 2 {
		if !p.acquire("a", 2) {
			t.Fatalf("request %d of a refused under the limit", i)
		}
	}
	if p.acquire("a", 2) {
		t.Fatal("a third request of a accepted with a limit of 2")
	}
	if !p.acquire("b", 2) {
		t.Fatal("b refused while a is at its limit")
	}
	p.release("a")
	if !p.acquire("a", 2) {
		t.Fatal("a refused after one of its requests ended")
	}
	p.release("a")
	p.release("a")
	p.release("b")
	if len(p.n) != 0 {
		t.Fatalf("counts left after every request ended: %v", p.n)
	}
}

// TestConnLimiter: the node's, an address's and a user's limits, each
// independent, and every count going away with its last stream.
func TestConnLimiter(t *testing.T) {
	l := newConnLimiter(4)
	sec := &Security{MaxConnsPerIP: 2, MaxConnsPerUser: 1}
	r1, err := l.acquire(sec, "ns", "ip1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.acquire(sec, "ns", "ip2", "alice"); !errors.Is(err, hub.ErrRateLimited) || !strings.Contains(err.Error(), "1 connections of this user") {
		t.Fatalf("alice's second stream: %v, want the per-user limit", err)
	}
	if _, err := l.acquire(sec, "other", "ip2", "alice"); err != nil {
		t.Fatalf("alice in another namespace: %v (limits are per namespace)", err)
	}
	r2, err := l.acquire(sec, "ns", "ip1", "")
	if err != nil {
		t.Fatalf("an anonymous stream from ip1: %v", err)
	}
	if _, err := l.acquire(sec, "ns", "ip1", "bob"); !errors.Is(err, hub.ErrRateLimited) || !strings.Contains(err.Error(), "2 connections from this address") {
		t.Fatalf("a third stream from ip1: %v, want the per-address limit", err)
	}
	r4, err := l.acquire(sec, "ns", "ip3", "carol")
	if err != nil {
		t.Fatalf("a fourth stream on the node: %v", err)
	}
	if _, err := l.acquire(sec, "ns", "ip4", "dave"); !errors.Is(err, hub.ErrUnavailable) || !strings.Contains(err.Error(), "maximum of 4 connections") {
		t.Fatalf("a fifth stream on the node: %v, want the node's limit", err)
	}
	r1()
	r3, err := l.acquire(sec, "ns", "ip1", "alice")
	if err != nil {
		t.Fatalf("alice after her stream ended: %v", err)
	}
	r2()
	r3()
	r4()
	if l.total != 1 || len(l.perIP) != 1 || len(l.perUsr) != 1 {
		t.Fatalf("after the ns streams ended: total %d, per ip %v, per user %v; want only the other namespace's", l.total, l.perIP, l.perUsr)
	}
	// No limits: anything goes.
	free := newConnLimiter(0)
	for range 5 {
		if _, err := free.acquire(&Security{}, "ns", "ip", "u"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFieldErrorsWording: the validator's tags are worded for people; a
// tag without wording is named.
func TestFieldErrorsWording(t *testing.T) {
	a := &API{validate: newValidator()}
	var dst struct {
		Mail  string   `json:"mail" validate:"email"`
		Items []string `json:"items" validate:"min=2"`
		Name  string   `json:"name" validate:"max=3"`
		Skip  string   `json:"-"`
	}
	err := a.decodeBytes([]byte(`{"mail":"x","items":["a"],"name":"abcd"}`), &dst)
	var ve *validationError
	if !errors.As(err, &ve) || !errors.Is(err, hub.ErrInvalid) {
		t.Fatalf("decode: %v", err)
	}
	want := "mail fails email; items must have at least 2 items or characters; name must have at most 3 items or characters"
	if got := ve.sentence(); got != want {
		t.Fatalf("sentence %q, want %q", got, want)
	}
	// Not a struct: the validator's own error, as invalid.
	var notStruct []int
	if err := a.decodeBytes([]byte(`[1]`), &notStruct); !errors.Is(err, hub.ErrInvalid) || errors.As(err, &ve) {
		t.Fatalf("a non-struct: %v", err)
	}
	// A type error names the field; other JSON errors say what they say.
	if err := a.decodeBytes([]byte(`{"name":1}`), &dst); err == nil || !strings.Contains(err.Error(), `field "name" must be string`) {
		t.Fatalf("a number for a string: %v", err)
	}
	if err := a.decodeBytes([]byte(`"x"`), &dst); err == nil || !strings.Contains(err.Error(), "cannot unmarshal string into Go value of type struct") || strings.Contains(err.Error(), "json: ") {
		t.Fatalf("a string for an object: %v", err)
	}
}

// TestClientIP: the peer's address without its port; an address without
// a port as it is.
func TestClientIP(t *testing.T) {
	for addr, want := range map[string]string{"192.0.2.1:1234": "192.0.2.1", "[::1]:80": "::1", "pipe": "pipe"} {
		if got := clientIP(&http.Request{RemoteAddr: addr}); got != want {
			t.Errorf("clientIP(%q) = %q, want %q", addr, got, want)
		}
	}
}

// TestCredentialAtItsLengthLimit: a credential of MaxTokenLen characters is
// read (and refused for what it is); one more is too long.
func TestCredentialAtItsLengthLimit(t *testing.T) {
	rig := newAPIRig(t, rigOptions{})
	for n, want := range map[int]string{auth.MaxTokenLen: "neither a JWT", auth.MaxTokenLen + 1: "credential too long"} {
		p := wantProblem(t, rig.do("GET", "/ns/default/rooms", "", bearer(strings.Repeat("k", n))), 401, fmt.Sprint(n))
		if !strings.Contains(p.Detail, want) {
			t.Errorf("a credential of %d characters: %q, want %q", n, p.Detail, want)
		}
	}
}

// TestUnexpectedErrorWithoutALogger: a 500 written where no logger is at
// hand (middleware) goes to the default logger and hides the error.
func TestUnexpectedErrorWithoutALogger(t *testing.T) {
	logs := &lockedBuffer{}
	def := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(logs, nil)))
	defer slog.SetDefault(def)
	rec := httptest.NewRecorder()
	writeError(rec, httptest.NewRequest("GET", "/p", nil), nil, errors.New("secret detail"))
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "secret detail") || !strings.Contains(logs.String(), "secret detail") {
		t.Fatalf("%d %s, logged %q", rec.Code, rec.Body, logs)
	}
}

// fromAddr sends a request from addr through the rig's router.
func (rig *apiRig) fromAddr(addr, method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	req.RemoteAddr = addr
	for _, h := range hdr {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Add(k, v)
	}
	rec := httptest.NewRecorder()
	rig.router.ServeHTTP(rec, req)
	return rec
}

// TestRateLimitsPerAddressAndPerCredential: a rate holds per address and,
// separately, per credential (a ticket counts as one) whatever address it
// comes from; anonymous callers are limited by address alone.
func TestRateLimitsPerAddressAndPerCredential(t *testing.T) {
	rig := newAPIRig(t, rigOptions{sec: Security{Publish: Rate{N: 2, Per: time.Minute}, Connect: Rate{N: 2, Per: time.Minute}, Join: Rate{N: 0, Per: time.Minute}}})
	pub := func(addr string, hdr ...string) int {
		return rig.fromAddr(addr, "POST", "/ns/default/rooms/r1/messages", `{"event":"e"}`, append(hdr, "Content-Type: application/json")...).Code
	}
	tok := bearer(rigAPIKey)
	if a, b := pub("192.0.2.1:1", tok), pub("192.0.2.1:2", tok); a != 202 || b != 202 {
		t.Fatalf("two publishes with a key from one address: %d %d", a, b)
	}
	if c := pub("192.0.2.2:1", tok); c != 429 {
		t.Fatalf("the key's third publish, from another address: %d, want 429", c)
	}
	// Anonymous callers: the address's limit, ports aside.
	if a, b, c := pub("192.0.2.3:1"), pub("192.0.2.3:2"), pub("192.0.2.3:3"); a != 202 || b != 202 || c != 429 {
		t.Fatalf("anonymous publishes from one address: %d %d %d, want 202 202 429", a, b, c)
	}
	if c := pub("192.0.2.4:1"); c != 202 {
		t.Fatalf("an anonymous publish from another address: %d", c)
	}
	// N 0 is no limit, whatever Per says.
	for i := range 5 {
		if code := rig.fromAddr("192.0.2.9:1", "PUT", "/ns/default/rooms/r1/members/"+strings.Repeat("A", 22), "").Code; code != 401 {
			t.Fatalf("join %d with a zero rate: %d, want 401 (an anonymous caller), not 429", i, code)
		}
	}
	// A stream ticket is the credential of the stream routes.
	stream := func(addr string) int { return rig.fromAddr(addr, "GET", "/ns/default/events?ticket=t1", "").Code }
	if a, b, c := stream("192.0.2.5:1"), stream("192.0.2.6:1"), stream("192.0.2.7:1"); a != 401 || b != 401 || c != 429 {
		t.Fatalf("one ticket from three addresses: %d %d %d, want 401 401 429", a, b, c)
	}
}

// hookLog is a MemLog that runs hook during each publish.
type hookLog struct {
	*hubtest.MemLog
	hook func()
}

func (l *hookLog) Publish(ctx context.Context, ns string, o *hub.Outgoing) (hub.Position, bool, error) {
	if f := l.hook; f != nil {
		l.hook = nil
		f()
	}
	return l.MemLog.Publish(ctx, ns, o)
}

// TestRequestsInProgressAreCountedStreamsAside: while a request from an
// address is in progress, its next request is refused at
// MaxRequestsPerIP 1, but a stream is not (streams have their own limits).
func TestRequestsInProgressAreCountedStreamsAside(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	log := &hookLog{MemLog: &hubtest.MemLog{}}
	h := testHub(t, log, logger)
	r, err := New(Config{Hub: h, Streams: &recStreams{}, Logger: logger, Limits: Limits{MaxRequestsPerIP: 1},
		Namespaces: []Namespace{{Name: "default", MaxBody: 1024}}})
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, body string) int {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest(method, path, rd))
		return rec.Code
	}
	var stream, rooms int
	log.hook = func() {
		stream = do("GET", "/ns/default/events", "")
		rooms = do("GET", "/ns/default/rooms", "")
	}
	if code := do("POST", "/ns/default/rooms/r1/messages", `{"event":"e"}`); code != 202 {
		t.Fatalf("the publish: %d", code)
	}
	if stream != 200 || rooms != 429 {
		t.Fatalf("during a publish: stream %d, rooms %d; want 200 and 429", stream, rooms)
	}
	if code := do("GET", "/ns/default/rooms", ""); code != 200 {
		t.Fatalf("after the publish: %d", code)
	}
}

// TestHeaderLimitIsInclusive: a request whose line and headers are exactly
// MaxHeaderBytes passes; one byte more does not.
func TestHeaderLimitIsInclusive(t *testing.T) {
	req := httptest.NewRequest("GET", "/ns/default/rooms", nil)
	req.Header.Set("X-Pad", "abc")
	n := headerBytes(req)
	for limit, want := range map[int]int{n: 200, n - 1: 431} {
		rig := newAPIRig(t, rigOptions{config: func(c *Config) { c.Limits.MaxHeaderBytes = limit }})
		rec := httptest.NewRecorder()
		rig.router.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("headers of %d bytes, limit %d: %d, want %d", n, limit, rec.Code, want)
		}
	}
}

// TestZeroBodyTimeoutIsOff: without a body timeout, a body larger than
// what arrives with the headers is read whole over a real connection.
func TestZeroBodyTimeoutIsOff(t *testing.T) {
	srv, log := limitsServer(t, Limits{}, nil)
	body := `{"event":"e","data":"` + strings.Repeat("x", 60<<10) + `"}`
	resp, err := http.Post(srv.URL+"/ns/default/rooms/lobby/messages", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n, _ := log.last(); resp.StatusCode != http.StatusAccepted || n != 1 {
		t.Fatalf("a 60 KiB publish without a body timeout: %d, %d stored", resp.StatusCode, n)
	}
}
