package sse

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	r3sse "github.com/r3labs/sse/v2"

	"github.com/roomcast/roomcast/internal/hub"
)

// Config holds the SSE bounds. Zero values take the documented defaults.
type Config struct {
	// QueueSize is each connection's outbound queue in events (default 256);
	// a connection whose queue overflows is closed and resumes.
	QueueSize int
	// Heartbeat is the interval of the keep-alive comment (default 15s).
	Heartbeat time.Duration
	// Retry is the reconnection delay advised to clients (default 2s).
	Retry time.Duration
	// WriteTimeout bounds each write to a client (default 10s).
	WriteTimeout time.Duration
}

// DefaultConfig is the SSE defaults (New fills a Config's zero fields from
// it; internal/config derives its defaults from it).
var DefaultConfig = Config{QueueSize: 256, Heartbeat: 15 * time.Second, Retry: 2 * time.Second, WriteTimeout: 10 * time.Second}

// Server serves SSE streams for the hub's namespaces.
type Server struct {
	cfg    Config
	logger *slog.Logger
	r3     *r3sse.Server

	starts  sync.Map // stream id → *stream waiting for r3labs' OnSubscribe
	streams sync.Map // stream id → *stream, for heartbeats
	active  atomic.Int64

	heartbeat *r3sse.Event
	stop      chan struct{}
	done      chan struct{}
}

// New returns a Server; Run must be called for heartbeats.
func New(cfg Config, logger *slog.Logger) *Server {
	d := DefaultConfig
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = d.QueueSize
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = d.Heartbeat
	}
	if cfg.Retry <= 0 {
		cfg.Retry = d.Retry
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = d.WriteTimeout
	}
	s := &Server{
		cfg: cfg, logger: logger,
		// An event with neither data nor comment ends r3labs streams: the
		// heartbeat must carry a comment.
		heartbeat: &r3sse.Event{Comment: []byte("heartbeat")},
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	// r3sse.New, not a literal: CreateStream needs the map New makes.
	s.r3 = r3sse.New()
	s.r3.BufferSize = cfg.QueueSize
	s.r3.AutoStream = false
	s.r3.AutoReplay = false // resume comes from the engine; r3labs' log would grow forever
	s.r3.SplitData = false  // the default; shared events rely on it (frame.shared)
	s.r3.Headers = map[string]string{
		"X-Accel-Buffering": "no",
		"Cache-Control":     "no-cache, no-transform",
		"Referrer-Policy":   "no-referrer",
	}
	s.r3.OnSubscribe = s.onSubscribe
	return s
}

// Run sends heartbeats until ctx ends or Close.
func (s *Server) Run(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		case <-t.C:
			s.streams.Range(func(_, v any) bool {
				// A full queue skips the heartbeat: the next message will
				// find the queue full too and close the connection.
				v.(*stream).beat()
				return true
			})
		}
	}
}

// Close stops the heartbeat loop started by Run and waits for it.
func (s *Server) Close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// Active returns the number of open streams.
func (s *Server) Active() int64 { return s.active.Load() }

// Serve opens a connection (req, without its Sink) and streams to it until
// the client goes away or the connection is closed. It returns an error
// only when nothing was written yet (the caller answers with a problem),
// nil otherwise.
func (s *Server) Serve(w http.ResponseWriter, r *http.Request, ns *hub.Namespace, req hub.OpenRequest) error {
	return s.serve(w, r, ns, req)
}

// serve keeps its own frame small: the goroutine that runs it lives for the
// whole stream, and Go only shrinks a goroutine's stack when it uses less
// than a quarter of it. The set-up (Connect, logging, building r3labs'
// request) and the tear-down run in helpers that have returned by the time
// the stream idles, so their large frames are not part of the idle stack
// (BENCHMARKS.md, target 4).
func (s *Server) serve(w http.ResponseWriter, r *http.Request, ns *hub.Namespace, req hub.OpenRequest) error {
	var st *stream
	var err error
	onSideStack(func() { st, err = s.open(w, r, ns, req) })
	if err != nil {
		return err
	}
	defer st.cancel()
	s.r3.ServeHTTP(st.w, s.r3Request(r, st))
	if t := st.endTimer.Load(); t != nil {
		t.Stop()
	}
	st.w.finish()
	s.end(st, r)
	return nil
}

// onSideStack runs f on another goroutine and waits for it; a panic in f is
// raised again here. The set-up of a stream (Connect and below) needs more
// stack than the stream's idle loop: run on the connection's goroutine it
// would grow that stack to 16 KiB, kept for the stream's whole life (Go
// shrinks a stack only when less than a quarter of it is in use, and the
// idle loop under net/http and the router uses more than that). On its own
// goroutine the deep part's stack is freed when it returns, and the
// connection's goroutine stays at 8 KiB (BENCHMARKS.md, target 4).
func onSideStack(f func()) {
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		f()
	}()
	if p := <-done; p != nil {
		panic(p)
	}
}

