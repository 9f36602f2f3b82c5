// Package ref is the yardstick of roomcast-bench: the smallest reasonable
// net/http Server-Sent Events fan-out server, so that every roomcast figure
// can be reported beside what the same machine does with no engine, no
// library and no resume.
//
// It serves the two endpoints the bench's scenarios use, with roomcast's
// paths and wire format (a `connected` event first, ids
// `<epoch>-<seq>.<token>`, the same JSON envelope):
//
//	GET  /ns/{ns}/rooms/{room}/events    subscribe to a room
//	POST /ns/{ns}/rooms/{room}/messages  publish {"event", "data"} → 202 {"id"}
//
// One goroutine per connection (the handler's), a bounded queue per
// connection (overflow ends the connection, as in roomcast), and the writer
// writes every queued event and flushes once. Messages live in memory only:
// there is no history, resume or consumer group, so the bench's `resume` and
// `group` scenarios have no reference.
//
// Concurrency: publishes are serialized (one sequence, ids grow per room as
// in roomcast) and only enqueue; each connection's writes happen on its own
// handler goroutine.
package ref

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Config holds the reference's bounds; zero values take roomcast's defaults.
type Config struct {
	QueueSize    int           // events queued per connection (default 256)
	WriteTimeout time.Duration // deadline of each batch write (default 10s)
	Epoch        string        // id prefix (default "ref")
}

// Server is the reference fan-out server; it is an http.Handler.
type Server struct {
	cfg Config
	mux *http.ServeMux

	pubMu sync.Mutex // serializes sequence + fan-out: ids grow per room
	seq   uint64     // guarded by pubMu

	mu    sync.RWMutex
	rooms map[string]map[*conn]struct{}

	active atomic.Int64
}

// New returns a reference server.
func New(cfg Config) *Server {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 256
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.Epoch == "" {
		cfg.Epoch = "ref"
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), rooms: map[string]map[*conn]struct{}{}}
	s.mux.HandleFunc("GET /ns/{ns}/rooms/{room}/events", s.subscribe)
	s.mux.HandleFunc("POST /ns/{ns}/rooms/{room}/messages", s.publish)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	s.mux.HandleFunc("GET /metrics", s.metrics)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Active returns the number of open streams.
func (s *Server) Active() int64 { return s.active.Load() }

// frame is one message's event, shared by every connection: the id line is
// split around the connection's token.
type frame struct {
	head []byte // "id: <epoch>-<seq>."
	rest []byte // "\ndata: …\nevent: …\n\n"
}

type conn struct {
	token string
	wake  chan struct{} // cap 1: "the queue is not empty or the conn is dead"
	rc    *http.ResponseController

	mu    sync.Mutex
	q     []*frame
	spare []*frame
	dead  bool
}

func (c *conn) enqueue(f *frame, limit int) {
	c.mu.Lock()
	overflow := false
	switch {
	case c.dead:
	case len(c.q) >= limit:
		c.dead, overflow = true, true // slow consumer: the connection ends
		c.q = nil
	default:
		c.q = append(c.q, f)
	}
	c.mu.Unlock()
	if overflow {
		// Unblock a write in progress (net.Conn deadlines are safe from any
		// goroutine).
		_ = c.rc.SetWriteDeadline(time.Now())
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *Server) subscribe(w http.ResponseWriter, r *http.Request) {
	ns, room := r.PathValue("ns"), r.PathValue("room")
	rc := http.NewResponseController(w)
	c := &conn{token: newToken(), wake: make(chan struct{}, 1), rc: rc}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)

	s.pubMu.Lock() // the connected id is the position at registration
	seq := s.seq
	s.mu.Lock()
	m := s.rooms[room]
	if m == nil {
		m = map[*conn]struct{}{}
		s.rooms[room] = m
	}
	m[c] = struct{}{}
	s.mu.Unlock()
	s.pubMu.Unlock()
	s.active.Add(1)
	defer func() {
		s.active.Add(-1)
		s.mu.Lock()
		delete(s.rooms[room], c)
		if len(s.rooms[room]) == 0 {
			delete(s.rooms, room)
		}
		s.mu.Unlock()
	}()

	data, _ := json.Marshal(struct {
		ID    string   `json:"id"`
		Token string   `json:"token"`
		NS    string   `json:"ns"`
		Rooms []string `json:"rooms"`
	}{ID: newToken(), Token: c.token, NS: ns, Rooms: []string{room}})
	_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	if _, err := fmt.Fprintf(w, "id: %s-%d.%s\ndata: %s\nevent: connected\nretry: 2000\n\n", s.cfg.Epoch, seq, c.token, data); err != nil {
		return
	}
	if rc.Flush() != nil {
		return
	}
	token := []byte(c.token)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c.wake:
		}
		c.mu.Lock()
		q, dead := c.q, c.dead
		if len(q) > 0 {
			// Swap buffers: publishers append to the spare one meanwhile.
			c.q, c.spare = c.spare[:0], nil
		}
		c.mu.Unlock()
		if dead {
			return
		}
		if len(q) == 0 {
			continue
		}
		// Every queued event, then one flush: one write syscall per batch.
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		for _, f := range q {
			_, _ = w.Write(f.head)
			_, _ = w.Write(token)
			if _, err := w.Write(f.rest); err != nil {
				return
			}
		}
		if rc.Flush() != nil {
			return
		}
		clear(q)
		c.mu.Lock()
		c.spare = q[:0]
		c.mu.Unlock()
	}
}

