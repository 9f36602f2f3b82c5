package hub

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Names become NATS subject tokens and HTTP path segments, so they are
// checked against an allow-list, never a deny-list: a '.', '*', '>' or space
// in a namespace would let one namespace subscribe to another's subjects, and
// CR/LF would let a publisher forge SSE frames.

// MaxNameLen bounds namespace and room names.
const MaxNameLen = 128

func isTokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '-' || c == ':' || c == '@' || c == '='
}

// ValidNamespace reports whether s is a namespace name: 1–64 of [A-Za-z0-9_-].
func ValidNamespace(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidRoom reports whether s is a room name: 1–128 characters of
// [A-Za-z0-9_:@=-], optionally in dot-separated segments ("orders.eu"),
// no empty segment.
func ValidRoom(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen {
		return false
	}
	prevDot := true // a leading dot is an empty segment
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '.' {
			if prevDot {
				return false
			}
			prevDot = true
			continue
		}
		if !isTokenByte(c) {
			return false
		}
		prevDot = false
	}
	return !prevDot
}

// ValidConnID reports whether s has the shape of a connection id.
func ValidConnID(s string) bool {
	return len(s) == idLen && ValidNamespace(s) // the same alphabet (base64url)
}

// Reserved event names are sent by the server itself; a publisher may not
// forge them.
var reservedEvents = map[string]bool{EventConnected: true, EventReset: true, EventError: true, EventRevoked: true,
	EventDeadLetter: true, EventEnd: true, "message": false}

// ValidEvent checks an application event name: 1–128 bytes of valid UTF-8,
// no control character (so CR, LF and NUL can never reach an `event:` line),
// no invisible formatting character, not a reserved name.
//
// The formatting characters are refused because an event name is shown to
// people (logs, the admin view, a client's handler names) and compared by
// programs: bidi controls (U+202A–U+202E, U+2066–U+2069, LRM, RLM, ALM) let
// "txen" render as "next" (the Trojan Source trick), and zero-width or
// soft-hyphen characters make two names that look the same differ. U+FFFD
// is refused because a JSON body's invalid UTF-8 is decoded into it: the
// name the publisher sent was not the one we would store.
func ValidEvent(s string) error {
	switch {
	case len(s) == 0:
		return fmt.Errorf("event is empty: %w", ErrInvalid)
	case len(s) > MaxNameLen:
		return fmt.Errorf("event is longer than %d bytes: %w", MaxNameLen, ErrInvalid)
	case !utf8.ValidString(s):
		return fmt.Errorf("event is not valid UTF-8: %w", ErrInvalid)
	case reservedEvents[s]:
		return fmt.Errorf("event %q is reserved: %w", s, ErrInvalid)
	}
	for _, r := range s {
		switch {
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029:
			return fmt.Errorf("event contains a control character: %w", ErrInvalid)
		case r == utf8.RuneError:
			return fmt.Errorf("event contains U+FFFD (invalid UTF-8 in the request?): %w", ErrInvalid)
		case invisibleFormat(r):
			return fmt.Errorf("event contains the invisible formatting character %U: %w", r, ErrInvalid)
		}
	}
	return nil
}

// invisibleFormat reports the characters of Unicode's Cf category (bidi
// controls, zero-width spaces, word joiners, BOM, soft hyphen, tag
// characters…) and the noncharacters, except ZWNJ and ZWJ (U+200C, U+200D):
// those two shape Persian and Indic words and emoji sequences, and reorder
// nothing.
func invisibleFormat(r rune) bool {
	if r == 0x200c || r == 0x200d {
		return false
	}
	return unicode.Is(unicode.Cf, r) || r >= 0xfdd0 && r <= 0xfdef || r&0xfffe == 0xfffe
}
