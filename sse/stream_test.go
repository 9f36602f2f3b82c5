package sse

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/roomcast/roomcast/internal/hub"
)

const testEpoch = "e1"

// memLog is a hub.Log over a slice (message seq n is msgs[n-1]).
type memLog struct {
	mu    sync.Mutex
	msgs  []*hub.Message
	apply func(*hub.Message) // the namespace's live feed, from Follow
}

var _ hub.Log = (*memLog)(nil)

func (l *memLog) OpenNamespace(context.Context, string, hub.Retention) (hub.LogState, error) {
	return l.State(context.Background(), "")
}

func (l *memLog) Follow(_ context.Context, _ string, _ uint64, fn func(*hub.Message)) error {
	l.apply = fn
	return nil
}

func (l *memLog) Publish(_ context.Context, ns string, o *hub.Outgoing) (hub.Position, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	pos := hub.Position{Epoch: testEpoch, Seq: uint64(len(l.msgs)) + 1}
	l.msgs = append(l.msgs, &hub.Message{Pos: pos, Event: o.Event, Rooms: o.Rooms, To: o.To, From: o.From,
		Except: o.Except, Body: hub.WithID(o.Body, pos.String()), Time: time.Now()})
	return pos, false, nil
}

func (l *memLog) Read(_ context.Context, _ string, from, to uint64, _ hub.Filter, fn func(*hub.Message) bool) error {
	l.mu.Lock()
	msgs := l.msgs
	l.mu.Unlock()
	if to == 0 || to > uint64(len(msgs)) {
		to = uint64(len(msgs))
	}
	for seq := max(from, 1); seq <= to; seq++ {
		if !fn(msgs[seq-1]) {
			return nil
		}
	}
	return nil
}

func (l *memLog) State(context.Context, string) (hub.LogState, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return hub.LogState{Epoch: testEpoch, First: 1, Last: uint64(len(l.msgs))}, nil
}

func (l *memLog) Gap(context.Context, string, uint64, hub.Filter) (bool, error) { return false, nil }

// memSessions is a hub.Sessions map.
type memSessions struct {
	mu sync.Mutex
	m  map[string]hub.Session
}

func (s *memSessions) Save(_ context.Context, key string, sess hub.Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = sess
	return nil
}

func (s *memSessions) Take(_ context.Context, key string) (hub.Session, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[key]
	delete(s.m, key)
	return sess, ok, nil
}

// wireEvent is one SSE event as read off the wire: every field line in
// order ("id", "event", "data", "retry" …), values per the SSE parsing rules.
type wireEvent struct {
	fields []string
	values map[string][]string
	raw    string
}

func (e wireEvent) one(t testing.TB, field string) string {
	t.Helper()
	if v := e.values[field]; len(v) == 1 {
		return v[0]
	}
	t.Fatalf("event has %d %s: lines, want 1:\n%s", len(e.values[field]), field, e.raw)
	return ""
}

// readEvents parses the stream into events until it ends. Comments
// (heartbeats) are skipped. A CR anywhere is an error: the server writes
// LF line ends only, so a CR can only come from a field value.
func readEvents(r io.Reader, out chan<- wireEvent, errc chan<- error) {
	defer close(out)
	br := bufio.NewReader(r)
	ev := wireEvent{values: map[string][]string{}}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			errc <- err
			return
		}
		ev.raw += line
		line = strings.TrimSuffix(line, "\n")
		if strings.ContainsRune(line, '\r') {
			errc <- fmt.Errorf("CR in line %q", line)
			return
		}
		switch {
		case line == "":
			if len(ev.fields) > 0 {
				out <- ev
			}
			ev = wireEvent{values: map[string][]string{}}
		case strings.HasPrefix(line, ":"):
		default:
			name, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			ev.fields = append(ev.fields, name)
			ev.values[name] = append(ev.values[name], value)
		}
	}
}

// client is one SSE connection to a test server.
type client struct {
	events    chan wireEvent
	errc      chan error
	cancel    context.CancelFunc
	body      io.Closer
	connected hub.Connected
}

