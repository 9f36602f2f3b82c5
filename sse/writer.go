package sse

import (
	"bytes"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

var errStreamClosed = errors.New("stream closed")

// deadlineWriter is the ResponseWriter r3labs writes a connection's events
// to. It does three things:
//
//   - Each write to the client has a deadline, and the first failure is
//     sticky: r3labs ignores write errors and keeps looping, so after a
//     failure every later write must fail at once (no new deadline, no
//     syscall) while r3labs drains its channel and exits.
//
//   - The connection's token in shared events' ids. An event of a message is
//     built once and shared by every connection, with the bare position as
//     its id; the writer appends ".<token>" when r3labs writes that id line,
//     so that the client sees "id: <epoch>-<seq>.<token>" as for any other
//     event (whose ids already carry the token). r3labs writes an event's id
//     line first, with one Write ("id: %s\n"); a position never contains a
//     dot and a full resume id always does. The Write after such an id line
//     is a shared event's pre-formatted data and event lines (frame.shared):
//     the writer drops their leading liveMark.
//
//   - Coalescing. r3labs writes an event as a few small Writes followed by
//     one Flush, and a Flush is a write syscall: one per event per
//     connection is what fan-out costs (notes/r3labs-sse.md). The writer
//     buffers the Writes itself and skips an event's Flush while more events
//     are known to be queued for this connection: enqueued counts the events
//     the stream enqueued (stream.enqueue adds one after each successful
//     TryPublish or Publish), written the events written (one per
//     event-ending Flush). While written < enqueued, an event is queued
//     behind this one. The last queued event's Flush finds them equal and
//     sends the whole burst in one write; an idle connection gets each event
//     as soon as it is written, with no timer and no added latency. The
//     writer reads enqueued (a cache line the fan-out goroutine writes) only
//     when what it read last is used up: once per burst, not per event.
//
//   - HTTP/2. A write deadline set through http.ResponseController is the
//     stream's alone on HTTP/2 (a stalled stream is reset, the connection's
//     other streams go on), but it is a timer that resets the stream when it
//     fires, whether or not a write is under way: a deadline left armed on
//     an idle stream would kill it (heartbeats come less often than the
//     deadline). So on HTTP/2 (perStream) the deadline is cleared whenever
//     the writer has sent everything and goes idle; on HTTP/1.1 a stale
//     connection deadline is harmless and is left for the next write to
//     refresh (one call fewer per event).
//
//   - Flush errors. The access log's chi wrapper implements Flush without
//     its error, and http.ResponseController stops at the first Flusher, so
//     a flush that failed (its deadline passed while it was blocked on a
//     client that does not read) went unseen: the stream still ended, as
//     net/http cancels the request's context, but logged as "client gone"
//     instead of its write timeout. The writer calls the FlushError of the
//     writer under the wrappers instead (flushErr), when there is one.
//
//   - Safety of the count. A skipped Flush relies on a later event being
//     written; every event counted in enqueued is written unless the stream
//     ends (then the bytes are moot, and finish hands what is buffered to
//     net/http, which flushes it when the handler returns). enqueued can
//     only lag (an event written before its enqueue was counted), which
//     costs an extra flush, never a missing one; enqueued only grows, so a
//     value read earlier is a safe lower bound. Heartbeats are counted like
//     any event, and only enqueued once r3labs has registered the subscriber
//     (an earlier event would be dropped by r3labs uncounted-for). A Flush
//     with no Write before it (the one after the response header) is always
//     done. The buffer is bounded: past maxBuffered a burst is sent anyway.
//
// Only one goroutine at a time calls writeFirst, Write, Flush and finish:
// the stream's set-up goroutine (the header and `connected`, before r3labs
// starts), then r3labs' ServeHTTP loop, then the handler; enqueued, kill
// and dead are safe from any goroutine.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	onFail  func(error)
	// flushErr is the FlushError under the wrappers (nil: rc.Flush).
	flushErr func() error
	// perStream is set for HTTP/2: the deadline is cleared when idle.
	perStream bool

	dead     atomic.Bool
	finished atomic.Bool  // the handler is done with the response: hands off
	enqueued atomic.Int64 // events enqueued on the stream (only grows)
	// endAt, when set, is the count of the stream's last event (`end`):
	// once it is written and flushed the writer calls onEnd, which ends the
	// stream.
	endAt atomic.Int64
	onEnd func()

	// Only touched by the writing goroutine:
	written  int64     // events written (event-ending Flushes)
	known    int64     // the last value read from enqueued
	deadline time.Time // the write deadline set last
	buf      *[]byte   // bytes written by r3labs and not yet handed on; nil when empty
	inEvent  bool      // a Write since the last Flush: the next Flush ends an event
	afterID  bool      // the last Write was a bare id line: a liveMark may follow
	token    string    // appended to bare ids; set before r3labs starts writing
	header   bool      // WriteHeader was called: later calls are ignored
}

// WriteHeader sends the status once: the stream writes the header before
// r3labs does (Server.sendHeader), and r3labs' own call must not reach
// net/http (a superfluous WriteHeader is logged).
func (w *deadlineWriter) WriteHeader(code int) {
	if w.header {
		return
	}
	w.header = true
	w.ResponseWriter.WriteHeader(code)
}

// maxBuffered bounds what one connection buffers while its queue drains.
const maxBuffered = 32 << 10

// bufPool holds the buffers of connections that are not mid-burst, so that
// an idle connection holds none.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func newDeadlineWriter(w http.ResponseWriter, timeout time.Duration, onFail func(error)) *deadlineWriter {
	return &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: timeout, onFail: onFail,
		flushErr: flushErrorOf(w)}
}

