package hub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// The management side of groups (GroupAdmin through the namespace), group
// config helpers, and the lease and loop life cycles at their edges.

// adminQueue answers the GroupAdmin calls from what the test sets, and
// records them.
type adminQueue struct {
	strictQueue
	mu      sync.Mutex
	names   []string        // ListGroups' answer
	listErr error           // ListGroups fails
	gone    map[string]bool // GroupState answers ErrNotFound for these names
	floor   uint64
	dead    []DeadLetter
	calls   []string
}

func (q *adminQueue) record(format string, args ...any) {
	q.mu.Lock()
	q.calls = append(q.calls, fmt.Sprintf(format, args...))
	q.mu.Unlock()
}

func (q *adminQueue) recorded() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.calls)
}

func (q *adminQueue) ListGroups(_ context.Context, ns, room string) ([]string, error) {
	q.record("list %s %s", ns, room)
	return slices.Clone(q.names), q.listErr
}

func (q *adminQueue) GroupState(ctx context.Context, ns string, g GroupKey) (GroupState, error) {
	if q.gone[g.Name] {
		return GroupState{}, fmt.Errorf("group %s: %w", g.Name, ErrNotFound)
	}
	st, err := q.strictQueue.GroupState(ctx, ns, g)
	st.AckFloor = q.floor
	return st, err
}

func (q *adminQueue) DeleteGroup(_ context.Context, ns string, g GroupKey) error {
	q.record("delete %s %s/%s", ns, g.Room, g.Name)
	return nil
}

func (q *adminQueue) DeadLetters(_ context.Context, ns string, g GroupKey, limit int) ([]DeadLetter, error) {
	q.record("dead %s %s/%s %d", ns, g.Room, g.Name, limit)
	return q.dead, nil
}

func (q *adminQueue) ReplayDead(_ context.Context, ns string, g GroupKey, seq uint64) error {
	q.record("replay %s %s/%s %d", ns, g.Room, g.Name, seq)
	return nil
}

func (q *adminQueue) DropDead(_ context.Context, ns string, g GroupKey, seq uint64) error {
	q.record("drop %s %s/%s %d", ns, g.Room, g.Name, seq)
	return nil
}

// TestGroupAdminReachesTheEngine: listing (by name, skipping a group
// deleted meanwhile), deleting, dead letters (only of an existing group),
// replaying and dropping them go to the engine for the right group.
func TestGroupAdminReachesTheEngine(t *testing.T) {
	var aq *adminQueue
	fx := newGroupFixtureOn(t, GroupConfig{MaxDeliver: 3}, NamespaceConfig{}, func(q *fakeQueue) Groups {
		aq = &adminQueue{strictQueue: strictQueue{q}, gone: map[string]bool{"gone": true}}
		return aq
	})
	for _, g := range []string{"b", "a", "gone"} {
		if _, err := fx.ns.PutGroup(ctx, "jobs", g, GroupConfig{MaxDeliver: 7}, true); err != nil {
			t.Fatal(err)
		}
	}
	aq.names = []string{"gone", "g", "b", "a"}
	list, err := fx.ns.ListGroups(ctx, "jobs")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, st := range list {
		names = append(names, st.Key.Name)
	}
	if !slices.Equal(names, []string{"a", "b", "g"}) || list[0].Config.MaxDeliver != 7 || list[2].Config.MaxDeliver != 3 {
		t.Fatalf("ListGroups = %+v, want a, b and g by name (gone was deleted meanwhile)", list)
	}
	aq.listErr = ErrUnavailable
	if _, err := fx.ns.ListGroups(ctx, "jobs"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("ListGroups with the engine failing: %v", err)
	}
	if err := fx.ns.DeleteGroup(ctx, "jobs", "a"); err != nil {
		t.Fatal(err)
	}
	aq.dead = []DeadLetter{{Seq: 4}}
	dls, err := fx.ns.DeadLetters(ctx, "jobs", "b", 5)
	if err != nil || len(dls) != 1 || dls[0].Seq != 4 {
		t.Fatalf("DeadLetters = %+v, %v", dls, err)
	}
	if _, err := fx.ns.DeadLetters(ctx, "jobs", "gone", 5); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeadLetters of a group that does not exist: %v, want ErrNotFound", err)
	}
	if err := fx.ns.ReplayDead(ctx, "jobs", "b", 3); err != nil {
		t.Fatal(err)
	}
	if err := fx.ns.DropDead(ctx, "jobs", "b", 4); err != nil {
		t.Fatal(err)
	}
	want := []string{"list test jobs", "list test jobs", "delete test jobs/a", "dead test jobs/b 5", "replay test jobs/b 3", "drop test jobs/b 4"}
	if got := aq.recorded(); !slices.Equal(got, want) {
		t.Fatalf("the engine got %v, want %v", got, want)
	}
}

