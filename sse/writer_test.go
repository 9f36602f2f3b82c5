package sse

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	r3sse "github.com/r3labs/sse/v2"

	"github.com/roomcast/roomcast/internal/hub"
)

// wireRecorder is a ResponseWriter that records each write and flush: what
// reached net/http, in order.
type wireRecorder struct {
	h      http.Header
	ops    []string // "write:<bytes>" and "flush"
	failAt int      // fail the n-th write (1-based; 0: never)
	writes int
}

func (r *wireRecorder) Header() http.Header { return r.h }
func (r *wireRecorder) WriteHeader(int)     {}
func (r *wireRecorder) Write(p []byte) (int, error) {
	r.writes++
	if r.failAt > 0 && r.writes >= r.failAt {
		return 0, errors.New("broken pipe")
	}
	r.ops = append(r.ops, "write:"+string(p))
	return len(p), nil
}
func (r *wireRecorder) Flush() { r.ops = append(r.ops, "flush") }

func newTestWriter(rec *wireRecorder, token string) (*deadlineWriter, *[]error) {
	var fails []error
	w := newDeadlineWriter(rec, time.Minute, func(err error) { fails = append(fails, err) })
	w.token = token
	return w, &fails
}

// r3event writes an event as r3labs' ServeHTTP does (writeEvent).
func r3event(w *deadlineWriter, id, event, data string) {
	writeEvent(w, []byte(id), []byte(data), []byte(event))
}

func TestWriterFlushesAnEventAtOnceWhenNothingIsQueued(t *testing.T) {
	rec := &wireRecorder{h: http.Header{}}
	w, _ := newTestWriter(rec, "TOKEN")
	w.Flush() // r3labs' flush of the response header: always done
	if got := strings.Join(rec.ops, "|"); got != "flush" {
		t.Fatalf("header flush: ops %q, want one flush", got)
	}
	w.enqueued.Add(1)
	r3event(w, "e1-1", "chat", `{"a":1}`)
	want := "flush|write:id: e1-1.TOKEN\ndata: {\"a\":1}\nevent: chat\n\n|flush"
	if got := strings.Join(rec.ops, "|"); got != want {
		t.Fatalf("ops %q\nwant %q", got, want)
	}
}

func TestWriterCoalescesQueuedEventsIntoOneWrite(t *testing.T) {
	rec := &wireRecorder{h: http.Header{}}
	w, _ := newTestWriter(rec, "TOKEN")
	w.enqueued.Add(3) // three events are queued for this connection
	r3event(w, "e1-1", "a", "1")
	r3event(w, "e1-2", "b", "2")
	if len(rec.ops) != 0 {
		t.Fatalf("after 2 of 3 queued events: ops %q, want nothing written yet", rec.ops)
	}
	r3event(w, "e1-3", "c", "3")
	want := []string{"write:" +
		"id: e1-1.TOKEN\ndata: 1\nevent: a\n\n" +
		"id: e1-2.TOKEN\ndata: 2\nevent: b\n\n" +
		"id: e1-3.TOKEN\ndata: 3\nevent: c\n\n", "flush"}
	if strings.Join(rec.ops, "|") != strings.Join(want, "|") {
		t.Fatalf("ops %q\nwant %q", rec.ops, want)
	}
	if w.buf != nil {
		t.Errorf("the buffer is kept after the flush; an idle connection must hold none")
	}
}

// An event written before the stream counted its enqueue (the count lags)
// is flushed at once: the count errs towards an extra flush, never a
// missing one.
func TestWriterFlushesWhenTheCountLags(t *testing.T) {
	rec := &wireRecorder{h: http.Header{}}
	w, _ := newTestWriter(rec, "TOKEN")
	r3event(w, "e1-1", "a", "1") // enqueued not yet counted
	w.enqueued.Add(1)            // now it is
	w.enqueued.Add(1)            // and a second event is queued
	r3event(w, "e1-2", "b", "2")
	if got := strings.Count(strings.Join(rec.ops, "|"), "flush"); got != 2 {
		t.Fatalf("ops %q: %d flushes, want 2 (each event is the last known one)", rec.ops, got)
	}
}

