package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/roomcast/roomcast/internal/hub"
)

// Limits bound every request in time and per client address, so that a
// client sending slowly (a slowloris: Content-Length 65000 and one byte a
// minute, thousands of times) neither holds files forever nor locks anyone
// else out. Zero fields are off.
type Limits struct {
	// BodyTimeout is how long a request body may take to arrive, from the
	// end of its headers. Past it the request is answered 408 and its
	// connection closed.
	BodyTimeout time.Duration
	// MaxRequestsPerIP bounds the requests one client address may have in
	// progress at once, streams excepted (they are bounded by the
	// connection limits): more are answered 429 at once.
	MaxRequestsPerIP int
	// MaxHeaderBytes bounds the request line and headers: more is answered
	// 431. The http.Server's own MaxHeaderBytes must be larger (see
	// ServerHeaderBytes): net/http answers beyond it itself, in plain text.
	MaxHeaderBytes int
}

// ServerHeaderBytes is the http.Server.MaxHeaderBytes to pair with limit:
// four times it, so that requests between limit and that reach the API's
// problem+json 431 and only larger ones get net/http's plain-text answer
// (written before any handler runs: net/http has no hook for it), while
// what one connection can make the server buffer stays bounded.
func ServerHeaderBytes(limit int) int {
	if limit <= 0 {
		return http.DefaultMaxHeaderBytes
	}
	return 4 * limit
}

// errBodyTimeout: the body did not arrive within Limits.BodyTimeout.
var errBodyTimeout = errors.New("the request body did not arrive in time")

// errUnsupportedType: a JSON endpoint was sent another media type.
var errUnsupportedType = errors.New("unsupported media type")

// errHeaderTooLarge: request line and headers over Limits.MaxHeaderBytes.
var errHeaderTooLarge = errors.New("request header fields too large")

// limits applies Limits to every request (it runs before routing).
func (a *API) limits(next http.Handler) http.Handler {
	l := a.cfg.Limits
	inFlight := &perIP{n: map[string]int{}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if l.MaxHeaderBytes > 0 {
			if n := headerBytes(r); n > l.MaxHeaderBytes {
				a.refuse(w, r, rc, fmt.Errorf("the request line and headers are %d bytes, more than the %d allowed: %w", n, l.MaxHeaderBytes, errHeaderTooLarge))
				return
			}
		}
		if l.BodyTimeout > 0 && r.Body != nil && r.Body != http.NoBody {
			// Only requests with a body: the deadline is the connection's,
			// and on a bodiless request (an SSE stream) net/http's
			// background read, already started, would hit it and cancel
			// the request. Once the body has been read whole net/http
			// clears it as it starts that read; deadlineBody clears it too,
			// so that a handler slower than the deadline is never cut
			// whatever net/http's internals do.
			if err := rc.SetReadDeadline(time.Now().Add(l.BodyTimeout)); err == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, timeout: l.BodyTimeout}
			}
		}
		if l.MaxRequestsPerIP > 0 && !isStream(r) {
			ip := clientIP(r)
			if !inFlight.acquire(ip, l.MaxRequestsPerIP) {
				a.refuse(w, r, rc, fmt.Errorf("%d requests from your address are in progress, the most allowed; retry when some have finished: %w", l.MaxRequestsPerIP, hub.ErrRateLimited))
				return
			}
			defer inFlight.release(ip)
		}
		next.ServeHTTP(w, r)
	})
}

// refuse answers err and closes the connection without reading the rest
// of the body: net/http would otherwise read up to 256 KiB of it after the
// handler, holding the connection for as long as a slow sender wants.
func (a *API) refuse(w http.ResponseWriter, r *http.Request, rc *http.ResponseController, err error) {
	w.Header().Set("Connection", "close")
	writeError(w, r, a.logger, err)
	_ = rc.SetReadDeadline(time.Now())
}

// isStream reports the SSE routes (GET /ns/{ns}/events and
// /ns/{ns}/rooms/{room}/events): long-lived by design, bounded by the
// connection limits rather than per request. (It runs before routing: the
// path is matched here, exactly, so that a room named "events" is not a
// stream.)
func isStream(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	seg := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch {
	case len(seg) == 3:
		return seg[0] == "ns" && seg[2] == "events"
	case len(seg) == 5:
		return seg[0] == "ns" && seg[2] == "rooms" && seg[4] == "events"
	}
	return false
}

// headerBytes counts a request's line and headers as they came on the wire
// (names, values, ": " and CRLF each).
func headerBytes(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	if r.Host != "" {
		n += len("Host: ") + len(r.Host) + 2
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n + 2
}

// deadlineBody lifts the read deadline once the body has been read whole,
// and names a deadline hit.
type deadlineBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		_ = b.rc.SetReadDeadline(time.Time{})
	case err != nil:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return n, fmt.Errorf("the request body did not arrive within %s: %w", b.timeout, errBodyTimeout)
		}
	}
	return n, err
}

// perIP counts requests in progress per client address.
type perIP struct {
	mu sync.Mutex
	n  map[string]int
}

func (p *perIP) acquire(ip string, limit int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[ip] >= limit {
		return false
	}
	p.n[ip]++
	return true
}

func (p *perIP) release(ip string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[ip]--; p.n[ip] <= 0 {
		delete(p.n, ip)
	}
}

// checkJSON refuses a request body labelled with another media type than
// application/json (parameters such as charset allowed) with 415. A body
// without a Content-Type is taken as JSON: scripts (Python's requests with
// data=, Go's http.NewRequest) send none, and browsers cannot send one
// cross-site past http.CrossOriginProtection. Refusing the form and text
// types keeps the API off the "simple requests" a page of another site can
// make without a CORS preflight.
func checkJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && mt == "application/json" {
		return nil
	}
	return fmt.Errorf("the body must be JSON, sent with Content-Type: application/json (got %q): %w", truncate(ct, 64), errUnsupportedType)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
