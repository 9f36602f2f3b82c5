package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// More of the group dispatch, with fakes that fail or misbehave where the
// engine may: a Queue that honours its contexts (strictQueue), pulls that
// fail, a Pull that hands out more than asked, parks that fail.

// recMetrics records what a namespace counts.
type recMetrics struct {
	mu             sync.Mutex
	slow, parked   int
	joined, left   int
	fanned         []int
	resumed        []bool
	groupDelivered []bool
}

func (m *recMetrics) Published(time.Duration) {}
func (m *recMetrics) FannedOut(n int, _ time.Duration) {
	m.mu.Lock()
	m.fanned = append(m.fanned, n)
	m.mu.Unlock()
}
func (m *recMetrics) Joined()       { m.mu.Lock(); m.joined++; m.mu.Unlock() }
func (m *recMetrics) Left()         { m.mu.Lock(); m.left++; m.mu.Unlock() }
func (m *recMetrics) SlowConsumer() { m.mu.Lock(); m.slow++; m.mu.Unlock() }
func (m *recMetrics) Parked()       { m.mu.Lock(); m.parked++; m.mu.Unlock() }
func (m *recMetrics) Resumed(reset bool) {
	m.mu.Lock()
	m.resumed = append(m.resumed, reset)
	m.mu.Unlock()
}
func (m *recMetrics) GroupDelivered(redelivery bool) {
	m.mu.Lock()
	m.groupDelivered = append(m.groupDelivered, redelivery)
	m.mu.Unlock()
}

// strictQueue is a fakeQueue whose Settle honours its context, as the
// Queue contract says every method does: a settle whose context has ended
// does nothing.
type strictQueue struct{ *fakeQueue }

func (q strictQueue) Settle(ctx context.Context, handles []string, op Settle, delay time.Duration) ([]bool, error) {
	if err := ctx.Err(); err != nil {
		return make([]bool, len(handles)), err
	}
	return q.fakeQueue.Settle(ctx, handles, op, delay)
}

// strictLog is a fakeLog whose Publish honours its context.
type strictLog struct{ *fakeLog }

func (l strictLog) Publish(ctx context.Context, ns string, o *Outgoing) (Position, bool, error) {
	if err := ctx.Err(); err != nil {
		return Position{}, false, err
	}
	return l.fakeLog.Publish(ctx, ns, o)
}

// newGroupFixtureOn is newGroupFixture with the namespace's config, the
// engine wrapped by wrap (nil: a strictQueue) and a log that honours its
// contexts.
func newGroupFixtureOn(t *testing.T, cfg GroupConfig, nsCfg NamespaceConfig, wrap func(*fakeQueue) Groups) *groupFixture {
	t.Helper()
	return newGroupFixtureLogged(t, cfg, nsCfg, wrap, discard())
}

