package hub

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
)

// A connection's whole start through Open and Run, and the bounded scan of
// latest history.

// TestOpenSaysConnected: the first event is `connected` with the
// connection's id, token, namespace, rooms (sorted), restored flag and
// user, and the SSE id of its registration point.
func TestOpenSaysConnected(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	fx.publish(&Message{Event: "e"})
	sink := &fakeSink{}
	c, err := fx.ns.Open(ctx, OpenRequest{Rooms: []string{"b", "a"}, User: "alice", Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	if sink.hello == nil || sink.hello.Name != EventConnected || sink.hello.ID != ResumeID(Position{testEpoch, 1}, c.Token) {
		t.Fatalf("hello %+v, want connected with id %s", sink.hello, ResumeID(Position{testEpoch, 1}, c.Token))
	}
	var got Connected
	if err := json.Unmarshal(sink.hello.Data, &got); err != nil {
		t.Fatal(err)
	}
	want := Connected{ID: c.ID, Token: c.Token, NS: "test", Rooms: []string{"a", "b"}, User: "alice"}
	if !slices.Equal(got.Rooms, want.Rooms) || got.ID != want.ID || got.Token != want.Token || got.NS != want.NS || got.Restored || got.User != want.User {
		t.Fatalf("connected %+v, want %+v", got, want)
	}
	if c.Namespace() != fx.ns || c.Restored() || c.Reset() != "" || c.Err() != nil {
		t.Fatalf("conn: ns %v restored %v reset %q err %v", c.Namespace().Name(), c.Restored(), c.Reset(), c.Err())
	}
}

// TestRunReplaysThenGoesLive: Run replays what a resuming connection
// missed, then delivers live; the resume is counted, as a replay.
func TestRunReplaysThenGoesLive(t *testing.T) {
	m := &recMetrics{}
	fx := newFixture(t, NamespaceConfig{Metrics: m})
	for range 3 {
		fx.publish(&Message{Event: "e", Rooms: []string{"lobby"}})
	}
	sink := &fakeSink{}
	c, err := fx.ns.Open(ctx, OpenRequest{Rooms: []string{"lobby"}, Resume: &Position{testEpoch, 1}, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	fx.publish(&Message{Event: "e", Rooms: []string{"lobby"}}) // held while starting
	if err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	fx.publish(&Message{Event: "e", Rooms: []string{"lobby"}})
	if got := sink.seqs(); !slices.Equal(got, []uint64{2, 3, 4, 5}) {
		t.Fatalf("got %v, want 2 to 5", got)
	}
	if len(sink.named(EventReset)) != 0 {
		t.Fatalf("resets %v", sink.named(EventReset))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !slices.Equal(m.resumed, []bool{false}) {
		t.Fatalf("resumes counted %v, want one replay", m.resumed)
	}
}

// TestRunResetsTellWhyAndWhere: a connection whose resume cannot be
// honoured gets a `reset` naming the reason and the position it continues
// from (after what was replayed), then live messages; the reset is counted.
func TestRunResetsTellWhyAndWhere(t *testing.T) {
	type resetEvent struct {
		Reason   string `json:"reason"`
		Position string `json:"position"`
	}
	for _, c := range []struct {
		name     string
		req      func(fx *fixture) OpenRequest
		setup    func(fx *fixture)
		reason   string
		position string
		replayed []uint64
	}{
		{"another epoch", func(*fixture) OpenRequest {
			return OpenRequest{Rooms: []string{"lobby"}, Resume: &Position{"ab", 1}}
		}, nil, "the message store was recreated", testEpoch + "-3", nil},
		{"ahead", func(*fixture) OpenRequest {
			return OpenRequest{Rooms: []string{"lobby"}, Resume: &Position{testEpoch, 9}}
		}, nil, "ahead of this server's log", testEpoch + "-3", nil},
		{"not restored", func(*fixture) OpenRequest {
			return OpenRequest{Rooms: []string{"lobby"}, Resume: &Position{testEpoch, 1}, Token: newID()}
		}, nil, "the connection was not restored: its session is unknown here", testEpoch + "-3", []uint64{2, 3}},
		{"retention during the replay", func(*fixture) OpenRequest {
			return OpenRequest{Rooms: []string{"lobby"}, Resume: &Position{testEpoch, 1}}
		}, func(fx *fixture) { fx.log.forceGap(true) }, "removed by retention while resuming", testEpoch + "-3", []uint64{2, 3}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := &recMetrics{}
			fx := newFixture(t, NamespaceConfig{Metrics: m})
			for range 3 {
				fx.publish(&Message{Event: "e", Rooms: []string{"lobby"}})
			}
			sink := &fakeSink{}
			req := c.req(fx)
			req.Sink = sink
			conn, err := fx.ns.Open(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if c.setup != nil {
				c.setup(fx)
			}
			if err := conn.Run(ctx); err != nil {
				t.Fatal(err)
			}
			fx.publish(&Message{Event: "e", Rooms: []string{"lobby"}})
			rs := sink.named(EventReset)
			if len(rs) != 1 {
				t.Fatalf("resets %v, want one", rs)
			}
			var r resetEvent
			_ = json.Unmarshal(rs[0].Data, &r)
			if !strings.Contains(r.Reason, c.reason) || r.Position != c.position || rs[0].ID != c.position+"."+conn.Token {
				t.Fatalf("reset %+v (id %s), want %q at %s", r, rs[0].ID, c.reason, c.position)
			}
			if got := sink.seqs(); !slices.Equal(got, append(c.replayed, 4)) {
				t.Fatalf("got %v, want %v then the live 4", got, c.replayed)
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			wantCounted := []bool{c.name != "retention during the replay"} // counted at open
			if !slices.Equal(m.resumed, wantCounted) {
				t.Fatalf("resumes counted %v, want %v", m.resumed, wantCounted)
			}
		})
	}
}

// TestRunFailuresCloseTheConnection: a replay or a reset the sink cannot
// take closes the connection with that error.
func TestRunFailuresCloseTheConnection(t *testing.T) {
	for _, resume := range []Position{{testEpoch, 1}, {"ab", 1}} {
		fx := newFixture(t, NamespaceConfig{})
		for range 3 {
			fx.publish(&Message{Event: "e", Rooms: []string{"lobby"}})
		}
		gone := errors.New("client gone")
		sink := &fakeSink{waitErr: gone}
		c, err := fx.ns.Open(ctx, OpenRequest{Rooms: []string{"lobby"}, Resume: &resume, Sink: sink})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Run(ctx); !errors.Is(err, gone) || !errors.Is(sink.closeErr(), gone) || !errors.Is(c.Err(), gone) {
			t.Fatalf("resume from %v: Run %v, closed with %v", resume, err, sink.closeErr())
		}
	}
	// A connection closed before Run returns why.
	fx := newFixture(t, NamespaceConfig{})
	c, err := fx.ns.Open(ctx, OpenRequest{Sink: &fakeSink{}})
	if err != nil {
		t.Fatal(err)
	}
	c.Close(ErrReplaced)
	if err := c.Run(ctx); !errors.Is(err, ErrReplaced) {
		t.Fatalf("Run of a closed connection: %v", err)
	}
}

// windowLog is a Log of last messages (from first) in which only the
// sequences of roomSeqs are messages to room "lobby"; it records the
// ranges read.
type windowLog struct {
	first, last uint64
	roomSeqs    []uint64
	mu          sync.Mutex
	reads       [][2]uint64
}

func (l *windowLog) OpenNamespace(context.Context, string, Retention) (LogState, error) {
	return LogState{Epoch: testEpoch, First: l.first, Last: l.last}, nil
}
func (l *windowLog) Follow(context.Context, string, uint64, func(*Message)) error { return nil }
func (l *windowLog) Publish(context.Context, string, *Outgoing) (Position, bool, error) {
	return Position{}, false, ErrUnavailable
}
func (l *windowLog) State(context.Context, string) (LogState, error) {
	return LogState{Epoch: testEpoch, First: l.first, Last: l.last}, nil
}
func (l *windowLog) Gap(context.Context, string, uint64, Filter) (bool, error) { return false, nil }
func (l *windowLog) Read(_ context.Context, _ string, from, to uint64, _ Filter, fn func(*Message) bool) error {
	l.mu.Lock()
	l.reads = append(l.reads, [2]uint64{from, to})
	l.mu.Unlock()
	for _, s := range l.roomSeqs {
		if s >= max(from, l.first) && s <= to && !fn(&Message{Pos: Position{testEpoch, s}, Rooms: []string{"lobby"}}) {
			break
		}
	}
	return nil
}

// TestHistoryLatestReadsGrowingWindows: the latest messages of a room are
// read in windows back from the end, 4×limit (at least 256) first, each
// four times the last, until limit messages are found, the log's start is
// reached, or a window reaches 2^17 messages.
func TestHistoryLatestReadsGrowingWindows(t *testing.T) {
	windows := func(last uint64, sizes ...uint64) [][2]uint64 {
		var out [][2]uint64
		for _, w := range sizes {
			out = append(out, [2]uint64{last - w + 1, last})
		}
		return out
	}
	for _, c := range []struct {
		name      string
		log       *windowLog
		limit     int
		wantReads [][2]uint64
		wantFound []uint64
	}{
		{"quiet room in a busy log: bounded", &windowLog{first: 1, last: 200000, roomSeqs: []uint64{5}}, 128,
			windows(200000, 512, 2048, 8192, 32768, 131072), nil},
		{"limit found in the first window", &windowLog{first: 1, last: 1000, roomSeqs: []uint64{745, 900, 1000}}, 2,
			windows(1000, 256), []uint64{900, 1000}},
		{"exactly limit in the first window", &windowLog{first: 1, last: 1000, roomSeqs: []uint64{500, 745, 1000}}, 2,
			windows(1000, 256), []uint64{745, 1000}},
		{"one short in the first window", &windowLog{first: 1, last: 1000, roomSeqs: []uint64{744, 1000}}, 2,
			[][2]uint64{{745, 1000}, {1, 1000}}, []uint64{744, 1000}},
		{"a large limit's first window", &windowLog{first: 1, last: 5000, roomSeqs: []uint64{4000, 4001}}, 200,
			[][2]uint64{{4201, 5000}, {1801, 5000}, {1, 5000}}, []uint64{4000, 4001}},
		{"a log shorter than the window", &windowLog{first: 1000, last: 1200, roomSeqs: []uint64{1100}}, 10,
			[][2]uint64{{1000, 1200}}, []uint64{1100}},
		{"a log one longer than the window", &windowLog{first: 1000, last: 1256, roomSeqs: []uint64{1000}}, 10,
			[][2]uint64{{1001, 1256}, {1000, 1256}}, []uint64{1000}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHubOn(t, c.log)
			ns, err := h.AddNamespace(ctx, "test", NamespaceConfig{HistoryLimit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			page, err := ns.History(ctx, "lobby", nil, c.limit)
			if err != nil {
				t.Fatal(err)
			}
			var found []uint64
			for _, m := range page.Messages {
				found = append(found, m.Pos.Seq)
			}
			if !slices.Equal(found, c.wantFound) {
				t.Errorf("found %v, want %v", found, c.wantFound)
			}
			if !slices.Equal(c.log.reads, c.wantReads) {
				t.Errorf("read %v, want %v", c.log.reads, c.wantReads)
			}
		})
	}
}

// newHubOn builds a hub on any Log.
func newHubOn(t *testing.T, log Log) *Hub {
	t.Helper()
	h, err := New(Deps{Log: log, Sessions: newFakeSessions(), Logger: discard()}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	return h
}
