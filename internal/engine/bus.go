package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/internal/hub"
)

var _ hub.Bus = (*Engine)(nil)

// The control plane between nodes is core NATS request/reply on
// rcctl.<ns>.<op> (subjects.go): every node subscribes once; the node that
// has the connection answers an operation on it, every node answers a
// presence query. Only control requests travel here (joins, leaves,
// disconnects, settles, presence), never messages. The requests are the
// hub's, opaque here.

// Serve implements hub.Bus: it answers every node's control requests (this
// node's own too: Gather counts on it) with handle until Close. Each
// request runs on its own goroutine: an operation waiting for the engine
// (a settle) must not hold up the others.
func (e *Engine) Serve(handle func(ns, op string, req []byte) ([]byte, bool)) error {
	sub, err := e.nc.Subscribe(controlAll, func(m *nats.Msg) {
		ns, op, ok := parseControl(m.Subject)
		if !ok || m.Reply == "" {
			return
		}
		go func() {
			rep, ok := handle(ns, op, m.Data)
			if ok {
				_ = m.Respond(rep)
			}
		}()
	})
	if err != nil {
		return fmt.Errorf("engine: control subscription: %w", err)
	}
	e.mu.Lock()
	e.control = sub
	e.mu.Unlock()
	return e.nc.Flush()
}

// Ask implements hub.Bus: the first node to answer wins (only the node
// holding a connection answers an operation on it).
func (e *Engine) Ask(ctx context.Context, ns, op string, req []byte) ([]byte, error) {
	m, err := e.nc.RequestWithContext(ctx, controlSubject(ns, op), req)
	switch {
	case err == nil:
		return m.Data, nil
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return nil, fmt.Errorf("no node answered: %w", hub.ErrNotFound)
	case errors.Is(err, context.Canceled):
		return nil, err
	default:
		return nil, fmt.Errorf("engine: control request: %w: %w", hub.ErrUnavailable, err)
	}
}

// maxGatherNodes is how many answers a Gather takes when the cluster's
// size is not configured (an external NATS): more nodes than that are not
// heard.
const maxGatherNodes = 256

// Gather implements hub.Bus: it returns when every node of the configured
// cluster answered, or when ctx ends (a node down only slows it).
func (e *Engine) Gather(ctx context.Context, ns, op string, req []byte) ([][]byte, error) {
	// One answer per node, on the engine's reply subscription (not a
	// subscription per request: a SUB and an UNSUB sent to every node).
	n := e.nodes
	if n == 0 {
		n = maxGatherNodes
	}
	prefix, answers, release, err := e.replyBatch(n)
	if err != nil {
		return nil, fmt.Errorf("engine: gather: %w: %w", hub.ErrUnavailable, err)
	}
	defer release()
	if err := e.nc.PublishRequest(controlSubject(ns, op), prefix+"0", req); err != nil {
		return nil, fmt.Errorf("engine: gather: %w: %w", hub.ErrUnavailable, err)
	}
	var out [][]byte
	for e.nodes == 0 || len(out) < e.nodes {
		select {
		case m := <-answers:
			out = append(out, m.Data)
		case <-ctx.Done():
			return out, nil
		}
	}
	return out, nil
}
