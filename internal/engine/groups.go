package engine

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomcast/roomcast/internal/hub"
)

var _ hub.Groups = (*Engine)(nil)

// Consumer groups are durable pull consumers on the namespace stream,
// filtered on the room's subject, the multi-room subject (deliveries not
// addressed to the room are terminated here, never handed to the hub) and
// the group's own subject (dead letters replayed to this group alone);
// subjects.go names them. Dead letters live in the stream roomcast_dead.
//
// The hub leases each delivery to a member for the group's ack wait and
// ends the lease itself (a nack, with the group's backoff); the consumer's
// own AckWait is longer by leaseMargin, so that it redelivers only what a
// node that died can no longer give back.

const (
	mdRoom       = "roomcast_room"
	mdGroup      = "roomcast_group"
	mdAckWait    = "roomcast_ack_wait"
	mdMaxDeliver = "roomcast_max_deliver"
	mdInFlight   = "roomcast_max_in_flight"
	mdBackoff    = "roomcast_backoff"
	hdrOrigSeq   = "Rc-Orig-Seq"
	hdrDelivered = "Rc-Deliveries"
	hdrRoom      = "Rc-Room"
	hdrReason    = "Rc-Reason"
)

// leaseMargin is how much longer the engine waits than the hub's lease
// before it redelivers on its own.
func leaseMargin(ackWait time.Duration) time.Duration { return max(2*time.Second, ackWait/5) }

func (e *Engine) ensureDeadStream(ctx context.Context) (jetstream.Stream, error) {
	e.mu.Lock()
	s := e.dead
	e.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := e.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        deadStream,
		Description: "roomcast: consumer groups' dead letters",
		Subjects:    []string{"dead.>"},
		Storage:     jetstream.FileStorage,
		MaxAge:      30 * 24 * time.Hour,
		AllowDirect: true,
		Replicas:    e.Replicas(),
	})
	if err != nil {
		return nil, fmt.Errorf("engine: dead letter stream: %w: %w", hub.ErrUnavailable, err)
	}
	e.mu.Lock()
	e.dead = s
	e.mu.Unlock()
	return s, nil
}

func groupConfigOf(c jetstream.ConsumerConfig) hub.GroupConfig {
	cfg := hub.GroupConfig{AckWait: c.AckWait}
	if d, err := time.ParseDuration(c.Metadata[mdAckWait]); err == nil {
		cfg.AckWait = d
	}
	cfg.MaxDeliver, _ = strconv.Atoi(c.Metadata[mdMaxDeliver])
	cfg.MaxInFlight, _ = strconv.Atoi(c.Metadata[mdInFlight])
	if b := c.Metadata[mdBackoff]; b != "" {
		for _, f := range strings.Split(b, ",") {
			if d, err := time.ParseDuration(f); err == nil {
				cfg.Backoff = append(cfg.Backoff, d)
			}
		}
	}
	return cfg
}

func backoffString(b []time.Duration) string {
	parts := make([]string, len(b))
	for i, d := range b {
		parts[i] = d.String()
	}
	return strings.Join(parts, ",")
}

