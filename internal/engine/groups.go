package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomcast/roomcast/internal/hub"
)

var _ hub.Groups = (*Engine)(nil)

// Consumer groups are durable pull consumers on the namespace stream,
// filtered on the room's subject, the multi-room subject (deliveries not
// addressed to the room are terminated) and the group's own subject
// rc.<ns>.g.<consumer> (dead letters replayed to this group alone).
// Dead letters live in the stream roomcast_dead, subject dead.<ns>.<consumer>.

// deadSubject is the subject of consumer's dead letters in ns (consumer ">":
// all of ns's).
func deadSubject(ns, consumer string) string { return "dead." + ns + "." + consumer }

const (
	deadStream   = "roomcast_dead"
	mdRoom       = "roomcast_room"
	mdGroup      = "roomcast_group"
	mdMaxDeliver = "roomcast_max_deliver"
	mdInFlight   = "roomcast_max_in_flight"
	hdrOrigSeq   = "Rc-Orig-Seq"
	hdrDelivered = "Rc-Deliveries"
	hdrRoom      = "Rc-Room"
)

// consumerName maps (room, group) to a durable name: room names may hold
// characters consumer names may not ('.'), so the room is hashed.
func consumerName(room, group string) string {
	h := sha256.Sum256([]byte(room))
	return "g_" + hex.EncodeToString(h[:8]) + "_" + group
}

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
		Replicas:    e.cfg.Replicas,
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
	cfg.MaxDeliver, _ = strconv.Atoi(c.Metadata[mdMaxDeliver])
	cfg.MaxInFlight, _ = strconv.Atoi(c.Metadata[mdInFlight])
	return cfg
}

// EnsureGroup implements hub.Groups.
func (e *Engine) EnsureGroup(ctx context.Context, ns, room, group string, cfg, defaults hub.GroupConfig, update bool) (hub.GroupConfig, error) {
	s, err := e.ns(ns)
	if err != nil {
		return hub.GroupConfig{}, err
	}
	name := consumerName(room, group)
	if c, err := s.stream.Consumer(ctx, name); err == nil {
		cur := groupConfigOf(c.CachedInfo().Config).Or(hub.DefaultGroupConfig)
		if !update {
			e.cacheConsumer(ns, name, c)
			return cur, nil
		}
		defaults = cur // an update changes only the fields it sets
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return hub.GroupConfig{}, fmt.Errorf("engine: group %s: %w: %w", group, hub.ErrUnavailable, err)
	}
	cfg = cfg.Or(defaults.Or(hub.DefaultGroupConfig))
	c, err := s.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:     name,
		Description: "roomcast group " + group + " of room " + room,
		FilterSubjects: []string{
			"rc." + ns + ".r." + room, "rc." + ns + ".m", "rc." + ns + ".g." + name,
		},
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1,    // parked by the hub after its own max_deliver, so that it can keep a copy
		MaxAckPending: 10000, // flow control is per member, in the hub
		DeliverPolicy: jetstream.DeliverNewPolicy,
		// A group nobody consumes for this long is removed.
		InactiveThreshold: e.cfg.GroupIdle,
		Metadata: map[string]string{
			mdRoom: room, mdGroup: group,
			mdMaxDeliver: strconv.Itoa(cfg.MaxDeliver), mdInFlight: strconv.Itoa(cfg.MaxInFlight),
		},
	})
	if err != nil {
		return hub.GroupConfig{}, fmt.Errorf("engine: create group %s: %w: %w", group, hub.ErrUnavailable, err)
	}
	e.cacheConsumer(ns, name, c)
	return cfg, nil
}

func (e *Engine) cacheConsumer(ns, name string, c jetstream.Consumer) {
	e.mu.Lock()
	e.consumers[ns+"/"+name] = c
	e.mu.Unlock()
}

func (e *Engine) consumer(ctx context.Context, ns, room, group string) (jetstream.Consumer, error) {
	name := consumerName(room, group)
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
		return nil, fmt.Errorf("group %s of room %s: %w", group, room, hub.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("engine: group %s: %w: %w", group, hub.ErrUnavailable, err)
	}
	e.cacheConsumer(ns, name, c)
	return c, nil
}

// DeleteGroup implements hub.Groups.
func (e *Engine) DeleteGroup(ctx context.Context, ns, room, group string) error {
	s, err := e.ns(ns)
	if err != nil {
		return err
	}
	name := consumerName(room, group)
	e.mu.Lock()
	delete(e.consumers, ns+"/"+name)
	e.mu.Unlock()
	if err := s.stream.DeleteConsumer(ctx, name); err != nil {
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("group %s of room %s: %w", group, room, hub.ErrNotFound)
		}
		return fmt.Errorf("engine: delete group %s: %w: %w", group, hub.ErrUnavailable, err)
	}
	if dead, err := e.ensureDeadStream(ctx); err == nil {
		_ = dead.Purge(ctx, jetstream.WithPurgeSubject(deadSubject(ns, name)))
	}
	return nil
}

