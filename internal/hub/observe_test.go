package hub

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// recorder is an Observer that records what it is told and checks that no
// namespace lock is held while it is told.
type recorder struct {
	ns *Namespace // set once the namespace exists

	mu       sync.Mutex
	changes  []MemberChange
	dead     []DeadLettered
	inside   int // calls in progress (must never exceed 1 per namespace)
	overlaps int
	locked   int // calls made while the namespace lock was held
}

func (r *recorder) Member(ch MemberChange) {
	r.mu.Lock()
	r.inside++
	if r.inside > 1 {
		r.overlaps++
	}
	r.mu.Unlock()
	runtime.Gosched() // widens the window in which a second teller could overlap
	if ns := r.ns; ns != nil {
		if !ns.mu.TryLock() {
			r.mu.Lock()
			r.locked++
			r.mu.Unlock()
		} else {
			ns.mu.Unlock()
		}
	}
	r.mu.Lock()
	r.changes = append(r.changes, ch)
	r.inside--
	r.mu.Unlock()
}

func (r *recorder) DeadLettered(d DeadLettered) {
	r.mu.Lock()
	r.dead = append(r.dead, d)
	r.mu.Unlock()
}

// room returns what the recorder was told of room, as "+conn size" and
// "-conn size", in order.
func (r *recorder) room(room string, names map[ConnID]string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ch := range r.changes {
		if ch.Room != room {
			continue
		}
		sign := "-"
		if ch.Joined {
			sign = "+"
		}
		out = append(out, fmt.Sprintf("%s%s %d", sign, names[ch.Conn], ch.Size))
	}
	return out
}

func newObservedFixture(t *testing.T) (*fixture, *recorder) {
	t.Helper()
	rec := &recorder{}
	log, sess := newFakeLog(testEpoch), newFakeSessions()
	h := newHub(t, log, sess, Deps{Observer: rec}, Config{})
	ns, err := h.AddNamespace(context.Background(), "test", NamespaceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	rec.ns = ns
	return &fixture{hub: h, ns: ns, log: log, sess: sess}, rec
}

// TestObserverToldOfJoinsAndLeavesInOrder: opening with rooms, REST joins
// and leaves, and a stream's end are told, each with the room's local size
// after it, in order, outside the namespace lock.
func TestObserverToldOfJoinsAndLeavesInOrder(t *testing.T) {
	fx, rec := newObservedFixture(t)
	ctx := context.Background()
	a, _ := fx.connect(t, "lobby")
	b, _ := fx.connect(t, "lobby", "news")
	names := map[ConnID]string{a.ID: "a", b.ID: "b"}
	if _, err := fx.ns.Join(ctx, a.ID, "news", false); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.ns.Join(ctx, a.ID, "news", false); err != nil { // a no-op: not told
		t.Fatal(err)
	}
	if _, err := fx.ns.Leave(ctx, b.ID, "lobby"); err != nil {
		t.Fatal(err)
	}
	if err := a.Detach(); err != nil {
		t.Fatal(err)
	}
	for room, want := range map[string][]string{
		"lobby": {"+a 1", "+b 2", "-b 1", "-a 0"},
		"news":  {"+b 1", "+a 2", "-a 1"},
	} {
		if got := rec.room(room, names); !slices.Equal(got, want) {
			t.Errorf("%s: told %v, want %v", room, got, want)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.locked != 0 {
		t.Errorf("%d calls were made with the namespace lock held", rec.locked)
	}
	for _, ch := range rec.changes {
		if ch.NS != "test" || ch.At.IsZero() {
			t.Errorf("change %+v: want ns test and a time", ch)
		}
	}
}

// TestObserverSizesFollowConcurrentChanges: joins and leaves from many
// goroutines are told one at a time and in order — every size differs by
// one from the previous one in the same room, and the last one is the
// room's size.
func TestObserverSizesFollowConcurrentChanges(t *testing.T) {
	fx, rec := newObservedFixture(t)
	ctx := context.Background()
	const conns, rounds = 8, 50
	var cs []*Conn
	for range conns {
		c, _ := fx.connect(t)
		cs = append(cs, c)
	}
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				room := fmt.Sprintf("r%d", (i+r)%3)
				if _, err := fx.ns.Join(ctx, c.ID, room, false); err != nil {
					t.Error(err)
					return
				}
				if r%2 == 0 {
					if _, err := fx.ns.Leave(ctx, c.ID, room); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	// (Other goroutines hold the lock meanwhile: only the sequential test
	// can check that calls come outside it.)
	if rec.overlaps != 0 {
		t.Fatalf("%d overlapping calls, want none", rec.overlaps)
	}
	last := map[string]int{}
	for i, ch := range rec.changes {
		want := last[ch.Room] - 1
		if ch.Joined {
			want = last[ch.Room] + 1
		}
		if ch.Size != want {
			t.Fatalf("change %d (%+v): size %d, want %d after %d", i, ch, ch.Size, want, last[ch.Room])
		}
		last[ch.Room] = ch.Size
	}
	sizes := fx.ns.localRooms()
	for room, n := range last {
		if sizes[room] != n {
			t.Errorf("room %s: last told size %d, local size %d", room, n, sizes[room])
		}
	}
	if len(last) != 3 {
		t.Errorf("told of rooms %v, want r0, r1 and r2", last)
	}
}

// TestObserverToldOfDeadLetters: a message parked after max_deliver is told
// with its id, group, event and delivery count.
func TestObserverToldOfDeadLetters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		log, sess, q := newFakeLog(testEpoch), newFakeSessions(), newFakeQueue()
		log.feed = true
		h := newHub(t, log, sess, Deps{Groups: q, AckKey: []byte("0123456789abcdef0123456789abcdef"), Observer: rec}, Config{})
		ns, err := h.AddNamespace(context.Background(), "test", NamespaceConfig{})
		if err != nil {
			t.Fatal(err)
		}
		k := GroupKey{Room: "jobs", Name: "g"}
		if _, err := ns.PutGroup(context.Background(), k.Room, k.Name, GroupConfig{AckWait: time.Second, MaxDeliver: 2}, true); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Stop)
		fx := &groupFixture{fixture: &fixture{hub: h, ns: ns, log: log, sess: sess}, q: q, k: k}
		fx.member(t)
		m := fx.job()
		time.Sleep(10 * time.Second) // two leases run out, the third delivery parks it
		synctest.Wait()
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.dead) != 1 {
			t.Fatalf("told of %d dead letters, want 1", len(rec.dead))
		}
		d := rec.dead[0]
		if d.NS != "test" || d.Group != k || d.ID != m.Pos.String() || d.Event != "job" || d.Deliveries != 2 || d.Reason == "" {
			t.Errorf("dead letter %+v, want test/%v id %s event job after 2 deliveries, with a reason", d, k, m.Pos)
		}
	})
}