// EnsureGroup implements hub.Queue.
func (e *Engine) EnsureGroup(ctx context.Context, ns string, g hub.GroupKey, cfg, defaults hub.GroupConfig, update bool) (hub.GroupConfig, error) {
	s, err := e.ns(ns)
	if err != nil {
		return hub.GroupConfig{}, err
	}
	name := consumerName(g)
	if c, err := s.stream.Consumer(ctx, name); err == nil {
		cur := groupConfigOf(c.CachedInfo().Config).Or(hub.DefaultGroupConfig)
		if !update {
			e.cacheConsumer(ns, name, c)
			return cur, nil
		}
		defaults = cur // an update changes only the fields it sets
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return hub.GroupConfig{}, fmt.Errorf("engine: %s: %w: %w", g, hub.ErrUnavailable, err)
	}
	cfg = cfg.Or(defaults.Or(hub.DefaultGroupConfig))
	c, err := s.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:        name,
		Description:    "roomcast " + g.String(),
		FilterSubjects: groupSubjects(ns, g.Room, name),
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        cfg.AckWait + leaseMargin(cfg.AckWait),
		MaxDeliver:     -1,    // parked by the hub after its own max_deliver, so that it can keep a copy
		MaxAckPending:  10000, // flow control is per member, in the hub
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		// A group nobody consumes for this long is removed.
		InactiveThreshold: e.cfg.GroupIdle,
		Metadata: map[string]string{
			mdRoom: g.Room, mdGroup: g.Name, mdAckWait: cfg.AckWait.String(),
			mdMaxDeliver: strconv.Itoa(cfg.MaxDeliver), mdInFlight: strconv.Itoa(cfg.MaxInFlight),
			mdBackoff: backoffString(cfg.Backoff),
		},
	})
	if err != nil {
		return hub.GroupConfig{}, fmt.Errorf("engine: create %s: %w: %w", g, hub.ErrUnavailable, err)
	}
	e.cacheConsumer(ns, name, c)
	return cfg, nil
}

func (e *Engine) cacheConsumer(ns, name string, c jetstream.Consumer) {
	e.mu.Lock()
	e.consumers[ns+"/"+name] = c
	e.mu.Unlock()
}

func (e *Engine) consumer(ctx context.Context, ns string, g hub.GroupKey) (jetstream.Consumer, error) {
	name := consumerName(g)
	e.mu.Lock()
	c := e.consumers[ns+"/"+name]
	e.mu.Unlock()
	if c != nil {
		return c, nil
	}
	s, err := e.ns(ns)
	if err != nil {
		return nil, err
	}
	c, err = s.stream.Consumer(ctx, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("%s: %w", g, hub.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("engine: %s: %w: %w", g, hub.ErrUnavailable, err)
	}
	e.cacheConsumer(ns, name, c)
	return c, nil
}

func (e *Engine) forgetConsumer(ns string, g hub.GroupKey) {
	e.mu.Lock()
	delete(e.consumers, ns+"/"+consumerName(g))
	e.mu.Unlock()
}

// DeleteGroup implements hub.GroupAdmin.
func (e *Engine) DeleteGroup(ctx context.Context, ns string, g hub.GroupKey) error {
	s, err := e.ns(ns)
	if err != nil {
		return err
	}
	name := consumerName(g)
	e.forgetConsumer(ns, g)
	if err := s.stream.DeleteConsumer(ctx, name); err != nil {
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("%s: %w", g, hub.ErrNotFound)
		}
		return fmt.Errorf("engine: delete %s: %w: %w", g, hub.ErrUnavailable, err)
	}
	if dead, err := e.ensureDeadStream(ctx); err == nil {
		_ = dead.Purge(ctx, jetstream.WithPurgeSubject(deadSubject(ns, name)))
	}
	return nil
}

// ListGroups implements hub.GroupAdmin.
func (e *Engine) ListGroups(ctx context.Context, ns, room string) ([]string, error) {
	s, err := e.ns(ns)
	if err != nil {
		return nil, err
	}
	var out []string
	l := s.stream.ListConsumers(ctx)
	for info := range l.Info() {
		if info.Config.Metadata[mdRoom] == room && info.Config.Metadata[mdGroup] != "" {
			out = append(out, info.Config.Metadata[mdGroup])
		}
	}
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("engine: list groups: %w: %w", hub.ErrUnavailable, err)
	}
	return out, nil
}

