package hub

import (
	"strings"
	"testing"
)

func TestWellFormedAckID(t *testing.T) {
	h := &Hub{ackKey: []byte("0123456789abcdef0123456789abcdef")}
	issued := h.ackID("AAAAAAAAAAAAAAAAAAAAAA", "$JS.ACK.rc_default.g.1.2.3.4.5.6.7")
	if !wellFormedAckID(issued) {
		t.Fatalf("issued ack id %q is not well formed", issued)
	}
	// Another connection's, or a forged MAC: well formed, refused by parseAckID (403, not 400).
	if _, ok := h.parseAckID("BBBBBBBBBBBBBBBBBBBBBB", issued); ok {
		t.Errorf("ack id of AAAA… accepted for BBBB…")
	}
	forged := issued[:len(issued)-1] + map[bool]string{true: "B", false: "A"}[strings.HasSuffix(issued, "A")]
	if !wellFormedAckID(forged) {
		t.Errorf("forged MAC %q: not well formed, want well formed", forged)
	}
	for _, bad := range []string{"", "not-an-ack-id", ".", "abc.", ".abc", "a b.AAAAAAAAAAAAAAAAAAAAAA", issued + "x", issued[:len(issued)-2],
		"YQ.AAAAAAAAAAAAAAAAAAAAAA.x", "YQ." + strings.Repeat("A", 1030)} {
		if wellFormedAckID(bad) {
			t.Errorf("wellFormedAckID(%q) = true, want false", bad)
		}
	}
}

// FuzzWellFormedAckID: every id parseAckID accepts is well formed, and no
// input makes either panic.
func FuzzWellFormedAckID(f *testing.F) {
	h := &Hub{ackKey: []byte("0123456789abcdef0123456789abcdef")}
	f.Add("AAAAAAAAAAAAAAAAAAAAAA", h.ackID("AAAAAAAAAAAAAAAAAAAAAA", "$JS.ACK.x.1"))
	f.Add("AAAAAAAAAAAAAAAAAAAAAA", "not-an-ack-id")
	f.Fuzz(func(t *testing.T, conn, id string) {
		if _, ok := h.parseAckID(ConnID(conn), id); ok && !wellFormedAckID(id) {
			t.Fatalf("parseAckID accepts %q, which is not well formed", id)
		}
		if id2 := h.ackID(ConnID(conn), id); len(id2) <= 1024 && !wellFormedAckID(id2) && id != "" {
			t.Fatalf("ackID(%q) = %q is not well formed", id, id2)
		}
	})
}