// TestGroupAdminRefusesBadNamesAndMissingGroups: every group operation
// checks the room and group names, and says so when groups are off.
func TestGroupAdminRefusesBadNamesAndMissingGroups(t *testing.T) {
	off := newFixture(t, NamespaceConfig{})
	on := newGroupFixtureOn(t, GroupConfig{}, NamespaceConfig{}, nil)
	ops := map[string]func(ns *Namespace, room, group string) error{
		"put": func(ns *Namespace, r, g string) error {
			_, err := ns.PutGroup(ctx, r, g, GroupConfig{}, true)
			return err
		},
		"state":  func(ns *Namespace, r, g string) error { _, err := ns.Group(ctx, r, g); return err },
		"list":   func(ns *Namespace, r, _ string) error { _, err := ns.ListGroups(ctx, r); return err },
		"delete": func(ns *Namespace, r, g string) error { return ns.DeleteGroup(ctx, r, g) },
		"backlog": func(ns *Namespace, r, g string) error {
			_, _, err := ns.GroupBacklog(ctx, r, g, 10)
			return err
		},
		"dead":   func(ns *Namespace, r, g string) error { _, err := ns.DeadLetters(ctx, r, g, 10); return err },
		"replay": func(ns *Namespace, r, g string) error { return ns.ReplayDead(ctx, r, g, 1) },
		"drop":   func(ns *Namespace, r, g string) error { return ns.DropDead(ctx, r, g, 1) },
		"settle": func(ns *Namespace, r, g string) error {
			return ns.SettleGroup(ctx, ConnID(newID()), r, g, nil, Ack, 0)
		},
	}
	for name, op := range ops {
		if err := op(off.ns, "jobs", "g"); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "not enabled") {
			t.Errorf("%s without groups: %v, want ErrUnavailable", name, err)
		}
		for _, bad := range [][2]string{{"a..b", "g"}, {"jobs", "g.1"}, {"jobs", ""}} {
			if name == "list" && bad[0] == "jobs" {
				continue // no group name
			}
			if err := op(on.ns, bad[0], bad[1]); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s of %q/%q: %v, want ErrInvalid", name, bad[0], bad[1], err)
			}
		}
	}
}

// TestGroupBacklogIsTheRoomAfterTheAckFloor: the room's messages after
// the floor (a multi-room message to it included, a replayed dead letter
// and other rooms' messages not), at most limit.
func TestGroupBacklogIsTheRoomAfterTheAckFloor(t *testing.T) {
	var aq *adminQueue
	fx := newGroupFixtureOn(t, GroupConfig{}, NamespaceConfig{}, func(q *fakeQueue) Groups {
		aq = &adminQueue{strictQueue: strictQueue{q}}
		return aq
	})
	m1 := fx.publish(&Message{Event: "e", Rooms: []string{"jobs"}})
	fx.publish(&Message{Event: "e", Rooms: []string{"other"}})
	fx.publish(&Message{Event: "e", Rooms: []string{"jobs"}, GroupOnly: true})
	m4 := fx.publish(&Message{Event: "e", Rooms: []string{"x", "jobs"}})
	m5 := fx.publish(&Message{Event: "e", Rooms: []string{"jobs"}})
	for _, c := range []struct {
		floor uint64
		limit int
		want  []*Message
	}{
		{0, 10, []*Message{m1, m4, m5}},
		{m1.Pos.Seq, 10, []*Message{m4, m5}},
		{m1.Pos.Seq, 2, []*Message{m4, m5}},
		{m1.Pos.Seq, 1, []*Message{m4}},
		{m5.Pos.Seq, 10, nil},
	} {
		aq.floor = c.floor
		floor, msgs, err := fx.ns.GroupBacklog(ctx, "jobs", "g", c.limit)
		if err != nil || floor != (Position{testEpoch, c.floor}) || !slices.Equal(msgs, c.want) {
			t.Errorf("backlog after %d, limit %d = %v %v (%v), want %v", c.floor, c.limit, floor, msgs, err, c.want)
		}
	}
	if _, _, err := fx.ns.GroupBacklog(ctx, "jobs", "nope", 10); !errors.Is(err, ErrNotFound) {
		t.Fatalf("backlog of an unknown group: %v", err)
	}
}