func newGroupFixtureLogged(t *testing.T, cfg GroupConfig, nsCfg NamespaceConfig, wrap func(*fakeQueue) Groups, logger *slog.Logger) *groupFixture {
	t.Helper()
	log, sess, q := newFakeLog(testEpoch), newFakeSessions(), newFakeQueue()
	log.feed = true
	var groups Groups = strictQueue{q}
	if wrap != nil {
		groups = wrap(q)
	}
	h, err := New(Deps{Log: strictLog{log}, Sessions: sess, Logger: logger, Groups: groups, AckKey: []byte("0123456789abcdef0123456789abcdef")}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := h.AddNamespace(context.Background(), "test", nsCfg)
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

// memberSink is member with the sink given.
func (fx *groupFixture) memberSink(t *testing.T, sink *fakeSink) *Conn {
	t.Helper()
	c, err := fx.ns.Open(context.Background(), OpenRequest{Group: &fx.k, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// lockedWriter collects a log written from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// retainFrom simulates retention: messages before first are gone.
func (l *fakeLog) retainFrom(first uint64) {
	l.mu.Lock()
	l.first = first
	l.mu.Unlock()
}

func (l *fakeLog) forceGap(gap bool) {
	l.mu.Lock()
	l.gap = gap
	l.mu.Unlock()
}

func ack(t *testing.T, fx *groupFixture, c *Conn, d got) {
	t.Helper()
	if err := fx.ns.SettleGroup(ctx, c.ID, fx.k.Room, fx.k.Name, []string{d.ackID}, Ack, 0); err != nil {
		t.Fatalf("ack of %d: %v", d.seq, err)
	}
}

func (q *fakeQueue) settledWith(op Settle, handle string, delay time.Duration) bool {
	return slices.Contains(q.settled(), fmt.Sprintf("%d %s %v", op, handle, delay))
}

// TestGroupMetricsAndDeadLetterReason: each delivery is counted, a
// redelivery as one; a park is counted, and its notice says how many
// deliveries went unacknowledged.
func TestGroupMetricsAndDeadLetterReason(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &recMetrics{}
		fx := newGroupFixtureOn(t, GroupConfig{AckWait: time.Second, MaxDeliver: 2}, NamespaceConfig{Metrics: m}, nil)
		_, sa := fx.member(t)
		_, room := fx.connect(t, "jobs")
		job := fx.job()
		time.Sleep(2*time.Second + time.Millisecond) // two leases run out: the third delivery parks it
		synctest.Wait()
		if n := len(deliveries(t, sa)); n != 2 {
			t.Fatalf("%d deliveries, want 2", n)
		}
		m.mu.Lock()
		gd, parked := slices.Clone(m.groupDelivered), m.parked
		m.mu.Unlock()
		if !slices.Equal(gd, []bool{false, true}) || parked != 1 {
			t.Fatalf("counted deliveries %v (redelivery?) and %d parks, want [false true] and 1", gd, parked)
		}
		var notice *Message
		for _, got := range room.got {
			if got.Event == EventDeadLetter {
				notice = got
			}
		}
		if notice == nil {
			t.Fatal("no dead_letter notice")
		}
		var env Envelope
		_ = json.Unmarshal(notice.Body, &env)
		var data deadLetterData
		_ = json.Unmarshal(env.Data, &data)
		want := deadLetterData{ID: job.Pos.String(), Group: "g", Room: "jobs", Event: "job", Deliveries: 2,
			Reason: "delivered 2 times without being acknowledged (max_deliver 2)"}
		if data != want {
			t.Fatalf("notice %+v, want %+v", data, want)
		}
	})
}

// TestGroupEqualMembersTakeTurns: of members holding as few, each in turn
// gets the next delivery.
func TestGroupEqualMembersTakeTurns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newGroupFixtureOn(t, GroupConfig{AckWait: time.Minute, MaxInFlight: 1}, NamespaceConfig{}, nil)
		a, sa := fx.member(t)
		b, sb := fx.member(t)
		var order []string
		for range 4 {
			na, nb := len(deliveries(t, sa)), len(deliveries(t, sb))
			fx.job()
			synctest.Wait()
			da, db := deliveries(t, sa), deliveries(t, sb)
			switch {
			case len(da) == na+1 && len(db) == nb:
				order = append(order, "a")
				ack(t, fx, a, da[na])
			case len(db) == nb+1 && len(da) == na:
				order = append(order, "b")
				ack(t, fx, b, db[nb])
			default:
				t.Fatalf("after job %d: a got %v, b got %v", len(order)+1, seqsOf(da), seqsOf(db))
			}
		}
		if !slices.Equal(order, []string{"a", "b", "a", "b"}) {
			t.Fatalf("deliveries went to %v, want a and b in turn", order)
		}
	})
}

// TestGroupCapHoldsAfterAnAck: an ack frees one slot, not more: a member
// never holds more than max_in_flight.
func TestGroupCapHoldsAfterAnAck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newGroupFixtureOn(t, GroupConfig{AckWait: time.Minute, MaxInFlight: 2}, NamespaceConfig{}, nil)
		a, sa := fx.member(t)
		for range 5 {
			fx.job()
		}
		synctest.Wait()
		ds := deliveries(t, sa)
		if len(ds) != 2 {
			t.Fatalf("a got %v, want 2 (max_in_flight)", seqsOf(ds))
		}
		ack(t, fx, a, ds[0])
		synctest.Wait()
		ds = deliveries(t, sa)
		if len(ds) != 3 {
			t.Fatalf("after one ack a got %v, want one more", seqsOf(ds))
		}
		st, err := fx.ns.Group(ctx, "jobs", "g")
		if err != nil || st.InFlight != 2 || st.Pending != 2 {
			t.Fatalf("state %+v (%v), want 2 in flight and 2 pending", st, err)
		}
	})
}

