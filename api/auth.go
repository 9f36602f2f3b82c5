package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/cors"
	"github.com/go-chi/httprate"

	"github.com/roomcast/roomcast/internal/auth"
	"github.com/roomcast/roomcast/internal/hub"
)

// Security is a namespace's access policy. The zero value is an open
// namespace: anyone may do anything, and only a connection's token acts
// for that connection.
type Security struct {
	// Verifier checks JWTs and API keys (nil: neither is accepted).
	Verifier *auth.Verifier
	// Locked namespaces need credentials for everything; others are open
	// (API keys, when configured, still grant admin).
	Locked bool
	// CORSOrigins may call cross-origin with credentials; empty: none.
	CORSOrigins []string
	// Rates per IP and per credential; zero N: unlimited.
	Connect, Publish, Join Rate
	// Connection limits in this namespace (0: unlimited).
	MaxConnsPerIP, MaxConnsPerUser int
}

// Rate is N requests per Per.
type Rate struct {
	N   int
	Per time.Duration
}

// TicketStore keeps short-lived, single-use stream tickets (EventSource
// cannot send an Authorization header). The engine implements it on a KV
// bucket, so that a ticket issued by one node works on any.
type TicketStore interface {
	PutTicket(ctx context.Context, key string, value []byte) error
	// TakeTicket returns and removes the value (ok false: none); only one
	// caller can take a given ticket.
	TakeTicket(ctx context.Context, key string) (value []byte, ok bool, err error)
}

type storedTicket struct {
	Identity auth.Identity `json:"identity"`
	Expires  time.Time     `json:"expires"`
}

func ticketKey(ns, ticket string) string {
	sum := sha256.Sum256([]byte("roomcast-ticket:" + ticket))
	return ns + "." + hex.EncodeToString(sum[:16])
}

// issueTicket stores id under a new random ticket.
func (a *API) newTicket(ctx context.Context, ns string, id auth.Identity) (string, time.Time, error) {
	var b [24]byte
	_, _ = rand.Read(b[:])
	t := base64.RawURLEncoding.EncodeToString(b[:])
	exp := time.Now().Add(ticketTTL)
	val, err := json.Marshal(storedTicket{Identity: id, Expires: exp})
	if err != nil {
		return "", time.Time{}, err
	}
	if err := a.cfg.Tickets.PutTicket(ctx, ticketKey(ns, t), val); err != nil {
		return "", time.Time{}, err
	}
	return t, exp, nil
}

// redeemTicket takes a ticket once.
func (a *API) redeemTicket(ctx context.Context, ns, t string) (auth.Identity, error) {
	if len(t) > 64 {
		return auth.Identity{}, fmt.Errorf("ticket: malformed: %w", hub.ErrUnauthorized)
	}
	val, ok, err := a.cfg.Tickets.TakeTicket(ctx, ticketKey(ns, t))
	if err != nil {
		return auth.Identity{}, err
	}
	var st storedTicket
	if !ok || json.Unmarshal(val, &st) != nil || time.Now().After(st.Expires) {
		return auth.Identity{}, fmt.Errorf("ticket: unknown, used or expired: %w", hub.ErrUnauthorized)
	}
	return st.Identity, nil
}

// CookieName is the cookie that may carry a namespace's JWT for browsers
// (set by the application's own backend, HttpOnly, SameSite=Strict).
const CookieName = "roomcast_token"

// ticketTTL is how long a stream ticket stays valid.
const ticketTTL = 30 * time.Second

type principalKind int

const (
	anonymous principalKind = iota
	connection
	user  // a JWT (header, cookie or ticket)
	admin // an API key
)

// principal is who makes a request.
type principal struct {
	kind principalKind
	conn hub.ConnInfo // with kind connection: the connection, on this node or another
	id   auth.Identity
}

// perms returns what the principal may do (nil: everything, in an open
// namespace).
func (p principal) perms(open bool) hub.Perms {
	switch p.kind {
	case connection:
		return p.conn.Perms
	case user:
		return p.id.Grants
	case admin:
		return auth.Grants{Admin: true}
	}
	if open {
		return nil
	}
	return auth.Grants{} // nothing
}

