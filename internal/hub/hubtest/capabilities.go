package hubtest

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/hub"
)

// The optional capabilities of a Log (hub.BatchLog, hub.VolatileLog): MemLog
// has both, and RunBatchLog and RunVolatileLog hold every implementation to
// their contracts as RunLog does to hub.Log's.

var (
	_ hub.BatchLog    = (*MemLog)(nil)
	_ hub.VolatileLog = (*MemLog)(nil)
)

// PublishBatch implements hub.BatchLog: one Publish after another.
func (l *MemLog) PublishBatch(ctx context.Context, name string, os []*hub.Outgoing) []hub.Stored {
	out := make([]hub.Stored, len(os))
	for i, o := range os {
		out[i].Pos, out[i].Dup, out[i].Err = l.Publish(ctx, name, o)
	}
	return out
}

// PublishVolatile implements hub.VolatileLog: the namespace's follower is
// called synchronously (this log is one node); nothing is stored.
func (l *MemLog) PublishVolatile(_ context.Context, name string, o *hub.Outgoing) error {
	l.mu.Lock()
	_, err := l.ns(name)
	l.mu.Unlock()
	if err != nil {
		return err
	}
	l.vmu.Lock()
	defer l.vmu.Unlock()
	if fn := l.volatiles[name]; fn != nil {
		fn(&hub.Message{Event: o.Event, Rooms: slices.Clone(o.Rooms), To: o.To, From: o.From,
			Except: slices.Clone(o.Except), Time: time.Now(), Body: slices.Clone(o.Body)})
	}
	return nil
}

// FollowVolatile implements hub.VolatileLog.
func (l *MemLog) FollowVolatile(_ context.Context, name string, fn func(*hub.Message)) error {
	l.mu.Lock()
	_, err := l.ns(name)
	l.mu.Unlock()
	if err != nil {
		return err
	}
	l.vmu.Lock()
	defer l.vmu.Unlock()
	if l.volatiles == nil {
		l.volatiles = map[string]func(*hub.Message){}
	}
	l.volatiles[name] = fn
	return nil
}