type publishRequest struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// envelope is roomcast's, so that both servers write the same bytes.
type envelope struct {
	ID    string          `json:"id"`
	NS    string          `json:"ns"`
	Room  string          `json:"room"`
	Event string          `json:"event"`
	From  *string         `json:"from"`
	TS    string          `json:"ts"`
	Data  json.RawMessage `json:"data"`
}

func validEvent(e string) bool {
	if e == "" || len(e) > 128 || !utf8.ValidString(e) {
		return false
	}
	for _, r := range e {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func problem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"title": http.StatusText(status), "status": status, "detail": detail})
	_, _ = w.Write(b)
}

func (s *Server) publish(w http.ResponseWriter, r *http.Request) {
	ns, room := r.PathValue("ns"), r.PathValue("room")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		problem(w, http.StatusRequestEntityTooLarge, err.Error())
		return
	}
	var req publishRequest
	if err := json.Unmarshal(body, &req); err != nil {
		problem(w, http.StatusBadRequest, err.Error())
		return
	}
	if !validEvent(req.Event) {
		problem(w, http.StatusUnprocessableEntity, "event: 1–128 bytes of UTF-8 without control characters")
		return
	}
	if len(req.Data) == 0 {
		req.Data = json.RawMessage("null")
	}
	ts := time.Now().UTC().Format(time.RFC3339Nano)

	s.pubMu.Lock()
	s.seq++
	id := s.cfg.Epoch + "-" + strconv.FormatUint(s.seq, 10)
	data, err := json.Marshal(envelope{ID: id, NS: ns, Room: room, Event: req.Event, TS: ts, Data: req.Data})
	if err != nil {
		s.seq--
		s.pubMu.Unlock()
		problem(w, http.StatusBadRequest, err.Error())
		return
	}
	f := &frame{head: []byte("id: " + id + ".")}
	f.rest = make([]byte, 0, len(data)+len(req.Event)+20)
	f.rest = append(f.rest, "\ndata: "...)
	f.rest = append(f.rest, data...)
	f.rest = append(f.rest, "\nevent: "...)
	f.rest = append(f.rest, req.Event...)
	f.rest = append(f.rest, "\n\n"...)
	s.mu.RLock()
	for c := range s.rooms[room] {
		c.enqueue(f, s.cfg.QueueSize)
	}
	s.mu.RUnlock()
	s.pubMu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"id":"`+id+`"}`)
}

// metrics serves the gauges the bench reads, in Prometheus text format.
func (s *Server) metrics(w http.ResponseWriter, _ *http.Request) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintf(w, "go_goroutines %d\ngo_memstats_heap_inuse_bytes %d\ngo_memstats_stack_inuse_bytes %d\nref_streams %d\n",
		runtime.NumGoroutine(), ms.HeapInuse, ms.StackInuse, s.active.Load())
}
