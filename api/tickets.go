package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/roomcast/roomcast/internal/auth"
	"github.com/roomcast/roomcast/internal/hub"
)

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

// ticketTTL is how long a stream ticket stays valid.
const ticketTTL = 30 * time.Second

type ticketResponse struct {
	Ticket    string    `json:"ticket"`
	ExpiresAt time.Time `json:"expires_at"`
}

// issueTicket exchanges a JWT (or API key) for a short-lived, single-use
// ticket to put in a stream URL (?ticket=): EventSource cannot send headers.
func (h *nsAPI) issueTicket(w http.ResponseWriter, r *http.Request) {
	p, err := h.authenticate(r, false)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if p.kind != user && p.kind != admin {
		h.fail(w, r, fmt.Errorf("a ticket is issued for a JWT or an API key: %w", hub.ErrUnauthorized))
		return
	}
	if h.cfg.Tickets == nil {
		h.fail(w, r, fmt.Errorf("tickets: %w", hub.ErrUnavailable))
		return
	}
	t, exp, err := h.newTicket(r.Context(), h.ns.Name(), p.id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, ticketResponse{Ticket: t, ExpiresAt: exp.UTC()})
}
