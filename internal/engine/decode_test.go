package engine

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestDecodeKeepsBodiesOnOneLine: a stored or volatile body reaches an SSE
// data: line as it is, so the feed refuses one that could end that line
// early (CR, LF, NUL) or is not an object; compact JSON passes.
func TestDecodeKeepsBodiesOnOneLine(t *testing.T) {
	s := &nsStream{epoch: "e1"}
	h := nats.Header{hdrEvent: []string{"e"}}
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{`{"ns":"n","event":"e","data":{"a":[1,"x\ny"]}}`, true}, // an escaped newline is two bytes, not a line end
		{`{}`, true},
		{"{\"a\":\n1}", false},
		{"{\"a\":1}\r", false},
		{"{\"a\":\"\x00\"}", false},
		{`[1]`, false},
		{`{"a":1`, false},
		{``, false},
	} {
		_, err := decodeAt(s, "ns", "rc.ns.a", h, []byte(tc.body), 1, time.Now())
		if (err == nil) != tc.ok {
			t.Errorf("stored body %q: err %v, want ok %v", tc.body, err, tc.ok)
		}
		_, err = decodeVolatile("ns", "rcv.ns.r.lobby", h, []byte(tc.body))
		if (err == nil) != tc.ok {
			t.Errorf("volatile body %q: err %v, want ok %v", tc.body, err, tc.ok)
		}
	}
}
