package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/internal/hub"
)

var _ hub.Bus = (*Engine)(nil)

// The control plane between nodes is core NATS request/reply on
// rcctl.<ns>.<op>: every node subscribes once; the node that has the
// connection answers a lookup or an operation, every node answers a
// presence query. Only control requests travel here (joins, leaves,
// disconnects, presence), never messages.
const (
	askTimeout    = time.Second
	gatherTimeout = 500 * time.Millisecond
)

// ServeControl answers the other nodes' control requests with handle (and
// this node's own: Gather counts on it) until Close.
func (e *Engine) ServeControl(handle func(hub.ControlRequest) (hub.ControlReply, bool)) error {
	sub, err := e.nc.Subscribe("rcctl.>", func(m *nats.Msg) {
		var req hub.ControlRequest
		if json.Unmarshal(m.Data, &req) != nil || m.Reply == "" {
			return
		}
		rep, ok := handle(req)
		if !ok {
			return
		}
		b, err := json.Marshal(rep)
		if err == nil {
			_ = m.Respond(b)
		}
	})
	if err != nil {
		return fmt.Errorf("engine: control subscription: %w", err)
	}
	e.mu.Lock()
	e.control = sub
	e.mu.Unlock()
	return e.nc.Flush()
}

func controlSubject(req hub.ControlRequest) string { return "rcctl." + req.NS + "." + req.Op }

// Ask implements hub.Bus.
func (e *Engine) Ask(ctx context.Context, req hub.ControlRequest) (hub.ControlReply, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return hub.ControlReply{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	m, err := e.nc.RequestWithContext(ctx, controlSubject(req), b)
	if err != nil {
		return hub.ControlReply{}, fmt.Errorf("no node has it: %w", hub.ErrNotFound)
	}
	var rep hub.ControlReply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return hub.ControlReply{}, fmt.Errorf("engine: control reply: %w: %w", hub.ErrUnavailable, err)
	}
	if rep.Conn == nil && rep.Err == "" {
		return hub.ControlReply{}, fmt.Errorf("no node has it: %w", hub.ErrNotFound)
	}
	return rep, nil
}

// Gather implements hub.Bus: it returns when every node of the configured
// cluster answered, or after gatherTimeout (a node down only slows it).
func (e *Engine) Gather(ctx context.Context, req hub.ControlRequest) ([]hub.ControlReply, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	inbox := e.nc.NewRespInbox()
	sub, err := e.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("engine: gather: %w: %w", hub.ErrUnavailable, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := e.nc.PublishRequest(controlSubject(req), inbox, b); err != nil {
		return nil, fmt.Errorf("engine: gather: %w: %w", hub.ErrUnavailable, err)
	}
	ctx, cancel := context.WithTimeout(ctx, gatherTimeout)
	defer cancel()
	var out []hub.ControlReply
	for e.nodes == 0 || len(out) < e.nodes {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			break
		}
		var rep hub.ControlReply
		if json.Unmarshal(m.Data, &rep) == nil {
			out = append(out, rep)
		}
	}
	return out, nil
}