func encoded(t *testing.T, ns string, o *hub.Outgoing) *hub.Outgoing {
	t.Helper()
	b, err := hub.EncodeBody(ns, o, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	o.Body = b
	return o
}

// RunBatchLog holds a hub.BatchLog to its contract: a batch is stored in
// order, each message answered with its own position, idempotency keys
// count per message (within the batch and across batches), and the live
// feed gets the batch in order.
func RunBatchLog(t *testing.T, open func(t *testing.T) hub.BatchLog) {
	ctx := context.Background()
	t.Run("batch stored in order, keys per message", func(t *testing.T) {
		l := open(t)
		if _, err := l.OpenNamespace(ctx, "conf", hub.Retention{}); err != nil {
			t.Fatal(err)
		}
		fed := make(chan *hub.Message, 64)
		if err := l.Follow(ctx, "conf", 0, func(m *hub.Message) { fed <- m }); err != nil {
			t.Fatal(err)
		}
		conn := hub.ConnID("AAAAAAAAAAAAAAAAAAAAAA")
		batch := []*hub.Outgoing{
			encoded(t, "conf", &hub.Outgoing{Event: "e0", Rooms: []string{"a"}, Key: "k1"}),
			encoded(t, "conf", &hub.Outgoing{Event: "e1"}),
			encoded(t, "conf", &hub.Outgoing{Event: "e2", Rooms: []string{"a", "b"}, Except: []string{string(conn)}}),
			encoded(t, "conf", &hub.Outgoing{Event: "e3", To: conn}),
			encoded(t, "conf", &hub.Outgoing{Event: "e4", Rooms: []string{"a"}, Key: "k1"}), // a repeat of message 0
		}
		got := l.PublishBatch(ctx, "conf", batch)
		if len(got) != len(batch) {
			t.Fatalf("PublishBatch returned %d results for %d messages", len(got), len(batch))
		}
		for i, s := range got[:4] {
			if s.Err != nil || s.Dup {
				t.Fatalf("message %d: %+v, want stored", i, s)
			}
			if i > 0 && s.Pos.Seq <= got[i-1].Pos.Seq {
				t.Fatalf("positions %+v: not in the order of the batch", got)
			}
		}
		if r := got[4]; r.Err != nil || !r.Dup || r.Pos != got[0].Pos {
			t.Errorf("a repeated key within the batch = %+v, want the first's position %v and Dup", r, got[0].Pos)
		}
		again := l.PublishBatch(ctx, "conf", []*hub.Outgoing{
			encoded(t, "conf", &hub.Outgoing{Event: "e5"}),
			encoded(t, "conf", &hub.Outgoing{Event: "e6", Rooms: []string{"a"}, Key: "k1"}),
		})
		if again[0].Err != nil || again[0].Dup || again[0].Pos.Seq <= got[3].Pos.Seq {
			t.Errorf("next batch's new message = %+v, want a later position than %v", again[0], got[3].Pos)
		}
		if again[1].Err != nil || !again[1].Dup || again[1].Pos != got[0].Pos {
			t.Errorf("a key of an earlier batch = %+v, want %v and Dup", again[1], got[0].Pos)
		}
		want := []string{"e0", "e1", "e2", "e3", "e5"}
		var seen []string
		timeout := time.After(10 * time.Second)
		for len(seen) < len(want) {
			select {
			case m := <-fed:
				seen = append(seen, m.Event)
				var env hub.Envelope
				if err := json.Unmarshal(m.Body, &env); err != nil || env.ID != m.Pos.String() {
					t.Errorf("fed %s: body %s, want its id first", m.Pos, m.Body)
				}
				if m.Event == "e2" && (!slices.Equal(m.Rooms, []string{"a", "b"}) || !slices.Equal(m.Except, []string{string(conn)})) {
					t.Errorf("fed e2 = %+v, want rooms [a b] except [%s]", m, conn)
				}
				if m.Event == "e3" && m.To != conn {
					t.Errorf("fed e3 to %q, want %s", m.To, conn)
				}
			case <-timeout:
				t.Fatalf("the live feed gave %v within 10 s, want %v", seen, want)
			}
		}
		if !slices.Equal(seen, want) {
			t.Errorf("the live feed gave %v, want %v (stored in batch order)", seen, want)
		}
	})
	t.Run("batch to a namespace never opened", func(t *testing.T) {
		l := open(t)
		got := l.PublishBatch(ctx, "never-opened", []*hub.Outgoing{encoded(t, "never-opened", &hub.Outgoing{Event: "e"})})
		if len(got) != 1 || !errors.Is(got[0].Err, hub.ErrNotFound) {
			t.Errorf("PublishBatch to a namespace never opened = %+v, want ErrNotFound", got)
		}
	})
}

// RunVolatileLog holds a hub.VolatileLog to its contract: a volatile
// message reaches the namespace's volatile feed with its routing, and is
// never stored.
func RunVolatileLog(t *testing.T, open func(t *testing.T) hub.VolatileLog) {
	ctx := context.Background()
	l := open(t)
	if _, err := l.OpenNamespace(ctx, "conf", hub.Retention{}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.OpenNamespace(ctx, "other", hub.Retention{}); err != nil {
		t.Fatal(err)
	}
	fed := make(chan *hub.Message, 16)
	if err := l.FollowVolatile(ctx, "conf", func(m *hub.Message) { fed <- m }); err != nil {
		t.Fatal(err)
	}
	otherFed := make(chan *hub.Message, 16)
	if err := l.FollowVolatile(ctx, "other", func(m *hub.Message) { otherFed <- m }); err != nil {
		t.Fatal(err)
	}
	conn := hub.ConnID("AAAAAAAAAAAAAAAAAAAAAA")
	sent := []*hub.Outgoing{
		{Event: "typing", Rooms: []string{"lobby"}, From: conn, Except: []string{string(conn)}, Volatile: true},
		{Event: "cursor", Rooms: []string{"a", "b"}, Volatile: true},
		{Event: "ping", To: conn, Volatile: true},
		{Event: "all", Volatile: true},
	}
	for _, o := range sent {
		if err := l.PublishVolatile(ctx, "conf", encoded(t, "conf", o)); err != nil {
			t.Fatalf("PublishVolatile(%+v): %v", o, err)
		}
	}
	timeout := time.After(10 * time.Second)
	for i, o := range sent {
		select {
		case m := <-fed:
			if m.Event != o.Event || !slices.Equal(m.Rooms, o.Rooms) || m.To != o.To || m.From != o.From ||
				!slices.Equal(m.Except, o.Except) || m.Pos != (hub.Position{}) {
				t.Errorf("volatile %d fed as %+v, want %+v and no position", i, m, o)
			}
			var env hub.Envelope
			if err := json.Unmarshal(m.Body, &env); err != nil || env.ID != "" || !env.Volatile || env.Event != o.Event {
				t.Errorf("volatile %d body %s: want the envelope as published (no id, volatile)", i, m.Body)
			}
		case <-timeout:
			t.Fatalf("volatile %d (%s) not fed within 10 s", i, o.Event)
		}
	}
	select {
	case m := <-otherFed:
		t.Errorf("namespace other was fed %s, a volatile message of conf", m.Event)
	default:
	}
	if st, err := l.State(ctx, "conf"); err != nil || st.Last != 0 {
		t.Errorf("State after volatile publishes = %+v, %v; want nothing stored", st, err)
	}
	if err := l.PublishVolatile(ctx, "never-opened", encoded(t, "never-opened", &hub.Outgoing{Event: "e", Volatile: true})); !errors.Is(err, hub.ErrNotFound) {
		t.Errorf("PublishVolatile to a namespace never opened = %v, want ErrNotFound", err)
	}
}