func (c *client) next(t testing.TB) wireEvent {
	t.Helper()
	select {
	case ev, ok := <-c.events:
		if !ok {
			t.Fatalf("stream ended: %v", <-c.errc)
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return wireEvent{}
}

func (c *client) close() {
	c.cancel()
	_ = c.body.Close()
}

type rig struct {
	hub *hub.Hub
	ns  *hub.Namespace
	log *memLog
	srv *Server
	ts  *httptest.Server
	seq uint64 // the last sequence applied
}

// newRig serves the namespace "default" of a hub over a real HTTP server.
// The handler reads ?rooms= and Last-Event-ID like the API does.
func newRig(tb testing.TB, cfg Config, msgs ...*hub.Message) *rig {
	tb.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	log := &memLog{msgs: msgs}
	h, err := hub.New(hub.Deps{Log: log, Sessions: &memSessions{m: map[string]hub.Session{}}, Logger: logger}, hub.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	ns, err := h.AddNamespace(context.Background(), "default", hub.NamespaceConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = time.Hour // no comment lines unless a test wants them
	}
	srv := New(cfg, logger)
	runCtx, stopRun := context.WithCancel(context.Background())
	go srv.Run(runCtx)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rooms []string
		if q := r.URL.Query().Get("rooms"); q != "" {
			rooms = strings.Split(q, ",")
		}
		var resume *hub.Position
		var token string
		if last := r.Header.Get("Last-Event-ID"); last != "" {
			p, tok, err := hub.ParseResume(last)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			resume, token = &p, tok
		}
		req := hub.OpenRequest{Rooms: rooms, Resume: resume, Token: token}
		if d, err := time.ParseDuration(r.URL.Query().Get("expires_in")); err == nil {
			req.Expires = time.Now().Add(d) // as a JWT's exp does
		}
		if err := srv.Serve(w, r, ns, req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	}))
	tb.Cleanup(func() {
		h.Close()
		ts.Close()
		stopRun()
		srv.Close()
	})
	return &rig{hub: h, ns: ns, log: log, srv: srv, ts: ts, seq: uint64(len(msgs))}
}

// connect opens a stream and reads its `connected` event.
func (r *rig) connect(tb testing.TB, query, lastEventID string) (*client, wireEvent) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.ts.URL+"/ns/default/events"+query, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := r.ts.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("GET events: %s %q: %s", resp.Status, resp.Header.Get("Content-Type"), b)
	}
	c := &client{events: make(chan wireEvent, 16), errc: make(chan error, 1), cancel: cancel, body: resp.Body}
	go readEvents(resp.Body, c.events, c.errc)
	tb.Cleanup(c.close)
	ev := c.next(tb)
	if got := ev.one(tb, "event"); got != "connected" {
		tb.Fatalf("first event is %q, want connected:\n%s", got, ev.raw)
	}
	if err := json.Unmarshal([]byte(ev.one(tb, "data")), &c.connected); err != nil {
		tb.Fatalf("connected data: %v", err)
	}
	return c, ev
}

// apply fans out a message built by the hub's encoder, as the engine's
// consumer would after storing it.
func (r *rig) apply(tb testing.TB, o *hub.Outgoing) *hub.Message {
	tb.Helper()
	body, err := hub.EncodeBody(r.ns.Name(), o, time.Now())
	if err != nil {
		tb.Fatalf("EncodeBody: %v", err)
	}
	r.seq++
	pos := hub.Position{Epoch: testEpoch, Seq: r.seq}
	m := &hub.Message{Pos: pos, Event: o.Event, Rooms: o.Rooms, To: o.To, From: o.From, Except: o.Except,
		Body: hub.WithID(body, pos.String()), Time: time.Now()}
	r.log.apply(m)
	return m
}