// Pull implements hub.Queue: one pull request for up to n messages, each
// handed to fn as soon as it arrives (never waiting for the batch to
// fill); it ends after wait, when n arrived, or with ctx (what arrived
// before is still handed over). Deliveries of a multi-room message not
// addressed to g's room, and the room's notices, are terminated here.
//
// The request is made here rather than with nats.go's Fetch, for one
// guarantee: when Pull returns, the server has dropped the request (its
// reply subscription is gone, and the server has seen that), so a message
// given back after that — a leaving member's, say — can never be handed to
// this node's ended pull, where nobody would read it until the engine's
// own ack wait.
func (e *Engine) Pull(ctx context.Context, ns string, g hub.GroupKey, n int, wait time.Duration, fn func(hub.Delivery)) error {
	s, err := e.ns(ns)
	if err != nil {
		return err
	}
	if _, err := e.consumer(ctx, ns, g); err != nil {
		return err
	}
	hb := min(5*time.Second, wait/4)
	e.mu.Lock()
	restarted := e.restarted
	e.mu.Unlock()
	inbox := e.nc.NewInbox()
	msgs := make(chan *nats.Msg, n+64)
	sub, err := e.nc.ChanSubscribe(inbox, msgs)
	if err != nil {
		return fmt.Errorf("engine: pull %s: %w: %w", g, hub.ErrUnavailable, err)
	}
	got := 0
	deliver := func(m *nats.Msg) {
		md, err := m.Metadata()
		if err != nil {
			return
		}
		msg, err := decodeAt(s, ns, m.Subject, m.Header, m.Data, md.Sequence.Stream, md.Timestamp)
		if err != nil || msg.Notice || (!msg.GroupOnly && !slices.Contains(msg.Rooms, g.Room)) {
			_ = m.Term() // not for this group (or undecodable): never again
			return
		}
		fn(hub.Delivery{Msg: msg, Count: md.NumDelivered, Handle: m.Reply})
	}
	defer func() {
		// Unsubscribe and wait for the server to have it; then hand over
		// what arrived meanwhile: it was delivered to this node.
		_ = sub.Unsubscribe()
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = e.nc.FlushWithContext(fctx)
		cancel()
		for {
			select {
			case m := <-msgs:
				if m.Header.Get("Status") == "" && got < n {
					got++
					deliver(m)
				}
			default:
				return
			}
		}
	}()
	req, _ := json.Marshal(pullRequest{Batch: n, Expires: wait, Heartbeat: hb})
	subject := "$JS.API.CONSUMER.MSG.NEXT." + s.name + "." + consumerName(g)
	if err := e.nc.PublishRequest(subject, inbox, req); err != nil {
		return fmt.Errorf("engine: pull %s: %w: %w", g, hub.ErrUnavailable, err)
	}
	idle := time.NewTimer(2*hb + time.Second)
	defer idle.Stop()
	end := time.NewTimer(wait + time.Second)
	defer end.Stop()
	for got < n {
		select {
		case <-ctx.Done():
			return nil
		case <-end.C:
			return nil
		case <-restarted:
			return nil // the request died with JetStream: the caller pulls again
		case <-idle.C:
			return fmt.Errorf("engine: pull %s: no heartbeat from the server in %v: %w", g, 2*hb, hub.ErrUnavailable)
		case m := <-msgs:
			idle.Reset(2*hb + time.Second)
			switch status := m.Header.Get("Status"); status {
			case "":
				got++
				deliver(m)
			case "100": // an idle heartbeat
			case "404", "408": // no messages, or the request expired
				return nil
			case "409":
				if d := m.Header.Get("Description"); strings.Contains(strings.ToLower(d), "deleted") {
					e.forgetConsumer(ns, g)
					return fmt.Errorf("%s: %s: %w", g, d, hub.ErrNotFound)
				}
				return nil // leadership change, too many waiting: ask again
			default:
				return fmt.Errorf("engine: pull %s: status %s %s: %w", g, status, m.Header.Get("Description"), hub.ErrUnavailable)
			}
		}
	}
	return nil
}

// pullRequest is JetStream's request for the next messages of a pull
// consumer.
type pullRequest struct {
	Batch     int           `json:"batch"`
	Expires   time.Duration `json:"expires,omitempty"`
	Heartbeat time.Duration `json:"idle_heartbeat,omitempty"`
}