// ListGroups implements hub.Groups.
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

// Fetch implements hub.Groups.
func (e *Engine) Fetch(ctx context.Context, ns, room, group string, max int, wait time.Duration) ([]hub.Delivery, error) {
	s, err := e.ns(ns)
	if err != nil {
		return nil, err
	}
	c, err := e.consumer(ctx, ns, room, group)
	if err != nil {
		return nil, err
	}
	batch, err := c.Fetch(max, jetstream.FetchMaxWait(wait))
	if err != nil {
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
			e.mu.Lock()
			delete(e.consumers, ns+"/"+consumerName(room, group))
			e.mu.Unlock()
		}
		return nil, fmt.Errorf("engine: fetch %s: %w", group, err)
	}
	var out []hub.Delivery
	for msg := range batch.Messages() {
		md, err := msg.Metadata()
		if err != nil {
			continue
		}
		m, err := decodeAt(s, ns, msg.Subject(), msg.Headers(), msg.Data(), md.Sequence.Stream, md.Timestamp)
		if err != nil {
			_ = msg.Term()
			continue
		}
		out = append(out, hub.Delivery{Msg: m, Count: md.NumDelivered, Reply: msg.Reply(), Raw: msg.Data()})
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) && len(out) == 0 {
		return nil, fmt.Errorf("engine: fetch %s: %w", group, err)
	}
	return out, nil
}

// Settle implements hub.Groups. It waits for the server's confirmation, so
// an acknowledged 204 means the ack is recorded.
func (e *Engine) Settle(ctx context.Context, reply string, op hub.Settle) error {
	if !deliveryHandle(reply) {
		return fmt.Errorf("not a delivery handle: %w", hub.ErrInvalid)
	}
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	if _, err := e.nc.RequestWithContext(ctx, reply, []byte(op)); err != nil {
		return fmt.Errorf("engine: settle: %w: %w", hub.ErrUnavailable, err)
	}
	return nil
}

