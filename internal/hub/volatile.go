package hub

import (
	"context"
	"fmt"
	"time"
)

// VolatileLog is a Log that also carries volatile messages (Socket.IO's
// socket.volatile.emit: typing indicators, cursors) to every node. It is an
// optional capability: without it, Namespace.PublishVolatile answers
// ErrUnavailable.
//
// Contract:
//   - PublishVolatile hands o (its Body encoded) to the volatile feed of
//     every node serving namespace ns, this one included, and returns
//     without waiting for them. Nothing is stored: no position, no history,
//     no replay, no retention. Delivery is best effort (a node that is down
//     or cut off never gets it).
//   - FollowVolatile is called once per namespace, after OpenNamespace: it
//     feeds fn each volatile message of ns published from then on, by any
//     node, from one goroutine (publish order per publishing node), until
//     the Log is closed. fn must not block. The Message has no Pos; its
//     Body is the envelope as published (no id, "volatile": true).
type VolatileLog interface {
	Log
	PublishVolatile(ctx context.Context, ns string, o *Outgoing) error
	FollowVolatile(ctx context.Context, ns string, fn func(*Message)) error
}

// PublishVolatile checks o as Publish does and hands it to the live
// fan-out of every node, without storing it: the connections that are
// live when it arrives get it (those still replaying, or whose queue is
// full, do not), and nobody ever again. It has no id and takes no
// idempotency key. It returns once the message is on its way.
func (ns *Namespace) PublishVolatile(ctx context.Context, o *Outgoing) error {
	vl, ok := ns.hub.log.(VolatileLog)
	if !ok {
		return fmt.Errorf("volatile messages: this store cannot carry them: %w", ErrUnavailable)
	}
	if o.Key != "" {
		return fmt.Errorf("a volatile message is never stored, so an idempotency key means nothing for it: %w", ErrInvalid)
	}
	if err := prepare(o); err != nil {
		return err
	}
	o.Volatile = true
	body, err := EncodeBody(ns.name, o, time.Now())
	if err != nil {
		return fmt.Errorf("encode: %w: %w", ErrInvalid, err)
	}
	o.Body = body
	if err := vl.PublishVolatile(ctx, ns.name, o); err != nil {
		return fmt.Errorf("volatile publish to %s: %w", ns.name, err)
	}
	return nil
}

// followVolatile feeds this namespace's volatile messages to its live
// connections (AddNamespace), when the Log carries them.
func (ns *Namespace) followVolatile(ctx context.Context) error {
	vl, ok := ns.hub.log.(VolatileLog)
	if !ok {
		return nil
	}
	return vl.FollowVolatile(ctx, ns.name, ns.applyVolatile)
}

// applyVolatile hands a volatile message to the live connections it is
// addressed to, as apply does a stored one, but without moving anyone's
// position: its SSE id is the connection's current position (Conn.at), so
// a client that resumes after it neither skips nor replays anything.
func (ns *Namespace) applyVolatile(m *Message) {
	ns.mu.RLock()
	ns.fanout(m, (*Conn).volatile)
	ns.mu.RUnlock()
}

// volatile sends a volatile message to a live connection without blocking.
// A full queue drops it (Socket.IO's volatile semantics: the connection is
// not closed for a message nobody will miss).
func (c *Conn) volatile(m *Message) {
	c.mu.Lock()
	if c.state == stateLive {
		c.sink.Send(Event{ID: c.at(), Name: m.Event, Data: m.Body})
	}
	c.mu.Unlock()
}