// settlePayload is what a settle sends to a delivery handle.
func settlePayload(op hub.Settle, delay time.Duration) ([]byte, error) {
	switch op {
	case hub.Ack:
		return []byte("+ACK"), nil
	case hub.Nack:
		if delay > 0 {
			return fmt.Appendf(nil, `-NAK {"delay":%d}`, delay.Nanoseconds()), nil
		}
		return []byte("-NAK"), nil
	case hub.Term:
		return []byte("+TERM"), nil
	case hub.Progress:
		return []byte("+WPI"), nil
	}
	return nil, fmt.Errorf("settle operation %d: %w", op, hub.ErrInvalid)
}

// settleOne settles one delivery and waits for the server's confirmation,
// so that an acknowledged 204 means the ack is recorded.
func (e *Engine) settleOne(ctx context.Context, reply string, payload []byte) error {
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	if _, err := e.nc.RequestWithContext(ctx, reply, payload); err != nil {
		return fmt.Errorf("engine: settle: %w: %w", hub.ErrUnavailable, err)
	}
	return nil
}

// Settle implements hub.Queue: the settles leave together and their
// confirmations are awaited together (one round trip for the batch instead
// of one per delivery). Handles of the same message (a delivery and its
// redelivery, or one id given twice) are settled once, with the latest
// delivery's handle: a clustered consumer keeps one pending confirmation
// per message, so a second one would never be answered.
func (e *Engine) Settle(ctx context.Context, replies []string, op hub.Settle, delay time.Duration) ([]bool, error) {
	done := make([]bool, len(replies))
	for _, r := range replies {
		if !deliveryHandle(r) {
			return done, fmt.Errorf("not a delivery handle: %w", hub.ErrInvalid)
		}
	}
	payload, err := settlePayload(op, delay)
	if err != nil {
		return done, err
	}
	if len(replies) == 1 {
		err := e.settleOne(ctx, replies[0], payload)
		done[0] = err == nil
		return done, err
	}
	type settle struct {
		reply     string
		delivered uint64
		idx       []int // the indexes of replies it settles
	}
	var sends []settle
	byMsg := make(map[string]int, len(replies))
	for i, r := range replies {
		msg, delivered := ackInfo(r)
		if k, ok := byMsg[msg]; ok {
			sends[k].idx = append(sends[k].idx, i)
			if delivered > sends[k].delivered {
				sends[k].reply, sends[k].delivered = r, delivered
			}
			continue
		}
		byMsg[msg] = len(sends)
		sends = append(sends, settle{reply: r, delivered: delivered, idx: []int{i}})
	}

	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	unavailable := func(err error) ([]bool, error) {
		return done, fmt.Errorf("engine: settle: %w: %w", hub.ErrUnavailable, err)
	}
	prefix, answers, release, err := e.replyBatch(len(sends))
	if err != nil {
		return unavailable(err)
	}
	defer release()
	send := func(k int) error { return e.nc.PublishRequest(sends[k].reply, prefix+strconv.Itoa(k), payload) }
	for k := range sends {
		if err := send(k); err != nil {
			return unavailable(err)
		}
	}
	if err := e.nc.FlushWithContext(ctx); err != nil {
		return unavailable(err)
	}
	// Every answer is read, failures too (a consumer mid-election may
	// refuse some and confirm others), until each has one or time is up.
	answered := make([]bool, len(sends))
	var failed error
	// A clustered consumer answers an ack or term once it is replicated,
	// and keeps one pending answer per message: another settle of the same
	// message meanwhile (a client's retry, the member holding its
	// redelivery) takes that answer. What is still unanswered after a
	// second is sent once more (settling again is harmless).
	var resend <-chan time.Time // nil (never) for a nak
	if op == hub.Ack || op == hub.Term {
		t := time.NewTimer(time.Second)
		defer t.Stop()
		resend = t.C
	}
	for n := 0; n < len(sends); {
		select {
		case <-resend:
			for k := range sends {
				if !answered[k] {
					_ = send(k)
				}
			}
		case m := <-answers:
			k, err := strconv.Atoi(strings.TrimPrefix(m.Subject, prefix))
			if err != nil || k < 0 || k >= len(sends) || answered[k] {
				continue
			}
			answered[k] = true
			n++
			if status := m.Header.Get("Status"); status != "" {
				// Not a confirmation: "no responders" (503) when nothing
				// consumes that handle any more (a deleted group, a
				// consumer mid-election).
				failed = fmt.Errorf("%w: status %s", nats.ErrNoResponders, status)
				continue
			}
			for _, i := range sends[k].idx {
				done[i] = true
			}
		case <-ctx.Done():
			return unavailable(ctx.Err())
		}
	}
	if failed != nil {
		return unavailable(failed)
	}
	return done, nil
}

