package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeQueue is the engine side of consumer groups in memory: one durable
// consumer per group with a queue of messages to deliver, redeliveries,
// acknowledgements and dead letters. Handles are "<group>/<seq>/<count>".
type fakeQueue struct {
	mu      sync.Mutex
	cfg     map[GroupKey]GroupConfig
	ready   map[GroupKey][]uint64 // sequences waiting for a pull, in order
	msgs    map[uint64]*Message
	count   map[string]uint64 // group/seq → deliveries so far
	acked   map[string]bool
	settles []string      // "op handle delay" in order
	parked  []string      // handles
	pulls   int           // pulls in progress
	nakLive []string      // naks made while a pull of the group was in progress
	wake    chan struct{} // a message became ready
}

var _ Groups = (*fakeQueue)(nil)

func newFakeQueue() *fakeQueue {
	return &fakeQueue{cfg: map[GroupKey]GroupConfig{}, ready: map[GroupKey][]uint64{}, msgs: map[uint64]*Message{},
		count: map[string]uint64{}, acked: map[string]bool{}, wake: make(chan struct{}, 1)}
}

func (q *fakeQueue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// offer makes m ready for every group of its room, as the engine's
// consumers see a stored message.
func (q *fakeQueue) offer(m *Message) {
	q.mu.Lock()
	q.msgs[m.Pos.Seq] = m
	for k := range q.cfg {
		if slices.Contains(m.Rooms, k.Room) {
			q.ready[k] = append(q.ready[k], m.Pos.Seq)
		}
	}
	q.mu.Unlock()
	q.poke()
}

func (q *fakeQueue) EnsureGroup(_ context.Context, _ string, g GroupKey, cfg, defaults GroupConfig, update bool) (GroupConfig, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	cur, ok := q.cfg[g]
	if ok && !update {
		return cur, nil
	}
	if ok {
		defaults = cur
	}
	cfg = cfg.Or(defaults.Or(DefaultGroupConfig))
	q.cfg[g] = cfg
	return cfg, nil
}

func handleOf(g GroupKey, seq, count uint64) string {
	return fmt.Sprintf("%s/%d/%d", g.Name, seq, count)
}

func parseHandle(h string) (group string, seq, count uint64) {
	parts := strings.Split(h, "/")
	fmt.Sscan(parts[1], &seq)
	fmt.Sscan(parts[2], &count)
	return parts[0], seq, count
}

func (q *fakeQueue) Pull(ctx context.Context, _ string, g GroupKey, n int, wait time.Duration, fn func(Delivery)) error {
	q.mu.Lock()
	q.pulls++
	q.mu.Unlock()
	defer func() { q.mu.Lock(); q.pulls--; q.mu.Unlock() }()
	timeout := time.After(wait)
	for got := 0; got < n; {
		q.mu.Lock()
		if r := q.ready[g]; len(r) > 0 {
			seq := r[0]
			q.ready[g] = r[1:]
			k := g.Name + "/" + fmt.Sprint(seq)
			q.count[k]++
			d := Delivery{Msg: q.msgs[seq], Count: q.count[k], Handle: handleOf(g, seq, q.count[k])}
			q.mu.Unlock()
			got++
			fn(d)
			continue
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-timeout:
			return nil
		case <-q.wake:
		}
	}
	return nil
}

func (q *fakeQueue) Settle(_ context.Context, handles []string, op Settle, delay time.Duration) ([]bool, error) {
	done := make([]bool, len(handles))
	for i, h := range handles {
		group, seq, _ := parseHandle(h)
		q.mu.Lock()
		q.settles = append(q.settles, fmt.Sprintf("%d %s %v", op, h, delay))
		var g GroupKey
		for k := range q.cfg {
			if k.Name == group {
				g = k
			}
		}
		switch op {
		case Ack, Term:
			q.acked[group+"/"+fmt.Sprint(seq)] = true
		case Nack:
			if q.pulls > 0 {
				q.nakLive = append(q.nakLive, h)
			}
			if delay > 0 {
				time.AfterFunc(delay, func() {
					q.mu.Lock()
					q.ready[g] = append([]uint64{seq}, q.ready[g]...)
					q.mu.Unlock()
					q.poke()
				})
			} else {
				q.ready[g] = append([]uint64{seq}, q.ready[g]...)
			}
		}
		q.mu.Unlock()
		q.poke()
		done[i] = true
	}
	return done, nil
}

func (q *fakeQueue) Park(_ context.Context, _ string, _ GroupKey, d Delivery, _ string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.parked = append(q.parked, d.Handle)
	return nil
}

func (q *fakeQueue) ListGroups(context.Context, string, string) ([]string, error) { return nil, nil }

func (q *fakeQueue) GroupState(_ context.Context, _ string, g GroupKey) (GroupState, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	cfg, ok := q.cfg[g]
	if !ok {
		return GroupState{}, ErrNotFound
	}
	st := GroupState{Key: g, Config: cfg, Waiting: uint64(len(q.ready[g]))}
	for k, n := range q.count {
		if strings.HasPrefix(k, g.Name+"/") && n > 0 && !q.acked[k] && !slices.Contains(q.ready[g], seqOf(k)) {
			st.Unacked++
		}
	}
	return st, nil
}

func seqOf(k string) uint64 {
	var seq uint64
	fmt.Sscan(k[strings.IndexByte(k, '/')+1:], &seq)
	return seq
}

func (q *fakeQueue) DeleteGroup(context.Context, string, GroupKey) error { return nil }
func (q *fakeQueue) DeadLetters(context.Context, string, GroupKey, int) ([]DeadLetter, error) {
	return nil, nil
}
func (q *fakeQueue) ReplayDead(context.Context, string, GroupKey, uint64) error { return nil }
func (q *fakeQueue) DropDead(context.Context, string, GroupKey, uint64) error   { return nil }

func (q *fakeQueue) settled() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.settles)
}

