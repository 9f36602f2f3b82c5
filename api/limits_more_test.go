package api

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/roomcast/roomcast/internal/hub"
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
