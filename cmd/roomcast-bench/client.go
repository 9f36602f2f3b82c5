package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// dialer spreads client connections over several loopback source addresses
// (127.0.0.2, 127.0.0.3, …): one source address has ~28k ephemeral ports,
// the bench needs more.
type dialer struct {
	host    string // server host:port
	sources []*net.Dialer
	next    atomic.Uint64
}

func newDialer(host string, n int) *dialer {
	d := &dialer{host: host}
	for i := 0; i < max(n, 1); i++ {
		ip := net.IPv4(127, 0, 0, byte(2+i))
		d.sources = append(d.sources, &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: ip}})
	}
	return d
}

func (d *dialer) dial(ctx context.Context) (net.Conn, error) {
	nd := d.sources[d.next.Add(1)%uint64(len(d.sources))]
	c, err := nd.DialContext(ctx, "tcp", d.host)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return c, nil
}

// abort closes c with a reset: no TIME_WAIT left on the source port.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// readHead reads an HTTP/1.1 response head: status, and whether the body is
// chunked or has a length (-1: until close).
func readHead(br *bufio.Reader) (status int, chunked bool, length int64, closeAfter bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, 0, false, err
	}
	f := bytes.Fields(line)
	if len(f) < 2 || !bytes.HasPrefix(f[0], []byte("HTTP/1.")) {
		return 0, false, 0, false, fmt.Errorf("bad status line %q", line)
	}
	if status, err = strconv.Atoi(string(f[1])); err != nil {
		return 0, false, 0, false, fmt.Errorf("bad status line %q", line)
	}
	length = -1
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, false, 0, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			length, _ = strconv.ParseInt(string(v), 10, 64)
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		case bytes.EqualFold(k, []byte("Connection")):
			closeAfter = bytes.EqualFold(v, []byte("close"))
		}
	}
	if status == 204 || status == 304 {
		length = 0
	}
	return status, chunked, length, closeAfter, nil
}

// ---------------------------------------------------------------------------
// SSE

// sseEvent is one parsed event; its slices are only valid in the callback.
type sseEvent struct {
	id, event, data []byte
}

// seqOf returns the sequence of an id "<epoch>-<seq>[.token]".
func seqOf(id []byte) uint64 {
	_, rest, ok := bytes.Cut(id, []byte("-"))
	if !ok {
		return 0
	}
	if i := bytes.IndexByte(rest, '.'); i >= 0 {
		rest = rest[:i]
	}
	var n uint64
	for _, c := range rest {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

// numAfter returns the integer following key in b (key like `"bt":`).
func numAfter(b, key []byte) (int64, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, false
	}
	var n int64
	j := i + len(key)
	start := j
	for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
		n = n*10 + int64(b[j]-'0')
	}
	return n, j > start
}

// strAfter returns the JSON string following key (key like `"ack_id":"`),
// assuming no escapes (true of ack ids and tokens).
func strAfter(b, key []byte) ([]byte, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return nil, false
	}
	rest := b[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil, false
	}
	return rest[:j], true
}

var (
	keyBT    = []byte(`"bt":`)
	keyBN    = []byte(`"bn":`)
	keyAckID = []byte(`"ack_id":"`)
)

// subscriber is one SSE connection read by a lean line reader (not r3labs'
// client: the client must not be the bottleneck).
type subscriber struct {
	idx  int
	conn net.Conn
	lr   *bufio.Reader

	// From the connected event.
	connID, token string
	lastID        string // last event id seen (resume position)

	recv     atomic.Int64 // bench events received
	lastSeq  uint64
	disorder atomic.Int64 // events whose sequence did not grow (duplicate or reorder)
	ended    atomic.Bool
	endErr   error
	done     chan struct{}

	runStarted atomic.Bool
}