// ackHandle is what a delivery handle names:
// $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.… or, with a domain,
// $JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.…
// (the positions nats.go and the server parse).
type ackHandle struct {
	stream, consumer, seq string
	delivered             uint64
}

func parseAck(reply string) (ackHandle, bool) {
	t := strings.Split(reply, ".")
	if len(t) < 2 || t[0] != "$JS" || t[1] != "ACK" {
		return ackHandle{}, false
	}
	var h ackHandle
	var d string
	switch {
	case len(t) == 9:
		h.stream, h.consumer, d, h.seq = t[2], t[3], t[4], t[5]
	case len(t) >= 11:
		h.stream, h.consumer, d, h.seq = t[4], t[5], t[6], t[7]
	default:
		return ackHandle{}, false
	}
	h.delivered, _ = strconv.ParseUint(d, 10, 64)
	return h, true
}

// ackInfo returns the message a delivery handle settles (its stream,
// consumer and stream sequence) and its delivery count; a handle of
// another shape is its own key.
func ackInfo(reply string) (msg string, delivered uint64) {
	h, ok := parseAck(reply)
	if !ok {
		return reply, 0
	}
	return h.stream + "." + h.consumer + "." + h.seq, h.delivered
}

// settleTimeout bounds the wait for the server's confirmation of a settle.
const settleTimeout = 5 * time.Second

// deliveryHandle reports whether reply is a JetStream delivery's ack subject
// (a literal subject under $JS.ACK.).
func deliveryHandle(reply string) bool {
	return strings.HasPrefix(reply, "$JS.ACK.") && !strings.ContainsAny(reply, " \t\r\n*>")
}

// GroupState implements hub.GroupAdmin.
func (e *Engine) GroupState(ctx context.Context, ns string, g hub.GroupKey) (hub.GroupState, error) {
	c, err := e.consumer(ctx, ns, g)
	if err != nil {
		return hub.GroupState{}, err
	}
	info, err := c.Info(ctx)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		e.forgetConsumer(ns, g)
		return hub.GroupState{}, fmt.Errorf("%s: %w", g, hub.ErrNotFound)
	}
	if err != nil {
		return hub.GroupState{}, fmt.Errorf("engine: %s: %w: %w", g, hub.ErrUnavailable, err)
	}
	st := hub.GroupState{
		Key: g, Config: groupConfigOf(info.Config).Or(hub.DefaultGroupConfig),
		Waiting: info.NumPending, Unacked: info.NumAckPending, Redelivered: info.NumRedelivered,
		AckFloor: info.AckFloor.Stream,
	}
	if dead, err := e.ensureDeadStream(ctx); err == nil {
		subj := deadSubject(ns, info.Name)
		if di, err := dead.Info(ctx, jetstream.WithSubjectFilter(subj)); err == nil {
			st.DeadLetters = di.State.Subjects[subj]
		}
	}
	return st, nil
}

