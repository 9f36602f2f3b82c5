package main

import (
	"bytes"
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// pubPlan describes a publishing phase. Every loop is bounded by dur (and by
// total when set).
type pubPlan struct {
	rooms   []string
	pubs    int
	rate    float64       // messages/s over all publishers; 0: as fast as answered
	dur     time.Duration // bound of the phase
	total   int64         // stop after this many messages (0: by time only)
	base    int64         // message numbers ("bn") start after base
	payload int
	window  *window // flow control at max rate (nil: none)
	// batch > 0 publishes batches of that many messages (to the plan's
	// first room) with POST /ns/default/messages/batch; counts are then
	// messages stored, latency per request.
	batch int
}

type pubStats struct {
	ok, errs atomic.Int64
	perRoom  []atomic.Int64 // 2xx publishes per room
	lat      *hist
	firstErr atomic.Pointer[string]
	began    time.Time
	ended    time.Time
}

// body returns a publish body whose data is about payload bytes:
// {"bt":<unix ns at send>,"bn":<message number>,"pad":"…"}.
func body(buf []byte, n int64, payload int) []byte {
	buf = append(buf[:0], `{"event":"b","data":{"bt":`...)
	buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
	buf = append(buf, `,"bn":`...)
	buf = strconv.AppendInt(buf, n, 10)
	buf = append(buf, `,"pad":"`...)
	dataLen := len(buf) - len(`{"event":"b","data":`) + 2 // + the closing `"}` of data
	for i := dataLen; i < payload; i++ {
		buf = append(buf, 'x')
	}
	return append(buf, `"}}`...)
}

// batchBody returns a batch of k messages to room numbered from n on, each
// with a body as body() makes.
func batchBody(buf, one []byte, room string, n int64, k, payload int) ([]byte, []byte) {
	buf = append(buf[:0], `{"messages":[`...)
	for i := 0; i < k; i++ {
		if i > 0 {
			buf = append(buf, ',')
		}
		one = body(one, n+int64(i), payload)
		// {"event":…} → {"rooms":["room"],"event":…}
		buf = append(buf, `{"rooms":["`...)
		buf = append(buf, room...)
		buf = append(buf, `"],`...)
		buf = append(buf, one[1:]...)
	}
	return append(buf, "]}"...), one
}

// runBatch is one publisher of a batch phase: it sends batches as fast as
// answered and counts the messages stored (an id in the results) and the
// messages refused.
func runBatch(ctx context.Context, d *dialer, plan pubPlan, st *pubStats, next *atomic.Int64) {
	hc := &httpConn{d: d}
	defer hc.close()
	path := "/ns/default/messages/batch"
	var buf, one []byte
	for ctx.Err() == nil {
		g := next.Add(int64(plan.batch)) - int64(plan.batch)
		if plan.total > 0 && g >= plan.total {
			return
		}
		buf, one = batchBody(buf, one, plan.rooms[0], plan.base+g+1, plan.batch, plan.payload)
		began := time.Now()
		status, resp, err := hc.do(ctx, "POST", path, "", buf)
		if err == nil && status == 200 {
			st.lat.record(time.Since(began))
			ok := int64(bytes.Count(resp, []byte(`{"id":`)))
			st.ok.Add(ok)
			st.perRoom[0].Add(ok)
			if bad := int64(plan.batch) - ok; bad > 0 {
				st.errs.Add(bad)
				msg := "batch results: " + string(resp[:min(len(resp), 300)])
				st.firstErr.CompareAndSwap(nil, &msg)
			}
			continue
		}
		if ctx.Err() != nil && err != nil {
			return
		}
		st.errs.Add(int64(plan.batch))
		msg := ""
		if err != nil {
			msg = err.Error()
		} else {
			msg = "status " + strconv.Itoa(status) + ": " + string(resp)
		}
		st.firstErr.CompareAndSwap(nil, &msg)
	}
}

// publish runs the phase and returns its figures.
func publish(ctx context.Context, d *dialer, plan pubPlan) *pubStats {
	st := &pubStats{perRoom: make([]atomic.Int64, len(plan.rooms)), lat: new(hist)}
	ctx, cancel := context.WithTimeout(ctx, plan.dur)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	st.began = time.Now()
	paths := make([]string, len(plan.rooms))
	for i, r := range plan.rooms {
		paths[i] = "/ns/default/rooms/" + r + "/messages"
	}
	for p := 0; p < max(1, plan.pubs); p++ {
		wg.Add(1)
		if plan.batch > 0 {
			go func() {
				defer wg.Done()
				runBatch(ctx, d, plan, st, &next)
			}()
			continue
		}
		go func() {
			defer wg.Done()
			hc := &httpConn{d: d}
			defer hc.close()
			var buf []byte
			for ctx.Err() == nil {
				g := next.Add(1) - 1
				if plan.total > 0 && g >= plan.total {
					return
				}
				if plan.rate > 0 {
					at := st.began.Add(time.Duration(float64(g) / plan.rate * float64(time.Second)))
					if wait := time.Until(at); wait > 0 {
						select {
						case <-ctx.Done():
							return
						case <-time.After(wait):
						}
					}
				}
				ri := int(g % int64(len(plan.rooms)))
				if plan.window != nil && !plan.window.acquire(ctx, ri) {
					return
				}
				buf = body(buf, plan.base+g+1, plan.payload)
				began := time.Now()
				status, resp, err := hc.do(ctx, "POST", paths[ri], "", buf)
				if err == nil && status/100 == 2 {
					st.lat.record(time.Since(began))
					st.ok.Add(1)
					st.perRoom[ri].Add(1)
					continue
				}
				if plan.window != nil {
					plan.window.release(ri)
				}
				if ctx.Err() != nil && err != nil {
					return // the phase ended mid-request: not an error
				}
				st.errs.Add(1)
				msg := ""
				if err != nil {
					msg = err.Error()
				} else {
					msg = "status " + strconv.Itoa(status) + ": " + string(resp)
				}
				st.firstErr.CompareAndSwap(nil, &msg)
			}
		}()
	}
	wg.Wait()
	st.ended = time.Now()
	return st
}

// window is the flow control of max-rate publishing: a message to a room is
// published only while fewer than size messages of that room are still
// missing at its slowest live subscriber. It finds the highest rate the
// server sustains without overflowing any connection's queue (size must stay
// below the queue size).
type window struct {
	size    int64
	sent    []atomic.Int64 // per room: publishes started (minus failures)
	minRecv []atomic.Int64 // per room: events received by the slowest live subscriber
	mu      sync.Mutex
	tick    chan struct{} // closed and replaced at each controller round
}

func newWindow(size int, rooms int) *window {
	return &window{size: int64(size), sent: make([]atomic.Int64, rooms), minRecv: make([]atomic.Int64, rooms), tick: make(chan struct{})}
}

func (w *window) acquire(ctx context.Context, room int) bool {
	for {
		if w.sent[room].Load()-w.minRecv[room].Load() < w.size {
			w.sent[room].Add(1)
			return true
		}
		w.mu.Lock()
		ch := w.tick
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		}
	}
}

func (w *window) release(room int) { w.sent[room].Add(-1) }

// control recomputes the slowest subscriber of each room every interval
// until ctx ends.
func (w *window) control(ctx context.Context, subs []*subscriber, roomOf func(i int) int, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	mins := make([]int64, len(w.minRecv))
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for i := range mins {
			mins[i] = -1
		}
		for i, s := range subs {
			if s.ended.Load() {
				continue
			}
			r := roomOf(i)
			if v := s.recv.Load(); mins[r] < 0 || v < mins[r] {
				mins[r] = v
			}
		}
		for i, m := range mins {
			if m < 0 {
				m = w.sent[i].Load() // no live subscriber: nothing to wait for
			}
			w.minRecv[i].Store(m)
		}
		w.mu.Lock()
		close(w.tick)
		w.tick = make(chan struct{})
		w.mu.Unlock()
	}
}