func TestGroupConfigBackoffByDeliveryCount(t *testing.T) {
	c := GroupConfig{Backoff: []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}}
	for count, want := range map[uint64]time.Duration{0: 0, 1: time.Second, 2: 2 * time.Second, 3: 3 * time.Second, 4: 3 * time.Second, 100: 3 * time.Second} {
		if got := c.backoff(count); got != want {
			t.Errorf("backoff after delivery %d = %v, want %v", count, got, want)
		}
	}
	if got := (GroupConfig{}).backoff(3); got != 0 {
		t.Errorf("backoff without a schedule = %v, want 0", got)
	}
}

// TestGroupStateCountsWhatWaitsForARedelivery: a delivery given back with a
// delay is pending, not in flight; members are listed by id.
func TestGroupStateCountsWhatWaitsForARedelivery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newGroupFixtureOn(t, GroupConfig{AckWait: time.Minute, MaxInFlight: 2}, NamespaceConfig{}, nil)
		a, sa := fx.member(t)
		fx.member(t)
		fx.member(t)
		fx.job()
		synctest.Wait()
		da := deliveries(t, sa)
		if len(da) != 1 {
			t.Fatalf("a got %v", seqsOf(da))
		}
		// Two more: one to each other member.
		fx.job()
		fx.job()
		synctest.Wait()
		if err := fx.ns.SettleGroup(ctx, a.ID, "jobs", "g", []string{da[0].ackID}, Nack, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		st, err := fx.ns.Group(ctx, "jobs", "g")
		if err != nil {
			t.Fatal(err)
		}
		if st.InFlight != 2 || st.Pending != 1 {
			t.Fatalf("in flight %d, pending %d; want 2 held and 1 waiting for its redelivery", st.InFlight, st.Pending)
		}
		ids := []ConnID{}
		for _, m := range st.Members {
			ids = append(ids, m.ID)
		}
		if len(ids) != 3 || !slices.IsSorted(ids) {
			t.Fatalf("members %v, want the three by id", ids)
		}
	})
}

// emptySettles counts settles of no delivery at all.
type emptySettles struct {
	strictQueue
	mu    sync.Mutex
	empty int
}

func (q *emptySettles) Settle(ctx context.Context, handles []string, op Settle, delay time.Duration) ([]bool, error) {
	if len(handles) == 0 {
		q.mu.Lock()
		q.empty++
		q.mu.Unlock()
	}
	return q.strictQueue.Settle(ctx, handles, op, delay)
}

// TestGroupLoopStopsWithItsLastLocalMember: the loop runs while the group
// has members on this node and starts again with the next one; a member
// leaving without deliveries costs the engine nothing.
func TestGroupLoopStopsWithItsLastLocalMember(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var eq *emptySettles
		fx := newGroupFixtureOn(t, GroupConfig{AckWait: time.Minute}, NamespaceConfig{}, func(q *fakeQueue) Groups {
			eq = &emptySettles{strictQueue: strictQueue{q}}
			return eq
		})
		loops := func() int {
			fx.ns.gmu.Lock()
			defer fx.ns.gmu.Unlock()
			return len(fx.ns.groups)
		}
		a, _ := fx.member(t)
		b, _ := fx.member(t)
		if err := a.Detach(); err != nil {
			t.Fatal(err)
		}
		if n := loops(); n != 1 {
			t.Fatalf("%d loops with one member left, want 1", n)
		}
		if err := b.Detach(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if n := loops(); n != 0 {
			t.Fatalf("%d loops once the last member left, want none", n)
		}
		eq.mu.Lock()
		empty := eq.empty
		eq.mu.Unlock()
		if empty != 0 {
			t.Fatalf("%d settles of nothing reached the engine", empty)
		}
		_, sc := fx.member(t)
		j := fx.job()
		synctest.Wait()
		if d := deliveries(t, sc); !slices.Equal(seqsOf(d), []uint64{j.Pos.Seq}) {
			t.Fatalf("the next member got %v, want %d", seqsOf(d), j.Pos.Seq)
		}
	})
}

