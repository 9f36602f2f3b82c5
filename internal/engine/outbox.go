package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomcast/roomcast/internal/hub"
)

// The webhook outbox: every webhook to send is a message of the work-queue
// stream roomcast-webhooks, on the subject of its endpoint, stored before
// anyone waits for it (a webhook survives a crash and a restart). Each
// endpoint has one durable consumer shared by every node: a webhook is
// being sent by one node at a time, retried with a delayed nak, removed
// once acknowledged, or moved to roomcast-webhooks-parked when its sender
// gives up. A consumer per endpoint keeps an endpoint that is down (its
// webhooks waiting for their retries) from holding up the others.
//
// Deduplication: Enqueue's id is the message's Nats-Msg-Id; the same id
// within OutboxDedupe is stored once. What decides to send a webhook
// derives the id from what it saw (a room's announced state, a dead
// letter's position), so that two nodes or a retry deciding the same thing
// store one webhook.

// OutboxDedupe is the window in which an outbox id is stored once.
const OutboxDedupe = 2 * time.Minute

// OutboxConfig configures the outbox. Zero fields take DefaultOutboxConfig's.
type OutboxConfig struct {
	// AckWait is how long the attempt of a node that died (killed, cut
	// off) holds its webhook before another node, or the same one
	// restarted, tries it (an attempt in progress renews it).
	AckWait time.Duration
	// MaxPending bounds the webhooks of one endpoint being sent or waiting
	// for their retry, cluster-wide: beyond it newer ones wait in the
	// stream (never dropped).
	MaxPending int
	// MaxAge removes a webhook neither sent nor parked for this long, and
	// parked webhooks after it.
	MaxAge time.Duration
}

// DefaultOutboxConfig is the outbox's defaults (internal/config derives its
// own from it).
var DefaultOutboxConfig = OutboxConfig{AckWait: 5 * time.Second, MaxPending: 10000, MaxAge: 7 * 24 * time.Hour}

// Outbox is the durable queue of webhooks to send.
type Outbox struct {
	e      *Engine
	cfg    OutboxConfig
	stream jetstream.Stream
	parked jetstream.Stream

	mu        sync.Mutex
	consumers map[string]jetstream.Consumer // by endpoint
}

// OpenOutbox creates or updates the outbox streams.
func (e *Engine) OpenOutbox(ctx context.Context, cfg OutboxConfig) (*Outbox, error) {
	d := DefaultOutboxConfig
	if cfg.AckWait <= 0 {
		cfg.AckWait = d.AckWait
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = d.MaxPending
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = d.MaxAge
	}
	o := &Outbox{e: e, cfg: cfg, consumers: map[string]jetstream.Consumer{}}
	err := retry(ctx, 60*time.Second, func() error {
		var err error
		o.stream, err = e.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: outboxStream, Description: "roomcast: webhooks to send (the outbox)",
			Subjects: []string{outboxSubjects}, Retention: jetstream.WorkQueuePolicy,
			MaxAge: cfg.MaxAge, Duplicates: OutboxDedupe, Storage: jetstream.FileStorage, Replicas: e.cfg.Replicas,
		})
		if err != nil {
			return err
		}
		o.parked, err = e.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: parkedStream, Description: "roomcast: webhooks given up on after their last attempt",
			Subjects: []string{webhookRoot + "parked.>"}, Retention: jetstream.LimitsPolicy,
			MaxAge: cfg.MaxAge, Storage: jetstream.FileStorage, Replicas: e.cfg.Replicas,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("engine: outbox: %w: %w", hub.ErrUnavailable, err)
	}
	return o, nil
}

// Enqueue stores a webhook for endpoint (a key of [A-Za-z0-9_-]) and
// returns once it is stored; a second Enqueue of id within OutboxDedupe is
// a no-op. It retries (the id makes that safe) until stored or ctx ends.
func (o *Outbox) Enqueue(ctx context.Context, endpoint, id string, body []byte) error {
	msg := nats.NewMsg(outboxSubject(endpoint))
	msg.Data = body
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		pctx, cancel := context.WithTimeout(ctx, publishTimeout)
		_, err := o.e.js.PublishMsg(pctx, msg, jetstream.WithMsgID(id), jetstream.WithExpectStream(outboxStream))
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("engine: enqueue webhook: %w: %w", hub.ErrUnavailable, err)
		case <-time.After(wait):
		}
	}
}

