package hub

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
)

// volatileLog is a fakeLog that carries volatile messages, as the engine
// does: PublishVolatile feeds the namespace's volatile follower at once.
type volatileLog struct {
	*fakeLog
	vmu  sync.Mutex
	feed func(*Message)
	sent []*Outgoing
}

var _ VolatileLog = (*volatileLog)(nil)

func (l *volatileLog) PublishVolatile(_ context.Context, _ string, o *Outgoing) error {
	l.vmu.Lock()
	defer l.vmu.Unlock()
	l.sent = append(l.sent, o)
	if l.feed != nil {
		l.feed(&Message{Event: o.Event, Rooms: o.Rooms, To: o.To, From: o.From, Except: o.Except, Body: o.Body})
	}
	return nil
}

func (l *volatileLog) FollowVolatile(_ context.Context, _ string, fn func(*Message)) error {
	l.vmu.Lock()
	defer l.vmu.Unlock()
	l.feed = fn
	return nil
}

func newVolatileFixture(t *testing.T) (*fixture, *volatileLog) {
	t.Helper()
	vl := &volatileLog{fakeLog: newFakeLog(testEpoch)}
	sess := newFakeSessions()
	h, err := New(Deps{Log: vl, Sessions: sess, Logger: discard()}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := h.AddNamespace(context.Background(), "test", NamespaceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{hub: h, ns: ns, log: vl.fakeLog, sess: sess}, vl
}

// TestVolatileReachesLiveMembersWithoutMovingTheirPosition: a volatile
// message goes where a stored one with the same target would, live only;
// its SSE id is each connection's current position (a resume after it
// replays what follows that position, and skips nothing), its envelope says
// volatile and has no id, and nothing is stored.
func TestVolatileReachesLiveMembersWithoutMovingTheirPosition(t *testing.T) {
	fx, vl := newVolatileFixture(t)
	a, sa := fx.connect(t, "lobby", "vip")
	b, sb := fx.connect(t, "lobby")
	_, sc := fx.connect(t, "other")
	stored := fx.publish(&Message{Event: "before", Rooms: []string{"lobby"}})

	err := fx.ns.PublishVolatile(ctx, &Outgoing{Event: "typing", Rooms: []string{"lobby"}, From: a.ID, Except: []string{string(a.ID)},
		Data: json.RawMessage(`{"typing":true}`)})
	if err != nil {
		t.Fatalf("PublishVolatile: %v", err)
	}
	if got := sa.named("typing"); len(got) != 0 {
		t.Errorf("the sender, in except, got %d volatile messages", len(got))
	}
	if got := sc.named("typing"); len(got) != 0 {
		t.Errorf("a connection of another room got %d volatile messages", len(got))
	}
	got := sb.named("typing")
	if len(got) != 1 {
		t.Fatalf("b got %d volatile messages, want 1", len(got))
	}
	ev := got[0]
	if want := ResumeID(stored.Pos, b.Token); ev.ID != want || ev.Msg != nil {
		t.Errorf("volatile SSE id %q (Msg %v), want b's current position %q and no stored message", ev.ID, ev.Msg, want)
	}
	var env Envelope
	if err := json.Unmarshal(ev.Data, &env); err != nil || env.ID != "" || !env.Volatile || env.Event != "typing" ||
		env.From == nil || *env.From != string(a.ID) || string(env.Data) != `{"typing":true}` {
		t.Errorf("volatile data %s: want the envelope without id, volatile true, from a", ev.Data)
	}
	if st, _ := fx.log.State(ctx, "test"); st.Last != stored.Pos.Seq || fx.log.publishedCount() != 0 {
		t.Errorf("log after a volatile publish: Last %d, %d stored publishes; want nothing stored", st.Last, fx.log.publishedCount())
	}
	if len(vl.sent) != 1 || !vl.sent[0].Volatile {
		t.Errorf("volatile log got %+v, want one volatile message", vl.sent)
	}
	// The next stored message still follows: positions are untouched.
	next := fx.publish(&Message{Event: "after", Rooms: []string{"lobby"}})
	if s := sb.seqs(); !slices.Equal(s, []uint64{stored.Pos.Seq, next.Pos.Seq}) {
		t.Errorf("b's stored messages %v, want [%d %d]", s, stored.Pos.Seq, next.Pos.Seq)
	}
}

// TestVolatileTargets: namespace-wide and direct volatile messages, and
// except by room, address connections as stored ones do.
func TestVolatileTargets(t *testing.T) {
	fx, _ := newVolatileFixture(t)
	a, sa := fx.connect(t, "lobby")
	_, sb := fx.connect(t, "vip")
	for _, o := range []*Outgoing{
		{Event: "all"},
		{Event: "all-but-vip", Except: []string{"vip"}},
		{Event: "direct", To: a.ID},
	} {
		if err := fx.ns.PublishVolatile(ctx, o); err != nil {
			t.Fatalf("PublishVolatile(%s): %v", o.Event, err)
		}
	}
	names := func(s *fakeSink) string {
		var out []string
		for _, ev := range s.events {
			out = append(out, ev.Name)
		}
		return strings.Join(out, " ")
	}
	if got := names(sa); got != "all all-but-vip direct" {
		t.Errorf("a got %q", got)
	}
	if got := names(sb); got != "all" {
		t.Errorf("b (in vip) got %q", got)
	}
}

// TestVolatileSkipsStartingAndFullConnections: a connection still
// replaying does not get a volatile message (it is live only), and a full
// queue drops it without closing the connection.
func TestVolatileSkipsStartingAndFullConnections(t *testing.T) {
	fx, _ := newVolatileFixture(t)
	starting := &fakeSink{}
	if _, err := fx.ns.Open(ctx, OpenRequest{Rooms: []string{"lobby"}, Sink: starting}); err != nil {
		t.Fatal(err)
	}
	full := &fakeSink{capacity: 1}
	c, err := fx.ns.Open(ctx, OpenRequest{Rooms: []string{"lobby"}, Sink: full})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := fx.ns.PublishVolatile(ctx, &Outgoing{Event: "cursor", Rooms: []string{"lobby"}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(starting.named("cursor")); n != 0 {
		t.Errorf("a connection not yet live got %d volatile messages", n)
	}
	if n := len(full.named("cursor")); n != 1 || full.closeErr() != nil {
		t.Errorf("a connection with room for one got %d, closed %v; want 1 and still open", n, full.closeErr())
	}
}

// TestPublishVolatileRefusals: a key means nothing for a message never
// stored; names are checked as for Publish; a Log that cannot carry
// volatile messages is unavailable for them.
func TestPublishVolatileRefusals(t *testing.T) {
	fx, vl := newVolatileFixture(t)
	if err := fx.ns.PublishVolatile(ctx, &Outgoing{Event: "typing", Key: "k"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("volatile with an idempotency key = %v, want ErrInvalid", err)
	}
	if err := fx.ns.PublishVolatile(ctx, &Outgoing{Event: "typing", Rooms: []string{"bad room"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("volatile to a malformed room = %v, want ErrInvalid", err)
	}
	if err := fx.ns.PublishVolatile(ctx, &Outgoing{Event: EventConnected}); !errors.Is(err, ErrInvalid) {
		t.Errorf("volatile with a reserved event = %v, want ErrInvalid", err)
	}
	if len(vl.sent) != 0 {
		t.Errorf("refused volatile messages were sent: %+v", vl.sent)
	}
	plain := newFixture(t, NamespaceConfig{})
	if err := plain.ns.PublishVolatile(ctx, &Outgoing{Event: "typing"}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("volatile on a Log without the capability = %v, want ErrUnavailable", err)
	}
}