// TestGroupFullMemberIsCutAndItsDeliveryGoesToAnother: a member whose
// queue is full is closed as a slow consumer; the delivery it could not
// take goes back to the engine at once and on to another member, and what
// it held goes back when it leaves.
func TestGroupFullMemberIsCutAndItsDeliveryGoesToAnother(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &recMetrics{}
		fx := newGroupFixtureOn(t, GroupConfig{AckWait: time.Minute, MaxInFlight: 2}, NamespaceConfig{Metrics: m}, nil)
		sa := &fakeSink{capacity: 1}
		a := fx.memberSink(t, sa)
		b, sb := fx.member(t)
		j1, j2, j3 := fx.job(), fx.job(), fx.job()
		synctest.Wait()
		da, db := deliveries(t, sa), deliveries(t, sb)
		if !slices.Equal(seqsOf(da), []uint64{j1.Pos.Seq}) || !errors.Is(sa.closeErr(), ErrSlowConsumer) {
			t.Fatalf("a got %v and closed with %v, want %d then a slow-consumer close", seqsOf(da), sa.closeErr(), j1.Pos.Seq)
		}
		if len(db) != 2 || db[0].seq != j2.Pos.Seq || db[1].seq != j3.Pos.Seq || db[1].count != 2 {
			t.Fatalf("b got %+v, want %d, then %d as its second delivery", db, j2.Pos.Seq, j3.Pos.Seq)
		}
		if !fx.q.settledWith(Nack, handleOf(fx.k, j3.Pos.Seq, 1), 0) {
			t.Fatalf("settles %v, want the delivery a could not take given back at once", fx.q.settled())
		}
		m.mu.Lock()
		slow := m.slow
		m.mu.Unlock()
		if slow != 1 {
			t.Errorf("%d slow consumers counted, want 1", slow)
		}
		// The lease a could not take ended with it: j1 (a), j2 and j3 (b).
		if st, err := fx.ns.Group(ctx, "jobs", "g"); err != nil || st.InFlight != 3 {
			t.Fatalf("in flight %d (%v), want 3", st.InFlight, err)
		}
		// a leaves: j1, which it held, goes back too.
		if err := a.Detach(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if !fx.q.settledWith(Nack, handleOf(fx.k, j1.Pos.Seq, 1), 0) {
			t.Fatalf("settles %v, want what a held given back when it left", fx.q.settled())
		}
		ack(t, fx, b, db[0])
		synctest.Wait()
		if db = deliveries(t, sb); len(db) != 3 || db[2].seq != j1.Pos.Seq || db[2].count != 2 {
			t.Fatalf("b got %+v, want %d redelivered to it", db, j1.Pos.Seq)
		}
	})
}

// greedyQueue's Pull hands out one delivery more than asked for (an
// engine overshooting), and records whether its context was cancelled
// when it returned.
type greedyQueue struct {
	strictQueue
	mu        sync.Mutex
	cancelled []bool
}

func (q *greedyQueue) Pull(ctx context.Context, ns string, g GroupKey, n int, wait time.Duration, fn func(Delivery)) error {
	err := q.strictQueue.Pull(ctx, ns, g, n+1, wait, fn)
	q.mu.Lock()
	q.cancelled = append(q.cancelled, ctx.Err() != nil)
	q.mu.Unlock()
	return err
}

// TestGroupDeliveryNoMemberHasRoomForGoesBack: a delivery beyond what the
// members can hold is given back at once, and the pull is ended.
func TestGroupDeliveryNoMemberHasRoomForGoesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var gq *greedyQueue
		fx := newGroupFixtureOn(t, GroupConfig{AckWait: time.Minute, MaxInFlight: 1}, NamespaceConfig{}, func(q *fakeQueue) Groups {
			gq = &greedyQueue{strictQueue: strictQueue{q}}
			return gq
		})
		j1, j2 := fx.job(), fx.job()
		_, sa := fx.member(t)
		synctest.Wait()
		if da := deliveries(t, sa); !slices.Equal(seqsOf(da), []uint64{j1.Pos.Seq}) {
			t.Fatalf("a got %v, want %d alone", seqsOf(da), j1.Pos.Seq)
		}
		if !fx.q.settledWith(Nack, handleOf(fx.k, j2.Pos.Seq, 1), 0) {
			t.Fatalf("settles %v, want the extra delivery given back", fx.q.settled())
		}
		gq.mu.Lock()
		defer gq.mu.Unlock()
		if len(gq.cancelled) == 0 || !gq.cancelled[0] {
			t.Fatalf("pulls ended cancelled: %v, want the first pull stopped", gq.cancelled)
		}
	})
}

