package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomcast/roomcast/internal/hub"
)

var _ hub.BatchLog = (*Engine)(nil)

// batchPublisher is the JetStream context of batches, made on first use:
// its own, because its asynchronous publishes need bounds a request-reply
// publish does not — room for many acks pending at once (the default 4,000
// would stall eight concurrent batches of 1,000: notes/engine-nats.md
// pitfall 5), and an ack timeout, without which an ack that never comes
// would leave its publish pending forever.
type batchPublisher struct {
	once sync.Once
	js   jetstream.JetStream
	err  error
}

// Bounds of batch publishes. An unanswered message is failed after
// batchAckTimeout, which leaves time for its no-responders retries
// (batchRetries × batchRetryWait ≈ publishRetry: a stream electing a leader
// after a node died) plus one store attempt.
const (
	batchMaxPending = 1 << 16
	batchRetryWait  = 250 * time.Millisecond
	batchRetries    = int(publishRetry / batchRetryWait)
	batchAckTimeout = publishRetry + publishTimeout
)

func (e *Engine) batchJS() (jetstream.JetStream, error) {
	b := &e.batch
	b.once.Do(func() {
		b.js, b.err = jetstream.New(e.nc,
			jetstream.WithPublishAsyncMaxPending(batchMaxPending),
			jetstream.WithPublishAsyncTimeout(batchAckTimeout))
	})
	return b.js, b.err
}

// PublishBatch implements hub.BatchLog. Every message is sent at once, as
// asynchronous JetStream publishes pipelined on the engine's one
// connection — the stream stores one connection's publishes in the order
// they were sent — and then every ack is awaited: one round trip for the
// batch instead of one per message. Each message is answered from its own
// ack (its sequence, or why it was not stored), so the hub's contract holds
// per message: a position is only ever returned once stored. A message
// refused for lack of a stream leader is retried, as Publish does, for
// about publishRetry.
func (e *Engine) PublishBatch(ctx context.Context, ns string, os []*hub.Outgoing) []hub.Stored {
	out := make([]hub.Stored, len(os))
	fail := func(from int, err error) {
		for i := from; i < len(out); i++ {
			if out[i].Err == nil {
				out[i].Err = err
			}
		}
	}
	s, err := e.ns(ns)
	if err != nil {
		fail(0, err)
		return out
	}
	// A full store answers at once, without trying (disk.go); so does a
	// node cut off from its quorum or from NATS (outcome.go).
	if err := e.disk.refuse(); err != nil {
		fail(0, fmt.Errorf("engine: publish: %w", err))
		return out
	}
	if err := e.health.quorum(); err != nil {
		fail(0, fmt.Errorf("engine: publish: not sent: %w", err))
		return out
	}
	if !e.nc.IsConnected() {
		fail(0, fmt.Errorf("engine: publish: not sent: the connection to NATS is down: %w", hub.ErrUnavailable))
		return out
	}
	cut := e.disk.inflight()
	js, err := e.batchJS()
	if err != nil {
		fail(0, fmt.Errorf("engine: batch publisher: %w: %w", hub.ErrUnavailable, err))
		return out
	}
	futs := make([]jetstream.PubAckFuture, len(os))
	base := append(s.pubOpts[:len(s.pubOpts):len(s.pubOpts)],
		jetstream.WithRetryAttempts(batchRetries), jetstream.WithRetryWait(batchRetryWait))
	for i, o := range os {
		opts := base
		if o.Key != "" {
			opts = append(base[:len(base):len(base)], jetstream.WithMsgID(o.Key))
		}
		futs[i], err = js.PublishMsgAsync(natsMsg(subjectOf(ns, o), o), opts...)
		if err != nil {
			// Nothing was sent for this one (too many pending, or the
			// connection is closed); the next ones may still go.
			out[i].Err = fmt.Errorf("engine: publish: %w: %w", hub.ErrUnavailable, err)
		}
	}
	for i, f := range futs {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			out[i].Pos, out[i].Dup = hub.Position{Epoch: s.epoch, Seq: ack.Sequence}, ack.Duplicate
		case err := <-f.Err():
			out[i].Err = fmt.Errorf("engine: publish: %w", publishFailure(err))
		case <-cut.Done():
			// A store write failed for lack of space while the batch was
			// sent: a store that fails answers nothing, so the rest is not
			// waited for (their outcome is unknown, as Publish's).
			fail(i, fmt.Errorf("engine: publish: the store failed while this message was sent: %w", hub.ErrOutcomeUnknown))
			return out
		case <-ctx.Done():
			// The rest may yet be stored: their outcome is unknown, as a
			// timed-out Publish's (a retry with the same idempotency key is
			// stored once). Their futures resolve by themselves (ack
			// timeout), so nothing is left pending.
			fail(i, fmt.Errorf("engine: publish: %w: %w", hub.ErrOutcomeUnknown, ctx.Err()))
			return out
		}
	}
	return out
}
