package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomcast/roomcast/internal/hub"
)

// Save implements hub.Sessions. The bucket's TTL (Config.SessionTTL) expires
// sessions; the hub also checks each namespace's own window on Take.
func (e *Engine) Save(ctx context.Context, key string, s hub.Session, _ time.Duration) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if _, err := e.kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("engine: save session: %w", err)
	}
	return nil
}

// Take implements hub.Sessions.
func (e *Engine) Take(ctx context.Context, key string) (hub.Session, bool, error) {
	entry, err := e.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return hub.Session{}, false, nil
	}
	if err != nil {
		return hub.Session{}, false, fmt.Errorf("engine: take session: %w", err)
	}
	var s hub.Session
	if err := json.Unmarshal(entry.Value(), &s); err != nil {
		return hub.Session{}, false, nil
	}
	// Only one reconnect may take a session: delete with the revision read.
	if err := e.kv.Delete(ctx, key, jetstream.LastRevision(entry.Revision())); err != nil {
		return hub.Session{}, false, nil
	}
	return s, true, nil
}