// failingPulls fails its first fails pulls, recording when each was made.
type failingPulls struct {
	strictQueue
	mu    sync.Mutex
	fails int
	at    []time.Time
}

func (q *failingPulls) Pull(ctx context.Context, ns string, g GroupKey, n int, wait time.Duration, fn func(Delivery)) error {
	q.mu.Lock()
	if len(q.at) < q.fails {
		q.at = append(q.at, time.Now())
		q.mu.Unlock()
		return errors.New("engine unavailable")
	}
	q.mu.Unlock()
	return q.strictQueue.Pull(ctx, ns, g, n, wait, fn)
}

// TestGroupFailedPullIsRetriedAfterAPause: a pull that fails is logged and
// retried 250 ms later, not in a busy loop; deliveries then flow.
func TestGroupFailedPullIsRetriedAfterAPause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fq *failingPulls
		logs := &lockedWriter{}
		fx := newGroupFixtureLogged(t, GroupConfig{AckWait: time.Minute}, NamespaceConfig{}, func(q *fakeQueue) Groups {
			fq = &failingPulls{strictQueue: strictQueue{q}, fails: 3}
			return fq
		}, slogTo(logs))
		j := fx.job()
		start := time.Now()
		_, sa := fx.member(t)
		time.Sleep(time.Second)
		synctest.Wait()
		fq.mu.Lock()
		at := slices.Clone(fq.at)
		fq.mu.Unlock()
		if len(at) != 3 {
			t.Fatalf("%d failed pulls, want 3", len(at))
		}
		for i, when := range at {
			if want := start.Add(time.Duration(i) * 250 * time.Millisecond); !when.Equal(want) {
				t.Errorf("pull %d at +%v, want +%v", i, when.Sub(start), want.Sub(start))
			}
		}
		if da := deliveries(t, sa); !slices.Equal(seqsOf(da), []uint64{j.Pos.Seq}) {
			t.Fatalf("after the failures a got %v, want %d", seqsOf(da), j.Pos.Seq)
		}
		if out := logs.String(); strings.Count(out, "group pull") != 3 || !strings.Contains(out, "engine unavailable") {
			t.Fatalf("log:\n%s", out)
		}
	})
}

// failingParks fails its first fails parks (or every park until its context
// ends, with block), recording when each was tried.
type failingParks struct {
	strictQueue
	mu    sync.Mutex
	fails int
	block bool
	at    []time.Time
}

func (q *failingParks) Park(ctx context.Context, ns string, g GroupKey, d Delivery, reason string) error {
	q.mu.Lock()
	q.at = append(q.at, time.Now())
	fail := len(q.at) <= q.fails
	q.mu.Unlock()
	if q.block {
		<-ctx.Done()
		return ctx.Err()
	}
	if fail {
		return errors.New("dead letters unavailable")
	}
	return q.strictQueue.Park(ctx, ns, g, d, reason)
}

// TestGroupParkIsRetriedWithBackoff: a park that fails is tried again after
// 100 ms, doubling up to 5 s; once it succeeds the delivery is terminated
// and counted.
func TestGroupParkIsRetriedWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fp *failingParks
		m := &recMetrics{}
		fx := newGroupFixtureOn(t, GroupConfig{AckWait: time.Second, MaxDeliver: 1}, NamespaceConfig{Metrics: m}, func(q *fakeQueue) Groups {
			fp = &failingParks{strictQueue: strictQueue{q}, fails: 8}
			return fp
		})
		fx.member(t)
		j := fx.job()
		time.Sleep(time.Minute)
		synctest.Wait()
		fp.mu.Lock()
		at := slices.Clone(fp.at)
		fp.mu.Unlock()
		if len(at) != 9 {
			t.Fatalf("%d parks tried, want 9 (8 failures)", len(at))
		}
		want := []time.Duration{100, 200, 400, 800, 1600, 3200, 5000, 5000}
		for i, w := range want {
			if d := at[i+1].Sub(at[i]); d != w*time.Millisecond {
				t.Errorf("park %d came %v after the one before, want %v", i+2, d, w*time.Millisecond)
			}
		}
		if !fx.q.settledWith(Term, handleOf(fx.k, j.Pos.Seq, 2), 0) || len(fx.q.parked) != 1 {
			t.Fatalf("settles %v, parked %v: want the parked delivery terminated", fx.q.settled(), fx.q.parked)
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.parked != 1 {
			t.Fatalf("%d parks counted, want 1", m.parked)
		}
	})
}

