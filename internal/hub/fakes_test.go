package hub

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeLog is a hub.Log keeping messages in a slice: message seq n is
// msgs[n-1]. Retention is simulated by first (messages before it are gone).
type fakeLog struct {
	mu        sync.Mutex
	follow    func(*Message) // the namespace's apply, from Follow
	feed      bool           // Publish hands what it stores to follow, as an engine's live feed does
	epoch     string
	first     uint64
	msgs      []*Message
	keys      map[string]Position
	published []*Outgoing

	gap    bool  // Gap answers true whatever the range
	gapErr error // Gap fails
	pubErr error // Publish fails
	reads  int   // Read calls
}

var _ Log = (*fakeLog)(nil)

func newFakeLog(epoch string) *fakeLog {
	return &fakeLog{epoch: epoch, first: 1, keys: map[string]Position{}}
}

func (l *fakeLog) OpenNamespace(context.Context, string, Retention) (LogState, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return LogState{Epoch: l.epoch, First: l.first, Last: uint64(len(l.msgs))}, nil
}

// Follow keeps fn; fixture.publish calls it as the engine's live feed does.
func (l *fakeLog) Follow(_ context.Context, _ string, _ uint64, fn func(*Message)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.follow = fn
	return nil
}

func (l *fakeLog) Publish(_ context.Context, ns string, o *Outgoing) (Position, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pubErr != nil {
		return Position{}, false, l.pubErr
	}
	cp := *o
	l.published = append(l.published, &cp)
	if o.Key != "" {
		if p, ok := l.keys[o.Key]; ok {
			return p, true, nil
		}
	}
	m := l.appendLocked(&Message{Event: o.Event, Rooms: o.Rooms, To: o.To, From: o.From, Except: o.Except, Notice: o.Notice}, o.Body)
	if o.Key != "" {
		l.keys[o.Key] = m.Pos
	}
	if l.feed && l.follow != nil {
		l.follow(m) // under l.mu: one at a time, in order
	}
	return m.Pos, false, nil
}

// add stores m (Pos and Body are filled in) as if published; it returns m.
func (l *fakeLog) add(m *Message) *Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.appendLocked(m, []byte(`{"ns":"test","event":"`+m.Event+`","data":null}`))
}

func (l *fakeLog) appendLocked(m *Message, body []byte) *Message {
	m.Pos = Position{Epoch: l.epoch, Seq: uint64(len(l.msgs)) + 1}
	m.Body = WithID(body, m.Pos.String())
	m.Time = time.Now()
	l.msgs = append(l.msgs, m)
	return m
}

// filterMatch is what an engine does with a Filter: subjects, not joins.
func filterMatch(f Filter, m *Message) bool {
	switch {
	case m.To != "":
		return m.To == f.Conn
	case len(m.Rooms) > 0:
		for _, r := range m.Rooms {
			if slices.Contains(f.Rooms, r) {
				return true
			}
		}
		return false
	}
	return true
}

func (l *fakeLog) Read(_ context.Context, _ string, from, to uint64, f Filter, fn func(*Message) bool) error {
	l.mu.Lock()
	l.reads++
	last := uint64(len(l.msgs))
	if to == 0 || to > last {
		to = last
	}
	from = max(from, l.first, 1)
	var batch []*Message
	for seq := from; seq <= to; seq++ {
		if m := l.msgs[seq-1]; filterMatch(f, m) {
			batch = append(batch, m)
		}
	}
	l.mu.Unlock()
	for _, m := range batch {
		if !fn(m) {
			return nil
		}
	}
	return nil
}

func (l *fakeLog) State(context.Context, string) (LogState, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return LogState{Epoch: l.epoch, First: l.first, Last: uint64(len(l.msgs))}, nil
}

func (l *fakeLog) Gap(_ context.Context, _ string, after uint64, _ Filter) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gapErr != nil {
		return false, l.gapErr
	}
	last := uint64(len(l.msgs))
	return l.gap || (last > after && l.first > after+1), nil
}

func (l *fakeLog) publishedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.published)
}

// fakeSessions is a hub.Sessions map.
type fakeSessions struct {
	mu    sync.Mutex
	m     map[string]Session
	saves int
}

var _ Sessions = (*fakeSessions)(nil)

func newFakeSessions() *fakeSessions {
	return &fakeSessions{m: map[string]Session{}}
}

func (s *fakeSessions) Save(_ context.Context, key string, sess Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saves++
	s.m[key] = sess
	return nil
}

func (s *fakeSessions) Take(_ context.Context, key string) (Session, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[key]
	delete(s.m, key)
	return sess, ok, nil
}

// all returns the sessions kept.
func (s *fakeSessions) all() []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Session, 0, len(s.m))
	for _, sess := range s.m {
		out = append(out, sess)
	}
	return out
}

