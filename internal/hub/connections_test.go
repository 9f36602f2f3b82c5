package hub

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeBus joins the hubs of one test as a cluster: a request reaches every
// hub's handler, as core NATS request/reply does.
type fakeBus struct {
	mu       sync.Mutex
	handlers []func(ns, op string, req []byte) ([]byte, bool)
	asks     int
}

// node is one hub's view of the bus.
type busNode struct{ b *fakeBus }

var _ Bus = busNode{}

func (n busNode) Serve(h func(ns, op string, req []byte) ([]byte, bool)) error {
	n.b.mu.Lock()
	defer n.b.mu.Unlock()
	n.b.handlers = append(n.b.handlers, h)
	return nil
}

func (n busNode) all() []func(ns, op string, req []byte) ([]byte, bool) {
	n.b.mu.Lock()
	defer n.b.mu.Unlock()
	n.b.asks++
	return slices.Clone(n.b.handlers)
}

func (n busNode) Ask(ctx context.Context, ns, op string, req []byte) ([]byte, error) {
	for _, h := range n.all() {
		if rep, ok := h(ns, op, req); ok {
			return rep, nil
		}
	}
	return nil, ErrNotFound
}

func (n busNode) Gather(ctx context.Context, ns, op string, req []byte) ([][]byte, error) {
	var out [][]byte
	for _, h := range n.all() {
		if rep, ok := h(ns, op, req); ok {
			out = append(out, rep)
		}
	}
	return out, nil
}

// testPerms grants join on the rooms listed (and subscribe on every room).
type testPerms struct {
	Join []string `json:"join"`
}

func (p testPerms) Allowed(a Action, room string) bool {
	return a != ActJoin || slices.Contains(p.Join, room)
}
func (p testPerms) IsAdmin() bool { return false }

func decodeTestPerms(b []byte) (Perms, error) {
	var p testPerms
	err := json.Unmarshal(b, &p)
	return p, err
}

// cluster is two hubs sharing a log, sessions, groups and a bus.
type cluster struct {
	a, b     *Namespace
	log      *fakeLog
	sess     *fakeSessions
	q        *fakeQueue
	bus      *fakeBus
	hubA, hB *Hub
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{log: newFakeLog(testEpoch), sess: newFakeSessions(), q: newFakeQueue(), bus: &fakeBus{}}
	c.log.feed = true
	var nss [2]*Namespace
	var hubs [2]*Hub
	for i := range 2 {
		hubs[i] = newHub(t, c.log, c.sess, Deps{Bus: busNode{c.bus}, DecodePerms: decodeTestPerms, Groups: c.q,
			AckKey: []byte("0123456789abcdef0123456789abcdef")}, Config{})
		ns, err := hubs[i].AddNamespace(context.Background(), "test", NamespaceConfig{})
		if err != nil {
			t.Fatal(err)
		}
		nss[i] = ns
		t.Cleanup(hubs[i].Stop)
	}
	// Both follow the one log: the fake feeds one follower, so the second
	// node is fed by chaining.
	fa, fb := nss[0].apply, nss[1].apply
	c.log.follow = func(m *Message) { fa(m); fb(m) }
	c.a, c.b, c.hubA, c.hB = nss[0], nss[1], hubs[0], hubs[1]
	return c
}

func openLive(t *testing.T, ns *Namespace, req OpenRequest) (*Conn, *fakeSink) {
	t.Helper()
	sink := &fakeSink{}
	req.Sink = sink
	c, err := ns.Open(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c, sink
}

func TestClusterOperationsReachTheNodeHoldingTheConnection(t *testing.T) {
	cl := newCluster(t)
	conn, sink := openLive(t, cl.b, OpenRequest{Rooms: []string{"lobby"}, Perms: testPerms{Join: []string{"news"}}, User: "alice"})

	// Seen from node A: found by id and by token, with its rights.
	info, err := cl.a.Connection(ctx, conn.ID)
	if err != nil || info.User != "alice" || !slices.Equal(info.Rooms, []string{"lobby"}) {
		t.Fatalf("Connection from A = %+v, %v; want alice in lobby", info, err)
	}
	if p, ok := info.Perms.(testPerms); !ok || !slices.Equal(p.Join, []string{"news"}) {
		t.Errorf("rights across nodes = %#v, want join on news", info.Perms)
	}
	if byTok, err := cl.a.ConnectionByToken(ctx, conn.Token); err != nil || byTok.ID != conn.ID {
		t.Errorf("ConnectionByToken from A = %+v, %v", byTok, err)
	}
	if _, err := cl.a.ConnectionByToken(ctx, newID()); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("an unknown token from A: %v, want ErrUnauthorized", err)
	}
	if _, err := cl.a.Connection(ctx, ConnID(newID())); !errors.Is(err, ErrNotFound) {
		t.Errorf("an unknown id from A: %v, want ErrNotFound", err)
	}

	// Its own join right is checked where it lives.
	if _, err := cl.a.Join(ctx, conn.ID, "secret", true); !errors.Is(err, ErrForbidden) {
		t.Errorf("own join of a room not granted, from A: %v, want ErrForbidden", err)
	}
	m, err := cl.a.Join(ctx, conn.ID, "news", true)
	if err != nil || !m.Changed || !slices.Equal(m.Rooms, []string{"lobby", "news"}) {
		t.Fatalf("join from A = %+v, %v", m, err)
	}
	if m, err := cl.a.Join(ctx, conn.ID, "news", true); err != nil || m.Changed {
		t.Errorf("a second join = %+v, %v; want unchanged", m, err)
	}
	if _, err := cl.a.Join(ctx, conn.ID, "bad room", false); !errors.Is(err, ErrInvalid) {
		t.Errorf("join of an invalid room: %v", err)
	}
	// A message to the room joined from A reaches the connection on B.
	msg := cl.publishTo(t, "news")
	if got := sink.seqs(); !slices.Contains(got, msg.Pos.Seq) {
		t.Errorf("B's connection got %v, want the news message %d", got, msg.Pos.Seq)
	}
	if m, err := cl.a.Leave(ctx, conn.ID, "lobby"); err != nil || !m.Changed || !slices.Equal(m.Rooms, []string{"news"}) {
		t.Errorf("leave from A = %+v, %v", m, err)
	}

	// Presence merges both nodes.
	openLive(t, cl.a, OpenRequest{Rooms: []string{"news"}})
	rooms := cl.a.Rooms(ctx)
	if !slices.Equal(rooms, []RoomInfo{{"news", 2}}) {
		t.Errorf("Rooms from A = %v, want news with 2 members (one per node)", rooms)
	}
	if ms, _ := cl.b.Members(ctx, "news"); len(ms) != 2 {
		t.Errorf("Members from B = %v, want 2", ms)
	}

	// Disconnected from A: closed on B, on request.
	if err := cl.a.Disconnect(ctx, conn.ID); err != nil {
		t.Fatal(err)
	}
	if err := sink.closeErr(); !errors.Is(err, ErrDisconnected) {
		t.Errorf("B's connection closed with %v, want ErrDisconnected", err)
	}
}