// TestGroupParkCutShortByStopGivesTheDeliveryBack: a park that cannot
// finish before the group stops gives the delivery back (it is parked on
// its next delivery), and terminates nothing.
func TestGroupParkCutShortByStopGivesTheDeliveryBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fp *failingParks
		fx := newGroupFixtureOn(t, GroupConfig{AckWait: time.Second, MaxDeliver: 1}, NamespaceConfig{}, func(q *fakeQueue) Groups {
			fp = &failingParks{strictQueue: strictQueue{q}, block: true}
			return fp
		})
		fx.member(t)
		j := fx.job()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		fp.mu.Lock()
		tried := len(fp.at)
		fp.mu.Unlock()
		if tried != 1 {
			t.Fatalf("%d parks tried, want 1 in progress", tried)
		}
		fx.hub.Stop()
		if !fx.q.settledWith(Nack, handleOf(fx.k, j.Pos.Seq, 2), 0) {
			t.Fatalf("settles %v, want the delivery given back", fx.q.settled())
		}
		for _, s := range fx.q.settled() {
			if strings.HasPrefix(s, fmt.Sprint(Term)+" ") {
				t.Fatalf("settles %v: a park cut short terminated its delivery", fx.q.settled())
			}
		}
	})
}

// TestGroupFirstDeliveryPastLostMessagesIsAnnounced: when a first delivery
// skips messages of the room that retention removed, the members get a
// `reset` naming the group and the position after which messages are
// missing; skips over other rooms' messages, consecutive deliveries and
// the very first delivery are not gaps.
func TestGroupFirstDeliveryPastLostMessagesIsAnnounced(t *testing.T) {
	resets := func(t *testing.T, s *fakeSink) []groupReset {
		t.Helper()
		var out []groupReset
		for _, ev := range s.named(EventReset) {
			var r groupReset
			if err := json.Unmarshal(ev.Data, &r); err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		return out
	}
	t.Run("lost", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fx := newGroupFixtureOn(t, GroupConfig{AckWait: time.Minute}, NamespaceConfig{}, nil)
			_, sa := fx.member(t)
			_, sb := fx.member(t)
			j1 := fx.job()
			fx.publish(&Message{Event: "job", Rooms: []string{"jobs"}}) // never delivered: retention removes them
			fx.publish(&Message{Event: "job", Rooms: []string{"jobs"}})
			j4 := fx.publish(&Message{Event: "job", Rooms: []string{"jobs"}})
			synctest.Wait()
			fx.log.retainFrom(j4.Pos.Seq)
			fx.q.offer(j4)
			synctest.Wait()
			want := groupReset{Reason: "messages of this group were removed by retention before being consumed", Group: "g", Room: "jobs", After: j1.Pos.String()}
			for i, s := range []*fakeSink{sa, sb} {
				if got := resets(t, s); len(got) != 1 || got[0] != want {
					t.Errorf("member %d got resets %+v, want %+v", i, got, want)
				}
			}
			// The next one follows on: nothing more.
			fx.job()
			synctest.Wait()
			if got := resets(t, sa); len(got) != 1 {
				t.Errorf("after a consecutive delivery: %+v", got)
			}
		})
	})
	for _, c := range []struct {
		name  string
		setup func(fx *groupFixture) *Message // returns the message to offer next
	}{
		{"other rooms' messages", func(fx *groupFixture) *Message {
			fx.publish(&Message{Event: "x", Rooms: []string{"other"}})
			m := fx.publish(&Message{Event: "job", Rooms: []string{"jobs"}})
			fx.log.retainFrom(2) // only up to the first delivery is gone
			return m
		}},
		{"consecutive", func(fx *groupFixture) *Message {
			m := fx.publish(&Message{Event: "job", Rooms: []string{"jobs"}})
			fx.log.retainFrom(10) // whatever the log says
			return m
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fx := newGroupFixtureOn(t, GroupConfig{AckWait: time.Minute}, NamespaceConfig{}, nil)
				_, sa := fx.member(t)
				fx.job()
				synctest.Wait()
				m := c.setup(fx)
				fx.log.forceGap(true)
				fx.q.offer(m)
				synctest.Wait()
				if n := len(deliveries(t, sa)); n != 2 {
					t.Fatalf("%d deliveries, want 2", n)
				}
				if got := resets(t, sa); len(got) != 0 {
					t.Fatalf("resets %+v, want none", got)
				}
			})
		})
	}
	t.Run("first delivery", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fx := newGroupFixtureOn(t, GroupConfig{AckWait: time.Minute}, NamespaceConfig{}, nil)
			_, sa := fx.member(t)
			for range 3 {
				fx.publish(&Message{Event: "job", Rooms: []string{"jobs"}})
			}
			fx.log.forceGap(true)
			fx.job()
			synctest.Wait()
			if got := resets(t, sa); len(got) != 0 || len(deliveries(t, sa)) != 1 {
				t.Fatalf("resets %+v, want none before a first delivery to compare with", got)
			}
		})
	})
}

