package sse

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// flushRecorder is a ResponseWriter that counts flushes and bytes.
type flushRecorder struct {
	h       http.Header
	bytes   int
	flushes int
}

func (r *flushRecorder) Header() http.Header         { return r.h }
func (r *flushRecorder) WriteHeader(int)             {}
func (r *flushRecorder) Write(p []byte) (int, error) { r.bytes += len(p); return len(p), nil }
func (r *flushRecorder) Flush()                      { r.flushes++ }

// writeEvent writes one event the way r3labs' ServeHTTP does: a Fprintf per
// line, then Flush.
func writeEvent(w *deadlineWriter, id, data, event []byte) {
	fmt.Fprintf(w, "id: %s\n", id)
	fmt.Fprintf(w, "data: %s\n", data)
	fmt.Fprintf(w, "event: %s\n", event)
	fmt.Fprint(w, "\n")
	w.Flush()
}

// BenchmarkWriterBurst writes bursts of k events through the writer as
// r3labs does, with the stream's enqueued count saying k were queued:
// flushes/event shows the coalescing (1/k), ns/op is per event.
func BenchmarkWriterBurst(b *testing.B) {
	m := benchMessage(1234567)
	id := []byte(m.Pos.String() + ".nbQwVjImcwLFXOizgi_1pQ")
	for _, k := range []int{1, 8, 64} {
		b.Run("burst="+strconv.Itoa(k), func(b *testing.B) {
			rec := &flushRecorder{h: http.Header{}}
			w := newDeadlineWriter(rec, time.Minute, func(error) {})
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i%k == 0 {
					w.enqueued.Add(int64(k))
				}
				writeEvent(w, id, m.Body, []byte(m.Event))
				i++
			}
			b.ReportMetric(float64(rec.flushes)/float64(b.N), "flushes/event")
		})
	}
}
