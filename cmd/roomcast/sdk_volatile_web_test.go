package main

// Browser tests of the SDK's volatile emits (socket.volatile…emit: live
// only, never stored), with the harness of sdk_web_test.go.
//
// Volatile messages of one server reach each connection in the order they
// were published (one core NATS connection and one subscription per
// namespace), so a volatile message published later serves as a marker: once
// it is on a page, an earlier one that was going to arrive has.

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
)

// historyEvents lists the event names of room's history.
func historyEvents(t *testing.T, s *testServer, room string) []string {
	t.Helper()
	code, body, _ := s.do(t, http.MethodGet, "/ns/default/rooms/"+room+"/messages?limit=1000", nil, "")
	if code != http.StatusOK {
		t.Fatalf("history of %s: %d %v", room, code, body)
	}
	msgs, _ := body["messages"].([]any)
	var events []string
	for _, m := range msgs {
		e, _ := m.(map[string]any)["event"].(string)
		events = append(events, e)
	}
	return events
}

// volatileRecord is what the harness recorded of one message.
type volatileRecord struct {
	N    int
	ID   *string
	From string
	Room string
	V    bool
}

func (tb *tab) records(name, event string) []volatileRecord {
	tb.t.Helper()
	var r []volatileRecord
	tb.eval(fmt.Sprintf(`(got[%s] || {})[%s] || []`, js(name), js(event)), &r)
	return r
}

const volatile204 = `roomcast_http_requests_total{code=204,method=POST,route=/ns/default/rooms/{room}/messages}`