func (s *fakeSessions) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// fakeSink records what a connection was sent. With capacity > 0, Send
// fails once that many messages are queued (a full queue); SendWait always
// queues (replay is paced by the client).
type fakeSink struct {
	mu       sync.Mutex
	capacity int
	hello    *Event
	got      []*Message
	events   []Event // reserved events and group deliveries, in order
	sends    int     // Send calls, successful or not
	waits    int     // SendWait calls
	closed   []error
	waitErr  error
	helloErr error
}

var _ Sink = (*fakeSink)(nil)

func (s *fakeSink) Hello(ev Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hello != nil {
		panic("Hello called twice")
	}
	s.hello = &ev
	return s.helloErr
}

func (s *fakeSink) Send(ev Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sends++
	if s.capacity > 0 && len(s.got)+len(s.events) >= s.capacity {
		return false
	}
	s.add(ev)
	return true
}

func (s *fakeSink) add(ev Event) {
	if ev.Msg != nil {
		s.got = append(s.got, ev.Msg)
	} else {
		s.events = append(s.events, ev)
	}
}

func (s *fakeSink) SendWait(ctx context.Context, ev Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waits++
	if s.waitErr != nil {
		return s.waitErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.add(ev)
	return nil
}

func (s *fakeSink) Close(err error, _ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = append(s.closed, err)
}

// seqs returns the sequences of the messages received, in order.
func (s *fakeSink) seqs() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []uint64{}
	for _, m := range s.got {
		out = append(out, m.Pos.Seq)
	}
	return out
}

// named returns the reserved events and group deliveries called name.
func (s *fakeSink) named(name string) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Event
	for _, ev := range s.events {
		if ev.Name == name {
			out = append(out, ev)
		}
	}
	return out
}

// closeErr returns the first Close error (nil while open).
func (s *fakeSink) closeErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.closed) == 0 {
		return nil
	}
	return s.closed[0]
}

const testEpoch = "e1"

type fixture struct {
	hub  *Hub
	ns   *Namespace
	log  *fakeLog
	sess *fakeSessions
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newHub builds a hub on log and sess (and deps' other fields).
func newHub(t testing.TB, log *fakeLog, sess *fakeSessions, deps Deps, cfg Config) *Hub {
	t.Helper()
	deps.Log, deps.Sessions, deps.Logger = log, sess, discard()
	h, err := New(deps, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

func newFixture(t testing.TB, cfg NamespaceConfig) *fixture {
	t.Helper()
	log := newFakeLog(testEpoch)
	sess := newFakeSessions()
	h := newHub(t, log, sess, Deps{}, Config{})
	ns, err := h.AddNamespace(context.Background(), "test", cfg)
	if err != nil {
		t.Fatalf("AddNamespace: %v", err)
	}
	return &fixture{hub: h, ns: ns, log: log, sess: sess}
}

// opened is what Open decided for a connection, as the tests read it.
type opened struct {
	Conn     *Conn
	Restored bool
	At       Position
	ReplayTo uint64
	Reset    string
}

// openOn opens a connection on ns.
func openOn(ns *Namespace, ctx context.Context, req OpenRequest) (opened, error) {
	c, err := ns.Open(ctx, req)
	if err != nil {
		return opened{}, err
	}
	return opened{Conn: c, Restored: c.start.restored, At: c.start.at, ReplayTo: c.start.replayTo, Reset: c.start.reset}, nil
}

// connect opens a live connection joined to rooms.
func (fx *fixture) connect(t testing.TB, rooms ...string) (*Conn, *fakeSink) {
	t.Helper()
	sink := &fakeSink{}
	st, err := openOn(fx.ns, context.Background(), OpenRequest{Rooms: rooms, Sink: sink})
	if err != nil {
		t.Fatalf("Open(%v): %v", rooms, err)
	}
	if st.Reset != "" || st.ReplayTo != 0 {
		t.Fatalf("Open without resume: got Reset %q ReplayTo %d, want neither", st.Reset, st.ReplayTo)
	}
	if err := st.Conn.Run(context.Background()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return st.Conn, sink
}

// publish stores m in the log and applies it, as the engine's live feed does.
func (fx *fixture) publish(m *Message) *Message {
	fx.log.add(m)
	fx.ns.apply(m)
	return m
}

// disconnect ends c as its stream's end would: recoverable (the client
// went away: its session is kept) or not (replaced: nothing is kept).
func disconnect(c *Conn, recoverable bool) error {
	if !recoverable {
		c.Close(ErrReplaced)
	}
	return c.Detach()
}

// join and leave act on a connection by id, as the API does.
func join(ns *Namespace, c *Conn, room string) (bool, error) {
	m, err := ns.Join(context.Background(), c.ID, room, false)
	return m.Changed, err
}

func leave(ns *Namespace, c *Conn, room string) (bool, error) {
	m, err := ns.Leave(context.Background(), c.ID, room)
	return m.Changed, err
}

func connCount(ns *Namespace) int {
	n, _ := ns.LocalCounts()
	return n
}