// open opens the connection in the hub, which sends `connected` through
// Hello (with the response header), and registers the stream with r3labs.
//
//go:noinline
func (s *Server) open(w http.ResponseWriter, r *http.Request, ns *hub.Namespace, req hub.OpenRequest) (*stream, error) {
	ctx, cancel := context.WithCancel(r.Context())
	st := &stream{srv: s, id: newStreamID(), cancel: cancel, ctx: ctx}
	st.w = newDeadlineWriter(w, s.cfg.WriteTimeout, func(err error) { st.Close(err, "") })
	st.w.onEnd = cancel
	st.w.perStream = r.ProtoMajor >= 2 // HTTP/2 deadlines are per stream timers (writer.go)
	req.Sink = st
	req.Remote = r.RemoteAddr
	conn, err := ns.Open(ctx, req)
	if err != nil {
		cancel()
		return nil, err
	}
	st.conn = conn
	st.token = conn.Token
	st.w.token = conn.Token
	st.started = make(chan struct{})
	st.began = time.Now()
	if s.logger.Enabled(ctx, slog.LevelInfo) {
		group := ""
		if req.Group != nil {
			group = req.Group.Name
		}
		s.logger.Info("connect", "ns", ns.Name(), "conn_id", conn.ID, "remote", r.RemoteAddr,
			"rooms", len(req.Rooms), "group", group, "restored", conn.Restored(), "resume", req.Resume != nil, "reset", conn.Reset() != "")
	}

	s.r3.CreateStream(st.id)
	s.starts.Store(st.id, st)
	s.streams.Store(st.id, st)
	s.active.Add(1)
	return st, nil
}

// Hello implements hub.Sink: it writes the response header as r3labs'
// ServeHTTP would (same headers, same order), ahead of it, and the
// `connected` event with it, in one write. net/http's header write is the
// deepest call of a stream's life, and r3labs makes it from the
// connection's goroutine, under the router and the handlers, which grows
// that goroutine's stack from 8 to 16 KiB for good. Done here (Open runs on
// onSideStack's goroutine), it does not. r3labs' own WriteHeader is then
// ignored (deadlineWriter.WriteHeader) and its Flush finds nothing to send.
// The event leaves with the header instead of in a second write
// (BENCHMARKS.md, target 5), with the bytes r3labs would have written (id,
// data, event, and the stream's retry).
func (st *stream) Hello(ev hub.Event) error {
	w := st.w
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	for k, v := range st.srv.r3.Headers {
		h.Set(k, v)
	}
	w.WriteHeader(http.StatusOK)
	b := make([]byte, 0, len(ev.ID)+len(ev.Data)+len(ev.Name)+48)
	b = append(b, "id: "...)
	b = append(b, ev.ID...)
	b = append(b, "\ndata: "...)
	b = append(b, ev.Data...)
	b = append(b, "\nevent: "...)
	b = append(b, ev.Name...)
	b = append(b, "\nretry: "...)
	b = strconv.AppendInt(b, st.srv.cfg.Retry.Milliseconds(), 10)
	b = append(b, "\n\n"...)
	// A write error is reported (nothing reached the client: the caller
	// answers with a problem); a close of the connection meanwhile is not
	// (the stream ends, and the connection is detached as usual).
	return w.writeFirst(b)
}

// r3Request is the request r3labs serves: r3labs reads the stream id from
// the query and insists on a numeric Last-Event-ID, so it gets a clean one.
// A shallow copy with no headers: r3labs reads none but Last-Event-ID, and
// a deep clone would be kept for the stream's whole life.
//
//go:noinline
func (s *Server) r3Request(r *http.Request, st *stream) *http.Request {
	r2 := r.WithContext(st.ctx)
	r2.Header = http.Header{}
	r2.URL = &url.URL{Path: r.URL.Path, RawQuery: "stream=" + url.QueryEscape(st.id)}
	return r2
}

