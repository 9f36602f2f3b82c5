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

// RunLog holds a hub.Log to its contract (hub.Log's doc comment). open
// returns a fresh, empty Log for each subtest; the suite opens its own
// namespaces in it. Run it against every implementation: MemLog, the
// engine, and any fake a test relies on.
func RunLog(t *testing.T, open func(t *testing.T) hub.Log) {
	ctx := context.Background()
	pub := func(t *testing.T, l hub.Log, ns string, o *hub.Outgoing) hub.Position {
		t.Helper()
		if o.Body == nil {
			b, err := hub.EncodeBody(ns, o, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			o.Body = b
		}
		pos, _, err := l.Publish(ctx, ns, o)
		if err != nil {
			t.Fatalf("Publish(%+v): %v", o, err)
		}
		return pos
	}
	read := func(t *testing.T, l hub.Log, ns string, from, to uint64, f hub.Filter) []*hub.Message {
		t.Helper()
		var out []*hub.Message
		if err := l.Read(ctx, ns, from, to, f, func(m *hub.Message) bool { out = append(out, m); return true }); err != nil {
			t.Fatalf("Read: %v", err)
		}
		return out
	}
	seqs := func(ms []*hub.Message) []uint64 {
		out := []uint64{}
		for _, m := range ms {
			out = append(out, m.Pos.Seq)
		}
		return out
	}

	t.Run("open", func(t *testing.T) {
		l := open(t)
		st, err := l.OpenNamespace(ctx, "conf", hub.Retention{})
		if err != nil {
			t.Fatal(err)
		}
		if st.Epoch == "" || st.Last != 0 {
			t.Fatalf("a new namespace's state = %+v, want an epoch and Last 0", st)
		}
		pub(t, l, "conf", &hub.Outgoing{Event: "e"})
		again, err := l.OpenNamespace(ctx, "conf", hub.Retention{})
		if err != nil || again.Epoch != st.Epoch || again.Last != 1 {
			t.Fatalf("reopened = %+v, %v; want epoch %s and Last 1", again, err, st.Epoch)
		}
		if _, _, err := l.Publish(ctx, "never-opened", &hub.Outgoing{Event: "e", Body: []byte(`{}`)}); !errors.Is(err, hub.ErrNotFound) {
			t.Errorf("Publish to a namespace never opened = %v, want ErrNotFound", err)
		}
	})

	t.Run("publish stores in order and decodes what was sent", func(t *testing.T) {
		l := open(t)
		st, err := l.OpenNamespace(ctx, "conf", hub.Retention{})
		if err != nil {
			t.Fatal(err)
		}
		conn := hub.ConnID("AAAAAAAAAAAAAAAAAAAAAA")
		sent := []*hub.Outgoing{
			{Event: "all", Data: json.RawMessage(`1`)},
			{Event: "room", Rooms: []string{"lobby"}, From: conn, Except: []string{"vip", string(conn)}},
			{Event: "multi", Rooms: []string{"a", "b.c"}},
			{Event: "direct", To: conn},
			{Event: "notice", Rooms: []string{"lobby"}, Notice: true},
		}
		var pos []hub.Position
		for _, o := range sent {
			pos = append(pos, pub(t, l, "conf", o))
		}
		for i, p := range pos {
			if p.Epoch != st.Epoch || p.Seq != uint64(i)+1 {
				t.Fatalf("positions %v, want %s-1..5", pos, st.Epoch)
			}
		}
		got := read(t, l, "conf", 1, 0, hub.Filter{Rooms: []string{"lobby", "a"}, Conn: conn})
		if len(got) != len(sent) {
			t.Fatalf("read %d messages, want %d", len(got), len(sent))
		}
		for i, m := range got {
			o := sent[i]
			var env hub.Envelope
			if err := json.Unmarshal(m.Body, &env); err != nil || env.ID != m.Pos.String() || env.Event != o.Event {
				t.Errorf("message %d body %s: envelope %+v, %v; want id %s first", i, m.Body, env, err, m.Pos)
			}
			if m.Event != o.Event || !slices.Equal(m.Rooms, o.Rooms) || m.To != o.To || m.From != o.From ||
				!slices.Equal(m.Except, o.Except) || m.Notice != o.Notice || m.GroupOnly {
				t.Errorf("message %d = %+v, want what was published: %+v", i, m, o)
			}
		}
	})

	t.Run("idempotency key", func(t *testing.T) {
		l := open(t)
		if _, err := l.OpenNamespace(ctx, "conf", hub.Retention{}); err != nil {
			t.Fatal(err)
		}
		first := pub(t, l, "conf", &hub.Outgoing{Event: "e", Key: "k"})
		pub(t, l, "conf", &hub.Outgoing{Event: "e"})
		o := &hub.Outgoing{Event: "e", Key: "k"}
		o.Body, _ = hub.EncodeBody("conf", o, time.Now())
		again, dup, err := l.Publish(ctx, "conf", o)
		if err != nil || !dup || again != first {
			t.Errorf("a publish repeating key k = %v, dup %v, %v; want %v, true", again, dup, err, first)
		}
		if st, _ := l.State(ctx, "conf"); st.Last != 2 {
			t.Errorf("Last = %d after a duplicate, want 2", st.Last)
		}
	})

	t.Run("read filters, bounds and stops", func(t *testing.T) {
		l := open(t)
		if _, err := l.OpenNamespace(ctx, "conf", hub.Retention{}); err != nil {
			t.Fatal(err)
		}
		me, other := hub.ConnID("AAAAAAAAAAAAAAAAAAAAAA"), hub.ConnID("BBBBBBBBBBBBBBBBBBBBBB")
		for _, o := range []*hub.Outgoing{
			{Event: "e", Rooms: []string{"x"}}, // 1
			{Event: "e", Rooms: []string{"y"}}, // 2
			{Event: "e"},                       // 3
			{Event: "e", To: me},               // 4
			{Event: "e", To: other},            // 5
			{Event: "e", Rooms: []string{"x"}}, // 6
		} {
			pub(t, l, "conf", o)
		}
		// A reader may get more than it can match (multi-room, say), never
		// less: what matters is that every message it should get is there.
		must := func(got []*hub.Message, want ...uint64) {
			t.Helper()
			s := seqs(got)
			for _, w := range want {
				if !slices.Contains(s, w) {
					t.Errorf("read %v, missing %d", s, w)
				}
			}
			if !slices.IsSorted(s) {
				t.Errorf("read %v: not in sequence order", s)
			}
		}
		x := read(t, l, "conf", 1, 0, hub.Filter{Rooms: []string{"x"}, Conn: me})
		must(x, 1, 3, 4, 6)
		for _, m := range x {
			if m.Pos.Seq == 2 || m.Pos.Seq == 5 {
				t.Errorf("a reader of room x and connection %s read message %d (room y / another connection's)", me, m.Pos.Seq)
			}
		}
		must(read(t, l, "conf", 2, 4, hub.Filter{Rooms: []string{"x", "y"}, Conn: me}), 2, 3, 4)
		for _, m := range read(t, l, "conf", 2, 4, hub.Filter{Rooms: []string{"x", "y"}, Conn: me}) {
			if m.Pos.Seq < 2 || m.Pos.Seq > 4 {
				t.Errorf("Read(2, 4) returned message %d", m.Pos.Seq)
			}
		}
		n := 0
		if err := l.Read(ctx, "conf", 1, 0, hub.Filter{Rooms: []string{"x", "y"}}, func(*hub.Message) bool { n++; return n < 2 }); err != nil || n != 2 {
			t.Errorf("Read stopping at the 2nd message called fn %d times, %v", n, err)
		}
	})

	t.Run("follow feeds in order from after", func(t *testing.T) {
		l := open(t)
		if _, err := l.OpenNamespace(ctx, "conf", hub.Retention{}); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			pub(t, l, "conf", &hub.Outgoing{Event: "before"})
		}
		got := make(chan uint64, 16)
		if err := l.Follow(ctx, "conf", 2, func(m *hub.Message) { got <- m.Pos.Seq }); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			pub(t, l, "conf", &hub.Outgoing{Event: "after", Rooms: []string{"r"}})
		}
		var seen []uint64
		timeout := time.After(10 * time.Second)
		for len(seen) < 4 {
			select {
			case s := <-got:
				seen = append(seen, s)
			case <-timeout:
				t.Fatalf("Follow(after 2) fed %v within 10 s, want [3 4 5 6]", seen)
			}
		}
		if !slices.Equal(seen, []uint64{3, 4, 5, 6}) {
			t.Errorf("Follow(after 2) fed %v, want [3 4 5 6]", seen)
		}
	})

	t.Run("state and retention gaps", func(t *testing.T) {
		l := open(t)
		if _, err := l.OpenNamespace(ctx, "conf", hub.Retention{MaxMsgsPerRoom: 3}); err != nil {
			t.Fatal(err)
		}
		f := hub.Filter{Rooms: []string{"r"}}
		pub(t, l, "conf", &hub.Outgoing{Event: "e", Rooms: []string{"r"}})
		if gap, err := l.Gap(ctx, "conf", 0, f); err != nil || gap {
			t.Errorf("Gap with nothing removed = %v, %v; want false", gap, err)
		}
		for range 4 {
			pub(t, l, "conf", &hub.Outgoing{Event: "e", Rooms: []string{"r"}})
		}
		// Room r kept its last 3: 3, 4, 5.
		if got := seqs(read(t, l, "conf", 1, 0, f)); !slices.Equal(got, []uint64{3, 4, 5}) {
			t.Errorf("room r after retention = %v, want [3 4 5]", got)
		}
		if st, err := l.State(ctx, "conf"); err != nil || st.First != 3 || st.Last != 5 {
			t.Errorf("State = %+v, %v; want First 3, Last 5", st, err)
		}
		if gap, err := l.Gap(ctx, "conf", 0, f); err != nil || !gap {
			t.Errorf("Gap(after 0) with 1 and 2 removed = %v, %v; want true", gap, err)
		}
		if gap, err := l.Gap(ctx, "conf", 2, f); err != nil || gap {
			t.Errorf("Gap(after 2) with only 1 and 2 removed = %v, %v; want false", gap, err)
		}
	})
}