// slowAcks makes an ack take the time given, then fail.
type slowAcks struct {
	strictQueue
	took time.Duration
}

func (q *slowAcks) Settle(ctx context.Context, handles []string, op Settle, delay time.Duration) ([]bool, error) {
	if op != Ack {
		return q.strictQueue.Settle(ctx, handles, op, delay)
	}
	time.Sleep(q.took)
	return make([]bool, len(handles)), errors.New("engine timed out")
}

// TestGroupLeaseWhoseAckFailedAfterItsWaitEnds: while an ack is on its way
// the lease cannot end; when the ack fails after the ack wait passed, the
// lease ends at once: the holder is told, the delivery goes back.
func TestGroupLeaseWhoseAckFailedAfterItsWaitEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newGroupFixtureOn(t, GroupConfig{AckWait: 10 * time.Second}, NamespaceConfig{}, func(q *fakeQueue) Groups {
			return &slowAcks{strictQueue: strictQueue{q}, took: 10 * time.Second}
		})
		a, sa := fx.member(t)
		j := fx.job()
		synctest.Wait()
		time.Sleep(5 * time.Second)
		d := deliveries(t, sa)[0]
		err := fx.ns.SettleGroup(ctx, a.ID, "jobs", "g", []string{d.ackID}, Ack, 0) // fails at 15 s
		if err == nil || !strings.Contains(err.Error(), "engine timed out") {
			t.Fatalf("the ack: %v, want the engine's failure", err)
		}
		synctest.Wait()
		rv := sa.named(EventRevoked)
		if len(rv) != 1 || !strings.Contains(string(rv[0].Data), d.ackID) {
			t.Fatalf("revoked %v, want the delivery's lease ended", rv)
		}
		if !fx.q.settledWith(Nack, handleOf(fx.k, j.Pos.Seq, 1), 0) {
			t.Fatalf("settles %v, want the delivery given back", fx.q.settled())
		}
		if ds := deliveries(t, sa); len(ds) != 2 || ds[1].count != 2 {
			t.Fatalf("deliveries %+v, want the message again", ds)
		}
	})
}

// TestRecentKeepsTheNewest: the set of recent ids holds the newest
// recentMax, forgetting the oldest first; adding an id twice keeps one.
func TestRecentKeepsTheNewest(t *testing.T) {
	var r recent
	for i := range recentMax + 1 {
		r.add(fmt.Sprint(i))
	}
	r.add("1")
	if r.has("0") || !r.has("1") || !r.has(fmt.Sprint(recentMax)) || len(r.order) != recentMax || len(r.set) != recentMax {
		t.Fatalf("after %d ids: has 0 %v, has 1 %v, %d kept", recentMax+1, r.has("0"), r.has("1"), len(r.order))
	}
}