// end runs once r3labs has returned: the stream has ended.
//
//go:noinline
func (s *Server) end(st *stream, r *http.Request) {
	// Its subscriber is gone, so removing the stream leaks nothing, and
	// unblocks a replay still waiting in Publish.
	st.cancel()
	s.streams.Delete(st.id)
	s.r3.RemoveStream(st.id)
	if _, waiting := s.starts.LoadAndDelete(st.id); !waiting {
		<-st.started // the start goroutine ran: wait for it
	}
	s.active.Add(-1)

	conn := st.conn
	ns := conn.Namespace()
	reason := st.reason()
	if err := conn.Detach(); err != nil {
		s.logger.Warn("save session", "ns", ns.Name(), "conn_id", conn.ID, "err", err)
	}
	s.logger.Info("disconnect", "ns", ns.Name(), "conn_id", conn.ID, "remote", r.RemoteAddr,
		"reason", reasonText(reason), "duration", time.Since(st.began).Round(time.Millisecond).String())
}

func reasonText(err error) string {
	switch {
	case err == nil:
		return "client gone"
	case errors.Is(err, hub.ErrSlowConsumer):
		return "slow consumer"
	case errors.Is(err, hub.ErrClosed):
		return "server closing"
	default:
		return err.Error()
	}
}

func (s *Server) onSubscribe(id string, _ *r3sse.Subscriber) {
	v, ok := s.starts.LoadAndDelete(id)
	if !ok {
		return
	}
	st := v.(*stream)
	defer close(st.started)
	st.endMu.Lock()
	st.attached.Store(true)
	end := st.pendingEnd
	st.endMu.Unlock()
	if end != nil { // closed on purpose before r3labs was ready
		if !st.sendEnd(end) {
			st.w.kill()
			st.cancel()
		}
		return
	}
	st.begin()
}

func newStreamID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// stream is one connection's outbound side: the hub's Sink.
type stream struct {
	srv     *Server
	id      string
	token   string          // the connection's, set once Open returns
	ctx     context.Context // the request's, cancelled on Close
	cancel  context.CancelFunc
	w       *deadlineWriter
	conn    *hub.Conn
	started chan struct{}
	began   time.Time

	closeOnce sync.Once
	err       atomic.Pointer[error]
	endTimer  atomic.Pointer[time.Timer] // ends a stream whose client does not read its `end` event
	// endMu orders a Close before r3labs is ready with onSubscribe:
	// pendingEnd is the `end` event onSubscribe then sends.
	endMu      sync.Mutex
	pendingEnd *endEvent
	// attached is set once r3labs has registered the stream's subscriber:
	// before that r3labs drops events, which would leave the writer's
	// enqueued count too high (see deadlineWriter).
	attached atomic.Bool
}

var _ hub.Sink = (*stream)(nil)

// frame is a message's encoded event, shared by every connection.
type frame struct {
	event []byte
	data  []byte
	pos   []byte
	// shared is the message's r3labs event for live fan-out, the same for
	// every connection: its id is the bare position, and each connection's
	// writer appends ".<token>" on the wire (deadlineWriter.token), so that
	// a delivery allocates nothing. r3labs does not modify events with
	// AutoReplay and EncodeBase64 off.
	//
	// Its Data is the event's data and event lines, pre-formatted behind
	// liveMark: r3labs writes a Data that starts with ':' as it is (a
	// comment, to it), so it formats two lines per delivery instead of
	// three (one fmt.Fprintf and one allocation fewer), and the writer
	// drops the mark, so the wire is the same as r3labs' own
	// "id, data, event" (BENCHMARKS.md, target 1). This relies on r3labs'
	// SplitData being off (New), and on the data being one line (compact
	// JSON). Built on the first live delivery (live): replayed messages and
	// group deliveries never need it.
	shared     *r3sse.Event
	sharedOnce sync.Once
}

// liveMark starts a shared event's pre-formatted Data; see frame.shared.
const liveMark = ":\n"

func buildFrame(m *hub.Message) any {
	return &frame{event: []byte(m.Event), data: m.Body, pos: []byte(m.Pos.String())}
}

// live returns the message's shared event (frame.shared).
func (f *frame) live() *r3sse.Event {
	f.sharedOnce.Do(func() {
		raw := make([]byte, 0, len(liveMark)+len("data: \nevent: ")+len(f.data)+len(f.event))
		raw = append(raw, liveMark+"data: "...)
		raw = append(raw, f.data...)
		if len(f.event) > 0 { // as r3labs: no event line for an empty name
			raw = append(raw, "\nevent: "...)
			raw = append(raw, f.event...)
		}
		f.shared = &r3sse.Event{ID: f.pos, Data: raw}
	})
	return f.shared
}

// event returns ev as an r3labs event. A stored message gets this
// connection's full id (replay uses it; the live path sends the shared
// event, which reads the same on the wire).
func (st *stream) event(ev hub.Event) *r3sse.Event {
	if m := ev.Msg; m != nil {
		f := m.Frame(buildFrame).(*frame)
		id := make([]byte, 0, len(f.pos)+1+len(st.token))
		id = append(append(append(id, f.pos...), '.'), st.token...)
		return &r3sse.Event{ID: id, Event: f.event, Data: f.data}
	}
	return &r3sse.Event{ID: []byte(ev.ID), Event: []byte(ev.Name), Data: ev.Data}
}

