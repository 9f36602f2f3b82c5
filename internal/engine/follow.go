package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomcast/roomcast/internal/hub"
)

// The live feed of a namespace is one consumer per node: an R1 memory
// consumer with no acks that the meta leader places on any replica of the
// stream, often another node, read in order from the sequence after the
// last one applied — what nats.go's ordered consumer does, made here so
// that its timings are roomcast's. When the node holding the consumer
// dies or is paused, or the stream's leader changes, the consumer goes
// quiet; nats.go's ordered consumer notices when two heartbeats are
// missed, then makes a new consumer with a 10 s timeout per attempt and a
// backoff of 1, 2, 4, 8, then 10 s between attempts: with the meta leader
// on the paused node, live fan-out stalled 12 s (issue 19 measured 5–7 s
// after kill -9). Here: heartbeats every FollowHeartbeat (two missed, or a
// gap in the delivery sequence, and the consumer is replaced), each
// creation attempt bounded by createTimeout, retried after 100 ms doubling
// to 1 s, so that the feed resumes about as soon as the meta layer and
// the stream have leaders again.

// createTimeout bounds one attempt to create a live consumer (a request to
// a meta leader that does not answer is retried, reaching the next one).
const createTimeout = 2 * time.Second

// Follow implements hub.Log: it feeds every message of ns stored after
// sequence after to apply, in order, one call at a time, until Close.
func (e *Engine) Follow(ctx context.Context, ns string, after uint64, apply func(*hub.Message)) error {
	s, err := e.ns(ns)
	if err != nil {
		return err
	}
	f := &follow{s: s, apply: apply, last: after, kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	if err := e.consume(ctx, f); err != nil {
		return fmt.Errorf("engine: follow %s: %w", ns, err)
	}
	e.mu.Lock()
	e.follows = append(e.follows, f)
	e.mu.Unlock()
	go e.supervise(f)
	return nil
}

// follow is one namespace's live feed. Its consumer can be replaced (a
// consumer that failed, or after JetStream restarted); apply sees each
// message once, in order, whichever consumer delivered it.
type follow struct {
	s     *nsStream
	apply func(*hub.Message)
	kick  chan struct{} // the consumer failed: replace it
	quit  chan struct{} // closed by stop
	done  chan struct{} // closed when supervise returns

	replacing sync.Mutex // one replacement at a time (supervise, refollow)

	mu     sync.Mutex // held while applying: one call at a time across consumers
	gen    int        // the current consumer's; a replaced one's messages are dropped
	last   uint64     // last sequence applied
	cc     jetstream.ConsumeContext
	name   string    // the current consumer's
	failed time.Time // when the current consumer was reported failing
}

// consume starts a consumer for f after its last applied message.
func (e *Engine) consume(ctx context.Context, f *follow) error {
	f.mu.Lock()
	f.gen++
	gen, after := f.gen, f.last
	f.mu.Unlock()
	s := f.s
	cctx, cancel := context.WithTimeout(ctx, createTimeout)
	defer cancel()
	cons, err := s.stream.CreateConsumer(cctx, jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       after + 1,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		Replicas:          1,
		InactiveThreshold: 2 * time.Minute, // a node that died leaves it behind
	})
	if err != nil {
		return err
	}
	name := cons.CachedInfo().Name
	ns := strings.TrimPrefix(s.name, streamPrefix)
	hb := e.cfg.FollowHeartbeat
	fail := func(err error) {
		f.mu.Lock()
		current := gen == f.gen
		if current && f.failed.IsZero() {
			f.failed = time.Now()
		}
		f.mu.Unlock()
		if !current {
			return
		}
		e.logger.Warn("live consumer", "ns", ns, "err", err)
		select {
		case f.kick <- struct{}{}:
		default:
		}
	}
	var dseq uint64 // the consumer's delivery sequence: a gap means lost messages
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		md, err := msg.Metadata()
		if err != nil {
			e.logger.Error("skip a message without metadata", "ns", ns, "err", err)
			return
		}
		m, err := decodeAt(s, ns, msg.Subject(), msg.Headers(), msg.Data(), md.Sequence.Stream, md.Timestamp)
		f.mu.Lock()
		if gen != f.gen {
			f.mu.Unlock()
			return // from a replaced consumer
		}
		if md.Sequence.Consumer != dseq+1 {
			f.mu.Unlock()
			fail(fmt.Errorf("delivery %d after %d: messages were lost on the way", md.Sequence.Consumer, dseq))
			return
		}
		dseq = md.Sequence.Consumer
		defer f.mu.Unlock()
		if errors.Is(err, errVoid) {
			return // a lost write's number (restartJetStream): nothing to apply
		}
		if err != nil {
			e.logger.Error("skip undecodable message", "ns", ns, "err", err)
			return
		}
		if m.Pos.Seq <= f.last {
			return
		}
		f.last = m.Pos.Seq
		f.apply(m)
	},
		// The expiry also bounds the rare 30 s stall of a pull consume
		// under CPU contention (nats.go#1622, notes/engine-nats.md pitfall
		// 7).
		jetstream.PullExpiry(max(5*time.Second, 4*hb)),
		jetstream.PullHeartbeat(hb),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) { fail(err) }))
	if err != nil {
		e.dropConsumer(ctx, s, name)
		return err
	}
	f.mu.Lock()
	f.cc, f.name = cc, name
	f.mu.Unlock()
	return nil
}

