package hub

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestValidNamespace(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"default", true},
		{"A-z_09", true},
		{"-", true},
		{strings.Repeat("n", 64), true},
		{strings.Repeat("n", 65), false},
		{"", false},
		{"a.b", false}, // would make a NATS subject hierarchy
		{"a*", false},
		{"a>", false},
		{"a b", false},
		{"a\tb", false},
		{"a\r\nb", false},
		{"a/b", false},
		{"a:b", false}, // rooms allow ':', namespaces do not
		{"a@b", false},
		{"é", false},
		{"a\x00", false},
	}
	for _, tt := range tests {
		if got := ValidNamespace(tt.in); got != tt.want {
			t.Errorf("ValidNamespace(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestValidRoom(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"lobby", true},
		{"orders.eu", true},
		{"a.b.c", true},
		{"user:42@example=x_y-z", true},
		{strings.Repeat("r", MaxNameLen), true},
		{strings.Repeat("r", MaxNameLen+1), false},
		{"", false},
		{".", false},
		{".lobby", false},
		{"lobby.", false},
		{"a..b", false},
		{"orders.*", false},
		{"orders.>", false},
		{">", false},
		{"a b", false},
		{"a\tb", false},
		{"a\nb", false},
		{"a\rb", false},
		{"a\x00b", false},
		{"a,b", false}, // the separator of ?rooms=
		{"a/b", false},
		{"a%2F", false},
		{"ß", false},
		{"\u2028", false},
	}
	for _, tt := range tests {
		if got := ValidRoom(tt.in); got != tt.want {
			t.Errorf("ValidRoom(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestValidConnID(t *testing.T) {
	id := newID()
	tests := []struct {
		in   string
		want bool
	}{
		{id, true},
		{"AAAAAAAAAAAAAAAAAAAAAA", true},
		{"abcdefghij-_0123456789", true},
		{id[:idLen-1], false},
		{id + "A", false},
		{"", false},
		{"abcdefghij-_012345678=", false}, // padding is not base64url raw
		{"abcdefghij-_012345678.", false},
		{"abcdefghij-_012345678 ", false},
		{"abcdefghij+/012345678A", false}, // std base64, not url
	}
	for _, tt := range tests {
		if got := ValidConnID(tt.in); got != tt.want {
			t.Errorf("ValidConnID(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestNewIDIsAValidConnIDAndUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newID()
		if !ValidConnID(id) {
			t.Fatalf("newID() = %q, not a valid connection id", id)
		}
		if seen[id] {
			t.Fatalf("newID() returned %q twice", id)
		}
		seen[id] = true
	}
}

func TestValidEvent(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"chat message", true},
		{"message", true}, // the EventSource default is not reserved
		{"Connected", true},
		{"ünïcødé ✓", true},
		{" leading space", true},
		{"a:b", true},
		{strings.Repeat("e", MaxNameLen), true},
		{strings.Repeat("e", MaxNameLen+1), false},
		{"", false},
		{"connected", false},
		{"reset", false},
		{"error", false},
		{"a\nb", false},
		{"a\rb", false},
		{"a\x00b", false},
		{"a\tb", false},
		{"a\x7fb", false},
		{"a\u0085b", false}, // NEL
		{"a\u2028b", false},
		{"a\u2029b", false},
		{"a\xffb", false}, // invalid UTF-8
		{"\xc3", false},
		// What encoding/json makes of invalid UTF-8 in a body.
		{"a\ufffdb", false},
		// Bidi controls: LRE, RLE, PDF, LRO, RLO, LRI, RLI, FSI, PDI, LRM,
		// RLM, ALM (Trojan Source).
		{"txen\u202e", false},
		{"a\u202ab", false},
		{"a\u202bb", false},
		{"a\u202cb", false},
		{"a\u202db", false},
		{"a\u2066b", false},
		{"a\u2067b", false},
		{"a\u2068b", false},
		{"a\u2069b", false},
		{"a\u200eb", false},
		{"a\u200fb", false},
		{"a\u061cb", false},
		// Invisible: zero-width space, word joiner, BOM, soft hyphen, a tag
		// character, the invisible times.
		{"a\u200bb", false},
		{"a\u2060b", false},
		{"\ufeffa", false},
		{"a\u00adb", false},
		{"a\U000e0041", false},
		{"a\u2062b", false},
		// Noncharacters.
		{"a\ufffeb", false},
		{"a\uffffb", false},
		{"a\ufdd0b", false},
		{"a\U0001fffeb", false},
		// ZWNJ shapes Persian words, ZWJ emoji sequences: allowed.
		{"\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", true},
		{"\U0001f468\u200d\U0001f469\u200d\U0001f467", true},
	}
	for _, tt := range tests {
		err := ValidEvent(tt.in)
		if got := err == nil; got != tt.want {
			t.Errorf("ValidEvent(%q) = %v, want valid %v", tt.in, err, tt.want)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidEvent(%q) = %v, want an ErrInvalid", tt.in, err)
		}
	}
}

// roomBytes is the allow-list of room name bytes besides the separator.
func roomByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_-:@=", c) >= 0
}

func FuzzValidNames(f *testing.F) {
	for _, s := range []string{"lobby", "orders.eu", "a..b", ".a", "a.", "a*", "a>", "a b", "a\r\n", "default", "ns-1_x", "é", strings.Repeat("x", 200), "a.b.c:d@e=f", "\u2028", "txen\u202e", "a\ufffd", "\u200d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidRoom(s) {
			if len(s) == 0 || len(s) > MaxNameLen {
				t.Errorf("ValidRoom accepted %q of length %d", s, len(s))
			}
			for _, seg := range strings.Split(s, ".") {
				if seg == "" {
					t.Errorf("ValidRoom accepted %q with an empty segment", s)
				}
				for i := 0; i < len(seg); i++ {
					if !roomByte(seg[i]) {
						t.Errorf("ValidRoom accepted %q with byte %q outside the allow-list", s, seg[i])
					}
				}
			}
			if strings.ContainsAny(s, "*> \t\r\n\x00,/") {
				t.Errorf("ValidRoom accepted %q with a wildcard, space or separator", s)
			}
		}
		if ValidNamespace(s) {
			if len(s) == 0 || len(s) > 64 {
				t.Errorf("ValidNamespace accepted %q of length %d", s, len(s))
			}
			for i := 0; i < len(s); i++ {
				c := s[i]
				if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
					t.Errorf("ValidNamespace accepted %q with byte %q outside the allow-list", s, c)
				}
			}
			if !ValidRoom(s) {
				t.Errorf("namespace %q is not a valid room token: namespaces must be subject-safe too", s)
			}
		}
		if ValidConnID(s) && (len(s) != idLen || !ValidNamespace(s)) {
			t.Errorf("ValidConnID accepted %q", s)
		}
		if ValidEvent(s) == nil {
			if !utf8.ValidString(s) || strings.ContainsAny(s, "\r\n\x00\u2028\u2029") {
				t.Errorf("ValidEvent accepted %q, which could break an event: line", s)
			}
			for _, r := range s {
				if r == utf8.RuneError || (unicode.Is(unicode.Cf, r) && r != 0x200c && r != 0x200d) || unicode.Is(unicode.Cc, r) {
					t.Errorf("ValidEvent accepted %q with the control, formatting or replacement character %U", s, r)
				}
			}
		}
	})
}
