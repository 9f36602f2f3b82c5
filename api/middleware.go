package api

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"

	"github.com/go-chi/cors"
	"github.com/go-chi/httprate"
	"github.com/roomcast/roomcast/internal/hub"
)

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