// dropConsumer deletes a replaced live consumer, bounded: one that cannot
// be reached (its node is gone) expires by itself (InactiveThreshold).
func (e *Engine) dropConsumer(ctx context.Context, s *nsStream, name string) {
	if name == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_ = s.stream.DeleteConsumer(ctx, name)
}

// supervise replaces f's consumer each time it is reported failing, until
// stop.
func (e *Engine) supervise(f *follow) {
	defer close(f.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-f.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		select {
		case <-f.quit:
			return
		case <-f.kick:
		}
		f.replacing.Lock()
		old := f.stopConsumer()
		wait := 100 * time.Millisecond
		for {
			err := e.consume(ctx, f)
			if err == nil {
				e.dropConsumer(ctx, f.s, old)
				break
			}
			select {
			case <-f.quit:
				f.replacing.Unlock()
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, time.Second)
		}
		f.mu.Lock()
		failed := f.failed
		f.failed = time.Time{}
		f.mu.Unlock()
		f.replacing.Unlock()
		if !failed.IsZero() {
			e.logger.Info("live consumer replaced", "ns", strings.TrimPrefix(f.s.name, streamPrefix),
				"after", time.Since(failed).Round(time.Millisecond).String())
		}
	}
}

// stopConsumer ends f's current consumer and waits for it to stop
// (bounded: a consumer of a JetStream that was restarted may never say it
// closed). It returns the consumer's name, for dropConsumer.
func (f *follow) stopConsumer() string {
	f.mu.Lock()
	cc, name := f.cc, f.name
	f.cc, f.name = nil, ""
	f.gen++ // whatever the old one still delivers or reports is dropped
	f.mu.Unlock()
	if cc == nil {
		return name
	}
	defer func() {
		select {
		case <-cc.Closed():
		case <-time.After(5 * time.Second):
		}
	}()
	cc.Stop()
	return name
}

// stop ends f's supervision and its consumer; wait then waits for the
// supervisor (after the connection closed, so that a replacement under way
// ends).
func (f *follow) stop() {
	close(f.quit)
	f.stopConsumer()
}

func (f *follow) wait() { <-f.done }

// refollow replaces every live consumer by a new one after its last
// applied message: after JetStream restarted, the old ones would notice
// only when their heartbeats stop.
func (e *Engine) refollow(ctx context.Context) error {
	e.mu.Lock()
	follows := append([]*follow(nil), e.follows...)
	e.mu.Unlock()
	for _, f := range follows {
		f.replacing.Lock()
		old := f.stopConsumer()
		err := retry(ctx, readRetry, func() error { return e.consume(ctx, f) })
		if err == nil {
			e.dropConsumer(ctx, f.s, old)
		}
		f.replacing.Unlock()
		if err != nil {
			return fmt.Errorf("engine: follow %s again: %w", f.s.name, err)
		}
	}
	return nil
}
