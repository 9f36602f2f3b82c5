package sse

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
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
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 256
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.Retry <= 0 {
		cfg.Retry = 2 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
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

// Serve opens a connection and streams to it until the client goes away or
// the connection is closed. It returns an error only when nothing was
// written yet (the caller answers with a problem), nil otherwise.
// rooms are joined at once; resume and token come from Last-Event-ID
// (header or last_event_id), already parsed.
func (s *Server) Serve(w http.ResponseWriter, r *http.Request, ns *hub.Namespace, rooms []string, resume *hub.Position, token string) error {
	return s.serve(w, r, ns, rooms, "", "", resume, token)
}

// ServeGroup opens a connection that is a member of consumer group group of
// room: it receives the group's deliveries (each message to one member)
// instead of the room's broadcast, plus its direct and namespace-wide
// messages.
func (s *Server) ServeGroup(w http.ResponseWriter, r *http.Request, ns *hub.Namespace, room, group string, resume *hub.Position, token string) error {
	if ns.Groups() == nil {
		return fmt.Errorf("consumer groups: %w", hub.ErrUnavailable)
	}
	if _, err := ns.EnsureGroup(r.Context(), room, group, hub.GroupConfig{}, false); err != nil {
		return err
	}
	return s.serve(w, r, ns, nil, room, group, resume, token)
}

// serve keeps its own frame small: the goroutine that runs it lives for the
// whole stream, and Go only shrinks a goroutine's stack when it uses less
// than a quarter of it. The set-up (Connect, logging, building r3labs'
// request) and the tear-down run in helpers that have returned by the time
// the stream idles, so their large frames are not part of the idle stack
// (BENCHMARKS.md, target 4).
func (s *Server) serve(w http.ResponseWriter, r *http.Request, ns *hub.Namespace, rooms []string, groupRoom, group string, resume *hub.Position, token string) error {
	var st *stream
	var err error
	onSideStack(func() {
		if st, err = s.open(w, r, ns, rooms, groupRoom, group, resume, token); err == nil {
			s.sendHeader(st)
		}
	})
	if err != nil {
		return err
	}
	defer st.cancel()
	s.r3.ServeHTTP(st.w, s.r3Request(r, st))
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

// open connects to the hub and registers the stream with r3labs.
//
//go:noinline
func (s *Server) open(w http.ResponseWriter, r *http.Request, ns *hub.Namespace, rooms []string, groupRoom, group string, resume *hub.Position, token string) (*stream, error) {
	ctx, cancel := context.WithCancel(r.Context())
	st := &stream{srv: s, id: newStreamID(), cancel: cancel, ctx: ctx, groupRoom: groupRoom, group: group}
	st.w = newDeadlineWriter(w, s.cfg.WriteTimeout, st.Close)
	st.w.perStream = r.ProtoMajor >= 2 // HTTP/2 deadlines are per stream timers (writer.go)

	id := hub.IdentityFrom(r.Context())
	start, err := ns.Connect(ctx, hub.ConnectRequest{
		Rooms: rooms, Resume: resume, Token: token, Remote: r.RemoteAddr, Sink: st,
		Perms: id.Perms, User: id.User, Expires: id.Expires,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	conn := start.Conn
	st.token = conn.Token
	st.w.token = conn.Token
	st.start = start
	st.started = make(chan struct{})
	st.began = time.Now()
	if s.logger.Enabled(ctx, slog.LevelInfo) {
		s.logger.Info("connect", "ns", ns.Name(), "conn_id", conn.ID, "remote", r.RemoteAddr,
			"rooms", len(rooms), "group", group, "restored", start.Restored, "resume", resume != nil, "reset", start.Reset != "")
	}

	s.r3.CreateStream(st.id)
	s.starts.Store(st.id, st)
	s.streams.Store(st.id, st)
	s.active.Add(1)
	return st, nil
}

// sendHeader writes the response header as r3labs' ServeHTTP would (same
// headers, same order), ahead of it, and the `connected` event with it, in
// one write. net/http's header write is the deepest call of a stream's
// life, and r3labs makes it from the connection's goroutine, under the
// router and the handlers, which grows that goroutine's stack from 8 to 16
// KiB for good. Done here, on onSideStack's goroutine, it does not. r3labs'
// own WriteHeader is then ignored (deadlineWriter.WriteHeader) and its Flush
// finds nothing to send. The `connected` event is known once open has
// returned and always comes first: sent here, it leaves with the header
// instead of in a second write after r3labs has registered the stream
// (BENCHMARKS.md, target 5), with the bytes r3labs would have written.
func (s *Server) sendHeader(st *stream) {
	w := st.w
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	for k, v := range s.r3.Headers {
		h.Set(k, v)
	}
	w.WriteHeader(http.StatusOK)
	w.writeFirst(st.connectedFrame())
	w.Flush()
}

// connectedFrame is the stream's `connected` event as r3labs formats an
// event (id, data, event, retry).
func (st *stream) connectedFrame() []byte {
	start := st.start
	conn := start.Conn
	ns := conn.Namespace()
	info := ns.Info(conn)
	data, _ := json.Marshal(connectedData{ID: conn.ID, Token: conn.Token, NS: ns.Name(), Rooms: info.Rooms, Restored: start.Restored, User: conn.User})
	b := make([]byte, 0, len(data)+len(conn.Token)+96)
	b = append(b, "id: "...)
	b = append(b, hub.ResumeID(start.At, conn.Token)...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	b = append(b, "\nevent: connected\nretry: "...)
	b = strconv.AppendInt(b, st.srv.cfg.Retry.Milliseconds(), 10)
	return append(b, "\n\n"...)
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

	conn := st.start.Conn
	ns := conn.Namespace()
	reason := st.reason()
	recoverable := !errors.Is(reason, hub.ErrDisconnected) && !errors.Is(reason, hub.ErrReplaced)
	if err := ns.Disconnect(conn, recoverable); err != nil {
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
	st.attached.Store(true)
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
	token   string
	ctx     context.Context // the request's, cancelled on Close
	cancel  context.CancelFunc
	w       *deadlineWriter
	start   hub.Start
	started chan struct{}
	began   time.Time
	// groupRoom and group name the consumer group this connection joins
	// once live (empty: none).
	groupRoom, group string

	closeOnce sync.Once
	err       atomic.Pointer[error]
	// attached is set once r3labs has registered the stream's subscriber:
	// before that r3labs drops events, which would leave the writer's
	// enqueued count too high (see deadlineWriter).
	attached atomic.Bool
}

var (
	_ hub.Sink      = (*stream)(nil)
	_ hub.GroupSink = (*stream)(nil)
)

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

// event returns m's event with this connection's full id (replay uses it;
// the live path sends the shared event, which reads the same on the wire).
func (st *stream) event(m *hub.Message) *r3sse.Event {
	f := m.Frame(buildFrame).(*frame)
	id := make([]byte, 0, len(f.pos)+1+len(st.token))
	id = append(append(append(id, f.pos...), '.'), st.token...)
	return &r3sse.Event{ID: id, Event: f.event, Data: f.data}
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

// Send implements hub.Sink.
func (st *stream) Send(m *hub.Message) bool {
	return st.enqueue(m.Frame(buildFrame).(*frame).live())
}

// SendGroup implements hub.GroupSink: the envelope gains ack_id and
// delivery, and the event's id is the connection's position.
func (st *stream) SendGroup(m *hub.Message, ackID string, count uint64, at hub.Position) bool {
	f := m.Frame(buildFrame).(*frame)
	rest := m.Body[len(`{"id":"`)+len(f.pos)+1:] // after the id member: `,…}` or `}`
	data := make([]byte, 0, len(m.Body)+len(ackID)+40)
	data = append(data, `{"id":"`...)
	data = append(data, f.pos...)
	data = append(data, `","ack_id":"`...)
	data = append(data, ackID...)
	data = append(data, `","delivery":`...)
	data = strconv.AppendUint(data, count, 10)
	data = append(data, rest...)
	ev := &r3sse.Event{ID: []byte(hub.ResumeID(at, st.token)), Event: f.event, Data: data}
	return st.enqueue(ev)
}

// SendNotice implements hub.GroupSink. The hub sends notices only to live
// connections, so r3labs has registered the subscriber and the enqueue is
// counted like any other (deadlineWriter).
func (st *stream) SendNotice(event string, data []byte, at hub.Position) bool {
	ev := &r3sse.Event{ID: []byte(hub.ResumeID(at, st.token)), Event: []byte(event), Data: data}
	return st.enqueue(ev)
}

// SendWait implements hub.Sink.
func (st *stream) SendWait(ctx context.Context, m *hub.Message) error {
	return st.publish(ctx, st.event(m))
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

// Close implements hub.Sink.
func (st *stream) Close(err error) {
	st.closeOnce.Do(func() {
		st.err.Store(&err)
		st.w.kill()
		st.cancel()
	})
}

func (st *stream) reason() error {
	if p := st.err.Load(); p != nil {
		return *p
	}
	return nil
}

type connectedData struct {
	ID       hub.ConnID `json:"id"`
	Token    string     `json:"token"`
	NS       string     `json:"ns"`
	Rooms    []string   `json:"rooms"`
	Restored bool       `json:"restored"`
	User     string     `json:"user,omitempty"`
}

type resetData struct {
	Reason   string `json:"reason"`
	Position string `json:"position"`
}

// begin runs once the r3labs subscriber is registered (events published
// earlier would be lost), after `connected` (sent with the header): `reset`
// or the replay, then live.
func (st *stream) begin() {
	if st.ctx.Err() != nil {
		return // the header or `connected` could not be written
	}
	start := st.start
	conn := start.Conn
	ns := conn.Namespace()
	reset := start.Reset
	if reset == "" && start.ReplayTo > 0 {
		err := conn.Replay(st.ctx, start.At.Seq, start.ReplayTo)
		switch {
		case errors.Is(err, hub.ErrResumeExpired):
			reset = "messages after that position were removed by retention while resuming"
		case err != nil:
			if st.ctx.Err() == nil { // not merely the client going away
				// The client reconnects and resumes from what it got.
				st.srv.logger.Warn("replay failed; closing the stream", "ns", ns.Name(), "conn_id", conn.ID, "err", err)
				st.Close(err)
			}
			return
		}
	}
	if reset != "" {
		// Live messages after the registration point are held in the
		// connection's queue and follow this event: the reset's id must be
		// that point, or a drop right after it would skip them.
		at := start.At
		if start.ReplayTo > 0 {
			at.Seq = start.ReplayTo
		}
		data, _ := json.Marshal(resetData{Reason: reset, Position: at.String()})
		ev := &r3sse.Event{ID: []byte(hub.ResumeID(at, conn.Token)), Event: []byte("reset"), Data: data}
		if st.publish(st.ctx, ev) != nil {
			return
		}
	}
	if conn.GoLive() != nil || st.group == "" {
		return
	}
	if err := ns.JoinGroup(st.ctx, conn, st.groupRoom, st.group); err != nil {
		st.Close(err)
	}
}
