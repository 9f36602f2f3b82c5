package sse

import (
	"errors"
	"net/http"
	"sync/atomic"
	"time"
)

var errStreamClosed = errors.New("stream closed")

// deadlineWriter gives each write to the client a deadline and makes the
// first failure sticky: r3labs ignores write errors and keeps looping, so
// after a failure every later write must fail at once (no new deadline, no
// syscall) while r3labs drains its channel and exits.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	onFail  func(error)

	dead     atomic.Bool
	deadline time.Time // only touched by the writing goroutine
}

func newDeadlineWriter(w http.ResponseWriter, timeout time.Duration, onFail func(error)) *deadlineWriter {
	return &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: timeout, onFail: onFail}
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

func (w *deadlineWriter) Write(p []byte) (int, error) {
	if w.dead.Load() {
		return 0, errStreamClosed
	}
	w.arm()
	n, err := w.ResponseWriter.Write(p)
	if err != nil {
		w.fail(err)
	}
	return n, err
}

func (w *deadlineWriter) Flush() {
	if w.dead.Load() {
		return
	}
	w.arm()
	if err := w.rc.Flush(); err != nil {
		w.fail(err)
	}
}

func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *deadlineWriter) fail(err error) {
	if w.dead.CompareAndSwap(false, true) {
		w.onFail(err)
	}
}

// kill makes the current and every later write fail at once; safe to call
// from any goroutine (net.Conn deadlines are).
func (w *deadlineWriter) kill() {
	if w.dead.CompareAndSwap(false, true) {
		_ = w.rc.SetWriteDeadline(time.Now())
	}
}