func (o *Outbox) consumer(ctx context.Context, endpoint string) (jetstream.Consumer, error) {
	o.mu.Lock()
	c := o.consumers[endpoint]
	o.mu.Unlock()
	if c != nil {
		return c, nil
	}
	err := retry(ctx, 60*time.Second, func() error {
		var err error
		c, err = o.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable: "ep_" + endpoint, Description: "roomcast: webhook sender",
			FilterSubject: outboxSubject(endpoint), AckPolicy: jetstream.AckExplicitPolicy,
			AckWait: o.cfg.AckWait, MaxDeliver: -1, MaxAckPending: o.cfg.MaxPending,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("engine: webhook consumer %s: %w: %w", endpoint, hub.ErrUnavailable, err)
	}
	o.mu.Lock()
	o.consumers[endpoint] = c
	o.mu.Unlock()
	return c, nil
}

// Deliver hands endpoint's webhooks to try, up to workers at a time on this
// node, until ctx ends; it returns once the attempts in progress have. The
// nodes share the endpoint's webhooks: each is tried by one at a time.
//
// try gets the webhook's id, body, attempt number (1 for the first) and
// when it was stored, and says what became of it: retryIn 0 and park ""
// when it was delivered (it is removed); retryIn > 0 to try again after
// that long; park, a reason, to give up on it (it moves to the parked
// stream with the reason). A node that dies during an attempt leaves it to
// another node (or to itself, restarted) after AckWait: delivery is at
// least once.
func (o *Outbox) Deliver(ctx context.Context, endpoint string, workers int,
	try func(ctx context.Context, id string, body []byte, attempt int, stored time.Time) (retryIn time.Duration, park string)) error {
	c, err := o.consumer(ctx, endpoint)
	if err != nil {
		return err
	}
	o.e.work(ctx, c, workers, o.cfg.AckWait, "webhooks "+endpoint, func(ctx context.Context, msg jetstream.Msg) {
		o.attempt(ctx, endpoint, msg, try)
	})
	return nil
}

func (o *Outbox) attempt(ctx context.Context, endpoint string, msg jetstream.Msg,
	try func(context.Context, string, []byte, int, time.Time) (time.Duration, string)) {
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.Term()
		return
	}
	id := msg.Headers().Get(jetstream.MsgIDHeader)
	retryIn, park := try(ctx, id, msg.Data(), int(md.NumDelivered), md.Timestamp)
	// Settling outlives ctx: an attempt that was made is recorded.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	switch {
	case park != "":
		pm := nats.NewMsg(parkedSubject(endpoint))
		pm.Data = msg.Data()
		pm.Header.Set(jetstream.MsgIDHeader, id)
		pm.Header.Set("Rc-Reason", park)
		pm.Header.Set("Rc-Attempts", fmt.Sprint(md.NumDelivered))
		pm.Header.Set("Rc-Stored", md.Timestamp.UTC().Format(time.RFC3339Nano))
		if _, err := o.e.js.PublishMsg(sctx, pm); err != nil {
			// Not parked: try again soon (it parks on its next attempt).
			_ = msg.NakWithDelay(time.Second)
			return
		}
		// A terminated message stays in a work queue: acknowledge it.
		_ = msg.DoubleAck(sctx)
	case retryIn > 0:
		_ = msg.NakWithDelay(retryIn)
	default:
		// Confirmed, so that a lost ack does not send it again after
		// AckWait (it still may: at least once).
		_ = msg.DoubleAck(sctx)
	}
}

// Backlog reads endpoint's backlog: pending counts its webhooks not yet
// delivered nor parked (being sent, waiting for a retry or for their first
// attempt), retrying those of them already tried twice or more, and oldest
// is when the oldest of them was stored (zero: none).
func (o *Outbox) Backlog(ctx context.Context, endpoint string) (pending, retrying uint64, oldest time.Time, err error) {
	c, err := o.consumer(ctx, endpoint)
	if err != nil {
		return 0, 0, time.Time{}, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, 0, time.Time{}, fmt.Errorf("engine: webhook backlog: %w: %w", hub.ErrUnavailable, err)
	}
	pending, retrying = info.NumPending+uint64(info.NumAckPending), uint64(info.NumRedelivered)
	if pending == 0 {
		return 0, 0, time.Time{}, nil
	}
	// A work queue keeps only what is not acknowledged: the endpoint's
	// first stored message is its oldest pending one.
	if m, err := o.stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(outboxSubject(endpoint))); err == nil {
		oldest = m.Time
	}
	return pending, retrying, oldest, nil
}

// Parked is a webhook given up on.
type Parked struct {
	ID       string
	Body     []byte
	Reason   string
	Attempts string
	Parked   time.Time
}

// Parked lists up to limit webhooks of endpoint given up on, oldest first.
func (o *Outbox) Parked(ctx context.Context, endpoint string, limit int) ([]Parked, error) {
	var out []Parked
	seq := uint64(1)
	for len(out) < limit {
		m, err := o.parked.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(parkedSubject(endpoint)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("engine: parked webhooks: %w: %w", hub.ErrUnavailable, err)
		}
		out = append(out, Parked{ID: m.Header.Get(jetstream.MsgIDHeader), Body: m.Data, Reason: m.Header.Get("Rc-Reason"),
			Attempts: m.Header.Get("Rc-Attempts"), Parked: m.Time})
		seq = m.Sequence + 1
	}
	return out, nil
}
