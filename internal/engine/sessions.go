package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomcast/roomcast/internal/hub"
)

// Save implements hub.Sessions. The bucket's TTL (Config.SessionTTL) expires
// sessions; the hub also checks each namespace's own window on Take.
func (e *Engine) Save(ctx context.Context, key string, s hub.Session) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	// A put is idempotent: it may be retried across a leader election.
	if err := e.serve(ctx, func(ctx context.Context) error { _, err := e.kv.Put(ctx, key, b); return err }); err != nil {
		return fmt.Errorf("engine: save session: %w: %w", hub.ErrUnavailable, err)
	}
	return nil
}

// unstored reports whether err means the request reached no stream leader
// or was never sent (nothing was applied: safe to send again). A
// connection that is reconnecting refuses to send (Open turns the client's
// reconnect buffer off: outcome.go).
func unstored(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrReconnectBufExceeded)
}

// Take implements hub.Sessions. Once begun it runs to its end even if the
// caller's request is cancelled: a delete sent but not confirmed would
// lose the session without anyone holding it.
func (e *Engine) Take(ctx context.Context, key string) (hub.Session, bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*readRetry)
	defer cancel()
	// Reads wait across a leader election (a node just died), and ask the
	// bucket's leader (sessionsleader.go): this node's copy may not hold a
	// session saved on another node a moment ago.
	var entry *sessionEntry
	err := e.serve(ctx, func(ctx context.Context) error {
		var err error
		entry, err = e.lastSession(ctx, key)
		return err
	})
	if err != nil {
		return hub.Session{}, false, fmt.Errorf("engine: take session: %w: %w", hub.ErrUnavailable, err)
	}
	if entry == nil {
		return hub.Session{}, false, nil
	}
	var s hub.Session
	if err := json.Unmarshal(entry.value, &s); err != nil {
		return hub.Session{}, false, nil
	}
	// Only one reconnect may take a session: delete with the revision read.
	// Only a delete that reached no leader is sent again: one that may
	// have been applied cannot be told from another reconnect's.
	var err2 error
	deadline := time.Now().Add(readRetry)
	for {
		err2 = e.kv.Delete(ctx, key, jetstream.LastRevision(entry.revision))
		if err2 == nil || !unstored(err2) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := err2; err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			return hub.Session{}, false, nil // another reconnect took it first
		}
		return hub.Session{}, false, fmt.Errorf("engine: take session: %w: %w", hub.ErrUnavailable, err)
	}
	return s, true, nil
}

// PutTicket stores a stream ticket (api.TicketStore); the bucket's TTL
// removes unused ones.
func (e *Engine) PutTicket(ctx context.Context, key string, value []byte) error {
	kv, err := e.ticketBucket(ctx)
	if err != nil {
		return err
	}
	if _, err := kv.Create(ctx, key, value); err != nil {
		return fmt.Errorf("engine: put ticket: %w: %w", hub.ErrUnavailable, err)
	}
	return nil
}

// TakeTicket returns and removes a ticket; of two concurrent takers only
// one gets it (delete at the revision read).
func (e *Engine) TakeTicket(ctx context.Context, key string) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	kv, err := e.ticketBucket(ctx)
	if err != nil {
		return nil, false, err
	}
	entry, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("engine: take ticket: %w: %w", hub.ErrUnavailable, err)
	}
	if err := kv.Delete(ctx, key, jetstream.LastRevision(entry.Revision())); err != nil {
		return nil, false, nil
	}
	return entry.Value(), true, nil
}

func (e *Engine) ticketBucket(ctx context.Context) (jetstream.KeyValue, error) {
	e.mu.Lock()
	kv := e.tickets
	e.mu.Unlock()
	if kv != nil {
		return kv, nil
	}
	kv, err := e.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: "roomcast_tickets", Description: "roomcast: single-use stream tickets",
		TTL: 2 * time.Minute, History: 1, Storage: jetstream.FileStorage, Replicas: e.Replicas(),
	})
	if err != nil {
		return nil, fmt.Errorf("engine: tickets bucket: %w: %w", hub.ErrUnavailable, err)
	}
	e.mu.Lock()
	e.tickets = kv
	e.mu.Unlock()
	return kv, nil
}