// Park implements hub.Queue: a copy of the message goes to the dead
// letter stream with its delivery count and the reason.
func (e *Engine) Park(ctx context.Context, ns string, g hub.GroupKey, d hub.Delivery, reason string) error {
	dead, err := e.ensureDeadStream(ctx)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(deadSubject(ns, consumerName(g)))
	msg.Header.Set(hdrEvent, d.Msg.Event)
	msg.Header.Set(hdrRoom, g.Room)
	msg.Header.Set(hdrRooms, strings.Join(d.Msg.Rooms, ","))
	if d.Msg.From != "" {
		msg.Header.Set(hdrFrom, string(d.Msg.From))
	}
	msg.Header.Set(hdrOrigSeq, strconv.FormatUint(d.Msg.Pos.Seq, 10))
	msg.Header.Set(hdrDelivered, strconv.FormatUint(d.Count-1, 10))
	msg.Header.Set(hdrReason, reason)
	// A park retried after an outcome it did not learn (a timeout, a
	// member leaving) is stored once: a message is parked at most once.
	msg.Header.Set(nats.MsgIdHdr, "park."+ns+"."+consumerName(g)+"."+strconv.FormatUint(d.Msg.Pos.Seq, 10))
	// The stored body is the envelope without its id (WithID adds it back).
	msg.Data = withoutID(d.Msg.Body)
	if _, err := e.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(dead.CachedInfo().Config.Name)); err != nil {
		return fmt.Errorf("engine: park: %w: %w", hub.ErrUnavailable, err)
	}
	return nil
}

// withoutID undoes hub.WithID: body is `{"id":"…",…}`.
func withoutID(body []byte) []byte {
	i := strings.IndexByte(string(body[len(`{"id":"`):]), '"')
	if i < 0 {
		return body
	}
	rest := body[len(`{"id":"`)+i+1:] // `,…}` or `}`
	if len(rest) > 0 && rest[0] == ',' {
		rest = rest[1:]
	}
	return append([]byte{'{'}, rest...)
}

// DeadLetters implements hub.GroupAdmin.
func (e *Engine) DeadLetters(ctx context.Context, ns string, g hub.GroupKey, limit int) ([]hub.DeadLetter, error) {
	s, err := e.ns(ns)
	if err != nil {
		return nil, err
	}
	dead, err := e.ensureDeadStream(ctx)
	if err != nil {
		return nil, err
	}
	subj := deadSubject(ns, consumerName(g))
	cons, err := dead.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject: subj, AckPolicy: jetstream.AckNonePolicy, MemoryStorage: true, InactiveThreshold: time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("engine: dead letters: %w: %w", hub.ErrUnavailable, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = dead.DeleteConsumer(dctx, cons.CachedInfo().Name)
	}()
	out := []hub.DeadLetter{}
	for len(out) < limit {
		batch, err := cons.FetchNoWait(min(256, limit-len(out)))
		if err != nil {
			return nil, fmt.Errorf("engine: dead letters: %w", err)
		}
		n := 0
		last := false
		for msg := range batch.Messages() {
			n++
			md, err := msg.Metadata()
			if err != nil {
				continue
			}
			h := msg.Headers()
			orig, _ := strconv.ParseUint(h.Get(hdrOrigSeq), 10, 64)
			count, _ := strconv.ParseUint(h.Get(hdrDelivered), 10, 64)
			m := &hub.Message{Pos: hub.Position{Epoch: s.epoch, Seq: orig}, Event: h.Get(hdrEvent), From: hub.ConnID(h.Get(hdrFrom)), Time: md.Timestamp}
			if r := h.Get(hdrRooms); r != "" {
				m.Rooms = strings.Split(r, ",")
			}
			m.Body = hub.WithID(msg.Data(), m.Pos.String())
			out = append(out, hub.DeadLetter{Seq: md.Sequence.Stream, Msg: m, Deliveries: count, Parked: md.Timestamp, Reason: h.Get(hdrReason)})
			if md.NumPending == 0 {
				last = true
			}
		}
		if n == 0 || last {
			break
		}
	}
	return out, nil
}