// TestSDKVolatile: two people with sockets of their own. A volatile
// broadcast reaches the other and not the sender, as an envelope with
// volatile: true and no id, and leaves lastEventId where it was; every
// shape of volatile emit (to, broadcast, direct, namespace-wide) arrives
// once; none is in the history or in the replay of a socket resuming from a
// stored position; a volatile emit with an idempotency id throws, one to a
// bad room rejects. The server restarts: an emit made while the socket is
// down resolves false and is never sent (the new server answers no 204 but
// the marker's, and nobody gets it), and nothing volatile is replayed by
// the resume.
func TestSDKVolatile(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	s1 := startServerData(t, dir, "--addr", addr)
	logsOnFailure(t, s1)
	b := newBrowser(t)
	alice, bob := sdkPage(b, s1, "alice", nil), sdkPage(b, s1, "bob", nil)
	for _, p := range []*tab{alice, bob} {
		p.run(`open1("s", "/ns/default", {rooms: ["lobby"], shared: false}, ["m", "typing"])`)
		p.wait("connected", `s.connected`)
	}
	aliceID, bobID := alice.evalString(`s.id`), bob.evalString(`s.id`)
	// A stored message first: both streams are live, and lastEventId has a
	// position.
	first := pubN(t, s1, "/ns/default/rooms/lobby/messages", "m", 0)
	alice.waitNs("s", "m", []int{0})
	bob.waitNs("s", "m", []int{0})
	bobLast := bob.evalString(`s.lastEventId`)
	if bobLast == "" {
		t.Fatalf("bob's lastEventId is empty after a stored message")
	}

	sent := func(p *tab, expr string) {
		t.Helper()
		var ok bool
		p.await(expr, &ok)
		if !ok {
			t.Fatalf("%s: %s resolved false (dropped), want true (sent)", p.name, expr)
		}
	}
	sent(alice, `s.volatile.broadcast.to("lobby").emit("typing", {n: 1})`)
	sent(bob, `s.volatile.to("lobby").emit("typing", {n: 2})`) // to everyone: a marker
	bob.waitNs("s", "typing", []int{1, 2})
	alice.waitNs("s", "typing", []int{2}) // not her own broadcast
	got := bob.records("s", "typing")[0]
	if got.ID != nil || !got.V || got.From != aliceID || got.Room != "lobby" {
		t.Errorf("bob got %+v, want a volatile envelope without id, from %s, room lobby", got, aliceID)
	}
	if last := bob.evalString(`s.lastEventId`); last != bobLast {
		t.Errorf("bob's lastEventId %q after volatile messages, want %q (unchanged)", last, bobLast)
	}

	// The other shapes, each once.
	sent(alice, `s.broadcast.volatile.emit("typing", {n: 3})`)
	sent(alice, fmt.Sprintf(`s.volatile.direct(%s).emit("typing", {n: 4})`, js(bobID)))
	sent(alice, fmt.Sprintf(`s.direct(%s).volatile.emit("typing", {n: 5})`, js(bobID)))
	sent(alice, `s.to("lobby").volatile.emit("typing", {n: 6})`)
	bob.waitNs("s", "typing", seq(1, 7))
	alice.waitNs("s", "typing", []int{2, 6})

	// Never stored: not in the history, not replayed from a stored position
	// (the replay is in publish order: a volatile message stored would come
	// before message 1).
	if ev := historyEvents(t, s1, "lobby"); !slices.Equal(ev, []string{"m"}) {
		t.Errorf("lobby's history holds %q, want the stored message alone", ev)
	}
	alice.run(fmt.Sprintf(`open1("c", "/ns/default", {rooms: ["lobby"], lastEventId: %s}, ["m", "typing"])`, js(first)))
	alice.wait("c connected", `c.connected && c.role === "own"`)
	pubN(t, s1, "/ns/default/rooms/lobby/messages", "m", 1)
	alice.waitNs("c", "m", []int{1})
	if n := alice.evalInts(`ns("c", "typing")`); len(n) != 0 {
		t.Errorf("a socket resumed from before the volatile messages got %v of them", n)
	}
	alice.run(`c.disconnect()`)

	// Misuse: an idempotency id throws at once; a bad room rejects.
	if got := alice.evalString(`(() => { try { s.volatile.emit("typing", 1, {id: "k"}); return "no error"; } catch (e) { return e.name; } })()`); got != "TypeError" {
		t.Errorf("a volatile emit with an id: %s, want a TypeError", got)
	}
	var problem struct {
		Status int
		Name   string
	}
	alice.await(`s.volatile.to("bad room").emit("typing", 1).then((r) => ({name: String(r)}), (e) => ({status: e.status, name: e.name}))`, &problem)
	if problem.Status != 400 || problem.Name != "ApiError" {
		t.Errorf("a volatile emit to a bad room: %+v, want an ApiError 400", problem)
	}

	// Offline: dropped at once, never sent later.
	s1.Stop()
	alice.wait("reconnecting", `s.state === "reconnecting"`)
	var dropped bool
	alice.await(`s.volatile.to("lobby").emit("typing", {n: 7})`, &dropped)
	if dropped {
		t.Errorf("a volatile emit while offline resolved true, want false (dropped)")
	}
	s2 := startServerData(t, dir, "--addr", addr)
	logsOnFailure(t, s2)
	for _, p := range []*tab{alice, bob} {
		p.wait("connected again, restored", `s.connected && count("s", "connect") === 2 && s.info.restored`)
	}
	pubN(t, s2, "/ns/default/rooms/lobby/messages", "m", 2)
	alice.waitNs("s", "m", []int{0, 1, 2})
	bob.waitNs("s", "m", []int{0, 1, 2})
	sent(bob, `s.volatile.to("lobby").emit("typing", {n: 8})`)
	// Nothing volatile was replayed by the resume, and the offline emit
	// never came.
	alice.waitNs("s", "typing", []int{2, 6, 8})
	bob.waitNs("s", "typing", append(seq(1, 7), 8))
	alice.never("the emit dropped offline", time.Second, `ns("s", "typing").includes(7)`)
	if n := scrape(t, s2)[volatile204]; n != 1 {
		t.Errorf("the restarted server answered %v volatile publishes to a room, want 1 (the marker): the offline emit was sent", n)
	}
	if ev := historyEvents(t, s2, "lobby"); !slices.Equal(ev, []string{"m", "m", "m"}) {
		t.Errorf("lobby's history holds %q, want the three stored messages", ev)
	}
}

