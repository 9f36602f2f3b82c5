package main

import (
	"net/http"
	"strings"
	"testing"
)

// e2eCheckFrame checks the raw lines of one delivered event: exactly one id,
// one event and one data line, nothing else, no CR, NUL or raw line
// separator anywhere.
func e2eCheckFrame(t *testing.T, m e2eMsg) {
	t.Helper()
	// U+2028/2029 are escaped by the envelope encoder (JavaScript line
	// terminators); NEL (U+0085) is not an SSE line end and may stay.
	if strings.ContainsAny(m.Raw, "\r\x00\u2028\u2029") {
		t.Fatalf("raw event %q contains CR, NUL or a Unicode line separator", m.Raw)
	}
	counts := map[string]int{}
	for _, line := range strings.Split(strings.TrimSuffix(m.Raw, "\n"), "\n") {
		field, _, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("raw event %q: line %q is not a field", m.Raw, line)
		}
		counts[field]++
	}
	if counts["id"] != 1 || counts["event"] != 1 || counts["data"] != 1 || len(counts) != 3 {
		t.Fatalf("raw event %q: fields %v, want exactly one id, one event and one data line", m.Raw, counts)
	}
}

// TestE2ESSEInjection: user input can never add, end or split an SSE field.
// Event names with line breaks are refused; data is delivered as one line of
// JSON that decodes to exactly what was sent.
func TestE2ESSEInjection(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	c := e2eOpen(t, s, "/ns/default/rooms/inj/events", "")
	const pub = "/ns/default/rooms/inj/messages"

	nasty := []string{"\n", "\r", "\r\n", "\u0000", "\u2028", "\u2029", "\u0085", "data: x", "id: 1", "event: evil", "retry: 1",
		": comment", "\n\nid: 9\nevent: evil\ndata: {}\n\n", "x\rid: 2", "a\r\ndata: b", "</script><script>alert(1)</script>", "\\n", "\"\n"}

	// Event names: refused when they hold a line break or control
	// character, delivered verbatim on one event line otherwise.
	for _, ev := range nasty {
		ev := "n" + ev
		refused := strings.ContainsAny(ev, "\r\n\x00\u2028\u2029\u0085")
		code, out, _ := s.do(t, http.MethodPost, pub, map[string]any{"event": ev, "data": 1}, "")
		switch {
		case refused && code != http.StatusBadRequest:
			t.Fatalf("event %q: status %d (%v), want 400", ev, code, out)
		case refused:
			continue
		case code != http.StatusAccepted:
			t.Fatalf("event %q: status %d (%v), want 202", ev, code, out)
		}
		m := c.expect(t, out["id"].(string))[0]
		e2eCheckFrame(t, m)
		if m.Event != ev || m.Env["event"] != ev {
			t.Fatalf("event %q arrived as %q (envelope %v)", ev, m.Event, m.Env["event"])
		}
	}

	// Data: always delivered, whole, on one line.
	var payloads []any
	for _, v := range nasty {
		payloads = append(payloads, v, map[string]any{v: v, "k": []any{v, 1.0}})
	}
	for _, data := range payloads {
		for _, path := range []string{pub, "/ns/default/messages", "/ns/default/connections/" + c.ID + "/messages"} {
			id := s.publish(t, path, map[string]any{"event": "data", "data": data}, "")
			m := c.expect(t, id)[0]
			e2eCheckFrame(t, m)
			if !e2eEqualJSON(t, m.Env["data"], data) {
				t.Fatalf("data %q arrived as %q", data, m.Env["data"])
			}
		}
	}
	// Raw bytes in the request: a literal U+2028 inside a JSON string and
	// whitespace with CR/LF between tokens.
	raw := "{\r\n\"event\" :\n\"raw\",\r\"data\":\t{\"s\":\"a\u2028b\u2029c\"}\n}\r\n"
	code, out, _ := s.do(t, http.MethodPost, pub, raw, "")
	if code != http.StatusAccepted {
		t.Fatalf("raw body: %d %v", code, out)
	}
	m := c.expect(t, out["id"].(string))[0]
	e2eCheckFrame(t, m)
	if d, _ := m.Env["data"].(map[string]any); d["s"] != "a\u2028b\u2029c" {
		t.Fatalf("raw body data %v", m.Env["data"])
	}

	// Nor through the idempotency key, rooms or except.
	for _, body := range []map[string]any{
		{"event": "x", "id": "k\nid: 1"},
		{"event": "x", "id": "k\r"},
		{"event": "x", "except": []string{"a\nid: 1"}},
	} {
		e2eProblem(t, s, http.MethodPost, pub, body, nil, http.StatusBadRequest)
	}
	e2eProblem(t, s, http.MethodPost, "/ns/default/messages", map[string]any{"event": "x", "rooms": []string{"inj\ndata: x"}}, nil, http.StatusBadRequest)
	c.expect(t, e2eSentinel(t, s))
}
