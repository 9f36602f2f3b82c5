package api

import (
	"fmt"
	"net/http"
	"strings"
	"time"

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

// CookieName is the cookie that may carry a namespace's JWT for browsers
// (set by the application's own backend, HttpOnly, SameSite=Strict).
const CookieName = "roomcast_token"

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