// TestSDKVolatileSharedTabs: two tabs of one browser profile share one
// connection, a third person has their own. A volatile broadcast from
// either tab (follower or leader) reaches the sibling tab once (relayed by
// the sender) and the other person once, not the sender; a volatile
// message from the other person reaches both tabs once (through the
// leader); a namespace-wide one from a tab reaches all three once. None
// moves a tab's lastEventId or is stored.
func TestSDKVolatileSharedTabs(t *testing.T) {
	s := startServer(t)
	logsOnFailure(t, s)
	b := newBrowser(t)
	anchor := b.tab("profile") // holds the browser profile; stays blank
	one, two := sdkPage(b, s, "tab-1", anchor), sdkPage(b, s, "tab-2", anchor)
	bob := sdkPage(b, s, "bob", nil)
	for _, p := range []*tab{one, two} {
		p.run(`open1("s", "/ns/default", {rooms: ["lobby"]}, ["m", "typing"])`)
	}
	bob.run(`open1("s", "/ns/default", {rooms: ["lobby"], shared: false}, ["m", "typing"])`)
	for _, p := range []*tab{one, two, bob} {
		p.wait("connected", `s.connected`)
	}
	if got := scrape(t, s)["roomcast_sse_streams"]; got != 2 {
		t.Fatalf("%v SSE streams for two tabs sharing one connection and a third page, want 2", got)
	}
	leader, follower := one, two
	if one.evalString(`s.role`) != "leader" {
		leader, follower = two, one
	}
	if r := follower.evalString(`s.role`); r != "follower" || leader.evalString(`s.role`) != "leader" {
		t.Fatalf("roles %s and %s, want a leader and a follower", leader.evalString(`s.role`), r)
	}
	shared := leader.evalString(`s.id`)
	pubN(t, s, "/ns/default/rooms/lobby/messages", "m", 0) // every stream live
	for _, p := range []*tab{one, two, bob} {
		p.waitNs("s", "m", []int{0})
	}
	lasts := map[*tab]string{leader: leader.evalString(`s.lastEventId`), follower: follower.evalString(`s.lastEventId`)}

	sent := func(p *tab, expr string) {
		t.Helper()
		var ok bool
		p.await(expr, &ok)
		if !ok {
			t.Fatalf("%s: %s resolved false (dropped), want true (sent)", p.name, expr)
		}
	}
	// From the follower: the leader gets it from the follower's relay.
	sent(follower, `s.volatile.broadcast.to("lobby").emit("typing", {n: 1})`)
	leader.waitNs("s", "typing", []int{1})
	bob.waitNs("s", "typing", []int{1})
	// From the leader: the follower gets it from the leader's relay.
	sent(leader, `s.broadcast.volatile.to("lobby").emit("typing", {n: 2})`)
	follower.waitNs("s", "typing", []int{2})
	bob.waitNs("s", "typing", []int{1, 2})
	for _, p := range []*tab{leader, follower} {
		r := p.records("s", "typing")[0]
		if r.ID != nil || !r.V || r.From != shared || r.Room != "lobby" {
			t.Errorf("%s got the sibling's broadcast as %+v, want a volatile envelope without id, from %s, room lobby", p.name, r, shared)
		}
	}
	// From bob: the stream, relayed by the leader.
	sent(bob, `s.volatile.to("lobby").emit("typing", {n: 3})`)
	leader.waitNs("s", "typing", []int{1, 3})
	follower.waitNs("s", "typing", []int{2, 3})
	// Namespace-wide from the follower, itself included.
	sent(follower, `s.volatile.emit("typing", {n: 4})`)
	leader.waitNs("s", "typing", []int{1, 3, 4})
	follower.waitNs("s", "typing", []int{2, 3, 4})
	bob.waitNs("s", "typing", []int{1, 2, 3, 4})
	for p, n := range map[*tab]int{leader: 3, follower: 3, bob: 4} {
		p.never("a volatile message twice", time.Second, fmt.Sprintf(`ns("s", "typing").length > %d`, n))
	}
	for p, want := range lasts {
		if got := p.evalString(`s.lastEventId`); got != want {
			t.Errorf("%s: lastEventId %q after volatile messages, want %q (unchanged)", p.name, got, want)
		}
	}
	if ev := historyEvents(t, s, "lobby"); !slices.Equal(ev, []string{"m"}) {
		t.Errorf("lobby's history holds %q, want the stored message alone", ev)
	}
}