// groupFixture is a namespace with consumer groups on a fakeQueue.
type groupFixture struct {
	*fixture
	q *fakeQueue
	k GroupKey
}

func newGroupFixture(t *testing.T, cfg GroupConfig) *groupFixture {
	t.Helper()
	log, sess, q := newFakeLog(testEpoch), newFakeSessions(), newFakeQueue()
	log.feed = true
	h := newHub(t, log, sess, Deps{Groups: q, AckKey: []byte("0123456789abcdef0123456789abcdef")}, Config{})
	ns, err := h.AddNamespace(context.Background(), "test", NamespaceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	k := GroupKey{Room: "jobs", Name: "g"}
	if _, err := ns.PutGroup(context.Background(), k.Room, k.Name, cfg, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	return &groupFixture{fixture: &fixture{hub: h, ns: ns, log: log, sess: sess}, q: q, k: k}
}

// member opens a live connection that is a member of the group.
func (fx *groupFixture) member(t *testing.T) (*Conn, *fakeSink) {
	t.Helper()
	sink := &fakeSink{}
	c, err := fx.ns.Open(context.Background(), OpenRequest{Group: &fx.k, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c, sink
}

// job stores a message to the group's room and offers it to the group.
func (fx *groupFixture) job() *Message {
	m := fx.publish(&Message{Event: "job", Rooms: []string{fx.k.Room}})
	fx.q.offer(m)
	return m
}

// delivered returns the group deliveries a sink got: message seq, ack id,
// count and deadline.
type got struct {
	seq      uint64
	ackID    string
	count    uint64
	deadline time.Time
}

func deliveries(t *testing.T, s *fakeSink) []got {
	t.Helper()
	var out []got
	for _, ev := range s.named("job") {
		var env Envelope
		if err := json.Unmarshal(ev.Data, &env); err != nil {
			t.Fatalf("delivery data %s: %v", ev.Data, err)
		}
		pos, err := ParsePosition(env.ID)
		if err != nil {
			t.Fatal(err)
		}
		dl, err := time.Parse(time.RFC3339Nano, env.AckDeadline)
		if err != nil {
			t.Fatalf("ack_deadline %q: %v", env.AckDeadline, err)
		}
		out = append(out, got{seq: pos.Seq, ackID: env.AckID, count: env.Delivery, deadline: dl})
	}
	return out
}

func seqsOf(gs []got) []uint64 {
	out := []uint64{}
	for _, g := range gs {
		out = append(out, g.seq)
	}
	return out
}

func TestGroupDeliversAtOnceToTheMemberHoldingFewest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newGroupFixture(t, GroupConfig{AckWait: time.Minute, MaxInFlight: 2})
		a, sa := fx.member(t)
		_, sb := fx.member(t)
		for range 4 {
			fx.job()
		}
		synctest.Wait() // no time passes: delivery waits for no poll
		da, db := deliveries(t, sa), deliveries(t, sb)
		if len(da) != 2 || len(db) != 2 {
			t.Fatalf("a got %v, b got %v; want two each (fewest in flight first)", seqsOf(da), seqsOf(db))
		}
		// Both are full (max_in_flight 2): a fifth message waits.
		fifth := fx.job()
		synctest.Wait()
		if n := len(deliveries(t, sa)) + len(deliveries(t, sb)); n != 4 {
			t.Fatalf("%d deliveries with every member full, want 4", n)
		}
		// An ack frees a slot: the fifth goes to that member at once.
		if err := fx.ns.SettleGroup(ctx, a.ID, "jobs", "g", []string{da[0].ackID}, Ack, 0); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		da = deliveries(t, sa)
		if len(da) != 3 || da[2].seq != fifth.Pos.Seq {
			t.Fatalf("after a's ack a got %v, want the fifth message %d", seqsOf(da), fifth.Pos.Seq)
		}
		for _, d := range append(da, deliveries(t, sb)...) {
			if d.count != 1 || d.deadline.Sub(time.Now()) > time.Minute || d.ackID == "" {
				t.Errorf("delivery %+v: want count 1, an ack id and a deadline within the ack wait", d)
			}
		}
		st, err := fx.ns.Group(ctx, "jobs", "g")
		if err != nil {
			t.Fatal(err)
		}
		if st.InFlight != 4 || st.Pending != 0 || len(st.Members) != 2 {
			t.Errorf("state in flight %d pending %d members %d, want 4, 0, 2", st.InFlight, st.Pending, len(st.Members))
		}
	})
}

func TestGroupLeaseRunsOutThenOnlyTheNewHolderMaySettle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newGroupFixture(t, GroupConfig{AckWait: 10 * time.Second, MaxInFlight: 1, MaxDeliver: 5, Backoff: []time.Duration{3 * time.Second}})
		a, sa := fx.member(t)
		m := fx.job()
		synctest.Wait()
		first := deliveries(t, sa)
		if len(first) != 1 {
			t.Fatalf("a got %v", seqsOf(first))
		}
		b, sb := fx.member(t)
		time.Sleep(9 * time.Second) // within the lease: nothing happens
		synctest.Wait()
		if len(sa.named(EventRevoked)) != 0 || len(deliveries(t, sb)) != 0 {
			t.Fatalf("revoked or redelivered before the ack wait passed")
		}
		time.Sleep(time.Second + time.Millisecond)
		synctest.Wait()
		rv := sa.named(EventRevoked)
		if len(rv) != 1 || !strings.Contains(string(rv[0].Data), first[0].ackID) {
			t.Fatalf("a's revoked events %v, want one naming %s", rv, first[0].ackID)
		}
		// Given back with the group's backoff: 3 s later, to b (not to a,
		// whose lease ran out).
		if s := fx.q.settled(); !slices.Contains(s, fmt.Sprintf("%d %s %v", Nack, handleOf(fx.k, m.Pos.Seq, 1), 3*time.Second)) {
			t.Fatalf("settles %v, want a nak of the expired delivery with the 3s backoff", s)
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		second := deliveries(t, sb)
		if len(second) != 1 || second[0].seq != m.Pos.Seq || second[0].count != 2 {
			t.Fatalf("b got %+v, want message %d as delivery 2", second, m.Pos.Seq)
		}
		if n := len(deliveries(t, sa)); n != 1 {
			t.Errorf("a got %d deliveries; the redelivery must go to the other member", n)
		}
		// a's late ack is refused: one owner per delivery.
		err := fx.ns.SettleGroup(ctx, a.ID, "jobs", "g", []string{first[0].ackID}, Ack, 0)
		if !errors.Is(err, ErrSuperseded) {
			t.Fatalf("a's late ack: %v, want ErrSuperseded", err)
		}
		if err := fx.ns.SettleGroup(ctx, b.ID, "jobs", "g", []string{second[0].ackID}, Ack, 0); err != nil {
			t.Fatalf("b's ack: %v", err)
		}
		// Acknowledged twice (a retry after a lost answer): a no-op.
		if err := fx.ns.SettleGroup(ctx, b.ID, "jobs", "g", []string{second[0].ackID}, Ack, 0); err != nil {
			t.Fatalf("b's repeated ack: %v", err)
		}
		// a's slot came back with the lease: of two more jobs (one slot
		// each), a takes one.
		fx.job()
		fx.job()
		synctest.Wait()
		if da, db := deliveries(t, sa), deliveries(t, sb); len(da) != 2 || len(db) != 2 {
			t.Fatalf("a got %v, b got %v after a's lease ran out, want one more each: a slot leaked", seqsOf(da), seqsOf(db))
		}
		acks := 0
		for _, s := range fx.q.settled() {
			if strings.HasPrefix(s, fmt.Sprint(Ack)+" ") {
				acks++
			}
		}
		if acks != 1 {
			t.Errorf("%d acks reached the engine, want 1", acks)
		}
	})
}

func TestGroupProgressExtendsTheLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newGroupFixture(t, GroupConfig{AckWait: 10 * time.Second})
		a, sa := fx.member(t)
		fx.job()
		synctest.Wait()
		d := deliveries(t, sa)[0]
		time.Sleep(8 * time.Second)
		if err := fx.ns.SettleGroup(ctx, a.ID, "jobs", "g", []string{d.ackID}, Progress, 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(9 * time.Second) // 17 s after the delivery, 9 after the progress
		synctest.Wait()
		if rv := sa.named(EventRevoked); len(rv) != 0 {
			t.Fatalf("revoked 9 s after a progress with a 10 s ack wait")
		}
		if err := fx.ns.SettleGroup(ctx, a.ID, "jobs", "g", []string{d.ackID}, Ack, 0); err != nil {
			t.Fatalf("ack after progress: %v", err)
		}
		if s := fx.q.settled(); len(s) != 2 || !strings.HasPrefix(s[0], fmt.Sprint(Progress)+" ") {
			t.Errorf("settles %v, want the progress then the ack", s)
		}
	})
}

func TestGroupMemberLeavingHandsOffAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newGroupFixture(t, GroupConfig{AckWait: time.Hour, MaxInFlight: 3})
		a, sa := fx.member(t)
		for range 3 {
			fx.job()
		}
		synctest.Wait()
		if n := len(deliveries(t, sa)); n != 3 {
			t.Fatalf("a got %d, want 3", n)
		}
		// The last member leaves: its deliveries go back at once, while no
		// pull of this node is in progress (else one could take them for
		// nobody), and wait for the next member.
		a.Close(nil)
		if err := a.Detach(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if len(fx.q.nakLive) != 0 {
			t.Fatalf("naks %v sent while a pull was in progress", fx.q.nakLive)
		}
		st, err := fx.ns.Group(ctx, "jobs", "g")
		if err != nil {
			t.Fatal(err)
		}
		if st.InFlight != 0 || st.Pending != 3 || len(st.Members) != 0 {
			t.Fatalf("state in flight %d pending %d members %d, want 0, 3, 0: nothing is held by nobody", st.InFlight, st.Pending, len(st.Members))
		}
		_, sb := fx.member(t)
		synctest.Wait()
		db := deliveries(t, sb)
		if len(db) != 3 {
			t.Fatalf("the next member got %v, want the 3 at once (no ack wait)", seqsOf(db))
		}
		for _, d := range db {
			if d.count != 2 {
				t.Errorf("delivery %+v, want count 2", d)
			}
		}
	})
}