// TestNewChecksItsDeps: a Log and Sessions are required, an ack key of 16
// bytes or more with groups; a nil Logger discards, a given one is used.
func TestNewChecksItsDeps(t *testing.T) {
	log, sess := newFakeLog(testEpoch), newFakeSessions()
	for _, d := range []Deps{{Sessions: sess}, {Log: log}} {
		if _, err := New(d, Config{}); err == nil {
			t.Errorf("New(%+v) without a Log or Sessions: no error", d)
		}
	}
	if _, err := New(Deps{Log: log, Sessions: sess, Groups: newFakeQueue(), AckKey: make([]byte, 15)}, Config{}); err == nil || !strings.Contains(err.Error(), "16 bytes") {
		t.Errorf("a 15-byte ack key: %v", err)
	}
	if _, err := New(Deps{Log: log, Sessions: sess, Groups: newFakeQueue(), AckKey: make([]byte, 16)}, Config{}); err != nil {
		t.Errorf("a 16-byte ack key: %v", err)
	}
	for _, logged := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			logs := &lockedWriter{}
			deps := Deps{Log: newFakeLog(testEpoch), Sessions: newFakeSessions(), AckKey: make([]byte, 16)}
			q := newFakeQueue()
			deps.Groups = &failingParks{strictQueue: strictQueue{q}, fails: 1}
			if logged {
				deps.Logger = slogTo(logs)
			}
			h, err := New(deps, Config{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(h.Stop)
			ns, _ := h.AddNamespace(ctx, "test", NamespaceConfig{})
			k := GroupKey{Room: "jobs", Name: "g"}
			ns.PutGroup(ctx, k.Room, k.Name, GroupConfig{AckWait: time.Second, MaxDeliver: 1}, true)
			fx := &groupFixture{fixture: &fixture{hub: h, ns: ns, log: deps.Log.(*fakeLog)}, q: q, k: k}
			fx.member(t)
			fx.job()
			time.Sleep(2 * time.Second) // a park fails once (a warning), then succeeds
			synctest.Wait()
			if len(q.parked) != 1 {
				t.Fatalf("parked %v", q.parked)
			}
			if got := strings.Contains(logs.String(), "park dead letter; retrying"); got != logged {
				t.Fatalf("with a logger given %v: warning logged %v (%q)", logged, got, logs)
			}
		})
	}
}

// TestMaxInFlightIsBoundedByTheServer: a group's max_in_flight may reach
// the server's bound (Config.MaxInFlight), not pass it; without a bound
// anything goes.
func TestMaxInFlightIsBoundedByTheServer(t *testing.T) {
	log, sess := newFakeLog(testEpoch), newFakeSessions()
	h, err := New(Deps{Log: log, Sessions: sess, Groups: newFakeQueue(), AckKey: make([]byte, 16), Logger: discard()}, Config{MaxInFlight: 8})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := h.AddNamespace(ctx, "test", NamespaceConfig{Group: GroupConfig{MaxInFlight: 8}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ns.PutGroup(ctx, "jobs", "g", GroupConfig{MaxInFlight: 8}, true); err != nil {
		t.Errorf("max_in_flight at the bound: %v", err)
	}
	if _, err := ns.PutGroup(ctx, "jobs", "g", GroupConfig{MaxInFlight: 9}, true); !errors.Is(err, ErrInvalid) {
		t.Errorf("max_in_flight past the bound: %v, want ErrInvalid", err)
	}
	if _, err := h.AddNamespace(ctx, "other", NamespaceConfig{Group: GroupConfig{MaxInFlight: 9}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("a namespace whose group default passes the bound: %v, want ErrInvalid", err)
	}
	free := newHub(t, newFakeLog(testEpoch), newFakeSessions(), Deps{Groups: newFakeQueue(), AckKey: make([]byte, 16)}, Config{})
	fns, err := free.AddNamespace(ctx, "test", NamespaceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fns.PutGroup(ctx, "jobs", "g", GroupConfig{MaxInFlight: 10000}, true); err != nil {
		t.Errorf("no bound: %v", err)
	}
}

// TestDeadLetterAnnounceFailureIsLogged: a dead letter whose announcement
// cannot be stored is still parked, and the failure is logged.
func TestDeadLetterAnnounceFailureIsLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := &lockedWriter{}
		fx := newGroupFixtureLogged(t, GroupConfig{AckWait: time.Second, MaxDeliver: 1}, NamespaceConfig{}, nil, slogTo(logs))
		fx.member(t)
		fx.job()
		fx.log.mu.Lock()
		fx.log.pubErr = ErrUnavailable
		fx.log.mu.Unlock()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if len(fx.q.parked) != 1 {
			t.Fatalf("parked %v", fx.q.parked)
		}
		if out := logs.String(); !strings.Contains(out, "announce dead letter") || !strings.Contains(out, "unavailable") {
			t.Fatalf("log %q, want the failed announcement", out)
		}
	})
}
