package hub_test

// Benchmarks of the hub's hot paths: encoding a publish, fan-out to local
// connections, join/leave. `go test -run '^$' -bench . -benchmem
// ./internal/hub/` runs them; BENCHMARKS.md has the figures.

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/hub"
)

// benchLog is a hub.Log that stores nothing: fan-out benchmarks call the
// namespace's live feed (apply, kept from Follow) themselves.
type benchLog struct {
	seq   atomic.Uint64
	apply func(*hub.Message)
}

func (l *benchLog) OpenNamespace(context.Context, string, hub.Retention) (hub.LogState, error) {
	return hub.LogState{Epoch: "e1", First: 1}, nil
}

func (l *benchLog) Follow(_ context.Context, _ string, _ uint64, fn func(*hub.Message)) error {
	l.apply = fn
	return nil
}

func (l *benchLog) Publish(context.Context, string, *hub.Outgoing) (hub.Position, bool, error) {
	return hub.Position{Epoch: "e1", Seq: l.seq.Add(1)}, false, nil
}

func (l *benchLog) Read(context.Context, string, uint64, uint64, hub.Filter, func(*hub.Message) bool) error {
	return nil
}

func (l *benchLog) State(context.Context, string) (hub.LogState, error) {
	return hub.LogState{Epoch: "e1", First: 1, Last: l.seq.Load()}, nil
}

func (l *benchLog) Gap(context.Context, string, uint64, hub.Filter) (bool, error) { return false, nil }

type benchSessions struct{}

func (benchSessions) Save(context.Context, string, hub.Session) error { return nil }
func (benchSessions) Take(context.Context, string) (hub.Session, bool, error) {
	return hub.Session{}, false, nil
}

// countSink is a Sink that only counts: what Apply costs without a network.
type countSink struct{ n atomic.Int64 }

func (s *countSink) Hello(hub.Event) error                     { return nil }
func (s *countSink) Send(hub.Event) bool                       { s.n.Add(1); return true }
func (s *countSink) SendWait(context.Context, hub.Event) error { s.n.Add(1); return nil }
func (s *countSink) Close(error, string)                       {}

// benchNamespace returns a namespace on a benchLog, and its live feed.
func benchNamespace(tb testing.TB) (*hub.Namespace, func(*hub.Message)) {
	tb.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	log := &benchLog{}
	h, err := hub.New(hub.Deps{Log: log, Sessions: benchSessions{}, Logger: logger}, hub.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	ns, err := h.AddNamespace(context.Background(), "bench", hub.NamespaceConfig{MaxRoomsPerConn: 100})
	if err != nil {
		tb.Fatal(err)
	}
	return ns, log.apply
}

// connectN opens n live connections, connection i in room rooms[i%len].
func connectN(tb testing.TB, ns *hub.Namespace, n int, rooms []string) []*hub.Conn {
	tb.Helper()
	out := make([]*hub.Conn, n)
	for i := range out {
		c, err := ns.Open(context.Background(), hub.OpenRequest{Rooms: []string{rooms[i%len(rooms)]}, Sink: &countSink{}})
		if err != nil {
			tb.Fatal(err)
		}
		if err := c.Run(context.Background()); err != nil {
			tb.Fatal(err)
		}
		out[i] = c
	}
	return out
}

var payload100 = json.RawMessage(`{"bt":1764337234123456789,"bn":123456,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)

func BenchmarkEncodeBody(b *testing.B) {
	o := &hub.Outgoing{Event: "chat message", Data: payload100, Rooms: []string{"lobby"}}
	ts := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := hub.EncodeBody("default", o, ts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWithID(b *testing.B) {
	body, err := hub.EncodeBody("default", &hub.Outgoing{Event: "chat message", Data: payload100, Rooms: []string{"lobby"}}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	id := hub.Position{Epoch: "5f3a9c1e", Seq: 1234567}.String()
	b.ReportAllocs()
	for b.Loop() {
		_ = hub.WithID(body, id)
	}
}

// message builds the i-th stored message to rooms (nil: namespace-wide).
func message(i uint64, rooms []string) *hub.Message {
	pos := hub.Position{Epoch: "e1", Seq: i}
	return &hub.Message{Pos: pos, Event: "b", Rooms: rooms, Body: []byte(`{"id":"e1-` + strconv.FormatUint(i, 10) + `","data":null}`), Time: time.Now()}
}

// BenchmarkApplyFanout is one message to a room of N connections; ns/op is
// per message, ns/delivery per connection reached.
func BenchmarkApplyFanout(b *testing.B) {
	for _, n := range []int{1, 100, 1000, 10000} {
		b.Run("conns="+strconv.Itoa(n), func(b *testing.B) {
			ns, apply := benchNamespace(b)
			connectN(b, ns, n, []string{"lobby"})
			rooms := []string{"lobby"}
			var msgs []*hub.Message
			seq := uint64(0)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if len(msgs) == 0 {
					// Messages are immutable once applied: build fresh ones
					// outside the timer.
					b.StopTimer()
					for range 1024 {
						seq++
						msgs = append(msgs, message(seq, rooms))
					}
					b.StartTimer()
				}
				apply(msgs[0])
				msgs = msgs[1:]
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
		})
	}
}

// BenchmarkApplyRooms is one message to one of 100 rooms shared by 10,000
// connections (the `rooms` scenario's shape).
func BenchmarkApplyRooms(b *testing.B) {
	ns, apply := benchNamespace(b)
	rooms := make([]string, 100)
	for i := range rooms {
		rooms[i] = "room" + strconv.Itoa(i)
	}
	connectN(b, ns, 10000, rooms)
	var msgs []*hub.Message
	seq := uint64(0)
	b.ReportAllocs()
	for b.Loop() {
		if len(msgs) == 0 {
			b.StopTimer()
			for range 4096 {
				seq++
				msgs = append(msgs, message(seq, rooms[seq%100:seq%100+1]))
			}
			b.StartTimer()
		}
		apply(msgs[0])
		msgs = msgs[1:]
	}
}

// BenchmarkJoinLeave joins and leaves a room of 1,000 members.
func BenchmarkJoinLeave(b *testing.B) {
	ns, _ := benchNamespace(b)
	connectN(b, ns, 1000, []string{"lobby"})
	c := connectN(b, ns, 1, []string{"own"})[0]
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ns.Join(ctx, c.ID, "lobby", false); err != nil {
			b.Fatal(err)
		}
		if _, err := ns.Leave(ctx, c.ID, "lobby"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConnectDisconnect registers and removes a connection in a
// namespace of 1,000.
func BenchmarkConnectDisconnect(b *testing.B) {
	ns, _ := benchNamespace(b)
	connectN(b, ns, 1000, []string{"lobby"})
	b.ReportAllocs()
	for b.Loop() {
		c, err := ns.Open(context.Background(), hub.OpenRequest{Rooms: []string{"lobby"}, Sink: &countSink{}})
		if err != nil {
			b.Fatal(err)
		}
		c.Close(hub.ErrReplaced) // nothing to save
		if err := c.Detach(); err != nil {
			b.Fatal(err)
		}
	}
}