func (e *Engine) deadMsg(ctx context.Context, ns string, g hub.GroupKey, seq uint64) (jetstream.Stream, *jetstream.RawStreamMsg, error) {
	dead, err := e.ensureDeadStream(ctx)
	if err != nil {
		return nil, nil, err
	}
	raw, err := dead.GetMsg(ctx, seq)
	if err != nil || raw.Subject != deadSubject(ns, consumerName(g)) {
		return nil, nil, fmt.Errorf("dead letter %d of %s: %w", seq, g, hub.ErrNotFound)
	}
	return dead, raw, nil
}

// ReplayDead implements hub.GroupAdmin.
func (e *Engine) ReplayDead(ctx context.Context, ns string, g hub.GroupKey, seq uint64) error {
	dead, raw, err := e.deadMsg(ctx, ns, g, seq)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(groupSubject(ns, consumerName(g)))
	msg.Header.Set(hdrEvent, raw.Header.Get(hdrEvent))
	msg.Header.Set(hdrRooms, g.Room)
	if f := raw.Header.Get(hdrFrom); f != "" {
		msg.Header.Set(hdrFrom, f)
	}
	msg.Data = raw.Data
	if _, err := e.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(streamName(ns))); err != nil {
		return fmt.Errorf("engine: replay dead letter: %w: %w", hub.ErrUnavailable, err)
	}
	if err := dead.DeleteMsg(ctx, seq); err != nil {
		return fmt.Errorf("engine: remove replayed dead letter: %w: %w", hub.ErrUnavailable, err)
	}
	return nil
}

// DropDead implements hub.GroupAdmin.
func (e *Engine) DropDead(ctx context.Context, ns string, g hub.GroupKey, seq uint64) error {
	dead, _, err := e.deadMsg(ctx, ns, g, seq)
	if err != nil {
		return err
	}
	if err := dead.DeleteMsg(ctx, seq); err != nil {
		return fmt.Errorf("engine: drop dead letter: %w: %w", hub.ErrUnavailable, err)
	}
	return nil
}

// AckKey returns the key shared by every node to bind ack ids to
// connections, creating it on first use.
func (e *Engine) AckKey(ctx context.Context) ([]byte, error) {
	var key []byte
	err := retry(ctx, 60*time.Second, func() error {
		kv, err := e.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: "roomcast_meta", Description: "roomcast: cluster-wide settings", History: 1, Storage: jetstream.FileStorage,
			Replicas: e.Replicas(),
		})
		if err != nil {
			return err
		}
		var fresh [32]byte
		_, _ = rand.Read(fresh[:])
		// The first node to create it wins; every node then reads the same.
		if _, err := kv.Create(ctx, "ack_key", fresh[:]); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return err
		}
		entry, err := kv.Get(ctx, "ack_key")
		if err != nil {
			return err
		}
		key = entry.Value()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("engine: ack key: %w", err)
	}
	return key, nil
}

// GroupTotals sums the backlogs of namespace ns's consumer groups (for
// metrics): pending, in flight, redelivered, dead letters.
func (e *Engine) GroupTotals(ctx context.Context, ns string) (pending, inFlight, redelivered, dead uint64, err error) {
	s, err := e.ns(ns)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	l := s.stream.ListConsumers(ctx)
	for info := range l.Info() {
		if info.Config.Metadata[mdGroup] == "" {
			continue // replay and history readers
		}
		pending += info.NumPending
		inFlight += uint64(info.NumAckPending)
		redelivered += uint64(info.NumRedelivered)
	}
	if err := l.Err(); err != nil {
		return 0, 0, 0, 0, fmt.Errorf("engine: list groups: %w: %w", hub.ErrUnavailable, err)
	}
	if ds, err := e.ensureDeadStream(ctx); err == nil {
		if di, err := ds.Info(ctx, jetstream.WithSubjectFilter(deadSubject(ns, ">"))); err == nil {
			for _, n := range di.State.Subjects {
				dead += n
			}
		}
	}
	return pending, inFlight, redelivered, dead, nil
}