func (cl *cluster) publishTo(t *testing.T, room string) *Message {
	t.Helper()
	pos, _, err := cl.a.Publish(ctx, &Outgoing{Event: "job", Rooms: []string{room}})
	if err != nil {
		t.Fatal(err)
	}
	return cl.log.msgs[pos.Seq-1]
}

func TestClusterResumeElsewhereReplacesTheOldConnection(t *testing.T) {
	cl := newCluster(t)
	old, oldSink := openLive(t, cl.b, OpenRequest{Rooms: []string{"lobby"}})
	// B saves its live session (Run's saver), then its client comes back on
	// A before B noticed the drop.
	cl.b.save(ctx, old)
	st, err := openOn(cl.a, ctx, OpenRequest{Token: old.Token, Resume: &Position{testEpoch, 0}, Sink: &fakeSink{}})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Restored || st.Conn.ID != old.ID || !slices.Equal(cl.a.info(st.Conn).Rooms, []string{"lobby"}) {
		t.Fatalf("resume on A: restored %v id %s, want %s with lobby", st.Restored, st.Conn.ID, old.ID)
	}
	if err := oldSink.closeErr(); !errors.Is(err, ErrReplaced) {
		t.Errorf("the old connection on B closed with %v, want ErrReplaced: one connection never lives twice", err)
	}
}

func TestClusterSettleReachesTheHolderAndSupersededIsRefusedEverywhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cl := newCluster(t)
		k := GroupKey{Room: "jobs", Name: "g"}
		if _, err := cl.a.PutGroup(ctx, k.Room, k.Name, GroupConfig{AckWait: 10 * time.Second, MaxInFlight: 1}, true); err != nil {
			t.Fatal(err)
		}
		member, sink := openLive(t, cl.b, OpenRequest{Group: &k})
		m := cl.publishTo(t, "jobs")
		cl.q.offer(m)
		synctest.Wait()
		ds := deliveries(t, sink)
		if len(ds) != 1 {
			t.Fatalf("the member on B got %v", seqsOf(ds))
		}
		st, err := cl.a.Group(ctx, "jobs", "g")
		if err != nil || st.InFlight != 1 || len(st.Members) != 1 || st.Members[0].ID != member.ID {
			t.Fatalf("group state from A = %+v, %v; want the member on B holding 1", st, err)
		}
		// Extended from A, then the lease runs out on B: the ack from A is
		// refused.
		if err := cl.a.SettleGroup(ctx, member.ID, "jobs", "g", []string{ds[0].ackID}, Progress, 0); err != nil {
			t.Fatalf("progress from A: %v", err)
		}
		time.Sleep(11 * time.Second)
		synctest.Wait()
		if err := cl.a.SettleGroup(ctx, member.ID, "jobs", "g", []string{ds[0].ackID}, Ack, 0); !errors.Is(err, ErrSuperseded) {
			t.Fatalf("ack from A of a delivery whose lease ran out on B: %v, want ErrSuperseded", err)
		}
		// The redelivery (to the same member, the only one) is settled from A.
		synctest.Wait()
		ds = deliveries(t, sink)
		if len(ds) != 2 || ds[1].count != 2 {
			t.Fatalf("redelivery %+v", ds)
		}
		if err := cl.a.SettleGroup(ctx, member.ID, "jobs", "g", []string{ds[1].ackID}, Ack, 0); err != nil {
			t.Fatalf("ack from A: %v", err)
		}
	})
}