// checkFrame checks that ev is exactly m's frame for a connection with token.
func checkFrame(t testing.TB, ev wireEvent, m *hub.Message, token string) {
	t.Helper()
	if strings.Join(ev.fields, ",") != "id,data,event" {
		t.Fatalf("event lines %v, want one id, one data and one event:\n%q", ev.fields, ev.raw)
	}
	if got, want := ev.one(t, "id"), hub.ResumeID(m.Pos, token); got != want {
		t.Fatalf("id: %q, want %q", got, want)
	}
	if got := ev.one(t, "event"); got != m.Event {
		t.Fatalf("event: %q, want %q", got, m.Event)
	}
	data := ev.one(t, "data")
	if data != string(m.Body) {
		t.Fatalf("data: %q, want the stored envelope %q", data, m.Body)
	}
	var env hub.Envelope
	dec := json.NewDecoder(strings.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		t.Fatalf("data %q: %v", data, err)
	}
	if env.ID != m.Pos.String() || env.Event != m.Event || env.NS != "default" {
		t.Fatalf("envelope id %q event %q ns %q; want %q, %q, default", env.ID, env.Event, env.NS, m.Pos, m.Event)
	}
}

// checkLeaks checks, after every other cleanup of t has run, that no
// goroutine started by the test is left.
func checkLeaks(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

func TestServeSendsConnectedThenLiveEvents(t *testing.T) {
	checkLeaks(t)
	{
		r := newRig(t, Config{Retry: 1500 * time.Millisecond})
		c, ev := r.connect(t, "?rooms=lobby,vip", "")
		if strings.Join(ev.fields, ",") != "id,data,event,retry" {
			t.Errorf("connected lines %v, want id, data, event, retry", ev.fields)
		}
		if got, want := ev.one(t, "retry"), "1500"; got != want {
			t.Errorf("retry: %s, want %s", got, want)
		}
		cd := c.connected
		if !hub.ValidConnID(string(cd.ID)) || !hub.ValidConnID(cd.Token) || cd.Token == string(cd.ID) || cd.NS != "default" ||
			strings.Join(cd.Rooms, ",") != "lobby,vip" || cd.Restored {
			t.Errorf("connected data = %+v", cd)
		}
		if got, want := ev.one(t, "id"), hub.ResumeID(hub.Position{Epoch: testEpoch}, cd.Token); got != want {
			t.Errorf("connected id %q, want %q", got, want)
		}
		m1 := r.apply(t, &hub.Outgoing{Event: "chat message", Rooms: []string{"lobby"}, Data: json.RawMessage(`{"text":"hi"}`)})
		r.apply(t, &hub.Outgoing{Event: "elsewhere", Rooms: []string{"other"}})
		m3 := r.apply(t, &hub.Outgoing{Event: "to me", To: cd.ID})
		checkFrame(t, c.next(t), m1, cd.Token)
		checkFrame(t, c.next(t), m3, cd.Token)
		r.log.apply(m1) // an old message applied again is not sent again
		m4 := r.apply(t, &hub.Outgoing{Event: "all"})
		checkFrame(t, c.next(t), m4, cd.Token)
		if n := r.srv.Active(); n != 1 {
			t.Errorf("Active() = %d, want 1", n)
		}
	}
}

func TestServeReplaysFromLastEventID(t *testing.T) {
	checkLeaks(t)
	{
		var msgs []*hub.Message
		for i := 1; i <= 3; i++ {
			pos := hub.Position{Epoch: testEpoch, Seq: uint64(i)}
			body, _ := hub.EncodeBody("default", &hub.Outgoing{Event: "old"}, time.Now())
			msgs = append(msgs, &hub.Message{Pos: pos, Event: "old", Body: hub.WithID(body, pos.String())})
		}
		r := newRig(t, Config{}, msgs...)
		c, ev := r.connect(t, "", "e1-1")
		tok := c.connected.Token
		if got, want := ev.one(t, "id"), hub.ResumeID(hub.Position{Epoch: testEpoch, Seq: 1}, tok); got != want {
			t.Errorf("connected id %q, want the resume position %q", got, want)
		}
		checkFrame(t, c.next(t), msgs[1], tok)
		checkFrame(t, c.next(t), msgs[2], tok)
		m4 := r.apply(t, &hub.Outgoing{Event: "new"})
		checkFrame(t, c.next(t), m4, tok)
	}
}

func TestServeSendsResetForAnotherEpoch(t *testing.T) {
	checkLeaks(t)
	{
		r := newRig(t, Config{})
		r.apply(t, &hub.Outgoing{Event: "e"})
		c, _ := r.connect(t, "", "ab-1")
		ev := c.next(t)
		if got := ev.one(t, "event"); got != "reset" {
			t.Fatalf("second event %q, want reset:\n%s", got, ev.raw)
		}
		var rd struct{ Reason, Position string }
		if err := json.Unmarshal([]byte(ev.one(t, "data")), &rd); err != nil || rd.Reason == "" || rd.Position != "e1-1" {
			t.Errorf("reset data %+v (%v), want a reason and position e1-1", rd, err)
		}
		if got, want := ev.one(t, "id"), hub.ResumeID(hub.Position{Epoch: testEpoch, Seq: 1}, c.connected.Token); got != want {
			t.Errorf("reset id %q, want %q", got, want)
		}
		m := r.apply(t, &hub.Outgoing{Event: "after"})
		checkFrame(t, c.next(t), m, c.connected.Token)
	}
}

func TestServeErrorsBeforeWritingOnInvalidRooms(t *testing.T) {
	r := newRig(t, Config{})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/ns/default/events", nil)
	err := r.srv.Serve(rec, req, r.ns, hub.OpenRequest{Rooms: []string{"no spaces"}})
	if !errors.Is(err, hub.ErrInvalid) {
		t.Errorf("Serve = %v, want ErrInvalid", err)
	}
	if rec.Body.Len() != 0 || rec.Header().Get("Content-Type") != "" {
		t.Errorf("Serve wrote %q with Content-Type %q before failing", rec.Body, rec.Header().Get("Content-Type"))
	}
	if n := connCount(r.ns); n != 0 {
		t.Errorf("ConnCount = %d, want 0", n)
	}
}

// TestClosedConnectionEndsItsStream: a stream the server ends on purpose
// says why in a last `end` event, then ends.
func TestClosedConnectionEndsItsStream(t *testing.T) {
	checkLeaks(t)
	{
		r := newRig(t, Config{})
		c, _ := r.connect(t, "", "")
		if err := r.ns.Disconnect(context.Background(), c.connected.ID); err != nil {
			t.Fatal(err)
		}
		ev := c.next(t)
		if got := ev.one(t, "event"); got != hub.EventEnd {
			t.Fatalf("event after the close %q, want end:\n%s", got, ev.raw)
		}
		if got := ev.one(t, "data"); got != `{"reason":"disconnected"}` {
			t.Errorf("end data %s, want the reason disconnected", got)
		}
		if got, want := ev.one(t, "id"), hub.ResumeID(hub.Position{Epoch: testEpoch}, c.connected.Token); got != want {
			t.Errorf("end id %q, want the connection's position %q (an empty id clears Last-Event-ID)", got, want)
		}
		select {
		case ev, ok := <-c.events:
			if ok {
				t.Fatalf("an event after end:\n%s", ev.raw)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the stream did not end within 10s of the end event")
		}
		deadline := time.Now().Add(10 * time.Second)
		for connCount(r.ns) != 0 || r.srv.Active() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("ConnCount %d, Active %d 10s after the close; want 0", connCount(r.ns), r.srv.Active())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// TestStreamEndReasons: every reason a client must act on reaches it.
func TestStreamEndReasons(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{{hub.ErrTokenExpired, "expired"}, {hub.ErrClosed, "shutdown"}, {hub.ErrDisconnected, "disconnected"}} {
		t.Run(tc.want, func(t *testing.T) {
			r := newRig(t, Config{})
			query := ""
			if tc.err == hub.ErrTokenExpired {
				query = "?expires_in=300ms"
			}
			c, _ := r.connect(t, query, "")
			switch tc.err {
			case hub.ErrClosed:
				r.hub.Close()
			case hub.ErrDisconnected:
				if err := r.ns.Disconnect(context.Background(), c.connected.ID); err != nil {
					t.Fatal(err)
				}
			}
			ev := c.next(t)
			if got := ev.one(t, "event"); got != hub.EventEnd || ev.one(t, "data") != `{"reason":"`+tc.want+`"}` {
				t.Fatalf("last event:\n%s\nwant end with reason %s", ev.raw, tc.want)
			}
		})
	}
}

func TestEventFrameIsSharedAndCarriesTheToken(t *testing.T) {
	srv := New(Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	pos := hub.Position{Epoch: testEpoch, Seq: 9}
	body, _ := hub.EncodeBody("default", &hub.Outgoing{Event: "e"}, time.Now())
	m := &hub.Message{Pos: pos, Event: "e", Body: hub.WithID(body, pos.String())}
	a := &stream{srv: srv, token: "AAAAAAAAAAAAAAAAAAAAAA"}
	b := &stream{srv: srv, token: "BBBBBBBBBBBBBBBBBBBBBB"}
	ea, eb := a.event(hub.Event{Msg: m}), b.event(hub.Event{Msg: m})
	if string(ea.ID) != "e1-9.AAAAAAAAAAAAAAAAAAAAAA" || string(eb.ID) != "e1-9.BBBBBBBBBBBBBBBBBBBBBB" {
		t.Errorf("ids %q, %q; want the position and each connection's token", ea.ID, eb.ID)
	}
	if string(ea.Event) != "e" || !bytes.Equal(ea.Data, m.Body) {
		t.Errorf("event %q data %q, want e and the body", ea.Event, ea.Data)
	}
	if &ea.Data[0] != &eb.Data[0] {
		t.Errorf("the data of one message is copied per connection; it must be encoded once and shared")
	}
}

// sseFuzz is the stream FuzzSSEFrame delivers through: one connection per
// fuzzing process, one message per input.
type sseFuzz struct {
	r *rig
	c *client
}

func FuzzSSEFrame(f *testing.F) {
	for _, s := range []struct {
		event string
		data  string
	}{
		{"chat message", `{"text":"hi"}`},
		{"e", `"a\nb\r\nc"`},
		{"e", "\"\u2028\u2029\""},
		{" lead", `[1, 2 ,{"a" : null}]`},
		{"a:b", `": not a comment"`},
		{"data", `"data: x\n\nid: 5"`},
		{"ünï ✓", `"</script>&"`},
		{"x", ""},
		{"x", "\"\xff\""},
		{"x", " {\n\"k\":\n\t1}\n"},
	} {
		f.Add(s.event, []byte(s.data))
	}
	var fz sseFuzz
	fz.r = newRig(f, Config{QueueSize: 16})
	fz.c, _ = fz.r.connect(f, "", "")
	f.Fuzz(func(t *testing.T, event string, data []byte) {
		if hub.ValidEvent(event) != nil || (len(data) > 0 && !json.Valid(data)) {
			return
		}
		m := fz.r.apply(t, &hub.Outgoing{Event: event, Data: data})
		ev := fz.c.next(t)
		checkFrame(t, ev, m, fz.c.connected.Token)
		var env hub.Envelope
		_ = json.Unmarshal([]byte(ev.one(t, "data")), &env)
		if !sameJSON(t, env.Data, data) {
			t.Fatalf("data on the wire %s, published %q", env.Data, data)
		}
	})
}

// sameJSON reports whether a and b are the same JSON value (an empty b is
// an absent data: null).
func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	if len(b) == 0 {
		b = []byte("null")
	}
	var va, vb any
	for _, x := range []struct {
		in  []byte
		out *any
	}{{a, &va}, {b, &vb}} {
		dec := json.NewDecoder(bytes.NewReader(x.in))
		dec.UseNumber()
		if err := dec.Decode(x.out); err != nil {
			t.Fatalf("decode %q: %v", x.in, err)
		}
	}
	return reflect.DeepEqual(va, vb)
}