// connect opens an SSE stream at path and reads up to its `connected` event.
func connectSSE(ctx context.Context, d *dialer, idx int, path, lastEventID string, bufSize int) (*subscriber, error) {
	c, err := d.dial(ctx)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	var req []byte
	req = append(req, "GET "...)
	req = append(req, path...)
	req = append(req, " HTTP/1.1\r\nHost: "...)
	req = append(req, d.host...)
	req = append(req, "\r\nAccept: text/event-stream\r\n"...)
	if lastEventID != "" {
		req = append(req, "Last-Event-ID: "...)
		req = append(req, lastEventID...)
		req = append(req, "\r\n"...)
	}
	req = append(req, "\r\n"...)
	if _, err := c.Write(req); err != nil {
		abort(c)
		return nil, err
	}
	br := bufio.NewReaderSize(c, bufSize)
	status, chunked, _, _, err := readHead(br)
	if err != nil {
		abort(c)
		return nil, err
	}
	if status != 200 {
		abort(c)
		return nil, fmt.Errorf("GET %s: status %d", path, status)
	}
	var body io.Reader = br
	if chunked {
		body = httputil.NewChunkedReader(br)
	}
	s := &subscriber{idx: idx, conn: c, lr: bufio.NewReaderSize(body, bufSize), done: make(chan struct{})}
	connected := false
	err = s.read(func(ev *sseEvent) bool {
		if string(ev.event) != "connected" {
			return true // e.g. a reset: keep reading
		}
		var cd struct {
			ID    string `json:"id"`
			Token string `json:"token"`
		}
		if json.Unmarshal(ev.data, &cd) == nil {
			s.connID, s.token = cd.ID, cd.Token
		}
		connected = true
		return false
	})
	if err != nil || !connected {
		abort(c)
		if err == nil {
			err = errors.New("stream ended before connected")
		}
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return s, nil
}

// read parses events and calls fn for each until fn returns false or the
// stream fails. The id of the last event is kept in lastID.
func (s *subscriber) read(fn func(*sseEvent) bool) error {
	var ev sseEvent
	var id, event, data []byte
	for {
		line, err := s.lr.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return errors.New("SSE line longer than the read buffer")
			}
			return err
		}
		line = line[:len(line)-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		switch {
		case len(line) == 0:
			if len(data) == 0 && len(event) == 0 {
				continue // a comment-only block (heartbeat)
			}
			ev.id, ev.event, ev.data = id, event, data
			if len(id) > 0 {
				s.lastID = string(id)
			}
			more := fn(&ev)
			id, event, data = id[:0], event[:0], data[:0]
			if !more {
				return nil
			}
		case line[0] == ':':
		case bytes.HasPrefix(line, []byte("data: ")):
			data = append(data, line[6:]...)
		case bytes.HasPrefix(line, []byte("id: ")):
			id = append(id[:0], line[4:]...)
		case bytes.HasPrefix(line, []byte("event: ")):
			event = append(event[:0], line[7:]...)
		}
	}
}

// run reads bench events until the stream ends, recording publish→receive
// latency into h and calling extra (when set) for every non-connected event.
func (s *subscriber) run(h *hist, extra func(s *subscriber, ev *sseEvent)) {
	defer close(s.done)
	err := s.read(func(ev *sseEvent) bool {
		if string(ev.event) == "connected" {
			return true
		}
		if seq := seqOf(ev.id); seq != 0 {
			if seq <= s.lastSeq {
				s.disorder.Add(1)
			}
			s.lastSeq = seq
		}
		if t, ok := numAfter(ev.data, keyBT); ok && h != nil {
			h.record(time.Duration(time.Now().UnixNano() - t))
		}
		if extra != nil {
			extra(s, ev)
		}
		s.recv.Add(1)
		return true
	})
	s.endErr = err
	s.ended.Store(true)
}

func (s *subscriber) close() {
	abort(s.conn)
}

// ---------------------------------------------------------------------------
// HTTP/1.1 requests on a kept-alive connection: a pre-formatted request and a
// minimal response parser, far cheaper than net/http's client.

type httpConn struct {
	d    *dialer
	c    net.Conn
	br   *bufio.Reader
	req  []byte
	body []byte
}