func (p principal) isAdmin() bool { return p.kind == admin || (p.kind == user && p.id.Grants.Admin) }

// credential returns the request's credential: the Authorization bearer,
// else the JWT cookie; SSE routes also take ?ticket=.
func credential(r *http.Request) (string, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, cred, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(cred) == "" {
			return "", fmt.Errorf("authorization: want \"Bearer <token>\": %w", hub.ErrUnauthorized)
		}
		return strings.TrimSpace(cred), nil
	}
	if c, err := r.Cookie(CookieName); err == nil && c.Value != "" {
		return c.Value, nil
	}
	return "", nil
}

// authenticate identifies the caller. Tokens are told apart by shape: a JWT
// has three dot-separated parts, an API key is checked against the
// configured ones, anything else must be a connection token.
func (h *nsAPI) authenticate(r *http.Request, allowTicket bool) (principal, error) {
	cred, err := credential(r)
	if err != nil {
		return principal{}, err
	}
	if cred == "" && allowTicket {
		if t := r.URL.Query().Get("ticket"); t != "" {
			if h.cfg.Tickets == nil {
				return principal{}, fmt.Errorf("tickets are not enabled: %w", hub.ErrUnauthorized)
			}
			id, err := h.redeemTicket(r.Context(), h.ns.Name(), t)
			if err != nil {
				return principal{}, err
			}
			return principal{kind: user, id: id}, nil
		}
	}
	if cred == "" {
		return principal{kind: anonymous}, nil
	}
	if len(cred) > auth.MaxTokenLen {
		return principal{}, fmt.Errorf("credential too long: %w", hub.ErrUnauthorized)
	}
	v := h.sec.Verifier
	switch {
	case v != nil && auth.LooksLikeJWT(cred):
		id, err := v.Verify(cred)
		if err != nil {
			return principal{}, fmt.Errorf("%v: %w", err, hub.ErrUnauthorized)
		}
		return principal{kind: user, id: id}, nil
	case v != nil && v.APIKey(cred):
		return principal{kind: admin, id: auth.Admin()}, nil
	case v != nil && !hub.ValidConnID(cred):
		return principal{}, fmt.Errorf("the bearer credential is neither a JWT, nor an API key of this namespace, nor a connection token: %w", hub.ErrUnauthorized)
	}
	c, err := h.ns.ConnectionByToken(r.Context(), cred)
	if err != nil {
		return principal{}, err
	}
	return principal{kind: connection, conn: c}, nil
}

// require checks that p may do a on room ("" for namespace-wide actions).
func (h *nsAPI) require(p principal, a hub.Action, room string) error {
	if p.kind == anonymous && h.sec.Locked {
		return fmt.Errorf("this namespace needs credentials (a JWT, a ticket or an API key): %w", hub.ErrUnauthorized)
	}
	if !hub.Allowed(p.perms(!h.sec.Locked), a, room) {
		if room == "" {
			return fmt.Errorf("this call needs admin rights (an API key, or a JWT whose roomcast claim has admin: true): %w", hub.ErrForbidden)
		}
		return fmt.Errorf("the credential does not grant %s on room %q: %w", a, room, hub.ErrForbidden)
	}
	return nil
}

// mayActFor reports whether p may act on connection c (join/leave it,
// disconnect it, read it): c's own token, a JWT of the same user, or admin.
func (h *nsAPI) mayActFor(p principal, c hub.ConnInfo) error {
	switch {
	case p.kind == connection && p.conn.ID == c.ID, p.isAdmin():
		return nil
	case p.kind == connection:
		return fmt.Errorf("the token is not connection %s's: use the token of that connection's connected event: %w", c.ID, hub.ErrForbidden)
	case p.kind == user && p.id.User != "" && p.id.User == c.User:
		return nil
	case p.kind == user:
		return fmt.Errorf("connection %s belongs to another user: %w", c.ID, hub.ErrForbidden)
	}
	return fmt.Errorf("this call needs the connection's token (Authorization: Bearer <token from the connected event>): %w", hub.ErrUnauthorized)
}

// --- middleware -------------------------------------------------------------

