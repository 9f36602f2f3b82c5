package sse

import (
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/hub"
)

// A burst larger than what one write carries, with heartbeats interleaved
// every millisecond, arrives whole and in order; and the connection is not
// left with an unflushed write afterwards (the next message arrives too).
func TestBurstsArriveWholeWithHeartbeats(t *testing.T) {
	checkLeaks(t)
	r := newRig(t, Config{Heartbeat: time.Millisecond, QueueSize: 4096})
	c, _ := r.connect(t, "?rooms=lobby", "")
	const n = 2000
	var msgs []*hub.Message
	for i := range n {
		msgs = append(msgs, r.apply(t, &hub.Outgoing{Event: "e" + strconv.Itoa(i%3), Rooms: []string{"lobby"}, Data: []byte(`{"n":` + strconv.Itoa(i) + `}`)}))
	}
	for i := range n {
		checkFrame(t, c.next(t), msgs[i], c.connected.Token)
	}
	// Drained: one more must be flushed on its own.
	m := r.apply(t, &hub.Outgoing{Event: "late", Rooms: []string{"lobby"}})
	checkFrame(t, c.next(t), m, c.connected.Token)
}

// A heartbeat is only enqueued once r3labs has registered the subscriber:
// r3labs drops earlier events, and a dropped event counted as queued would
// make the writer wait for it forever.
func TestHeartbeatWaitsForTheSubscriber(t *testing.T) {
	srv := New(Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	st := &stream{srv: srv, id: newStreamID()}
	st.w = newDeadlineWriter(nil, time.Minute, func(error) {})
	srv.r3.CreateStream(st.id)
	defer srv.r3.RemoveStream(st.id)
	st.beat()
	if got := st.w.enqueued.Load(); got != 0 {
		t.Fatalf("heartbeat before the subscriber: enqueued %d, want 0", got)
	}
	st.attached.Store(true)
	st.beat()
	if got := st.w.enqueued.Load(); got != 1 {
		t.Fatalf("heartbeat once attached: enqueued %d, want 1", got)
	}
}
