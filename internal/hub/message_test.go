package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestParsePosition(t *testing.T) {
	tests := []struct {
		in      string
		want    Position
		wantErr bool
	}{
		{in: "e1-0", want: Position{"e1", 0}},
		{in: "e1-42", want: Position{"e1", 42}},
		{in: "0123456789abcdef-18446744073709551615", want: Position{"0123456789abcdef", 1<<64 - 1}},
		{in: "0123456789abcdef0-1", wantErr: true}, // epoch over 16
		{in: "", wantErr: true},
		{in: "e1", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "e1-", wantErr: true},
		{in: "e1-01", wantErr: true}, // not canonical: two ids for one position
		{in: "e1-00", wantErr: true},
		{in: "e1-+1", wantErr: true},
		{in: "e1--1", wantErr: true},
		{in: "e1- 1", wantErr: true},
		{in: "e1-1 ", wantErr: true},
		{in: "E1-1", wantErr: true},
		{in: "g1-1", wantErr: true},
		{in: "e1-1-2", wantErr: true},
		{in: "e1-18446744073709551616", wantErr: true},
		{in: "e1-0x10", wantErr: true},
		{in: "e1-1\n", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParsePosition(tt.in)
		if tt.wantErr {
			if err == nil || !errors.Is(err, ErrInvalid) {
				t.Errorf("ParsePosition(%q) = %v, %v; want an ErrInvalid", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParsePosition(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if s := got.String(); s != tt.in {
			t.Errorf("ParsePosition(%q).String() = %q, want the input back", tt.in, s)
		}
	}
}

func TestParseResume(t *testing.T) {
	tok := "abcdefghijklmnopqrstuv"
	tests := []struct {
		in        string
		want      Position
		wantToken string
		wantErr   bool
	}{
		{in: "e1-5", want: Position{"e1", 5}},
		{in: "e1-5." + tok, want: Position{"e1", 5}, wantToken: tok},
		{in: ResumeID(Position{"ff", 9}, tok), want: Position{"ff", 9}, wantToken: tok},
		{in: "e1-5.short", wantErr: true},
		{in: "e1-5." + tok + "x", wantErr: true},
		{in: "e1-5." + tok + "." + tok, wantErr: true},
		{in: "e1-5." + strings.Repeat("*", 22), wantErr: true},
		{in: "." + tok, wantErr: true},
		{in: "e1." + tok, wantErr: true},
		{in: "12", wantErr: true}, // a numeric r3labs id is not ours
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		got, token, err := ParseResume(tt.in)
		if tt.wantErr {
			if err == nil || !errors.Is(err, ErrInvalid) {
				t.Errorf("ParseResume(%q) = %v, %q, %v; want an ErrInvalid", tt.in, got, token, err)
			}
			continue
		}
		if err != nil || got != tt.want || token != tt.wantToken {
			t.Errorf("ParseResume(%q) = %v, %q, %v; want %v, %q", tt.in, got, token, err, tt.want, tt.wantToken)
		}
	}
}

func TestEncodeBody(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600))
	tests := []struct {
		name string
		o    Outgoing
		want string
	}{
		{"namespace-wide, no data",
			Outgoing{Event: "e"},
			`{"ns":"n","room":null,"event":"e","from":null,"ts":"2026-01-02T02:04:05.000000006Z","data":null}`},
		{"one room is room, not rooms",
			Outgoing{Event: "e", Rooms: []string{"lobby"}, Data: json.RawMessage(`{"a":1}`)},
			`{"ns":"n","room":"lobby","event":"e","from":null,"ts":"2026-01-02T02:04:05.000000006Z","data":{"a":1}}`},
		{"several rooms",
			Outgoing{Event: "e", Rooms: []string{"a", "b"}, Data: json.RawMessage(`[1,2]`)},
			`{"ns":"n","room":null,"rooms":["a","b"],"event":"e","from":null,"ts":"2026-01-02T02:04:05.000000006Z","data":[1,2]}`},
		{"direct with sender",
			Outgoing{Event: "e", To: "AAAAAAAAAAAAAAAAAAAAAA", From: "BBBBBBBBBBBBBBBBBBBBBB", Data: json.RawMessage(`"hi"`)},
			`{"ns":"n","room":null,"to":"AAAAAAAAAAAAAAAAAAAAAA","event":"e","from":"BBBBBBBBBBBBBBBBBBBBBB","ts":"2026-01-02T02:04:05.000000006Z","data":"hi"}`},
		{"data is compacted onto one line",
			Outgoing{Event: "e", Data: json.RawMessage("{\r\n  \"a\" :\t[1, 2]\n}\n")},
			`{"ns":"n","room":null,"event":"e","from":null,"ts":"2026-01-02T02:04:05.000000006Z","data":{"a":[1,2]}}`},
		{"line separators and HTML in data are escaped",
			Outgoing{Event: "e", Data: json.RawMessage("\"a\u2028b\u2029c</script>&\"")},
			`{"ns":"n","room":null,"event":"e","from":null,"ts":"2026-01-02T02:04:05.000000006Z","data":"a\u2028b\u2029c\u003c/script\u003e\u0026"}`},
		{"event with quotes and unicode is escaped JSON",
			Outgoing{Event: "say \"hi\" ✓ <b>"},
			`{"ns":"n","room":null,"event":"say \"hi\" ✓ \u003cb\u003e","from":null,"ts":"2026-01-02T02:04:05.000000006Z","data":null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodeBody("n", &tt.o, ts)
			if err != nil {
				t.Fatalf("EncodeBody: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("EncodeBody =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestEncodeBodyRejectsInvalidData(t *testing.T) {
	for _, data := range []string{`{`, `{"a":}`, "\"a\nb\"", `1 2`, `nul`} {
		if got, err := EncodeBody("n", &Outgoing{Event: "e", Data: json.RawMessage(data)}, time.Now()); err == nil {
			t.Errorf("EncodeBody(data %q) = %s, nil; want an error", data, got)
		}
	}
}

func TestWithIDPutsIDFirst(t *testing.T) {
	tests := []struct{ body, id, want string }{
		{`{"a":1}`, "e1-7", `{"id":"e1-7","a":1}`},
		{`{}`, "e1-7", `{"id":"e1-7"}`},
	}
	for _, tt := range tests {
		if got := string(WithID([]byte(tt.body), tt.id)); got != tt.want {
			t.Errorf("WithID(%s, %q) = %s, want %s", tt.body, tt.id, got, tt.want)
		}
	}
}

func TestFrameIsBuiltOncePerMessage(t *testing.T) {
	m := &Message{Event: "e"}
	var builds atomic.Int32
	var wg sync.WaitGroup
	results := make([]any, 8)
	for i := range results {
		wg.Go(func() {
			results[i] = m.Frame(func(*Message) any { builds.Add(1); return new(int) })
		})
	}
	wg.Wait()
	if got := builds.Load(); got != 1 {
		t.Errorf("build called %d times, want 1", got)
	}
	for i, r := range results {
		if r != results[0] {
			t.Errorf("Frame result %d differs from result 0: every connection must share one frame", i)
		}
	}
}

// wantData is what the envelope's data must be: the payload compacted and
// HTML-escaped (json.Marshal's treatment of a RawMessage).
func wantData(t *testing.T, data []byte) []byte {
	t.Helper()
	if len(data) == 0 {
		return []byte("null")
	}
	var c, h bytes.Buffer
	if err := json.Compact(&c, data); err != nil {
		t.Fatalf("Compact of valid JSON %q: %v", data, err)
	}
	json.HTMLEscape(&h, c.Bytes())
	return h.Bytes()
}

func FuzzEncodeBody(f *testing.F) {
	f.Add("chat message", "lobby", "", []byte(`{"text":"hi"}`), uint64(1), int64(0))
	f.Add("e", "a,b,a", "AAAAAAAAAAAAAAAAAAAAAA", []byte("\"\u2028\u2029</script>\""), uint64(1<<63), int64(1e9))
	f.Add("ünï ✓", "orders.eu,x", "", []byte(" [1 ,\n2,\r\n{\"a\" : null}] "), uint64(7), int64(-1))
	f.Add("x", "", "", []byte(""), uint64(0), int64(123456789))
	f.Add("x", "", "", []byte("\"\xff\xfe\""), uint64(3), int64(5))
	f.Add("x", "", "", []byte(`1e999`), uint64(3), int64(5))
	f.Fuzz(func(t *testing.T, event, rooms, from string, data []byte, seq uint64, nanos int64) {
		if ValidEvent(event) != nil || (len(data) > 0 && !json.Valid(data)) {
			return
		}
		o := &Outgoing{Event: event, Data: data}
		if rooms != "" {
			for _, r := range strings.Split(rooms, ",") {
				if ValidRoom(r) {
					o.Rooms = append(o.Rooms, r)
				}
			}
		}
		if ValidConnID(from) {
			o.From = ConnID(from)
		}
		// Any instant of [1970, 2116], in a non-UTC zone: ts must come out in UTC.
		n := nanos % (1 << 62)
		if n < 0 {
			n = -n
		}
		ts := time.Unix(0, n).In(time.FixedZone("Z1", 5400))
		pos := Position{Epoch: "0a1b", Seq: seq}

		body, err := EncodeBody("ns", o, ts)
		if err != nil {
			t.Fatalf("EncodeBody(%+v): %v", o, err)
		}
		full := WithID(body, pos.String())

		if !json.Valid(full) {
			t.Fatalf("WithID(EncodeBody) is not valid JSON: %q", full)
		}
		if i := bytes.IndexAny(full, "\r\n\x00"); i >= 0 {
			t.Fatalf("envelope has byte %q at %d: it would break the data: line: %q", full[i], i, full)
		}
		if bytes.Contains(full, []byte("\u2028")) || bytes.Contains(full, []byte("\u2029")) {
			t.Fatalf("envelope has a raw U+2028/U+2029 (a line break to JavaScript): %q", full)
		}
		if !bytes.HasPrefix(full, []byte(`{"id":"`+pos.String()+`"`)) {
			t.Fatalf("envelope does not start with its id: %q", full)
		}

		var env Envelope
		dec := json.NewDecoder(bytes.NewReader(full))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&env); err != nil {
			t.Fatalf("decode envelope %q: %v", full, err)
		}
		if env.ID != pos.String() || env.NS != "ns" || env.Event != event {
			t.Errorf("id, ns, event = %q, %q, %q; want %q, ns, %q", env.ID, env.NS, env.Event, pos, event)
		}
		switch len(o.Rooms) {
		case 0:
			if env.Room != nil || env.Rooms != nil {
				t.Errorf("room, rooms = %v, %v; want null and absent for no room", env.Room, env.Rooms)
			}
		case 1:
			if env.Room == nil || *env.Room != o.Rooms[0] || env.Rooms != nil {
				t.Errorf("room, rooms = %v, %v; want %q and absent", env.Room, env.Rooms, o.Rooms[0])
			}
		default:
			if env.Room != nil || strings.Join(env.Rooms, ",") != strings.Join(o.Rooms, ",") {
				t.Errorf("room, rooms = %v, %q; want null and %q", env.Room, env.Rooms, o.Rooms)
			}
		}
		if (env.From == nil) != (o.From == "") || (env.From != nil && *env.From != string(o.From)) {
			t.Errorf("from = %v, want %q (null when empty)", env.From, o.From)
		}
		gotTS, err := time.Parse(time.RFC3339Nano, env.TS)
		if err != nil || !gotTS.Equal(ts) || !strings.HasSuffix(env.TS, "Z") {
			t.Errorf("ts = %q (%v), want %v in UTC", env.TS, err, ts.UTC())
		}
		if want := wantData(t, data); !bytes.Equal(env.Data, want) {
			t.Errorf("data = %q, want %q", env.Data, want)
		}
	})
}

func FuzzParseResume(f *testing.F) {
	for _, s := range []string{"e1-5", "e1-5.abcdefghijklmnopqrstuv", "e1-05", "-5", "e1-", "e1-5.", "e1-5..", "0123456789abcdef-18446744073709551615", "ff-1.AAAAAAAAAAAAAAAAAAAAAA.x", "1", "", "e1-5.abcdefghijklmnopqrstu\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, token, err := ParseResume(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseResume(%q) error %v is not ErrInvalid", s, err)
			}
			if p != (Position{}) || token != "" {
				t.Fatalf("ParseResume(%q) failed but returned %v, %q", s, p, token)
			}
			return
		}
		q, err := ParsePosition(p.String())
		if err != nil || q != p {
			t.Fatalf("ParsePosition(%q) = %v, %v; want %v back", p.String(), q, err, p)
		}
		if pos, _, _ := strings.Cut(s, "."); pos != p.String() {
			t.Fatalf("ParseResume(%q) = %v: the position part %q is not canonical", s, p, pos)
		}
		if token != "" {
			if !validToken(token) {
				t.Fatalf("ParseResume(%q) returned invalid token %q", s, token)
			}
			q, tok2, err := ParseResume(ResumeID(p, token))
			if err != nil || q != p || tok2 != token {
				t.Fatalf("ParseResume(ResumeID(%v, %q)) = %v, %q, %v; want them back", p, token, q, tok2, err)
			}
		}
		if strings.ContainsAny(p.String()+token, "\r\n\x00 ") {
			t.Fatalf("ParseResume(%q) accepted a control byte or space", s)
		}
	})
}
