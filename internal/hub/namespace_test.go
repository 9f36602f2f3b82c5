package hub

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var ctx = context.Background()

func TestApplyFanOut(t *testing.T) {
	// Four connections: A in lobby and vip, B in lobby, C in other, D in no
	// room. "@A" in except stands for A's id.
	type msg struct {
		to     string
		rooms  []string
		except []string
	}
	tests := []struct {
		name string
		m    msg
		want string // which connections get exactly one copy
	}{
		{"namespace-wide reaches every connection", msg{}, "ABCD"},
		{"a room reaches its members only", msg{rooms: []string{"lobby"}}, "AB"},
		{"a connection in two target rooms gets one copy", msg{rooms: []string{"lobby", "vip"}}, "AB"},
		{"target room order does not matter", msg{rooms: []string{"vip", "lobby"}}, "AB"},
		{"several rooms reach the union", msg{rooms: []string{"lobby", "other"}}, "ABC"},
		{"except by id spares the sender", msg{rooms: []string{"lobby"}, except: []string{"@A"}}, "B"},
		{"except by room removes its members from the union", msg{rooms: []string{"lobby", "other"}, except: []string{"vip"}}, "BC"},
		{"namespace-wide except a room", msg{except: []string{"lobby"}}, "CD"},
		{"namespace-wide except ids", msg{except: []string{"@A", "@D"}}, "BC"},
		{"direct reaches only its target", msg{to: "C"}, "C"},
		{"direct to a connection in no room", msg{to: "D"}, "D"},
		{"direct except its target reaches nobody", msg{to: "A", except: []string{"@A"}}, ""},
		{"direct except a room of its target reaches nobody", msg{to: "A", except: []string{"vip"}}, ""},
		{"a room nobody is in reaches nobody", msg{rooms: []string{"empty"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t, NamespaceConfig{})
			conns := map[string]*Conn{}
			sinks := map[string]*fakeSink{}
			for name, rooms := range map[string][]string{"A": {"lobby", "vip"}, "B": {"lobby"}, "C": {"other"}, "D": nil} {
				conns[name], sinks[name] = fx.connect(t, rooms...)
			}
			m := &Message{Event: "e", Rooms: tt.m.rooms}
			if tt.m.to != "" {
				m.To = conns[tt.m.to].ID
			}
			for _, e := range tt.m.except {
				if name, ok := strings.CutPrefix(e, "@"); ok {
					e = string(conns[name].ID)
				}
				m.Except = append(m.Except, e)
			}
			fx.publish(m)
			for _, name := range []string{"A", "B", "C", "D"} {
				want := []uint64{}
				if strings.Contains(tt.want, name) {
					want = []uint64{1}
				}
				if got := sinks[name].seqs(); !slices.Equal(got, want) {
					t.Errorf("%s got %v, want %v", name, got, want)
				}
			}
			if got := fx.ns.position(fx.ns.applied.Load()); got != (Position{testEpoch, 1}) {
				t.Errorf("Applied() = %v, want %s-1", got, testEpoch)
			}
		})
	}
}

func TestApplyAgreesWithMatches(t *testing.T) {
	// Live fan-out and replay must address alike: a message reaches a live
	// connection exactly when matches says replay would send it.
	fx := newFixture(t, NamespaceConfig{})
	a, sa := fx.connect(t, "x", "y")
	b, sb := fx.connect(t, "y")
	c, sc := fx.connect(t)
	msgs := []*Message{
		{}, {Rooms: []string{"x"}}, {Rooms: []string{"y", "x"}}, {Rooms: []string{"z"}},
		{To: a.ID}, {To: c.ID}, {Except: []string{"y"}}, {Rooms: []string{"y"}, Except: []string{string(b.ID)}},
		{Rooms: []string{"x", "y"}, Except: []string{"x"}}, {To: b.ID, Except: []string{"x"}},
	}
	for _, m := range msgs {
		m.Event = "e"
		fx.publish(m)
	}
	for _, tc := range []struct {
		c    *Conn
		sink *fakeSink
	}{{a, sa}, {b, sb}, {c, sc}} {
		want := []uint64{}
		rooms := map[string]uint64{}
		for _, r := range fx.ns.info(tc.c).Rooms {
			rooms[r] = 0
		}
		for _, m := range msgs {
			if matches(tc.c.ID, rooms, m) {
				want = append(want, m.Pos.Seq)
			}
		}
		if got := tc.sink.seqs(); !slices.Equal(got, want) {
			t.Errorf("connection in %v got %v live, matches says %v", fx.ns.info(tc.c).Rooms, got, want)
		}
	}
}

func TestSlowConsumerIsClosedAndOthersStillReceive(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	slow, slowSink := fx.connect(t, "lobby")
	slowSink.capacity = 1
	_, fastSink := fx.connect(t, "lobby")
	for range 3 {
		fx.publish(&Message{Event: "e", Rooms: []string{"lobby"}})
	}
	if got, want := fastSink.seqs(), []uint64{1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("healthy connection got %v, want %v", got, want)
	}
	if got, want := slowSink.seqs(), []uint64{1}; !slices.Equal(got, want) {
		t.Errorf("slow connection got %v, want %v", got, want)
	}
	if err := slowSink.closeErr(); !errors.Is(err, ErrSlowConsumer) {
		t.Errorf("slow sink closed with %v, want ErrSlowConsumer", err)
	}
	if err := slow.Err(); !errors.Is(err, ErrSlowConsumer) {
		t.Errorf("slow.Err() = %v, want ErrSlowConsumer", err)
	}
	if slowSink.sends != 2 {
		t.Errorf("slow sink saw %d Send calls, want 2: nothing is sent after the close", slowSink.sends)
	}
	if n := len(slowSink.closed); n != 1 {
		t.Errorf("slow sink closed %d times, want 1", n)
	}
}