// TestGroupMemberJoiningALossyBacklogIsToldFirst: a member joining a group
// whose backlog lost messages to retention gets a `reset` before any
// delivery; one joining an intact backlog gets none.
func TestGroupMemberJoiningALossyBacklogIsToldFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newGroupFixtureOn(t, GroupConfig{AckWait: time.Minute}, NamespaceConfig{}, nil)
		for range 3 {
			fx.publish(&Message{Event: "job", Rooms: []string{"jobs"}})
		}
		_, intact := fx.member(t)
		if n := len(intact.named(EventReset)); n != 0 {
			t.Fatalf("a member of an intact backlog got %d resets", n)
		}
		fx.log.retainFrom(3)
		_, sa := fx.member(t)
		rs := sa.named(EventReset)
		if len(rs) != 1 || len(sa.events) != 1 {
			t.Fatalf("events %+v, want one reset first", sa.events)
		}
		var r groupReset
		if err := json.Unmarshal(rs[0].Data, &r); err != nil || r.After != testEpoch+"-0" || r.Group != "g" || r.Room != "jobs" {
			t.Fatalf("reset %s (%v), want after %s-0 for g of jobs", rs[0].Data, err, testEpoch)
		}
	})
}

// TestGroupRedeliveriesAvoidTheirLastHolders: each redelivery avoids the
// member whose lease of that message ran out, also when several leases ran
// out before their redeliveries.
func TestGroupRedeliveriesAvoidTheirLastHolders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newGroupFixtureOn(t, GroupConfig{AckWait: 10 * time.Second, MaxInFlight: 2, Backoff: []time.Duration{5 * time.Second}}, NamespaceConfig{}, nil)
		_, sa := fx.member(t)
		_, sb := fx.member(t)
		m1 := fx.job()
		synctest.Wait()
		time.Sleep(time.Second)
		m2 := fx.job()
		synctest.Wait()
		if da, db := seqsOf(deliveries(t, sa)), seqsOf(deliveries(t, sb)); !slices.Equal(da, []uint64{m1.Pos.Seq}) || !slices.Equal(db, []uint64{m2.Pos.Seq}) {
			t.Fatalf("a got %v, b got %v; want one each", da, db)
		}
		// Both leases run out (at 10 s and 11 s); the redeliveries come 5 s
		// after each.
		time.Sleep(20 * time.Second)
		synctest.Wait()
		da, db := deliveries(t, sa), deliveries(t, sb)
		if len(da) != 2 || len(db) != 2 || da[1].seq != m2.Pos.Seq || db[1].seq != m1.Pos.Seq {
			t.Fatalf("a got %v, b got %v; want each message redelivered to the other member", seqsOf(da), seqsOf(db))
		}
	})
}

// TestGroupMemberLeavesWhileAParkRetries: a member leaving while a park is
// being retried (the engine's dead letters unavailable) is not held up by
// it.
func TestGroupMemberLeavesWhileAParkRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newGroupFixtureOn(t, GroupConfig{AckWait: time.Second, MaxDeliver: 1}, NamespaceConfig{}, func(q *fakeQueue) Groups {
			return &failingParks{strictQueue: strictQueue{q}, fails: 1 << 30}
		})
		a, _ := fx.member(t)
		fx.job()
		time.Sleep(3 * time.Second) // the lease ran out; the redelivery parks, failing
		synctest.Wait()
		done := make(chan struct{})
		go func() {
			_ = a.Detach()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Error("the member's Detach blocked for a minute while a park was retried")
			fx.hub.Stop()
			<-done
		}
	})
}