func TestWriterAddsTheTokenToBareIDsOnly(t *testing.T) {
	rec := &wireRecorder{h: http.Header{}}
	w, _ := newTestWriter(rec, "TOKEN")
	w.enqueued.Add(3)
	r3event(w, "e1-7", "shared", "{}")             // a shared event: bare position
	r3event(w, "e1-7.TOKEN", "connected", "{}")    // already the full resume id
	r3event(w, "e1-8", "data-says", `"id: x-1\n"`) // only the id line is touched
	got := strings.Join(rec.ops, "|")
	for _, want := range []string{"id: e1-7.TOKEN\ndata: {}\nevent: shared\n", "id: e1-7.TOKEN\ndata: {}\nevent: connected\n", "id: e1-8.TOKEN\ndata: \"id: x-1\\n\"\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("wire %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "TOKEN.TOKEN") {
		t.Errorf("a full id got the token twice: %q", got)
	}
}

func TestWriterHeartbeatIsAnEvent(t *testing.T) {
	rec := &wireRecorder{h: http.Header{}}
	w, _ := newTestWriter(rec, "TOKEN")
	w.enqueued.Add(1)
	fmt.Fprintf(w, ": %s\n", "heartbeat")
	fmt.Fprint(w, "\n")
	w.Flush()
	if got := strings.Join(rec.ops, "|"); got != "write:: heartbeat\n\n|flush" {
		t.Fatalf("ops %q, want the comment written and flushed", got)
	}
}

func TestWriterFailureIsStickyAndDropsTheBuffer(t *testing.T) {
	rec := &wireRecorder{h: http.Header{}, failAt: 1}
	w, fails := newTestWriter(rec, "TOKEN")
	w.enqueued.Add(2)
	r3event(w, "e1-1", "a", "1")
	r3event(w, "e1-2", "b", "2") // the burst's write fails
	if len(*fails) != 1 {
		t.Fatalf("onFail called %d times, want 1", len(*fails))
	}
	if _, err := w.Write([]byte("id: e1-3\n")); !errors.Is(err, errStreamClosed) {
		t.Fatalf("write after a failure: %v, want errStreamClosed", err)
	}
	w.Flush()
	if w.buf != nil || len(rec.ops) != 0 {
		t.Fatalf("after a failure: buffer kept %v, ops %q", w.buf != nil, rec.ops)
	}
}

func TestWriterFinishHandsOnWhatIsBuffered(t *testing.T) {
	rec := &wireRecorder{h: http.Header{}}
	w, _ := newTestWriter(rec, "TOKEN")
	w.enqueued.Add(5) // more were queued, but the stream ends
	r3event(w, "e1-1", "a", "1")
	w.finish()
	if got := strings.Join(rec.ops, "|"); got != "write:id: e1-1.TOKEN\ndata: 1\nevent: a\n\n" {
		t.Fatalf("ops %q, want the buffered event handed to net/http (it flushes on return)", got)
	}
	w.kill()
	w.finish() // nothing left, and dead: no write
	if len(rec.ops) != 1 {
		t.Fatalf("ops after kill %q", rec.ops)
	}
}

func TestWriterBoundsWhatItBuffers(t *testing.T) {
	rec := &wireRecorder{h: http.Header{}}
	w, _ := newTestWriter(rec, "TOKEN")
	n := maxBuffered/100 + 10
	w.enqueued.Add(int64(n) + 1) // one more queued than written: never "drained"
	big := strings.Repeat("x", 100)
	for i := range n {
		r3event(w, fmt.Sprintf("e1-%d", i+1), "a", big)
	}
	if strings.Count(strings.Join(rec.ops, "|"), "flush") == 0 {
		t.Fatalf("%d events of 100 bytes buffered with no write: the buffer is unbounded", n)
	}
	if w.buf != nil && len(*w.buf) >= maxBuffered {
		t.Fatalf("buffer holds %d bytes, bound %d", len(*w.buf), maxBuffered)
	}
}

// serveR3 runs r3labs' own ServeHTTP for one stream, publishes evs to it and
// returns what it wrote to w, through the writer when one is given.
func serveR3(t *testing.T, token string, evs ...*r3sse.Event) string {
	t.Helper()
	srv := r3sse.New()
	srv.AutoReplay = false
	srv.AutoStream = false
	attached := make(chan struct{})
	srv.OnSubscribe = func(string, *r3sse.Subscriber) { close(attached) }
	srv.CreateStream("s")
	defer srv.RemoveStream("s")
	rec := httptest.NewRecorder()
	var w http.ResponseWriter = rec
	var dw *deadlineWriter
	if token != "" {
		dw = newDeadlineWriter(rec, time.Minute, func(err error) { t.Errorf("write failed: %v", err) })
		dw.token = token
		w = dw
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/?stream=s", nil))
	}()
	<-attached
	for _, ev := range evs {
		srv.Publish("s", ev)
		if dw != nil {
			dw.enqueued.Add(1)
		}
	}
	srv.Publish("s", &r3sse.Event{}) // neither data nor comment: r3labs returns
	<-done
	if dw != nil {
		dw.finish()
	}
	return rec.Body.String()
}