func TestGroupAckIDsAreBoundToConnectionAndGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newGroupFixture(t, GroupConfig{AckWait: time.Minute})
		a, sa := fx.member(t)
		b, _ := fx.member(t)
		fx.job()
		synctest.Wait()
		id := deliveries(t, sa)
		if len(id) != 1 {
			t.Fatalf("a got %v; the first of two equal members is served first", seqsOf(id))
		}
		other := b
		ack := id[0].ackID
		for _, tc := range []struct {
			name  string
			conn  ConnID
			room  string
			group string
			ids   []string
			want  error
		}{
			{"malformed", a.ID, "jobs", "g", []string{ack + "x"}, ErrInvalid},
			{"another connection's", other.ID, "jobs", "g", []string{ack}, ErrForbidden},
			{"another group's", a.ID, "jobs", "h", []string{ack}, ErrForbidden},
			{"a forged mac", a.ID, "jobs", "g", []string{ack[:len(ack)-2] + "AA"}, ErrForbidden},
			{"its holder's", a.ID, "jobs", "g", []string{ack}, nil},
		} {
			if _, err := fx.ns.PutGroup(ctx, "jobs", "h", GroupConfig{}, false); err != nil {
				t.Fatal(err)
			}
			err := fx.ns.SettleGroup(ctx, tc.conn, tc.room, tc.group, tc.ids, Ack, 0)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
		}
	})
}

