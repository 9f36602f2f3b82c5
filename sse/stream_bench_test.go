package sse

// Benchmarks of the SSE side of fan-out: building a delivery's event, and
// whole deliveries from hub.Namespace.Apply to N real loopback HTTP clients
// (hub → r3labs stream → deadlineWriter → socket → client). BENCHMARKS.md
// has the figures; `go test -run '^$' -bench . -benchmem ./sse/` runs them.

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/hub"
)

type benchLog struct{ apply func(*hub.Message) }

func (*benchLog) OpenNamespace(context.Context, string, hub.Retention) (hub.LogState, error) {
	return hub.LogState{Epoch: "5f3a9c1e", First: 1}, nil
}

func (l *benchLog) Follow(_ context.Context, _ string, _ uint64, fn func(*hub.Message)) error {
	l.apply = fn
	return nil
}

func connCount(ns *hub.Namespace) int {
	n, _ := ns.LocalCounts()
	return n
}

func (*benchLog) Publish(context.Context, string, *hub.Outgoing) (hub.Position, bool, error) {
	return hub.Position{}, false, hub.ErrUnavailable
}
func (*benchLog) Read(context.Context, string, uint64, uint64, hub.Filter, func(*hub.Message) bool) error {
	return nil
}
func (*benchLog) State(context.Context, string) (hub.LogState, error) {
	return hub.LogState{Epoch: "e1", First: 1}, nil
}
func (*benchLog) Gap(context.Context, string, uint64, hub.Filter) (bool, error) { return false, nil }

type benchSessions struct{}

func (benchSessions) Save(context.Context, string, hub.Session) error { return nil }
func (benchSessions) Take(context.Context, string) (hub.Session, bool, error) {
	return hub.Session{}, false, nil
}

// benchMessage is a stored message of about the bench's size (100 bytes of
// data in the roomcast envelope).
func benchMessage(seq uint64) *hub.Message {
	o := &hub.Outgoing{Event: "b", Rooms: []string{"lobby"},
		Data: []byte(`{"bt":1764337234123456789,"bn":123456,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)}
	body, err := hub.EncodeBody("default", o, time.Now())
	if err != nil {
		panic(err)
	}
	pos := hub.Position{Epoch: "5f3a9c1e", Seq: seq}
	return &hub.Message{Pos: pos, Event: o.Event, Rooms: o.Rooms, Body: hub.WithID(body, pos.String()), Time: time.Now()}
}

// BenchmarkEvent is the per-delivery work before the enqueue: the
// message's frame (built once per message) and the connection's event —
// shared on the live path (Send), the connection's own for replay.
func BenchmarkEvent(b *testing.B) {
	st := &stream{token: "nbQwVjImcwLFXOizgi_1pQ"}
	m := benchMessage(1234567)
	b.Run("live", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = m.Frame(buildFrame).(*frame).live()
		}
	})
	b.Run("replay", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = st.event(hub.Event{Msg: m})
		}
	})
}

// sseCounter reads an SSE response and counts events named "b".
func sseCounter(r io.Reader, n *atomic.Int64) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		if bytes.Equal(line, []byte("event: b\n")) {
			n.Add(1)
		}
	}
}

// fanoutRig is a room of n connections served over loopback HTTP, each
// read by a plain line reader that counts its events.
type fanoutRig struct {
	log    *benchLog
	counts []atomic.Int64
	seq    uint64
	close  func()
}

func newFanoutRig(b *testing.B, n int) *fanoutRig {
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rig := &fanoutRig{log: &benchLog{}, counts: make([]atomic.Int64, n)}
	h, err := hub.New(hub.Deps{Log: rig.log, Sessions: benchSessions{}, Logger: logger}, hub.Config{})
	if err != nil {
		b.Fatal(err)
	}
	ns, err := h.AddNamespace(context.Background(), "default", hub.NamespaceConfig{})
	if err != nil {
		b.Fatal(err)
	}
	srv := New(Config{QueueSize: 4096, Heartbeat: time.Hour}, logger)
	ctx, stop := context.WithCancel(context.Background())
	go srv.Run(ctx)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = srv.Serve(w, r, ns, hub.OpenRequest{Rooms: []string{"lobby"}})
	}))
	var conns []net.Conn
	var wg sync.WaitGroup
	for i := range n {
		c, err := net.Dial("tcp", ts.Listener.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, "GET /ns/default/rooms/lobby/events HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); sseCounter(c, &rig.counts[i]) }()
	}
	rig.close = func() {
		for _, c := range conns {
			_ = c.Close()
		}
		wg.Wait()
		h.Close()
		ts.Close()
		stop()
		srv.Close()
	}
	// Wait for every stream to be live: a first message reaches all.
	deadline := time.Now().Add(time.Minute)
	for connCount(ns) < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // GoLive runs after the connected event
	rig.apply()
	rig.waitFor(b, 1)
	return rig
}

// apply fans the next message out.
func (rig *fanoutRig) apply() {
	rig.seq++
	rig.log.apply(benchMessage(rig.seq))
}

// waitFor waits until every client has read want events.
func (rig *fanoutRig) waitFor(b *testing.B, want int64) {
	deadline := time.Now().Add(time.Minute)
	for i := range rig.counts {
		for rig.counts[i].Load() < want {
			if time.Now().After(deadline) {
				b.Fatalf("client %d got %d events, want %d", i, rig.counts[i].Load(), want)
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
}

// BenchmarkFanoutLoopback applies messages to a room of N connections
// served over loopback HTTP and waits until every client has read every
// message: ns/op is per message, ns/delivery per event received. The
// clients (plain line readers) share the CPU with the server; allocations
// are the whole process's.
func BenchmarkFanoutLoopback(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run("conns="+strconv.Itoa(n), func(b *testing.B) {
			rig := newFanoutRig(b, n)
			defer rig.close()
			b.ReportAllocs()
			b.ResetTimer()
			sent := int64(1)
			for b.Loop() {
				rig.apply()
				sent++
				if sent%1024 == 0 {
					rig.waitFor(b, sent-512) // keep queues bounded
				}
			}
			rig.waitFor(b, sent)
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
		})
	}
}

// BenchmarkFanoutPaced is the regime of the bench's rooms scenario: each
// message is fanned out to a room of 100 connections alone, once every
// client has read the previous one, so every delivery is its own write
// (nothing to coalesce). cpu-µs/delivery is the process's CPU (server and
// the line-reading clients) per delivery; allocations are the process's.
func BenchmarkFanoutPaced(b *testing.B) {
	const n = 100
	rig := newFanoutRig(b, n)
	defer rig.close()
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	sent := int64(1)
	for b.Loop() {
		rig.apply()
		sent++
		rig.waitFor(b, sent)
	}
	b.StopTimer()
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/1e3/float64(b.N)/n, "cpu-µs/delivery")
}

// processCPU is the CPU (user + system) this process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