// flushErrorOf finds the first writer under w (w included) whose flush
// reports its error, through the Unwrap chain (as http.ResponseController
// does, but past writers that implement Flush alone); nil if none does.
func flushErrorOf(w http.ResponseWriter) func() error {
	for w != nil {
		if f, ok := w.(interface{ FlushError() error }); ok {
			return f.FlushError
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
	return nil
}

// flush sends what net/http buffers for this response.
func (w *deadlineWriter) flush() error {
	if w.flushErr != nil {
		return w.flushErr()
	}
	return w.rc.Flush()
}

// idle clears the write deadline of an HTTP/2 stream once everything is
// sent (see the type's comment); the next write arms it again.
func (w *deadlineWriter) idle() {
	if !w.perStream || w.deadline.IsZero() {
		return
	}
	w.deadline = time.Time{}
	if err := w.rc.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		w.fail(err)
	}
}

// arm refreshes the write deadline, but only when less than half of it is
// left: setting a deadline has a cost and most writes come in bursts.
func (w *deadlineWriter) arm() {
	now := time.Now()
	if w.deadline.Sub(now) > w.timeout/2 {
		return
	}
	w.deadline = now.Add(w.timeout)
	if err := w.rc.SetWriteDeadline(w.deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
		w.fail(err)
	}
}

// writeFirst hands p to the ResponseWriter ahead of r3labs: the stream's
// first event, written by the stream with the header (Server.sendHeader).
// It is not an r3labs event, so it is not counted as one written.
// It returns the write's error, if any: a stream closed meanwhile by
// another goroutine (kill) is not a failure of this write.
func (w *deadlineWriter) writeFirst(p []byte) error {
	if w.dead.Load() {
		return nil
	}
	w.arm()
	_, err := w.ResponseWriter.Write(p)
	if err == nil {
		err = w.flush()
	}
	if err != nil {
		w.fail(err)
		return err
	}
	w.idle()
	return nil
}

// Write buffers p; it reaches the client at the next flush that is done.
func (w *deadlineWriter) Write(p []byte) (int, error) {
	if w.dead.Load() {
		return 0, errStreamClosed
	}
	first := !w.inEvent
	w.inEvent = true
	if w.buf == nil {
		w.buf = bufPool.Get().(*[]byte)
	}
	afterID := w.afterID
	w.afterID = false
	if first && w.token != "" && bareID(p) {
		b := append(*w.buf, p[:len(p)-1]...)
		b = append(b, '.')
		b = append(b, w.token...)
		*w.buf = append(b, '\n')
		w.afterID = true
		return len(p), nil
	}
	n := len(p)
	if afterID && len(p) >= len(liveMark) && string(p[:len(liveMark)]) == liveMark {
		p = p[len(liveMark):] // a shared event's pre-formatted lines (frame.shared)
	}
	*w.buf = append(*w.buf, p...)
	return n, nil
}

// bareID reports whether p is an id line without a token: "id: <pos>\n".
func bareID(p []byte) bool {
	return len(p) > len("id: \n") && string(p[:4]) == "id: " && p[len(p)-1] == '\n' &&
		bytes.IndexByte(p, '.') < 0
}

// Flush ends an event (when something was written since the last Flush): it
// sends the buffered events unless more are queued for this connection.
func (w *deadlineWriter) Flush() {
	if w.dead.Load() {
		w.release()
		return
	}
	ending := false
	if w.inEvent {
		w.inEvent = false
		w.written++
		if w.written >= w.known {
			w.known = w.enqueued.Load()
		}
		if end := w.endAt.Load(); end > 0 && w.written >= end {
			ending = true
		} else if w.written < w.known && w.buf != nil && len(*w.buf) < maxBuffered {
			return // a queued event follows: its Flush sends this one too
		}
	}
	if ending {
		defer w.onEnd()
	}
	w.arm()
	if w.buf != nil {
		_, err := w.ResponseWriter.Write(*w.buf)
		w.release()
		if err != nil {
			w.fail(err)
			return
		}
	}
	if err := w.flush(); err != nil {
		w.fail(err)
		return
	}
	w.idle() // Flush returns early above while an event is queued behind
}

// finish hands what is still buffered to the ResponseWriter (net/http
// flushes it when the handler returns). Called once r3labs has returned.
// From then on kill does nothing: once the handler returns, net/http may
// reuse the connection for the client's next request, and a deadline set
// on it then would cut that request.
func (w *deadlineWriter) finish() {
	if w.buf != nil && !w.dead.Load() {
		w.arm()
		if _, err := w.ResponseWriter.Write(*w.buf); err != nil {
			w.fail(err)
		}
	}
	w.release()
	w.finished.Store(true)
	// A deadline armed for this stream must not outlive it either.
	if !w.dead.Load() {
		_ = w.rc.SetWriteDeadline(time.Time{})
	}
}

// release returns the buffer to the pool (large ones are left to the GC).
func (w *deadlineWriter) release() {
	if w.buf == nil {
		return
	}
	if cap(*w.buf) <= 2*maxBuffered {
		*w.buf = (*w.buf)[:0]
		bufPool.Put(w.buf)
	}
	w.buf = nil
}

func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *deadlineWriter) fail(err error) {
	if w.dead.CompareAndSwap(false, true) {
		w.onFail(err)
	}
}

// kill makes the current and every later write fail at once; safe to call
// from any goroutine (net.Conn deadlines are). After finish it does nothing.
func (w *deadlineWriter) kill() {
	if w.finished.Load() {
		return
	}
	if w.dead.CompareAndSwap(false, true) {
		_ = w.rc.SetWriteDeadline(time.Now())
	}
}