// enqueue hands ev to the connection's r3labs stream without blocking and
// counts it for the writer's coalescing (after the enqueue: the count may
// lag the writer, never lead it).
func (st *stream) enqueue(ev *r3sse.Event) bool {
	if !st.srv.r3.TryPublish(st.id, ev) {
		return false
	}
	st.w.enqueued.Add(1)
	return true
}

// beat enqueues a heartbeat once r3labs has registered the subscriber.
func (st *stream) beat() {
	if st.attached.Load() {
		st.enqueue(st.srv.heartbeat)
	}
}

// Send implements hub.Sink. A live message's event is shared by every
// connection (frame.live); the hub sends other events only to live
// connections, once r3labs has registered the subscriber, so each enqueue
// is counted like any other (deadlineWriter).
func (st *stream) Send(ev hub.Event) bool {
	if ev.Msg != nil {
		return st.enqueue(ev.Msg.Frame(buildFrame).(*frame).live())
	}
	return st.enqueue(st.event(ev))
}

// SendWait implements hub.Sink.
func (st *stream) SendWait(ctx context.Context, ev hub.Event) error {
	return st.publish(ctx, st.event(ev))
}

func (st *stream) publish(ctx context.Context, ev *r3sse.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := st.ctx.Err(); err != nil {
		return errStreamClosed
	}
	st.srv.r3.Publish(st.id, ev) // returns when queued or when the stream is removed
	st.w.enqueued.Add(1)         // removed: the count no longer matters
	return st.ctx.Err()
}

// Close implements hub.Sink. A stream ended on purpose (hub.EndReason)
// gets an `end` event first, when its queue has room: the writer ends the
// stream once it has written it (deadlineWriter.endAt), or endGrace later
// if the client does not read.
func (st *stream) Close(err error, lastID string) {
	st.closeOnce.Do(func() {
		st.err.Store(&err)
		if reason := hub.EndReason(err); reason != "" && st.ctx.Err() == nil {
			end := &endEvent{reason: reason, id: lastID}
			st.endMu.Lock()
			if !st.attached.Load() {
				// r3labs has not registered the subscriber yet (the client
				// has only read `connected`): onSubscribe sends it.
				st.pendingEnd = end
				st.endMu.Unlock()
				st.endTimer.Store(time.AfterFunc(endGrace, func() { st.w.kill(); st.cancel() }))
				return
			}
			st.endMu.Unlock()
			if st.sendEnd(end) {
				return
			}
		}
		st.w.kill()
		st.cancel()
	})
}

type endEvent struct{ reason, id string }

// sendEnd enqueues the stream's last event, `end`, and makes the writer end
// the stream once it is written (or endGrace later); false when the queue
// is full (the caller ends the stream at once).
func (st *stream) sendEnd(end *endEvent) bool {
	data, _ := json.Marshal(endData{Reason: end.reason})
	st.w.endAt.Store(st.w.enqueued.Load() + 1)
	if !st.srv.r3.TryPublish(st.id, &r3sse.Event{ID: []byte(end.id), Event: []byte(hub.EventEnd), Data: data}) {
		st.w.endAt.Store(0)
		return false
	}
	st.w.enqueued.Add(1)
	if t := st.endTimer.Load(); t == nil {
		st.endTimer.Store(time.AfterFunc(endGrace, func() { st.w.kill(); st.cancel() }))
	}
	return true
}

// endGrace bounds how long a stream ended on purpose waits for its client
// to read the `end` event.
const endGrace = 2 * time.Second

// endData is the data of the `end` event.
type endData struct {
	Reason string `json:"reason"`
}

func (st *stream) reason() error {
	if p := st.err.Load(); p != nil {
		return *p
	}
	return nil
}

// begin runs once the r3labs subscriber is registered (events published
// earlier would be lost): the hub's Run does the rest of the start
// (`reset` or the replay, live, the group).
func (st *stream) begin() {
	if st.ctx.Err() != nil {
		return // the header or `connected` could not be written
	}
	if err := st.conn.Run(st.ctx); err != nil && st.ctx.Err() == nil && !errors.Is(err, hub.ErrSlowConsumer) {
		// The client reconnects and resumes from what it got.
		st.srv.logger.Warn("stream start failed; closing the stream", "ns", st.conn.Namespace().Name(), "conn_id", st.conn.ID, "err", err)
	}
}