func TestGroupParksAfterMaxDeliverAndAnnouncesIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newGroupFixture(t, GroupConfig{AckWait: time.Second, MaxDeliver: 2})
		_, sa := fx.member(t)
		_, sb := fx.member(t)
		room, roomSink := fx.connect(t, "jobs") // a plain room subscriber
		_ = room
		m := fx.job()
		time.Sleep(10 * time.Second) // two leases run out, the third delivery parks it
		synctest.Wait()
		if len(fx.q.parked) != 1 || fx.q.parked[0] != handleOf(fx.k, m.Pos.Seq, 3) {
			t.Fatalf("parked %v, want the third delivery of %d", fx.q.parked, m.Pos.Seq)
		}
		if s := fx.q.settled(); !slices.Contains(s, fmt.Sprintf("%d %s 0s", Term, handleOf(fx.k, m.Pos.Seq, 3))) {
			t.Fatalf("settles %v, want the parked delivery terminated", s)
		}
		if n := len(deliveries(t, sa)) + len(deliveries(t, sb)); n != 2 {
			t.Errorf("%d deliveries, want 2 (max_deliver)", n)
		}
		// Announced: stored in the room (its subscriber got it) and sent to
		// the members.
		var notice *Message
		for _, got := range roomSink.got {
			if got.Event == EventDeadLetter {
				notice = got
			}
		}
		if notice == nil || !notice.Notice {
			t.Fatalf("the room subscriber got %v, want a dead_letter notice", roomSink.seqs())
		}
		var env Envelope
		_ = json.Unmarshal(notice.Body, &env)
		var data deadLetterData
		if err := json.Unmarshal(env.Data, &data); err != nil || data.ID != m.Pos.String() || data.Group != "g" || data.Deliveries != 2 {
			t.Errorf("notice data %s (%v), want message %s, group g, 2 deliveries", env.Data, err, m.Pos)
		}
		for i, s := range []*fakeSink{sa, sb} {
			found := false
			for _, got := range s.got {
				found = found || got == notice
			}
			if !found {
				t.Errorf("member %d was not told of the dead letter", i)
			}
		}
		// A publisher cannot forge one.
		if _, _, err := fx.ns.Publish(ctx, &Outgoing{Event: EventDeadLetter, Rooms: []string{"jobs"}}); !errors.Is(err, ErrInvalid) {
			t.Errorf("a publish of event dead_letter: %v, want ErrInvalid", err)
		}
	})
}

func TestGroupNackWithDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newGroupFixture(t, GroupConfig{AckWait: time.Minute})
		a, sa := fx.member(t)
		fx.job()
		synctest.Wait()
		d := deliveries(t, sa)[0]
		if err := fx.ns.SettleGroup(ctx, a.ID, "jobs", "g", []string{d.ackID}, Nack, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(4 * time.Second)
		synctest.Wait()
		if n := len(deliveries(t, sa)); n != 1 {
			t.Fatalf("redelivered before the nack's delay")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		ds := deliveries(t, sa)
		if len(ds) != 2 || ds[1].count != 2 {
			t.Fatalf("after the delay: %+v, want the redelivery", ds)
		}
		// The nacked delivery is no longer held.
		if err := fx.ns.SettleGroup(ctx, a.ID, "jobs", "g", []string{d.ackID}, Ack, 0); !errors.Is(err, ErrSuperseded) {
			t.Errorf("ack of a nacked delivery: %v, want ErrSuperseded", err)
		}
	})
}
