package engine

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/internal/hub"
)

var _ hub.VolatileLog = (*Engine)(nil)

// Volatile messages travel on core NATS, outside every stream, so that
// nothing stores them (rcv.<ns>.<kind>, subjects.go). Every node
// subscribes once per namespace (FollowVolatile); core NATS carries a
// publish to every node's subscription, the publisher's own included,
// across a cluster's routes or an external cluster.

// PublishVolatile implements hub.VolatileLog: a core NATS publish (no ack:
// nothing stores it), with the routing headers of a stored message.
func (e *Engine) PublishVolatile(_ context.Context, ns string, o *hub.Outgoing) error {
	if _, err := e.ns(ns); err != nil {
		return err
	}
	if err := e.nc.PublishMsg(natsMsg(volatileSubject(ns, o), o)); err != nil {
		return fmt.Errorf("engine: volatile publish: %w: %w", hub.ErrUnavailable, err)
	}
	return nil
}

// FollowVolatile implements hub.VolatileLog with one core NATS subscription
// per namespace on this node (its callback runs on one goroutine, in the
// order messages arrive). It returns once the server has the subscription.
func (e *Engine) FollowVolatile(_ context.Context, ns string, fn func(*hub.Message)) error {
	if _, err := e.ns(ns); err != nil {
		return err
	}
	sub, err := e.nc.Subscribe(volatileAll(ns), func(msg *nats.Msg) {
		m, err := decodeVolatile(ns, msg.Subject, msg.Header, msg.Data)
		if err != nil {
			e.logger.Error("skip undecodable volatile message", "ns", ns, "err", err)
			return
		}
		fn(m)
	})
	if err != nil {
		return fmt.Errorf("engine: volatile subscription: %w: %w", hub.ErrUnavailable, err)
	}
	// Drained with the connection (Close).
	_ = sub
	return e.nc.Flush()
}

// decodeVolatile turns a volatile NATS message into a hub.Message without
// a position; its body stays as published (no id).
func decodeVolatile(ns, subject string, h nats.Header, data []byte) (*hub.Message, error) {
	rest, ok := strings.CutPrefix(subject, volatileRoot)
	if !ok {
		return nil, fmt.Errorf("subject %q is not a volatile one", subject)
	}
	k, err := parseSubject(ns, subjectRoot+rest)
	if err != nil {
		return nil, err
	}
	if k.consumer != "" {
		return nil, fmt.Errorf("subject %q: no volatile message goes to a group", subject)
	}
	m := &hub.Message{}
	route(m, k, h)
	if !oneLineObject(data) {
		return nil, fmt.Errorf("volatile %s: body is not a one-line JSON object", subject)
	}
	m.Body = data
	return m, nil
}
