package hub

import (
	"strings"
	"testing"
)

func testAckNamespace() *Namespace {
	return &Namespace{name: "test", hub: &Hub{ackKey: []byte("0123456789abcdef0123456789abcdef")}}
}

func TestAckIDShapeAndBinding(t *testing.T) {
	ns := testAckNamespace()
	k := GroupKey{Room: "jobs", Name: "g"}
	conn := ConnID("AAAAAAAAAAAAAAAAAAAAAA")
	flight := newID()
	issued := ns.ackID(k, conn, flight)
	if got, ok := ns.checkAckID(k, conn, issued); !ok || got != flight {
		t.Fatalf("checkAckID(issued) = %q, %v; want flight %q", got, ok, flight)
	}
	// Well formed but not this connection's or this group's: refused (403),
	// not malformed (400).
	for _, tc := range []struct {
		name string
		k    GroupKey
		conn ConnID
	}{
		{"another connection", k, "BBBBBBBBBBBBBBBBBBBBBB"},
		{"another group", GroupKey{Room: "jobs", Name: "h"}, conn},
		{"another room", GroupKey{Room: "other", Name: "g"}, conn},
	} {
		if _, ok := ns.checkAckID(tc.k, tc.conn, issued); ok {
			t.Errorf("%s: an ack id of another binding was accepted", tc.name)
		}
		if _, ok := parseAckID(issued); !ok {
			t.Errorf("%s: the issued id is not well formed", tc.name)
		}
	}
	i := len(issued) - 5 // a character of the MAC that carries 6 bits of it
	forged := issued[:i] + map[bool]string{true: "B", false: "A"}[issued[i] == 'A'] + issued[i+1:]
	if _, ok := parseAckID(forged); !ok {
		t.Errorf("forged MAC %q: not well formed, want well formed (403)", forged)
	}
	if _, ok := ns.checkAckID(k, conn, forged); ok {
		t.Errorf("a forged MAC was accepted")
	}
	for _, bad := range []string{"", "not-an-ack-id", ".", "abc.", ".abc", "a b.AAAAAAAAAAAAAAAAAAAAAA", issued + "x", issued[:len(issued)-2],
		flight + "." + flight + ".x", flight + "." + strings.Repeat("A", 1030), strings.Repeat("A", 21) + "." + issued[23:],
		strayBits(issued)} {
		if _, ok := parseAckID(bad); ok {
			t.Errorf("parseAckID(%q) accepted, want malformed", bad)
		}
	}
}

// FuzzWellFormedAckID: every id checkAckID accepts is well formed and was
// issued for that group and connection; no input panics.
func FuzzWellFormedAckID(f *testing.F) {
	ns := testAckNamespace()
	k := GroupKey{Room: "jobs", Name: "g"}
	f.Add("AAAAAAAAAAAAAAAAAAAAAA", ns.ackID(k, "AAAAAAAAAAAAAAAAAAAAAA", "BBBBBBBBBBBBBBBBBBBBBB"))
	f.Add("AAAAAAAAAAAAAAAAAAAAAA", "not-an-ack-id")
	f.Fuzz(func(t *testing.T, conn, id string) {
		flight, ok := ns.checkAckID(k, ConnID(conn), id)
		if !ok {
			return
		}
		if _, wf := parseAckID(id); !wf {
			t.Fatalf("checkAckID accepts %q, which is not well formed", id)
		}
		if ns.ackID(k, ConnID(conn), flight) != id {
			t.Fatalf("checkAckID accepts %q, not the id issued for its flight", id)
		}
	})
}

// strayBits returns id with a padding bit of its last character set: the
// same MAC bytes under a lenient decoder, another spelling.
func strayBits(id string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, id[len(id)-1])
	return id[:len(id)-1] + string(alphabet[i^1])
}