// do sends one request and returns the status and the response body (valid
// until the next call). It reconnects once if the kept-alive connection was
// closed.
func (h *httpConn) do(ctx context.Context, method, path, token string, body []byte) (int, []byte, error) {
	for attempt := 0; ; attempt++ {
		status, resp, err := h.try(ctx, method, path, token, body)
		if err == nil || attempt > 0 || ctx.Err() != nil {
			return status, resp, err
		}
	}
}

func (h *httpConn) try(ctx context.Context, method, path, token string, body []byte) (int, []byte, error) {
	if h.c == nil {
		c, err := h.d.dial(ctx)
		if err != nil {
			return 0, nil, err
		}
		h.c, h.br = c, bufio.NewReaderSize(c, 4096)
	}
	r := h.req[:0]
	r = append(r, method...)
	r = append(r, ' ')
	r = append(r, path...)
	r = append(r, " HTTP/1.1\r\nHost: "...)
	r = append(r, h.d.host...)
	r = append(r, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	r = strconv.AppendInt(r, int64(len(body)), 10)
	r = append(r, "\r\n"...)
	if token != "" {
		r = append(r, "Authorization: Bearer "...)
		r = append(r, token...)
		r = append(r, "\r\n"...)
	}
	r = append(r, "\r\n"...)
	r = append(r, body...)
	h.req = r
	_ = h.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := h.c.Write(r); err != nil {
		h.close()
		return 0, nil, err
	}
	status, chunked, length, closeAfter, err := readHead(h.br)
	if err != nil {
		h.close()
		return 0, nil, err
	}
	h.body = h.body[:0]
	switch {
	case chunked:
		b, err := io.ReadAll(httputil.NewChunkedReader(h.br))
		if err != nil {
			h.close()
			return 0, nil, err
		}
		h.body = append(h.body, b...)
	case length > 0:
		if int64(cap(h.body)) < length {
			h.body = make([]byte, length)
		}
		h.body = h.body[:length]
		if _, err := io.ReadFull(h.br, h.body); err != nil {
			h.close()
			return 0, nil, err
		}
	case length < 0:
		b, _ := io.ReadAll(h.br)
		h.body = append(h.body, b...)
		closeAfter = true
	}
	if closeAfter {
		h.close()
	}
	return status, h.body, nil
}

func (h *httpConn) close() {
	if h.c != nil {
		_ = h.c.Close()
		h.c, h.br = nil, nil
	}
}

// ---------------------------------------------------------------------------
// Connecting many subscribers.

// connectAll opens n subscribers (path(i) for the i-th) with conc dials in
// flight, recording each connect's latency. It stops at the first error.
func connectAll(ctx context.Context, d *dialer, n, conc int, path func(i int) string, lastID func(i int) string, bufSize int, lat *hist) ([]*subscriber, error) {
	subs := make([]*subscriber, n)
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := 0; w < max(1, min(conc, n)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || cctx.Err() != nil {
					return
				}
				dctx, dcancel := context.WithTimeout(cctx, 30*time.Second)
				began := time.Now()
				le := ""
				if lastID != nil {
					le = lastID(i)
				}
				s, err := connectSSE(dctx, d, i, path(i), le, bufSize)
				dcancel()
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("subscriber %d: %w", i, err)
					}
					mu.Unlock()
					cancel()
					return
				}
				if lat != nil {
					lat.record(time.Since(began))
				}
				subs[i] = s
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		closeAll(subs)
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		closeAll(subs)
		return nil, err
	}
	return subs, nil
}

// closeAll resets every subscriber's connection and waits (bounded) for the
// readers that were started to return.
func closeAll(subs []*subscriber) {
	for _, s := range subs {
		if s != nil {
			s.close()
		}
	}
	deadline := time.After(10 * time.Second)
	for _, s := range subs {
		if s == nil || !s.started() {
			continue
		}
		select {
		case <-s.done:
		case <-deadline:
			return
		}
	}
}

func (s *subscriber) started() bool { return s.runStarted.Load() }

// start runs the reader in its own goroutine.
func (s *subscriber) start(h *hist, extra func(*subscriber, *sseEvent)) {
	s.runStarted.Store(true)
	go s.run(h, extra)
}