// corsMiddleware allows the configured origins with credentials; the origin
// is matched against the list, never reflected.
func corsMiddleware(origins []string) func(http.Handler) http.Handler {
	return cors.Handler(cors.Options{
		AllowedOrigins:   origins,
		AllowCredentials: true,
		AllowedMethods:   []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete},
		AllowedHeaders:   []string{"Authorization", "Content-Type", "Last-Event-ID"},
		ExposedHeaders:   []string{"Retry-After"},
		MaxAge:           600,
	})
}

// crossOrigin refuses cross-site browser requests on state-changing methods
// (the browser says so in Sec-Fetch-Site/Origin), so that a cookie cannot
// be ridden by another site; curl and server-to-server calls send neither
// header and pass. Origins in the CORS list are trusted.
func crossOrigin(origins []string) (func(http.Handler) http.Handler, error) {
	p := http.NewCrossOriginProtection()
	for _, o := range origins {
		if err := p.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("cors origin %q: %w", o, err)
		}
	}
	p.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, nil, fmt.Errorf("cross-origin request refused (origin not in the namespace's cors_origins): %w", hub.ErrForbidden))
	}))
	return p.Handler, nil
}

// limit returns rate-limit middleware keyed by client IP and, separately,
// by credential, answering 429 problem+json with Retry-After.
func limit(rate Rate) []func(http.Handler) http.Handler {
	if rate.N <= 0 {
		return nil
	}
	onLimit := httprate.WithLimitHandler(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, nil, fmt.Errorf("more than %d requests per %s from this address or credential: retry after Retry-After seconds: %w", rate.N, rate.Per, hub.ErrRateLimited))
	})
	byIP := httprate.LimitBy(rate.N, rate.Per, func(r *http.Request) (string, error) { return clientIP(r), nil }, onLimit)
	byCred := httprate.LimitBy(rate.N, rate.Per, func(r *http.Request) (string, error) {
		cred, _ := credential(r)
		if cred == "" {
			cred = r.URL.Query().Get("ticket")
		}
		if cred == "" {
			return "ip:" + clientIP(r), nil // anonymous: the IP limit is the credential limit
		}
		sum := sha256.Sum256([]byte(cred))
		return "cred:" + hex.EncodeToString(sum[:12]), nil
	}, onLimit)
	return []func(http.Handler) http.Handler{byIP, byCred}
}

// clientIP is the peer's address; X-Forwarded-For is not trusted (a client
// could set it to dodge limits).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// connLimiter bounds open streams: on the node, per IP and per user.
type connLimiter struct {
	max int

	mu     sync.Mutex
	total  int
	perIP  map[string]int
	perUsr map[string]int
}

func newConnLimiter(max int) *connLimiter {
	return &connLimiter{max: max, perIP: map[string]int{}, perUsr: map[string]int{}}
}

// acquire takes a slot for a stream of ns from ip by user; release gives
// it back.
func (l *connLimiter) acquire(sec *Security, ns, ip, user string) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ipKey, userKey := ns+"/"+ip, ns+"/"+user
	switch {
	case l.max > 0 && l.total >= l.max:
		return nil, fmt.Errorf("this node holds its maximum of %d connections: %w", l.max, hub.ErrUnavailable)
	case sec.MaxConnsPerIP > 0 && l.perIP[ipKey] >= sec.MaxConnsPerIP:
		return nil, fmt.Errorf("%d connections from this address, the most allowed: %w", sec.MaxConnsPerIP, hub.ErrRateLimited)
	case user != "" && sec.MaxConnsPerUser > 0 && l.perUsr[userKey] >= sec.MaxConnsPerUser:
		return nil, fmt.Errorf("%d connections of this user, the most allowed: %w", sec.MaxConnsPerUser, hub.ErrRateLimited)
	}
	l.total++
	l.perIP[ipKey]++
	if user != "" {
		l.perUsr[userKey]++
	}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.total--
		if l.perIP[ipKey]--; l.perIP[ipKey] <= 0 {
			delete(l.perIP, ipKey)
		}
		if user != "" {
			if l.perUsr[userKey]--; l.perUsr[userKey] <= 0 {
				delete(l.perUsr, userKey)
			}
		}
	}, nil
}
