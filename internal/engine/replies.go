package engine

import (
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
)

// replyBatch registers a batch of up to n answers with the engine's
// replies: one wildcard subscription for the engine's life (one per batch
// would be a SUB and an UNSUB per ack request or read, sent to every node
// of a cluster). An answer to reply subject prefix+<anything> arrives on
// answers, which holds n (more are dropped: size it to what is asked).
// release unregisters the batch. SettleAll asks one answer per settle, a
// direct get up to its batch and a status.
func (e *Engine) replyBatch(n int) (prefix string, answers chan *nats.Msg, release func(), err error) {
	mux, err := e.replyMux()
	if err != nil {
		return "", nil, nil, err
	}
	answers = make(chan *nats.Msg, n)
	mux.mu.Lock()
	mux.next++
	id := strconv.FormatUint(mux.next, 36)
	mux.batches[id] = answers
	mux.mu.Unlock()
	return mux.inbox + "." + id + ".", answers, func() {
		mux.mu.Lock()
		delete(mux.batches, id)
		mux.mu.Unlock()
	}, nil
}

// replyMux is the reply subscription behind replyBatch.
type replyMux struct {
	inbox string // its subscription ends with the connection (Engine.Close drains it)

	mu      sync.Mutex
	next    uint64
	batches map[string]chan *nats.Msg
}

func (e *Engine) replyMux() (*replyMux, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.replies != nil {
		return e.replies, nil
	}
	mux := &replyMux{inbox: e.nc.NewInbox(), batches: map[string]chan *nats.Msg{}}
	prefix := mux.inbox + "." // built once: the callback runs per answer (each message a read replays)
	sub, err := e.nc.Subscribe(prefix+">", func(m *nats.Msg) {
		// <inbox>.<batch>.<index>
		rest, ok := strings.CutPrefix(m.Subject, prefix)
		if !ok {
			return
		}
		batch, _, ok := strings.Cut(rest, ".")
		if !ok {
			return
		}
		mux.mu.Lock()
		ch := mux.batches[batch]
		mux.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m: // sized to what was asked
			default:
			}
		}
	})
	if err != nil {
		return nil, err
	}
	// No answer is ever dropped by nats.go as a slow consumer's (a read
	// missing a message in the middle of its batch would be a silent gap):
	// this callback never blocks, so what waits here is what arrived in a
	// burst, and it is bounded by the reads and settles in flight.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	e.replies = mux
	return mux, nil
}
