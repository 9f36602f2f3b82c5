package engine

import (
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/hub"
)

// BenchmarkPublish: the engine's share of a REST publish — a message with
// 94 bytes of data (its envelope ~180) stored through the embedded
// JetStream and read back by the namespace's live consumer — from 64
// goroutines on 2 CPUs (the bench's `publish` scenario without HTTP).
// 1e9 / ns/op is the engine's publishes/s on this machine, cpu-µs/op the
// CPU of the whole process (engine, embedded server and the 64 publishers)
// per publish; BENCHMARKS.md "Publish" sets them beside the HTTP side's
// ceiling.
func BenchmarkPublish(b *testing.B) {
	ctx := context.Background()
	e := open(b, Config{})
	st, err := e.OpenNamespace(ctx, "bench", hub.Retention{})
	if err != nil {
		b.Fatal(err)
	}
	var applied atomic.Int64
	if err := e.Follow(ctx, "bench", st.Last, func(*hub.Message) { applied.Add(1) }); err != nil {
		b.Fatal(err)
	}
	out := &hub.Outgoing{Rooms: []string{"room"}, Event: "e",
		Data: []byte(`{"n":1,"pad":"` + strings.Repeat("x", 78) + `"}`)}
	out.Body, err = hub.EncodeBody("bench", out, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := e.Publish(ctx, "bench", out); err != nil {
				b.Error(err)
				return
			}
		}
	})
	// Every stored message reaches the live consumer (bounded wait), inside
	// the measurement: a backlog's work counts.
	want := int64(b.N)
	for deadline := time.Now().Add(10 * time.Second); applied.Load() < want && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	if got := applied.Load(); got < want {
		b.Fatalf("live consumer applied %d of %d", got, want)
	}
}

// cpuTime is the CPU (user + system) this process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPublishBatch: the engine's share of a batch publish — batches of
// 100 messages like BenchmarkPublish's (PublishBatch: async publishes
// pipelined, then every ack awaited) from 8 goroutines, each message read
// back by the live consumer. An op is one message: 1e9 / ns/op is the
// engine's messages/s, cpu-µs/op the process's CPU per message (the bench's
// `batch` scenario without HTTP; BENCHMARKS.md, target 5).
func BenchmarkPublishBatch(b *testing.B) {
	ctx := context.Background()
	e := open(b, Config{})
	st, err := e.OpenNamespace(ctx, "bench", hub.Retention{MaxMsgsPerRoom: -1})
	if err != nil {
		b.Fatal(err)
	}
	var applied atomic.Int64
	if err := e.Follow(ctx, "bench", st.Last, func(*hub.Message) { applied.Add(1) }); err != nil {
		b.Fatal(err)
	}
	const size = 100
	batch := make([]*hub.Outgoing, size)
	for i := range batch {
		o := &hub.Outgoing{Rooms: []string{"room"}, Event: "e", Data: []byte(`{"n":1,"pad":"` + strings.Repeat("x", 78) + `"}`)}
		if o.Body, err = hub.EncodeBody("bench", o, time.Now()); err != nil {
			b.Fatal(err)
		}
		batch[i] = o
	}
	b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	var sent atomic.Int64
	cpu0 := cpuTime(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		n := 0
		for pb.Next() {
			if n++; n < size {
				continue // one op per message: a batch every size ops
			}
			n = 0
			for _, s := range e.PublishBatch(ctx, "bench", batch) {
				if s.Err != nil {
					b.Error(s.Err)
					return
				}
			}
			sent.Add(size)
		}
	})
	want := sent.Load()
	for deadline := time.Now().Add(10 * time.Second); applied.Load() < want && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	if got := applied.Load(); got < want {
		b.Fatalf("live consumer applied %d of %d", got, want)
	}
}
