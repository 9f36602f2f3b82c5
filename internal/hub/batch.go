package hub

import (
	"context"
	"fmt"
	"time"
)

// BatchLog is a Log that stores several messages in one round trip to its
// store. It is an optional capability: Namespace.PublishBatch uses it when
// the Log implements it, and stores one message after another otherwise.
//
// Contract (beside Log's):
//   - PublishBatch stores os in the order given: of two messages both
//     stored, the earlier one in os has the lower position. A message that
//     fails does not stop the others (each has its own outcome).
//   - It returns one Stored per message, in the order of os, once every
//     message is stored or has failed; a Stored without Err means stored
//     (Dup as Publish's dup). Errors wrap ErrUnavailable (as Publish's), or
//     ErrInvalid for a message the store refuses.
//   - Each message's Body is already encoded, as for Publish.
type BatchLog interface {
	Log
	PublishBatch(ctx context.Context, ns string, os []*Outgoing) []Stored
}

// Stored is the outcome of one message of a batch: its position once
// stored (Dup: its idempotency key was seen, Pos is the first one's), or
// why it was not.
type Stored struct {
	Pos Position
	Dup bool
	Err error
}

// PublishBatch checks each message as Publish does, encodes the envelopes
// of those that pass and stores them in order, in one round trip when the
// Log is a BatchLog. It returns one Stored per message, in the order of os:
// a message that fails its checks has its own error (ErrInvalid) and is not
// stored; the others are stored whatever became of it. Each is answered
// once stored, as Publish's are.
func (ns *Namespace) PublishBatch(ctx context.Context, os []*Outgoing) []Stored {
	out := make([]Stored, len(os))
	valid := make([]*Outgoing, 0, len(os))
	at := make([]int, 0, len(os))
	for i, o := range os {
		if err := prepare(o); err != nil {
			out[i].Err = err
			continue
		}
		body, err := EncodeBody(ns.name, o, time.Now())
		if err != nil {
			out[i].Err = fmt.Errorf("encode: %w: %w", ErrInvalid, err)
			continue
		}
		o.Body = body
		valid = append(valid, o)
		at = append(at, i)
	}
	if len(valid) == 0 {
		return out
	}
	began := time.Now()
	var stored []Stored
	if bl, ok := ns.hub.log.(BatchLog); ok {
		stored = bl.PublishBatch(ctx, ns.name, valid)
	} else {
		stored = make([]Stored, len(valid))
		for i, o := range valid {
			stored[i].Pos, stored[i].Dup, stored[i].Err = ns.hub.log.Publish(ctx, ns.name, o)
		}
	}
	d := time.Since(began)
	for j, s := range stored {
		if s.Err != nil {
			s.Err = fmt.Errorf("publish to %s: %w", ns.name, s.Err)
		} else {
			ns.cfg.Metrics.Published(d)
		}
		out[at[j]] = s
	}
	return out
}