// A shared event (pre-formatted lines behind liveMark) reaches the wire
// exactly as r3labs writes the same event built the plain way, with the
// connection's token in its id, and so does the comment event after it.
func TestSharedEventReadsAsR3labsOwn(t *testing.T) {
	pos := hub.Position{Epoch: testEpoch, Seq: 42}
	for _, c := range []struct{ event, data string }{
		{"chat message", `{"id":"e1-42","data":{"text":"hi: there"}}`},
		{"a:b", `{"id":"e1-42","data":":\n"}`},
		{"ünï ✓", `{}`},
		{"", `{}`}, // never published (ValidEvent), but r3labs writes no event line for it
	} {
		f := buildFrame(&hub.Message{Pos: pos, Event: c.event, Body: []byte(c.data)}).(*frame)
		got := serveR3(t, "TOKEN", f.live(), &r3sse.Event{Comment: []byte("\nx")})
		want := serveR3(t, "", &r3sse.Event{ID: []byte(pos.String() + ".TOKEN"), Event: []byte(c.event), Data: []byte(c.data)},
			&r3sse.Event{Comment: []byte("\nx")})
		if got != want {
			t.Errorf("event %q: wire\n%q\nwant (r3labs' own)\n%q", c.event, got, want)
		}
	}
}

// deadlineRecorder is a wireRecorder with write deadlines and a flush that
// reports its error, under a wrapper that hides the error as chi's does.
type deadlineRecorder struct {
	wireRecorder
	deadlines []time.Time
	flushErr  error
}

func (r *deadlineRecorder) SetWriteDeadline(d time.Time) error {
	r.deadlines = append(r.deadlines, d)
	return nil
}

func (r *deadlineRecorder) FlushError() error {
	r.ops = append(r.ops, "flush")
	return r.flushErr
}

func (r *deadlineRecorder) Flush() { _ = r.FlushError() }

// flushOnly wraps a ResponseWriter with a Flush that drops the error (as
// chi's WrapResponseWriter does) and an Unwrap.
type flushOnly struct{ http.ResponseWriter }

func (f flushOnly) Flush()                      { f.ResponseWriter.(http.Flusher).Flush() }
func (f flushOnly) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// A failed flush is seen through a wrapper that drops its error.
func TestWriterSeesFlushErrorsUnderWrappers(t *testing.T) {
	rec := &deadlineRecorder{wireRecorder: wireRecorder{h: http.Header{}}, flushErr: errors.New("stream reset")}
	var fails []error
	w := newDeadlineWriter(flushOnly{rec}, time.Minute, func(err error) { fails = append(fails, err) })
	w.enqueued.Add(1)
	r3event(w, "e1-1", "a", "1")
	if len(fails) != 1 || fails[0] != rec.flushErr {
		t.Fatalf("fails %v, want the flush's error once", fails)
	}
}

// On HTTP/2 (perStream) the deadline is cleared once everything is sent,
// and armed again by the next write; on HTTP/1.1 it is left as it is.
func TestWriterClearsTheDeadlineWhenIdleOnHTTP2(t *testing.T) {
	for _, perStream := range []bool{true, false} {
		rec := &deadlineRecorder{wireRecorder: wireRecorder{h: http.Header{}}}
		w := newDeadlineWriter(flushOnly{rec}, time.Minute, func(err error) { t.Errorf("write failed: %v", err) })
		w.perStream = perStream
		w.enqueued.Add(2)
		r3event(w, "e1-1", "a", "1") // one more is queued: no flush, no clear
		if n := len(rec.deadlines); n != 0 {
			t.Fatalf("perStream %v: %d deadline calls before the burst was sent, want 0", perStream, n)
		}
		r3event(w, "e1-2", "b", "2")
		var zeros, armed int
		for _, d := range rec.deadlines {
			if d.IsZero() {
				zeros++
			} else {
				armed++
			}
		}
		wantZeros := 0
		if perStream {
			wantZeros = 1
		}
		if armed != 1 || zeros != wantZeros || (perStream && !rec.deadlines[len(rec.deadlines)-1].IsZero()) {
			t.Fatalf("perStream %v: deadlines %v; want armed once, then cleared %d time(s) last", perStream, rec.deadlines, wantZeros)
		}
	}
}