func TestApplyNeverWaitsOnASink(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	_, sink := fx.connect(t, "lobby")
	sink.capacity = 1
	for range 5 {
		fx.publish(&Message{Event: "e", Rooms: []string{"lobby"}})
	}
	if sink.waits != 0 {
		t.Errorf("Apply called SendWait %d times, want 0: fan-out must never block", sink.waits)
	}
}

func TestStartingConnHoldsLiveMessagesUntilGoLive(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	sink := &fakeSink{}
	st, err := openOn(fx.ns, ctx, OpenRequest{Rooms: []string{"lobby"}, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	fx.publish(&Message{Event: "e", Rooms: []string{"lobby"}})
	fx.publish(&Message{Event: "e"})
	fx.publish(&Message{Event: "e", To: st.Conn.ID})
	if got := sink.seqs(); len(got) != 0 {
		t.Fatalf("before GoLive the sink got %v, want nothing (the connected event goes first)", got)
	}
	if err := st.Conn.goLive(); err != nil {
		t.Fatal(err)
	}
	if got, want := sink.seqs(), []uint64{1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("after GoLive the sink got %v, want %v", got, want)
	}
	fx.publish(&Message{Event: "e", Rooms: []string{"lobby"}})
	if got, want := sink.seqs(), []uint64{1, 2, 3, 4}; !slices.Equal(got, want) {
		t.Errorf("live: the sink got %v, want %v", got, want)
	}
}

func TestStartingConnOverflowingResumeBufferIsClosed(t *testing.T) {
	log := newFakeLog(testEpoch)
	h := newHub(t, log, newFakeSessions(), Deps{}, Config{ResumeBuffer: 2})
	ns, err := h.AddNamespace(ctx, "test", NamespaceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	sink := &fakeSink{}
	st, err := openOn(ns, ctx, OpenRequest{Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		ns.apply(log.add(&Message{Event: "e"}))
	}
	if err := sink.closeErr(); !errors.Is(err, ErrSlowConsumer) {
		t.Errorf("sink closed with %v, want ErrSlowConsumer once the resume buffer is full", err)
	}
	if err := st.Conn.goLive(); !errors.Is(err, ErrSlowConsumer) {
		t.Errorf("GoLive = %v, want ErrSlowConsumer", err)
	}
	if got := sink.seqs(); len(got) != 0 {
		t.Errorf("closed connection was sent %v", got)
	}
}

func TestMultiRoomMessageTakesOneResumeBufferSlot(t *testing.T) {
	log := newFakeLog(testEpoch)
	h := newHub(t, log, newFakeSessions(), Deps{}, Config{ResumeBuffer: 2})
	ns, err := h.AddNamespace(ctx, "test", NamespaceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	sink := &fakeSink{}
	st, err := openOn(ns, ctx, OpenRequest{Rooms: []string{"a", "b"}, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	ns.apply(log.add(&Message{Event: "e", Rooms: []string{"a", "b"}}))
	ns.apply(log.add(&Message{Event: "e", Rooms: []string{"b"}}))
	if err := st.Conn.goLive(); err != nil {
		t.Fatalf("GoLive = %v: two messages must fit a resume buffer of 2", err)
	}
	if got, want := sink.seqs(), []uint64{1, 2}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestResumeReplaysThenGoesLiveWithoutGapOrDuplicate(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	for range 3 {
		fx.publish(&Message{Event: "e"})
	}
	sink := &fakeSink{}
	st, err := openOn(fx.ns, ctx, OpenRequest{Resume: &Position{testEpoch, 1}, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	if st.Reset != "" || st.At != (Position{testEpoch, 1}) || st.ReplayTo != 3 {
		t.Fatalf("Connect = reset %q, at %v, replay to %d; want no reset, at %s-1, replay to 3", st.Reset, st.At, st.ReplayTo, testEpoch)
	}
	fx.publish(&Message{Event: "e"}) // 4: live while the replay has not run
	if err := st.Conn.replay(ctx, st.At.Seq, st.ReplayTo); err != nil {
		t.Fatal(err)
	}
	fx.publish(&Message{Event: "e"}) // 5: live during the replay
	if got, want := sink.seqs(), []uint64{2, 3}; !slices.Equal(got, want) {
		t.Errorf("after replay the sink got %v, want %v", got, want)
	}
	if err := st.Conn.goLive(); err != nil {
		t.Fatal(err)
	}
	fx.publish(&Message{Event: "e"})
	if got, want := sink.seqs(), []uint64{2, 3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Errorf("the sink got %v, want %v", got, want)
	}
}

func TestGoLiveSkipsWhatReplaySent(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	for range 3 {
		fx.publish(&Message{Event: "e"})
	}
	sink := &fakeSink{}
	st, err := openOn(fx.ns, ctx, OpenRequest{Resume: &Position{testEpoch, 1}, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	fx.publish(&Message{Event: "e"}) // 4 and 5 are held ...
	fx.publish(&Message{Event: "e"})
	// ... and also read by a replay that runs past ReplayTo.
	if err := st.Conn.replay(ctx, 1, 5); err != nil {
		t.Fatal(err)
	}
	if err := st.Conn.goLive(); err != nil {
		t.Fatal(err)
	}
	fx.publish(&Message{Event: "e"})
	if got, want := sink.seqs(), []uint64{2, 3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Errorf("the sink got %v, want %v (no duplicate of what replay sent)", got, want)
	}
	// A late re-apply of an old message (it cannot happen in order, but
	// the connection must not depend on that) is not sent again.
	fx.ns.apply(fx.log.msgs[4])
	if got := sink.seqs(); len(got) != 5 {
		t.Errorf("re-applied message 5 was sent again: %v", got)
	}
}

func TestReplayStopsWhenSinkFails(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	for range 3 {
		fx.publish(&Message{Event: "e"})
	}
	sink := &fakeSink{waitErr: context.Canceled}
	st, err := openOn(fx.ns, ctx, OpenRequest{Resume: &Position{testEpoch, 0}, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Conn.replay(ctx, 0, 3); !errors.Is(err, context.Canceled) {
		t.Errorf("Replay = %v, want the sink's error", err)
	}
	if sink.waits != 1 {
		t.Errorf("SendWait called %d times, want 1 (stop at the first failure)", sink.waits)
	}
}

func TestReplayReportsRetentionDuringResume(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	for range 3 {
		fx.publish(&Message{Event: "e"})
	}
	st, err := openOn(fx.ns, ctx, OpenRequest{Resume: &Position{testEpoch, 0}, Sink: &fakeSink{}})
	if err != nil || st.Reset != "" {
		t.Fatalf("Connect = %q, %v", st.Reset, err)
	}
	fx.log.first = 3 // retention removed 1 and 2 after the connect-time check
	if err := st.Conn.replay(ctx, st.At.Seq, st.ReplayTo); !errors.Is(err, ErrResumeExpired) {
		t.Errorf("Replay = %v, want ErrResumeExpired rather than a silent gap", err)
	}
}

func TestConnectResume(t *testing.T) {
	tests := []struct {
		name         string
		resume       Position
		token        string // "live": a connection's token; "unknown": a valid but unknown one
		gap          bool
		wantReset    bool
		wantAt       uint64
		wantReplayTo uint64
	}{
		{name: "within the log: replay to the registration point", resume: Position{testEpoch, 2}, wantAt: 2, wantReplayTo: 5},
		{name: "at the end: nothing to replay", resume: Position{testEpoch, 5}, wantAt: 5, wantReplayTo: 5},
		{name: "from the start", resume: Position{testEpoch, 0}, wantAt: 0, wantReplayTo: 5},
		{name: "epoch mismatch resets", resume: Position{"ee", 2}, wantReset: true, wantAt: 5},
		{name: "ahead of the log resets", resume: Position{testEpoch, 6}, wantReset: true, wantAt: 5},
		{name: "a retention gap resets", resume: Position{testEpoch, 2}, gap: true, wantReset: true, wantAt: 5},
		// A resume whose session is unknown (a crash before it was saved)
		// still replays the URL's rooms from the position, then resets.
		{name: "an unknown token replays, then resets", resume: Position{testEpoch, 2}, token: "unknown", wantReset: true, wantAt: 2, wantReplayTo: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t, NamespaceConfig{})
			for range 5 {
				fx.publish(&Message{Event: "e"})
			}
			fx.log.gap = tt.gap
			req := OpenRequest{Resume: &tt.resume, Sink: &fakeSink{}}
			if tt.token == "unknown" {
				req.Token = newID()
			}
			st, err := openOn(fx.ns, ctx, req)
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			if (st.Reset != "") != tt.wantReset {
				t.Errorf("Reset = %q, want reset %v", st.Reset, tt.wantReset)
			}
			if st.At != (Position{testEpoch, tt.wantAt}) {
				t.Errorf("At = %v, want %s-%d", st.At, testEpoch, tt.wantAt)
			}
			if tt.wantReset && tt.token == "" {
				tt.wantReplayTo = 0
			}
			if st.ReplayTo != tt.wantReplayTo {
				t.Errorf("ReplayTo = %d, want %d", st.ReplayTo, tt.wantReplayTo)
			}
			if st.Restored {
				t.Errorf("Restored = true, want false")
			}
			if req.Token != "" && (string(st.Conn.ID) == req.Token || st.Conn.Token == req.Token) {
				t.Errorf("an unknown token was adopted: id %q token %q", st.Conn.ID, st.Conn.Token)
			}
			if got := fx.ns.localConn(st.Conn.ID); got != st.Conn {
				t.Errorf("a reset connection is not open: localConn(id) = %v", got)
			}
		})
	}
}

func TestConnectGapErrorLeavesNoConnection(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	fx.publish(&Message{Event: "e"})
	fx.log.gapErr = ErrUnavailable
	sink := &fakeSink{}
	_, err := openOn(fx.ns, ctx, OpenRequest{Rooms: []string{"lobby"}, Resume: &Position{testEpoch, 0}, Sink: sink})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Connect = %v, want the log's ErrUnavailable", err)
	}
	if n := connCount(fx.ns); n != 0 {
		t.Errorf("ConnCount = %d, want 0 after a failed connect", n)
	}
	if rooms := fx.ns.Rooms(ctx); len(rooms) != 0 {
		t.Errorf("Rooms = %v, want none after a failed connect", rooms)
	}
}

func TestResumeWithTokenRestoresRoomsAndDirectMessages(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	c1, s1 := fx.connect(t, "lobby")
	fx.publish(&Message{Event: "e", Rooms: []string{"lobby"}}) // 1
	if got := s1.seqs(); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("first connection got %v, want [1]", got)
	}
	if err := disconnect(c1, true); err != nil {
		t.Fatal(err)
	}
	fx.publish(&Message{Event: "e", Rooms: []string{"lobby"}})                                  // 2: missed, in its room
	fx.publish(&Message{Event: "e", To: c1.ID})                                                 // 3: missed, direct
	fx.publish(&Message{Event: "e", Rooms: []string{"other"}})                                  // 4: not its room
	fx.publish(&Message{Event: "e", Except: []string{"lobby"}})                                 // 5: its room excluded
	fx.publish(&Message{Event: "e", Rooms: []string{"lobby"}, Except: []string{string(c1.ID)}}) // 6: it is excluded
	fx.publish(&Message{Event: "e"})                                                            // 7: namespace-wide

	s2 := &fakeSink{}
	st, err := openOn(fx.ns, ctx, OpenRequest{Resume: &Position{testEpoch, 1}, Token: c1.Token, Sink: s2})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Restored || st.Conn.ID != c1.ID || st.Conn.Token != c1.Token || st.Reset != "" {
		t.Fatalf("Connect = restored %v, id %q, reset %q; want restored %q without reset", st.Restored, st.Conn.ID, st.Reset, c1.ID)
	}
	if got := fx.ns.info(st.Conn).Rooms; !slices.Equal(got, []string{"lobby"}) {
		t.Errorf("restored rooms = %v, want [lobby]", got)
	}
	if err := st.Conn.replay(ctx, st.At.Seq, st.ReplayTo); err != nil {
		t.Fatal(err)
	}
	fx.publish(&Message{Event: "e", Rooms: []string{"lobby"}}) // 8: live during start
	if err := st.Conn.goLive(); err != nil {
		t.Fatal(err)
	}
	fx.publish(&Message{Event: "e", To: c1.ID}) // 9: live direct
	if got, want := s2.seqs(), []uint64{2, 3, 7, 8, 9}; !slices.Equal(got, want) {
		t.Errorf("resumed connection got %v, want %v", got, want)
	}
	// The restore took the saved session; the one left is the restored
	// connection's own live record (saved as it opened).
	if all := fx.sess.all(); len(all) != 1 || !all[0].Live || all[0].ID != c1.ID {
		t.Errorf("sessions %+v, want only the restored connection's live record", all)
	}
}

func TestResumeWithoutTokenReplaysMissedRoomMessages(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	for range 4 {
		fx.publish(&Message{Event: "e", Rooms: []string{"lobby"}})
	}
	sink := &fakeSink{}
	st, err := openOn(fx.ns, ctx, OpenRequest{Rooms: []string{"lobby"}, Resume: &Position{testEpoch, 2}, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	if st.Reset != "" {
		t.Fatalf("Reset = %q; no reset is needed, the messages are in the log", st.Reset)
	}
	if err := st.Conn.replay(ctx, st.At.Seq, st.ReplayTo); err != nil {
		t.Fatal(err)
	}
	if err := st.Conn.goLive(); err != nil {
		t.Fatal(err)
	}
	if got, want := sink.seqs(), []uint64{3, 4}; !slices.Equal(got, want) {
		t.Errorf("resumed room connection got %v, want %v: no reset and a gap is a silent loss", got, want)
	}
}

func TestConnectStealsAttachedConnWithSameToken(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	old, oldSink := fx.connect(t, "a", "b")
	fx.publish(&Message{Event: "e", Rooms: []string{"a"}})
	newSink := &fakeSink{}
	st, err := openOn(fx.ns, ctx, OpenRequest{Resume: &Position{testEpoch, 1}, Token: old.Token, Sink: newSink})
	if err != nil {
		t.Fatal(err)
	}
	c := st.Conn
	if !st.Restored || c.ID != old.ID || c.Token != old.Token || st.Reset != "" {
		t.Fatalf("Connect = restored %v id %q reset %q; want the old id %q restored", st.Restored, c.ID, st.Reset, old.ID)
	}
	if err := oldSink.closeErr(); !errors.Is(err, ErrReplaced) {
		t.Errorf("old sink closed with %v, want ErrReplaced", err)
	}
	if err := old.Err(); !errors.Is(err, ErrReplaced) {
		t.Errorf("old.Err() = %v, want ErrReplaced", err)
	}
	if got := fx.ns.info(c).Rooms; !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("rooms = %v, want [a b]", got)
	}
	if err := c.goLive(); err != nil {
		t.Fatal(err)
	}

	// The old stream's handler ends afterwards: that must not touch the
	// successor that has the same id.
	if err := disconnect(old, true); err != nil {
		t.Fatal(err)
	}
	if n := connCount(fx.ns); n != 1 {
		t.Errorf("ConnCount = %d, want 1", n)
	}
	if got := fx.ns.localConn(old.ID); got != c {
		t.Errorf("localConn(id) = %p; want the successor %p", got, c)
	}
	if got := fx.ns.localByToken(tokenHash(old.Token)); got != c {
		t.Errorf("localByToken(token) = %p; want the successor %p", got, c)
	}
	if members, _ := fx.ns.Members(ctx, "a"); len(members) != 1 {
		t.Errorf("room a has %d members, want 1", len(members))
	}
	// The replaced connection saved nothing at its end: the one record is
	// the successor's live one.
	if all := fx.sess.all(); len(all) != 1 || !all[0].Live || all[0].ID != c.ID {
		t.Errorf("sessions %+v, want only the successor's live record", all)
	}
	fx.publish(&Message{Event: "e", Rooms: []string{"b"}})
	if got, want := newSink.seqs(), []uint64{2}; !slices.Equal(got, want) {
		t.Errorf("successor got %v, want %v", got, want)
	}
	if got, want := oldSink.seqs(), []uint64{1}; !slices.Equal(got, want) {
		t.Errorf("replaced connection got %v, want %v", got, want)
	}
}

func TestDisconnectSavesSessionThatRestoresIDAndRooms(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{RecoveryWindow: time.Minute})
	c1, s1 := fx.connect(t, "a", "b")
	if err := disconnect(c1, true); err != nil {
		t.Fatal(err)
	}
	if err := s1.closeErr(); !errors.Is(err, ErrClosed) {
		t.Errorf("sink closed with %v, want ErrClosed", err)
	}
	if n := connCount(fx.ns); n != 0 {
		t.Errorf("ConnCount = %d after disconnect, want 0", n)
	}
	if rooms := fx.ns.Rooms(ctx); len(rooms) != 0 {
		t.Errorf("Rooms = %v after the only member left, want none", rooms)
	}
	fx.sess.mu.Lock()
	for key, s := range fx.sess.m {
		if strings.Contains(key, c1.Token) {
			t.Errorf("session key %q reveals the token", key)
		}
		if s.ID != c1.ID || s.NS != "test" || len(s.Rooms) != 2 {
			t.Errorf("session = %+v, want id %q, ns test, 2 rooms", s, c1.ID)
		}
	}
	fx.sess.mu.Unlock()
	if n := fx.sess.len(); n != 1 {
		t.Fatalf("%d sessions saved, want 1", n)
	}

	st, err := openOn(fx.ns, ctx, OpenRequest{Token: c1.Token, Rooms: []string{"c"}, Sink: &fakeSink{}})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Restored || st.Conn.ID != c1.ID {
		t.Errorf("Connect = restored %v id %q, want %q restored", st.Restored, st.Conn.ID, c1.ID)
	}
	if got, want := fx.ns.info(st.Conn).Rooms, []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("rooms = %v, want %v (restored plus asked for)", got, want)
	}
}

func TestExpiredSessionIsNotRestored(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{RecoveryWindow: time.Minute})
	token := newID()
	old := ConnID(newID())
	s := Session{NS: "test", ID: old, Rooms: map[string]uint64{"a": 0}, Saved: time.Now().Add(-2 * time.Minute)}
	if err := fx.sess.Save(ctx, sessionKey("test", tokenHash(token)), s); err != nil {
		t.Fatal(err)
	}
	st, err := openOn(fx.ns, ctx, OpenRequest{Token: token, Resume: &Position{testEpoch, 0}, Sink: &fakeSink{}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Restored || st.Conn.ID == old || st.Conn.Token == token {
		t.Errorf("expired session restored: restored %v id %q", st.Restored, st.Conn.ID)
	}
	if st.Reset == "" {
		t.Errorf("Reset is empty; the client lost its rooms and direct messages and must be told")
	}
	if got := fx.ns.info(st.Conn).Rooms; len(got) != 0 {
		t.Errorf("rooms = %v, want none", got)
	}
}

func TestDisconnectNotRecoverableSavesNoSession(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	c, _ := fx.connect(t, "a")
	if all := fx.sess.all(); len(all) != 1 || !all[0].Live {
		t.Fatalf("sessions after the connect %+v, want its live record (saved before connected)", all)
	}
	saves := fx.sess.saves
	if err := disconnect(c, false); err != nil {
		t.Fatal(err)
	}
	if n := fx.sess.saves - saves; n != 0 {
		t.Errorf("%d sessions saved at a replaced connection's end, want 0", n)
	}
	// Twice is harmless and saves nothing either.
	if err := disconnect(c, true); err != nil || fx.sess.saves != saves {
		t.Errorf("second Disconnect = %v with %d saves, want nil and none", err, fx.sess.saves-saves)
	}
}

func TestJoinLeaveAreIdempotent(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	c, _ := fx.connect(t)
	steps := []struct {
		op          string
		room        string
		wantChanged bool
		wantRooms   []string
	}{
		{"join", "a", true, []string{"a"}},
		{"join", "a", false, []string{"a"}},
		{"join", "b", true, []string{"a", "b"}},
		{"leave", "a", true, []string{"b"}},
		{"leave", "a", false, []string{"b"}},
		{"leave", "never", false, []string{"b"}},
		{"leave", "b", true, []string{}},
	}
	for i, s := range steps {
		var changed bool
		var err error
		if s.op == "join" {
			changed, err = join(fx.ns, c, s.room)
		} else {
			changed, err = leave(fx.ns, c, s.room)
		}
		if err != nil || changed != s.wantChanged {
			t.Errorf("step %d %s %s = %v, %v; want %v, nil", i, s.op, s.room, changed, err, s.wantChanged)
		}
		if got := fx.ns.info(c).Rooms; !slices.Equal(got, s.wantRooms) {
			t.Errorf("step %d %s %s: rooms = %v, want %v", i, s.op, s.room, got, s.wantRooms)
		}
	}
	if rooms := fx.ns.Rooms(ctx); len(rooms) != 0 {
		t.Errorf("Rooms = %v, want none once every member left", rooms)
	}
}

func TestJoinLeaveErrors(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{MaxRoomsPerConn: 2})
	c, _ := fx.connect(t, "a", "b")
	if _, err := join(fx.ns, c, "c"); !errors.Is(err, ErrLimit) {
		t.Errorf("Join past MaxRoomsPerConn = %v, want ErrLimit", err)
	}
	if changed, err := join(fx.ns, c, "a"); err != nil || changed {
		t.Errorf("Join of a room already in at the limit = %v, %v; want false, nil", changed, err)
	}
	for _, room := range []string{"", "a b", "a.*", ".x"} {
		if _, err := join(fx.ns, c, room); !errors.Is(err, ErrInvalid) {
			t.Errorf("Join(%q) = %v, want ErrInvalid", room, err)
		}
		if _, err := leave(fx.ns, c, room); !errors.Is(err, ErrInvalid) {
			t.Errorf("Leave(%q) = %v, want ErrInvalid", room, err)
		}
	}
	if _, err := openOn(fx.ns, ctx, OpenRequest{Rooms: []string{"a", "b", "c"}, Sink: &fakeSink{}}); !errors.Is(err, ErrLimit) {
		t.Errorf("Connect with 3 rooms at most 2 = %v, want ErrLimit", err)
	}
	if _, err := openOn(fx.ns, ctx, OpenRequest{Rooms: []string{"a", "b*"}, Sink: &fakeSink{}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Connect with room b* = %v, want ErrInvalid", err)
	}
	if n := connCount(fx.ns); n != 1 {
		t.Errorf("ConnCount = %d, want 1: failed connects register nothing", n)
	}
	if err := disconnect(c, false); err != nil {
		t.Fatal(err)
	}
	if _, err := join(fx.ns, c, "z"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Join after disconnect = %v, want ErrNotFound", err)
	}
	if _, err := leave(fx.ns, c, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Leave after disconnect = %v, want ErrNotFound", err)
	}
}

func TestConnSeesRoomMessagesAfterJoinAndNoneAfterLeave(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	c, sink := fx.connect(t)
	fx.publish(&Message{Event: "e", Rooms: []string{"lobby"}}) // 1: before the join
	if _, err := join(fx.ns, c, "lobby"); err != nil {
		t.Fatal(err)
	}
	fx.publish(&Message{Event: "e", Rooms: []string{"lobby"}}) // 2
	if _, err := leave(fx.ns, c, "lobby"); err != nil {
		t.Fatal(err)
	}
	fx.publish(&Message{Event: "e", Rooms: []string{"lobby"}}) // 3: after the leave
	fx.publish(&Message{Event: "e"})                           // 4: namespace-wide
	if got, want := sink.seqs(), []uint64{2, 4}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if members, _ := fx.ns.Members(ctx, "lobby"); len(members) != 0 {
		t.Errorf("lobby members = %v, want none", members)
	}
}

func TestMembersAndRooms(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	a, _ := fx.connect(t, "x", "y")
	b, _ := fx.connect(t, "y")
	if got, want := fx.ns.Rooms(ctx), []RoomInfo{{"x", 1}, {"y", 2}}; !slices.Equal(got, want) {
		t.Errorf("Rooms() = %v, want %v", got, want)
	}
	members, err := fx.ns.Members(ctx, "y")
	if err != nil {
		t.Fatal(err)
	}
	ids := []ConnID{}
	for _, m := range members {
		ids = append(ids, m.ID)
	}
	if len(ids) != 2 || !slices.Contains(ids, a.ID) || !slices.Contains(ids, b.ID) {
		t.Errorf("Members(y) = %v, want %s and %s", ids, a.ID, b.ID)
	}
	if _, err := fx.ns.Members(ctx, "bad room"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Members(bad room) = %v, want ErrInvalid", err)
	}
}

func TestConnectionByToken(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	c, _ := fx.connect(t, "a")
	if got, err := fx.ns.ConnectionByToken(ctx, c.Token); err != nil || got.ID != c.ID || !slices.Equal(got.Rooms, []string{"a"}) {
		t.Errorf("ConnectionByToken(token) = %+v, %v; want the connection in [a]", got, err)
	}
	for _, tok := range []string{"", "short", string(c.ID), newID()} {
		if _, err := fx.ns.ConnectionByToken(ctx, tok); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("ConnectionByToken(%q) = %v, want ErrUnauthorized", tok, err)
		}
	}
	if c.Token == string(c.ID) {
		t.Errorf("token equals the public id")
	}
}

func TestHubCloseClosesEveryConnection(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	_, s1 := fx.connect(t, "a")
	_, s2 := fx.connect(t)
	fx.hub.Close()
	for i, s := range []*fakeSink{s1, s2} {
		if err := s.closeErr(); !errors.Is(err, ErrClosed) {
			t.Errorf("sink %d closed with %v, want ErrClosed", i, err)
		}
	}
	// A stream opening during the shutdown is refused, not left open.
	if _, err := openOn(fx.ns, ctx, OpenRequest{Rooms: []string{"a"}, Sink: &fakeSink{}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Open after Close = %v, want ErrClosed", err)
	}
}

func TestAddNamespace(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	if _, err := fx.hub.AddNamespace(ctx, "test", NamespaceConfig{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("AddNamespace of an existing name = %v, want ErrInvalid", err)
	}
	for _, name := range []string{"", "a.b", "a b", "*"} {
		if _, err := fx.hub.AddNamespace(ctx, name, NamespaceConfig{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("AddNamespace(%q) = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := fx.hub.Namespace("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Namespace(nope) = %v, want ErrNotFound", err)
	}
	// A namespace whose log already holds messages starts after them: they
	// were never fanned out live.
	fx.log.epoch = "ab"
	for range 7 {
		fx.log.add(&Message{Event: "e"})
	}
	ns, err := fx.hub.AddNamespace(ctx, "alpha", NamespaceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ns.Config(); got.RecoveryWindow != 2*time.Minute || got.MaxRoomsPerConn != 100 || got.HistoryLimit != 1000 ||
		got.Retention != DefaultRetention || got.Group.AckWait != DefaultGroupConfig.AckWait {
		t.Errorf("Config() = %+v, want the defaults", got)
	}
	if got := ns.position(ns.applied.Load()); got != (Position{"ab", 7}) {
		t.Errorf("applied = %v, want ab-7", got)
	}
	if fx.log.follow == nil {
		t.Error("AddNamespace did not follow the namespace's log")
	}
	var names []string
	for _, n := range fx.hub.Namespaces() {
		names = append(names, n.Name())
	}
	if !slices.Equal(names, []string{"alpha", "test"}) {
		t.Errorf("Namespaces() = %v, want [alpha test]", names)
	}
}

func TestHistory(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{HistoryLimit: 50})
	other := ConnID(newID())
	for _, m := range []*Message{
		{Rooms: []string{"lobby"}},          // 1
		{Rooms: []string{"other"}},          // 2
		{},                                  // 3 namespace-wide
		{To: other},                         // 4 direct
		{Rooms: []string{"other", "lobby"}}, // 5
		{Rooms: []string{"lobby"}, Except: []string{"lobby"}}, // 6 excluded
		{Except: []string{string(other)}},                     // 7 namespace-wide except a conn
		{Rooms: []string{"lobby.eu"}},                         // 8 another room
	} {
		m.Event = "e"
		fx.log.add(m)
	}
	p := func(seq uint64) *Position { return &Position{testEpoch, seq} }
	tests := []struct {
		name          string
		after         *Position
		limit         int
		first         uint64 // retention
		want          []uint64
		wantTruncated bool
	}{
		{name: "latest", limit: 10, want: []uint64{1, 3, 5, 7}},
		{name: "latest 2", limit: 2, want: []uint64{5, 7}},
		{name: "latest 1", limit: 1, want: []uint64{7}},
		{name: "after 0", after: p(0), limit: 10, want: []uint64{1, 3, 5, 7}},
		{name: "after 1, limit 2", after: p(1), limit: 2, want: []uint64{3, 5}},
		{name: "after the last", after: p(8), limit: 10, want: nil},
		{name: "after, retention removed some", after: p(1), limit: 10, first: 4, want: []uint64{5, 7}, wantTruncated: true},
		{name: "after, retention removed only older ones", after: p(3), limit: 10, first: 4, want: []uint64{5, 7}},
		{name: "zero limit takes the default", limit: 0, want: []uint64{1, 3, 5, 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx.log.first = max(tt.first, 1)
			page, err := fx.ns.History(ctx, "lobby", tt.after, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			got := []uint64{}
			for _, m := range page.Messages {
				got = append(got, m.Pos.Seq)
			}
			if !slices.Equal(got, append([]uint64{}, tt.want...)) {
				t.Errorf("History = %v, want %v", got, tt.want)
			}
			if page.Truncated != tt.wantTruncated {
				t.Errorf("Truncated = %v, want %v", page.Truncated, tt.wantTruncated)
			}
		})
	}
	fx.log.first = 1
	if _, err := fx.ns.History(ctx, "lobby", &Position{"other", 1}, 10); !errors.Is(err, ErrResumeExpired) {
		t.Errorf("History after a position of another epoch = %v, want ErrResumeExpired", err)
	}
	if _, err := fx.ns.History(ctx, "lob by", nil, 10); !errors.Is(err, ErrInvalid) {
		t.Errorf("History of an invalid room = %v, want ErrInvalid", err)
	}
}

func TestHistoryOfAnEmptyLog(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	page, err := fx.ns.History(ctx, "lobby", nil, 10)
	if err != nil || len(page.Messages) != 0 || page.Truncated {
		t.Errorf("History = %+v, %v; want an empty page", page, err)
	}
}

func TestHistoryLatestFindsOldMessagesOfAQuietRoom(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	fx.log.add(&Message{Event: "e", Rooms: []string{"quiet"}})
	for range 3000 {
		fx.log.add(&Message{Event: "e", Rooms: []string{"busy"}})
	}
	page, err := fx.ns.History(ctx, "quiet", nil, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 1 || page.Messages[0].Pos.Seq != 1 {
		t.Errorf("History(quiet) = %d messages, want message 1 alone", len(page.Messages))
	}
}

func TestHistoryIsWhatAMemberReceivedLive(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	_, sink := fx.connect(t, "lobby")
	x := ConnID(newID())
	shapes := []func() *Message{
		func() *Message { return &Message{Rooms: []string{"lobby"}} },
		func() *Message { return &Message{Rooms: []string{"b"}} },
		func() *Message { return &Message{} },
		func() *Message { return &Message{To: x} },
		func() *Message { return &Message{Rooms: []string{"b", "lobby"}} },
		func() *Message { return &Message{Except: []string{"lobby"}} },
		func() *Message { return &Message{Except: []string{string(x)}} },
		func() *Message { return &Message{Rooms: []string{"lobby"}, Except: []string{"b"}} },
	}
	for i := range 40 {
		m := shapes[i%len(shapes)]()
		m.Event = "e"
		fx.publish(m)
	}
	page, err := fx.ns.History(ctx, "lobby", &Position{testEpoch, 0}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	got := []uint64{}
	for _, m := range page.Messages {
		got = append(got, m.Pos.Seq)
	}
	if want := sink.seqs(); !slices.Equal(got, want) {
		t.Errorf("History(lobby) = %v, a member received %v", got, want)
	}
}

func TestPublishValidation(t *testing.T) {
	long := strings.Repeat("x", MaxNameLen+1)
	tests := []struct {
		name string
		o    Outgoing
	}{
		{"empty event", Outgoing{}},
		{"reserved event connected", Outgoing{Event: "connected"}},
		{"reserved event reset", Outgoing{Event: "reset"}},
		{"reserved event error", Outgoing{Event: "error"}},
		{"event with LF", Outgoing{Event: "a\nb"}},
		{"event with CR", Outgoing{Event: "a\rb"}},
		{"event with NUL", Outgoing{Event: "a\x00"}},
		{"event too long", Outgoing{Event: long}},
		{"bad room", Outgoing{Event: "e", Rooms: []string{"ok", "not ok"}}},
		{"wildcard room", Outgoing{Event: "e", Rooms: []string{"a.>"}}},
		{"room too long", Outgoing{Event: "e", Rooms: []string{long}}},
		{"bad except", Outgoing{Event: "e", Except: []string{"a*"}}},
		{"empty except", Outgoing{Event: "e", Except: []string{""}}},
		{"bad To", Outgoing{Event: "e", To: "short"}},
		{"To with a dot", Outgoing{Event: "e", To: "AAAAAAAAAAAAAAAAAAAAA."}},
		{"invalid JSON data", Outgoing{Event: "e", Data: json.RawMessage(`{"a":`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t, NamespaceConfig{})
			pos, _, err := fx.ns.Publish(ctx, &tt.o)
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Publish = %v, %v; want ErrInvalid", pos, err)
			}
			if n := fx.log.publishedCount(); n != 0 {
				t.Errorf("the log got %d publishes, want 0", n)
			}
		})
	}
}

func TestPublishStoresTheEncodedEnvelope(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	from := ConnID(newID())
	o := &Outgoing{Event: "chat", Data: json.RawMessage(`{"t": "hi"}`), Rooms: []string{"a", "b", "a"}, Except: []string{"x", "x"}, From: from, Key: "k1"}
	pos, dup, err := fx.ns.Publish(ctx, o)
	if err != nil || dup || pos != (Position{testEpoch, 1}) {
		t.Fatalf("Publish = %v, %v, %v; want %s-1, false, nil", pos, dup, err, testEpoch)
	}
	stored := fx.log.published[0]
	if !slices.Equal(stored.Rooms, []string{"a", "b"}) || !slices.Equal(stored.Except, []string{"x"}) {
		t.Errorf("stored rooms %v except %v, want [a b] and [x] (deduplicated)", stored.Rooms, stored.Except)
	}
	var env Envelope
	if err := json.Unmarshal(stored.Body, &env); err != nil {
		t.Fatalf("stored body %s: %v", stored.Body, err)
	}
	if env.NS != "test" || env.Event != "chat" || env.From == nil || *env.From != string(from) ||
		!slices.Equal(env.Rooms, []string{"a", "b"}) || string(env.Data) != `{"t":"hi"}` || env.ID != "" {
		t.Errorf("stored envelope = %+v (body %s)", env, stored.Body)
	}
	pos2, dup, err := fx.ns.Publish(ctx, &Outgoing{Event: "chat", Key: "k1"})
	if err != nil || !dup || pos2 != pos {
		t.Errorf("second Publish with key k1 = %v, %v, %v; want %v, true (the log's dedupe)", pos2, dup, err, pos)
	}
}

func TestPublishWrapsLogErrors(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	fx.log.pubErr = ErrUnavailable
	if _, _, err := fx.ns.Publish(ctx, &Outgoing{Event: "e"}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Publish = %v, want the log's ErrUnavailable", err)
	}
}

func TestConcurrentApplyConnectJoinLeaveIsRaceFree(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	stop := make(chan struct{})
	var recoverable atomic.Int64
	var applier, workers sync.WaitGroup
	applier.Go(func() { // the single Apply goroutine
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			fx.publish(&Message{Event: "e", Rooms: []string{[]string{"a", "b"}[i%2]}})
		}
	})
	for w := range 4 {
		workers.Go(func() {
			for i := range 200 {
				sink := &fakeSink{}
				st, err := openOn(fx.ns, ctx, OpenRequest{Rooms: []string{"a"}, Sink: sink})
				if err != nil {
					t.Error(err)
					return
				}
				_ = st.Conn.goLive()
				_, _ = join(fx.ns, st.Conn, "b")
				_, _ = leave(fx.ns, st.Conn, "a")
				_ = fx.ns.info(st.Conn)
				_ = fx.ns.Rooms(ctx)
				_ = disconnect(st.Conn, (w+i)%2 == 0)
				if !errors.Is(st.Conn.Err(), ErrReplaced) {
					recoverable.Add(1) // a client gone (or cut as slow: the applier floods)
				}
				// Whatever it got arrived in order and without duplicate.
				got := sink.seqs()
				for j := 1; j < len(got); j++ {
					if got[j] <= got[j-1] {
						t.Errorf("connection got %v: out of order or duplicated", got)
						return
					}
				}
			}
		})
	}
	workers.Wait()
	close(stop)
	applier.Wait()
	if n := connCount(fx.ns); n != 0 {
		t.Errorf("ConnCount = %d after every connection left, want 0", n)
	}
	if rooms := fx.ns.Rooms(ctx); len(rooms) != 0 {
		t.Errorf("Rooms = %v after every connection left, want none", rooms)
	}
	kept := 0
	for _, sess := range fx.sess.all() {
		if !sess.Live {
			kept++
			if _, inB := sess.Rooms["b"]; !inB || len(sess.Rooms) != 1 {
				t.Errorf("a saved session %+v, want its last rooms [b]", sess)
			}
		}
	}
	if want := int(recoverable.Load()); kept != want || want < 400 {
		t.Errorf("%d sessions kept at disconnect, want %d (one per recoverable disconnect, at least 400)", kept, want)
	}
}

// TestGoLiveSendsHeldMessagesPastWhatReplaySent: of the live messages held
// during a replay, those the replay already sent are skipped and every one
// after them is still sent — no message is lost at the hand-off.
func TestGoLiveSendsHeldMessagesPastWhatReplaySent(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	for range 2 {
		fx.publish(&Message{Event: "e"})
	}
	sink := &fakeSink{}
	st, err := openOn(fx.ns, ctx, OpenRequest{Resume: &Position{testEpoch, 0}, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	fx.publish(&Message{Event: "e"}) // 3: held, and read by the replay below
	fx.publish(&Message{Event: "e"}) // 4: held, not replayed
	fx.publish(&Message{Event: "e"}) // 5: held, not replayed
	if err := st.Conn.replay(ctx, 0, 3); err != nil {
		t.Fatal(err)
	}
	if err := st.Conn.goLive(); err != nil {
		t.Fatal(err)
	}
	if got, want := sink.seqs(), []uint64{1, 2, 3, 4, 5}; !slices.Equal(got, want) {
		t.Errorf("the sink got %v, want %v: held messages after the replayed one were dropped", got, want)
	}
}

// TestHistoryLatestOfASingleMessage: the latest history of a store holding
// one message is that message.
func TestHistoryLatestOfASingleMessage(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	fx.log.add(&Message{Event: "e", Rooms: []string{"lobby"}})
	for _, after := range []*Position{nil, {testEpoch, 0}} {
		page, err := fx.ns.History(ctx, "lobby", after, 10)
		if err != nil || len(page.Messages) != 1 || page.Messages[0].Pos.Seq != 1 || page.Truncated {
			t.Errorf("History(after %v) = %+v, %v; want message 1 alone", after, page, err)
		}
	}
}
