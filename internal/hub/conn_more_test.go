package hub

import (
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// A connection's resume and permissions at their edges, and the
// connection API over a bus that is slow or answers oddly.

// TestResumeAtTheHeadReadsNothing: a client resuming from the last
// message applied has nothing to replay: the log is not read, and no
// reset follows whatever it would say.
func TestResumeAtTheHeadReadsNothing(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	fx.publish(&Message{Event: "e"})
	head := fx.publish(&Message{Event: "e"})
	sink := &fakeSink{}
	st, err := openOn(fx.ns, ctx, OpenRequest{Resume: &head.Pos, Sink: sink})
	if err != nil || st.Reset != "" || st.ReplayTo != head.Pos.Seq {
		t.Fatalf("Open at the head = %+v, %v", st, err)
	}
	fx.log.forceGap(true) // from now on the log would claim a gap
	fx.log.mu.Lock()
	reads := fx.log.reads
	fx.log.mu.Unlock()
	if err := st.Conn.Run(ctx); err != nil {
		t.Fatal(err)
	}
	fx.log.mu.Lock()
	after := fx.log.reads
	fx.log.mu.Unlock()
	if after != reads || len(sink.named(EventReset)) != 0 || len(sink.got) != 0 {
		t.Fatalf("%d reads, resets %v, got %v; want nothing", after-reads, sink.named(EventReset), sink.seqs())
	}
}

// revocable grants everything but the rooms revoked.
type revocable struct {
	mu      sync.Mutex
	revoked map[string]bool
}

func (p *revocable) Allowed(_ Action, room string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.revoked[room]
}

func (p *revocable) IsAdmin() bool { return false }

// TestReplayRechecksPermissions: a replayed room message is sent only if
// one of its rooms is still allowed when it is replayed; namespace-wide
// messages need no room.
func TestReplayRechecksPermissions(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	fx.publish(&Message{Event: "e", Rooms: []string{"a"}})
	fx.publish(&Message{Event: "e", Rooms: []string{"b"}})
	fx.publish(&Message{Event: "e"})
	fx.publish(&Message{Event: "e", Rooms: []string{"a", "b"}})
	p := &revocable{revoked: map[string]bool{}}
	sink := &fakeSink{}
	st, err := openOn(fx.ns, ctx, OpenRequest{Rooms: []string{"a", "b"}, Perms: p, Resume: &Position{testEpoch, 0}, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.revoked["a"] = true // revoked between the open and the replay
	p.mu.Unlock()
	if err := st.Conn.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sink.seqs(); !slices.Equal(got, []uint64{2, 3, 4}) {
		t.Fatalf("replayed %v, want 2, 3 and 4 (not room a's own message)", got)
	}
}

// TestOnConnFindsALocalConnectionByTokenHash: an operation addressed by the
// hash of a token finds the connection on this node; a malformed or
// unknown hash finds none, whatever id it carries.
func TestOnConnFindsALocalConnectionByTokenHash(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	c, _ := fx.connect(t, "lobby")
	h := tokenHash(c.Token)
	rep, err := fx.ns.onConn(ctx, opLookup, connRequest{TokenHash: hex.EncodeToString(h[:])})
	if err != nil || rep.Conn == nil || rep.Conn.ID != c.ID || !slices.Equal(rep.Conn.Rooms, []string{"lobby"}) {
		t.Fatalf("lookup by token hash = %+v, %v", rep, err)
	}
	other := tokenHash(newID())
	for _, bad := range []string{hex.EncodeToString(h[:31]), "zz" + hex.EncodeToString(h[1:]), hex.EncodeToString(other[:])} {
		if _, err := fx.ns.onConn(ctx, opLookup, connRequest{ID: c.ID, TokenHash: bad}); !errors.Is(err, ErrNotFound) {
			t.Errorf("lookup by hash %q: %v, want ErrNotFound", bad, err)
		}
	}
}

// stuckBus reaches no node: every request waits for its context.
type stuckBus struct{}

func (stuckBus) Serve(func(ns, op string, req []byte) ([]byte, bool)) error { return nil }
func (stuckBus) Ask(ctx context.Context, _, _ string, _ []byte) ([]byte, error) {
	<-ctx.Done()
	return nil, ErrNotFound
}
func (stuckBus) Gather(ctx context.Context, _, _ string, _ []byte) ([][]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestBusRequestsAreBounded: a request to the node holding a connection
// waits at most 2 s, a settle (whose holder waits for the engine) 8 s, a
// presence query 500 ms, after which this node's own part is the answer.
func TestBusRequestsAreBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, newFakeLog(testEpoch), newFakeSessions(), Deps{Bus: stuckBus{}, Groups: newFakeQueue(), AckKey: make([]byte, 16)}, Config{})
		ns, err := h.AddNamespace(ctx, "test", NamespaceConfig{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Stop)
		if _, err := ns.PutGroup(ctx, "jobs", "g", GroupConfig{}, true); err != nil {
			t.Fatal(err)
		}
		id := ConnID(newID())
		k := GroupKey{Room: "jobs", Name: "g"}
		took := func(f func() error) (time.Duration, error) {
			start := time.Now()
			err := f()
			return time.Since(start), err
		}
		d, err := took(func() error { return ns.Disconnect(ctx, id) })
		if d != askTimeout || !errors.Is(err, ErrNotFound) {
			t.Errorf("disconnect: %v after %v, want ErrNotFound after %v", err, d, askTimeout)
		}
		d, err = took(func() error {
			return ns.SettleGroup(ctx, id, "jobs", "g", []string{ns.ackID(k, id, newID())}, Ack, 0)
		})
		if d != settleAskTimeout || !errors.Is(err, ErrNotFound) {
			t.Errorf("settle: %v after %v, want ErrNotFound after %v", err, d, settleAskTimeout)
		}
		local, _ := ns.Open(ctx, OpenRequest{Rooms: []string{"lobby"}, Sink: &fakeSink{}})
		var rooms []RoomInfo
		d, _ = took(func() error { rooms = ns.Rooms(ctx); return nil })
		if d != gatherTimeout || !slices.Equal(rooms, []RoomInfo{{"lobby", 1}}) {
			t.Errorf("rooms: %v after %v, want this node's lobby after %v", rooms, d, gatherTimeout)
		}
		local.Close(nil)
	})
}

// replyBus answers every Ask with reply (or fails with err).
type replyBus struct {
	reply []byte
	err   error
}

func (replyBus) Serve(func(ns, op string, req []byte) ([]byte, bool)) error { return nil }
func (b *replyBus) Ask(context.Context, string, string, []byte) ([]byte, error) {
	return b.reply, b.err
}
func (b *replyBus) Gather(context.Context, string, string, []byte) ([][]byte, error) {
	return nil, nil
}

// TestRemoteAnswersAreReadStrictly: a holder's answer without rights is an
// open connection; rights this node cannot read, an error relayed with its
// kind, a malformed or empty answer are each told apart.
func TestRemoteAnswersAreReadStrictly(t *testing.T) {
	bus := &replyBus{}
	decodeErr := errors.New("bad perms")
	for name, decode := range map[string]func([]byte) (Perms, error){
		"no decoder": nil, "a refusing decoder": func([]byte) (Perms, error) { return nil, decodeErr }, "a decoder": decodeTestPerms,
	} {
		h := newHub(t, newFakeLog(testEpoch), newFakeSessions(), Deps{Bus: bus, DecodePerms: decode}, Config{})
		ns, err := h.AddNamespace(ctx, "test", NamespaceConfig{})
		if err != nil {
			t.Fatal(err)
		}
		id := ConnID(newID())
		bus.reply = []byte(`{"conn":{"id":"` + string(id) + `","user":"u","connected":"2030-01-02T03:04:05Z"}}`)
		info, err := ns.Connection(ctx, id)
		if err != nil || info.ID != id || info.User != "u" || info.Perms != nil || info.Rooms == nil || len(info.Rooms) != 0 {
			t.Errorf("an answer without rights: %+v, %v; want an open connection in no room", info, err)
		}
		bus.reply = []byte(`{"conn":{"id":"` + string(id) + `","connected":"2030-01-02T03:04:05Z","perms":{"join":["x"]}}}`)
		info, err = ns.Connection(ctx, id)
		switch name {
		case "no decoder":
			if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "cannot be read here") {
				t.Errorf("rights without a decoder: %v", err)
			}
		case "a refusing decoder":
			if !errors.Is(err, ErrUnavailable) || !errors.Is(err, decodeErr) {
				t.Errorf("rights the decoder refuses: %v", err)
			}
		default:
			if p, ok := info.Perms.(testPerms); err != nil || !ok || !slices.Equal(p.Join, []string{"x"}) {
				t.Errorf("rights: %+v, %v", info, err)
			}
		}
	}
	h := newHub(t, newFakeLog(testEpoch), newFakeSessions(), Deps{Bus: bus}, Config{})
	ns, _ := h.AddNamespace(ctx, "test", NamespaceConfig{})
	id := ConnID(newID())
	for _, c := range []struct {
		reply string
		err   error
		want  error
	}{
		{`{"err":"join on room x is not granted","kind":"forbidden"}`, nil, ErrForbidden},
		{`{"err":"room full","kind":"limit"}`, nil, ErrLimit},
		{`{"err":"something new","kind":"martian"}`, nil, ErrUnavailable},
		{`{}`, nil, ErrNotFound},
		{`not json`, nil, ErrUnavailable},
		{``, ErrUnavailable, ErrUnavailable},
	} {
		bus.reply, bus.err = []byte(c.reply), c.err
		if _, err := ns.Join(ctx, id, "x", true); !errors.Is(err, c.want) {
			t.Errorf("answer %q (%v): %v, want %v", c.reply, c.err, err, c.want)
		}
	}
}