// SettleAll implements hub.Groups: the settles leave together and their
// confirmations are awaited together (one round trip for the batch instead
// of one per delivery). Handles of the same message (a delivery and its
// redelivery, or one id given twice) are settled once, with the latest
// delivery's handle: a clustered consumer keeps one pending confirmation
// per message, so a second one would never be answered.
func (e *Engine) SettleAll(ctx context.Context, replies []string, op hub.Settle) ([]bool, error) {
	done := make([]bool, len(replies))
	for _, r := range replies {
		if !deliveryHandle(r) {
			return done, fmt.Errorf("not a delivery handle: %w", hub.ErrInvalid)
		}
	}
	if len(replies) == 1 {
		err := e.Settle(ctx, replies[0], op)
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
	prefix, answers, release, err := e.settleBatch(len(sends))
	if err != nil {
		return unavailable(err)
	}
	defer release()
	send := func(k int) error { return e.nc.PublishRequest(sends[k].reply, prefix+strconv.Itoa(k), []byte(op)) }
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

// settleBatch registers a batch of n settles with the engine's settle
// replies: one wildcard subscription for the engine's life (one per batch
// would be a SUB and an UNSUB per ack request, sent to every node of a
// cluster). A settle's reply subject is prefix+<its index>; its answer
// arrives on answers. release unregisters the batch.
func (e *Engine) settleBatch(n int) (prefix string, answers chan *nats.Msg, release func(), err error) {
	mux, err := e.settleMux()
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

// settleMux is the reply subscription behind settleBatch.
type settleMux struct {
	inbox string // its subscription ends with the connection (Engine.Close drains it)

	mu      sync.Mutex
	next    uint64
	batches map[string]chan *nats.Msg
}

func (e *Engine) settleMux() (*settleMux, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.settles != nil {
		return e.settles, nil
	}
	mux := &settleMux{inbox: e.nc.NewInbox(), batches: map[string]chan *nats.Msg{}}
	_, err := e.nc.Subscribe(mux.inbox+".>", func(m *nats.Msg) {
		// <inbox>.<batch>.<index>
		batch, _, ok := strings.Cut(strings.TrimPrefix(m.Subject, mux.inbox+"."), ".")
		if !ok {
			return
		}
		mux.mu.Lock()
		ch := mux.batches[batch]
		mux.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m: // room for one answer per settle
			default:
			}
		}
	})
	if err != nil {
		return nil, err
	}
	e.settles = mux
	return mux, nil
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

// Owns implements hub.Groups: the reply subject names the stream and the
// consumer (ackHandle).
func (e *Engine) Owns(ns, room, group, reply string) bool {
	h, ok := parseAck(reply)
	return ok && h.stream == streamName(ns) && h.consumer == consumerName(room, group)
}

// GroupState implements hub.Groups.
func (e *Engine) GroupState(ctx context.Context, ns, room, group string) (hub.GroupState, error) {
	c, err := e.consumer(ctx, ns, room, group)
	if err != nil {
		return hub.GroupState{}, err
	}
	info, err := c.Info(ctx)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return hub.GroupState{}, fmt.Errorf("group %s of room %s: %w", group, room, hub.ErrNotFound)
	}
	if err != nil {
		return hub.GroupState{}, fmt.Errorf("engine: group %s: %w: %w", group, hub.ErrUnavailable, err)
	}
	st := hub.GroupState{
		Room: room, Group: group, Config: groupConfigOf(info.Config),
		Pending: info.NumPending, InFlight: info.NumAckPending, Redelivered: info.NumRedelivered,
		AckFloor: info.AckFloor.Stream,
	}
	st.Config = st.Config.Or(hub.DefaultGroupConfig)
	if dead, err := e.ensureDeadStream(ctx); err == nil {
		subj := deadSubject(ns, info.Name)
		if di, err := dead.Info(ctx, jetstream.WithSubjectFilter(subj)); err == nil {
			st.DeadLetters = di.State.Subjects[subj]
		}
	}
	return st, nil
}

// Park implements hub.Groups: a copy of the message goes to the dead
// letter stream with its delivery count.
func (e *Engine) Park(ctx context.Context, ns, room, group string, d hub.Delivery) error {
	dead, err := e.ensureDeadStream(ctx)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(deadSubject(ns, consumerName(room, group)))
	msg.Header.Set(hdrEvent, d.Msg.Event)
	msg.Header.Set(hdrRoom, room)
	msg.Header.Set(hdrRooms, strings.Join(d.Msg.Rooms, ","))
	if d.Msg.From != "" {
		msg.Header.Set(hdrFrom, string(d.Msg.From))
	}
	msg.Header.Set(hdrOrigSeq, strconv.FormatUint(d.Msg.Pos.Seq, 10))
	msg.Header.Set(hdrDelivered, strconv.FormatUint(d.Count-1, 10))
	msg.Data = d.Raw
	if _, err := e.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(dead.CachedInfo().Config.Name)); err != nil {
		return fmt.Errorf("engine: park: %w: %w", hub.ErrUnavailable, err)
	}
	return nil
}

// DeadLetters implements hub.Groups.
func (e *Engine) DeadLetters(ctx context.Context, ns, room, group string, limit int) ([]hub.DeadLetter, error) {
	s, err := e.ns(ns)
	if err != nil {
		return nil, err
	}
	dead, err := e.ensureDeadStream(ctx)
	if err != nil {
		return nil, err
	}
	subj := deadSubject(ns, consumerName(room, group))
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
			out = append(out, hub.DeadLetter{Seq: md.Sequence.Stream, Msg: m, Deliveries: count, Parked: md.Timestamp})
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

func (e *Engine) deadMsg(ctx context.Context, ns, room, group string, seq uint64) (jetstream.Stream, *jetstream.RawStreamMsg, error) {
	dead, err := e.ensureDeadStream(ctx)
	if err != nil {
		return nil, nil, err
	}
	raw, err := dead.GetMsg(ctx, seq)
	if err != nil || raw.Subject != deadSubject(ns, consumerName(room, group)) {
		return nil, nil, fmt.Errorf("dead letter %d of group %s: %w", seq, group, hub.ErrNotFound)
	}
	return dead, raw, nil
}

// ReplayDead implements hub.Groups.
func (e *Engine) ReplayDead(ctx context.Context, ns, room, group string, seq uint64) error {
	dead, raw, err := e.deadMsg(ctx, ns, room, group, seq)
	if err != nil {
		return err
	}
	msg := nats.NewMsg("rc." + ns + ".g." + consumerName(room, group))
	msg.Header.Set(hdrEvent, raw.Header.Get(hdrEvent))
	msg.Header.Set(hdrRooms, room)
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

// DropDead implements hub.Groups.
func (e *Engine) DropDead(ctx context.Context, ns, room, group string, seq uint64) error {
	dead, _, err := e.deadMsg(ctx, ns, room, group, seq)
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
			Replicas: e.cfg.Replicas,
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
