package main

// Browser tests of the SDK (clients/js/roomcast.js, served at
// /sdk/roomcast.js): the real program on loopback, Debian's chromium
// driving pages of the server's origin that import the SDK, as an
// application would. Helpers (browser, tab, wait, eventually) come from
// web_test.go and harness_test.go.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
)

// sdkHarness is evaluated in each test page: it imports the SDK and
// records what sockets and groups receive, for the test to read.
//
//	open(name, url, opts, events) connects window[name] and records, per
//	  event, got[name][event] = [{n, id, from, room, rooms, v}] of messages (v:
//	  the envelope says volatile) and
//	  states[name] = [[event, detail]] of connection events.
const sdkHarness = `window.rcReady = import("/sdk/roomcast.js").then((m) => {
  window.rc = m;
  window.got = {};
  window.states = {};
  window.rec = (name, event) => (d, env) => {
    ((got[name] ||= {})[event] ||= []).push({n: d && d.n, id: env.id, from: env.from, room: env.room, rooms: env.rooms || null, v: env.volatile === true});
  };
  window.open1 = (name, url, opts, events) => {
    const s = m.connect(url, opts);
    window[name] = s;
    states[name] = [];
    for (const e of events) s.on(e, rec(name, e));
    for (const e of ["connect", "disconnect", "reconnecting", "reset", "error"]) {
      s.on(e, (x) => states[name].push([e, x && typeof x === "object" ? (x.reason || x.id || String(x.attempt ?? x.status ?? "")) : String(x)]));
    }
    return true;
  };
  window.ns = (name, event) => ((got[name] || {})[event] || []).map((x) => x.n);
  window.count = (name, e) => (states[name] || []).filter((x) => x[0] === e).length;
  return true;
});`

// sdkPage opens a page of s's origin (the landing page, which opens no
// connection) with the harness loaded. of, when set, makes it another tab
// of of's browser profile.
func sdkPage(b *browser, s *testServer, name string, of *tab) *tab {
	b.t.Helper()
	var tb *tab
	if of != nil {
		tb = b.sibling(of, name)
	} else {
		tb = b.tab(name)
	}
	tb.do(chromedp.Navigate(s.URL + "/"))
	tb.await(sdkHarness+"; rcReady", new(bool))
	return tb
}

// await evaluates expr, waits for its promise, and decodes the value.
func (tb *tab) await(expr string, out any) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, webTimeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("%s: evaluate %s: %v", tb.name, expr, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			tb.t.Fatalf("%s: evaluate %s: decode %s: %v", tb.name, expr, raw, err)
		}
	}
}

// run evaluates statements (globals set through window).
func (tb *tab) run(code string) {
	tb.t.Helper()
	var ignored any
	tb.eval("(function () {\n"+code+"\n})(), true", &ignored)
}

func (tb *tab) evalString(expr string) string {
	tb.t.Helper()
	var s string
	tb.eval(expr, &s)
	return s
}

func (tb *tab) evalInts(expr string) []int {
	tb.t.Helper()
	var n []int
	tb.eval(expr, &n)
	return n
}

// waitNs waits until socket name's handler of event got want (message n
// values, in order), and fails if it got anything else.
func (tb *tab) waitNs(name, event string, want []int) {
	tb.t.Helper()
	w, _ := json.Marshal(want)
	expr := fmt.Sprintf(`ns(%s, %s)`, js(name), js(event))
	tb.wait(fmt.Sprintf("%s got %s %v", name, event, want), fmt.Sprintf(`JSON.stringify(%[1]s) === %[2]s || %[1]s.length > %[3]d`, expr, js(string(w)), len(want)))
	if got := tb.evalInts(expr); !slices.Equal(got, want) {
		tb.t.Fatalf("%s: %s got %s %v, want %v", tb.name, name, event, got, want)
	}
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func pubN(t *testing.T, s *testServer, path, event string, n int) string {
	t.Helper()
	return s.publish(t, path, map[string]any{"event": event, "data": map[string]int{"n": n}}, "")
}

// historyCount counts the messages of room whose data.n is n.
func historyCount(t *testing.T, s *testServer, room string, n int) int {
	t.Helper()
	_, body, _ := s.do(t, http.MethodGet, "/ns/default/rooms/"+room+"/messages?limit=1000", nil, "")
	msgs, _ := body["messages"].([]any)
	c := 0
	for _, m := range msgs {
		d, _ := m.(map[string]any)["data"].(map[string]any)
		if d != nil && d["n"] == float64(n) {
			c++
		}
	}
	return c
}

// TestSDKServed: the SDK is served at its stable path, byte for byte the
// package's file, revalidated by ETag.
func TestSDKServed(t *testing.T) {
	s := startServer(t)
	want, err := os.ReadFile(filepath.Join("..", "..", "clients", "js", "roomcast.js"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Get(s.URL + "/sdk/roomcast.js")
	if err != nil {
		t.Fatal(err)
	}
	body := new(strings.Builder)
	_, _ = fmt.Fprint(body, readAll(t, res))
	if res.StatusCode != 200 || body.String() != string(want) {
		t.Fatalf("GET /sdk/roomcast.js: %d, %d bytes; want 200 and clients/js/roomcast.js (%d bytes)", res.StatusCode, body.Len(), len(want))
	}
	h := res.Header
	if h.Get("Content-Type") != "text/javascript; charset=utf-8" || h.Get("Cache-Control") != "no-cache" || h.Get("ETag") == "" || h.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("headers %v: want a JavaScript type, no-cache, an ETag and CORS for everyone", h)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/sdk/roomcast.js", nil)
	req.Header.Set("If-None-Match", h.Get("ETag"))
	res2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, res2); res2.StatusCode != http.StatusNotModified || b != "" {
		t.Errorf("revalidation: %d with %d bytes, want 304 without a body", res2.StatusCode, len(b))
	}
}

func readAll(t *testing.T, res *http.Response) string {
	t.Helper()
	defer res.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

// TestSDKEmitRoomsAndDirect: two people (own browsers), each with a socket:
// emit reaches the namespace, to(room) the room, broadcast everyone but the
// sender, direct one connection; join and leave change what arrives; off
// removes a handler; an idempotency key stores an emit once.
func TestSDKEmitRoomsAndDirect(t *testing.T) {
	s := startServer(t)
	logsOnFailure(t, s)
	b := newBrowser(t)
	alice, bob := sdkPage(b, s, "alice", nil), sdkPage(b, s, "bob", nil)
	for _, p := range []*tab{alice, bob} {
		p.run(fmt.Sprintf(`open1("s", "/ns/default", {rooms: ["lobby"], shared: false}, ["m", "dm"])`))
		p.wait("connected", `s.connected && s.role === "own"`)
	}
	aliceID, bobID := alice.evalString(`s.id`), bob.evalString(`s.id`)
	if aliceID == bobID || len(aliceID) != 22 {
		t.Fatalf("ids %q and %q", aliceID, bobID)
	}

	// emit: the whole namespace, the sender included.
	var res struct {
		ID        string
		Duplicate bool
	}
	alice.await(`s.emit("m", {n: 0})`, &res)
	if res.ID == "" {
		t.Fatalf("emit answered %+v", res)
	}
	// to(room): the room, the sender included.
	bob.await(`s.to("lobby").emit("m", {n: 1})`, &res)
	// broadcast: everyone but the sender.
	alice.await(`s.broadcast.to("lobby").emit("m", {n: 2})`, &res)
	bob.await(`s.broadcast.emit("m", {n: 3})`, &res)
	pubN(t, s, "/ns/default/rooms/lobby/messages", "m", 4) // a marker
	alice.waitNs("s", "m", []int{0, 1, 3, 4})
	bob.waitNs("s", "m", []int{0, 1, 2, 4})
	var from []string
	bob.eval(`got.s.m.map((x) => x.from)`, &from)
	if want := []string{aliceID, bobID, aliceID, ""}; !slices.Equal(from, want) {
		t.Errorf("bob's messages from %q, want %q", from, want)
	}

	// join: bob is in dev on the server and gets dev's messages; leave: he
	// is not, and does not.
	bob.await(`s.join("dev").then(() => true)`, new(bool))
	if n := roomMembers(t, s, "dev"); n != 1 {
		t.Fatalf("dev has %d members after bob's join, want 1", n)
	}
	alice.await(`s.to("dev").emit("m", {n: 5}).then(() => true)`, new(bool))
	bob.waitNs("s", "m", []int{0, 1, 2, 4, 5})
	bob.await(`s.leave("dev").then(() => true)`, new(bool))
	if n := roomMembers(t, s, "dev"); n != 0 {
		t.Fatalf("dev has %d members after bob's leave, want 0", n)
	}
	alice.await(`s.to("dev").emit("m", {n: 6}).then(() => true)`, new(bool))
	// Several rooms at once: one copy per connection.
	alice.await(`s.to("dev").to("lobby").emit("m", {n: 7}).then(() => true)`, new(bool))
	bob.waitNs("s", "m", []int{0, 1, 2, 4, 5, 7})
	var rooms []string
	bob.eval(`got.s.m.at(-1).rooms`, &rooms)
	if !slices.Equal(rooms, []string{"dev", "lobby"}) {
		t.Errorf("the multi-room message's rooms: %v", rooms)
	}

	// direct: one connection.
	alice.await(fmt.Sprintf(`s.direct(%s).emit("dm", {n: 8}).then(() => true)`, js(bobID)), new(bool))
	bob.waitNs("s", "dm", []int{8})

	// off: no handler, no call.
	bob.run(`s.off("m")`)
	alice.await(`s.emit("m", {n: 9}).then(() => true)`, new(bool))
	alice.waitNs("s", "m", []int{0, 1, 3, 4, 7, 9}) // not in dev: neither 5 nor 6
	bob.await(`s.direct(s.id).emit("dm", {n: 10}).then(() => true)`, new(bool))
	bob.waitNs("s", "dm", []int{8, 10})
	if got := bob.evalInts(`ns("s", "m")`); len(got) != 6 {
		t.Errorf("bob got %v after off", got)
	}

	// The idempotency key: a repeated emit is stored once.
	var first, again struct {
		ID        string
		Duplicate bool
	}
	alice.await(`s.to("lobby").emit("m", {n: 11}, {id: "k-11"})`, &first)
	alice.await(`s.to("lobby").emit("m", {n: 11}, {id: "k-11"})`, &again)
	if first.ID == "" || again.ID != first.ID || first.Duplicate || !again.Duplicate {
		t.Errorf("emits with one key answered %+v then %+v", first, again)
	}
	if n := historyCount(t, s, "lobby", 11); n != 1 {
		t.Errorf("the keyed emit is %d times in history, want once", n)
	}

	// A refused emit rejects with the server's problem.
	var problem struct {
		Status int
		Name   string
	}
	alice.await(`s.to("bad room").emit("m", 1).then(() => ({}), (e) => ({status: e.status, name: e.name}))`, &problem)
	if problem.Status != 400 || problem.Name != "ApiError" {
		t.Errorf("emit to a bad room: %+v, want an ApiError 400", problem)
	}

	// disconnect ends a connection of its own on the server; connect opens
	// a new one, in the same rooms.
	bob.run(`s.disconnect()`)
	bob.wait("disconnected", `s.state === "disconnected" && count("s", "disconnect") === 1 && states.s.at(-1)[1] === "io client disconnect"`)
	eventually(t, webTimeout, "bob's connection gone", func() bool { return roomMembers(t, s, "lobby") == 1 })
	bob.run(`s.connect()`)
	bob.wait("connected again", `s.connected && count("s", "connect") === 2`)
	if id := bob.evalString(`s.id`); id == bobID {
		t.Errorf("after disconnect and connect: the same id %s, want a new connection", id)
	}
	if n := roomMembers(t, s, "lobby"); n != 2 {
		t.Errorf("lobby has %d members after bob's connect, want 2", n)
	}
}

// TestSDKSharedConnection: eight tabs of one browser profile share one
// connection (one SSE stream on the server) and each gets every message
// once, in order; rooms are per tab; a broadcast from one tab reaches the
// others; when the leader tab closes, another takes over and resumes with
// no gap and no duplicate, while messages keep coming.
func TestSDKSharedConnection(t *testing.T) {
	s := startServer(t)
	logsOnFailure(t, s)
	b := newBrowser(t)
	anchor := b.tab("profile") // holds the browser profile; stays blank
	const n = 8
	tabs := make([]*tab, n)
	for i := range tabs {
		tabs[i] = sdkPage(b, s, fmt.Sprintf("tab-%d", i), anchor)
		tabs[i].run(`open1("s", "/ns/default", {rooms: ["lobby"]}, ["m"])`)
	}
	for _, tb := range tabs {
		tb.wait("connected", `s.connected`)
	}
	streams := func() float64 { return scrape(t, s)["roomcast_sse_streams"] }
	if got := streams(); got != 1 {
		t.Fatalf("%v SSE streams on the server for %d tabs, want 1", got, n)
	}
	leaders := 0
	id := tabs[0].evalString(`s.id`)
	for _, tb := range tabs {
		if tb.evalString(`s.role`) == "leader" {
			leaders++
		}
		if got := tb.evalString(`s.id`); got != id {
			t.Errorf("%s: socket id %s, want the shared %s", tb.name, got, id)
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders, want 1", leaders)
	}

	// Every tab gets every message, once, in order.
	for i := 0; i < 20; i++ {
		pubN(t, s, "/ns/default/rooms/lobby/messages", "m", i)
	}
	for _, tb := range tabs {
		tb.waitNs("s", "m", seq(0, 20))
	}

	// Rooms are per tab: tab 1 joins dev, the connection is in dev once;
	// only tab 1 gets dev's messages; when tab 1 leaves, the connection
	// leaves.
	tabs[1].await(`s.join("dev").then(() => true)`, new(bool))
	if got := roomMembers(t, s, "dev"); got != 1 {
		t.Fatalf("dev has %d members, want 1 (the shared connection)", got)
	}
	pubN(t, s, "/ns/default/rooms/dev/messages", "m", 100)
	pubN(t, s, "/ns/default/rooms/lobby/messages", "m", 20)
	tabs[1].waitNs("s", "m", append(seq(0, 20), 100, 20))
	for _, tb := range []*tab{tabs[0], tabs[2], tabs[7]} {
		tb.waitNs("s", "m", seq(0, 21))
	}
	tabs[2].await(`s.join("dev").then(() => true)`, new(bool))
	tabs[1].await(`s.leave("dev").then(() => true)`, new(bool))
	if got := roomMembers(t, s, "dev"); got != 1 {
		t.Fatalf("dev has %d members while tab 2 is in it, want 1", got)
	}
	tabs[2].await(`s.leave("dev").then(() => true)`, new(bool))
	if got := roomMembers(t, s, "dev"); got != 0 {
		t.Fatalf("dev has %d members after both tabs left, want 0", got)
	}

	// A broadcast from a tab skips that tab only: the server skips the
	// shared connection, the tab relays it to its siblings.
	tabs[3].await(`s.broadcast.to("lobby").emit("m", {n: 21}).then(() => true)`, new(bool))
	pubN(t, s, "/ns/default/rooms/lobby/messages", "m", 22)
	for i, tb := range tabs {
		want := append(seq(0, 21), 21, 22)
		switch i {
		case 1:
			want = append(seq(0, 20), 100, 20, 21, 22)
		case 3:
			want = append(seq(0, 21), 22)
		}
		tb.waitNs("s", "m", want)
	}

	// The leader closes while messages are published: another tab takes
	// over and resumes where the relay stopped.
	var leader *tab
	var rest []*tab
	for _, tb := range tabs {
		if leader == nil && tb.evalString(`s.role`) == "leader" {
			leader = tb
		} else {
			rest = append(rest, tb)
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 23; i < 63; i++ {
			pubN(t, s, "/ns/default/rooms/lobby/messages", "m", i)
			time.Sleep(20 * time.Millisecond) // a steady stream across the takeover, bounded (40 messages)
		}
	}()
	leader.close()
	wg.Wait()
	pubN(t, s, "/ns/default/rooms/lobby/messages", "m", 63)
	for _, tb := range rest {
		want := append(seq(0, 21), 21)
		if tb == tabs[1] {
			want = append(seq(0, 20), 100, 20, 21)
		}
		if tb == tabs[3] {
			want = seq(0, 21)
		}
		tb.waitNs("s", "m", append(want, seq(22, 64)...))
	}
	leaders = 0
	for _, tb := range rest {
		if tb.evalString(`s.role`) == "leader" {
			leaders++
		}
		if got := tb.evalString(`s.id`); got != id {
			t.Errorf("%s: socket id %s after the takeover, want %s (restored)", tb.name, got, id)
		}
	}
	if leaders != 1 {
		t.Errorf("%d leaders after the takeover, want 1", leaders)
	}
	eventually(t, webTimeout, "one stream again", func() bool { return streams() == 1 })
	if got := roomMembers(t, s, "lobby"); got != 1 {
		t.Errorf("lobby has %d members, want 1 (the shared connection)", got)
	}
}

// mintFor signs a JWT of the "secure" namespace (startSecure) valid for d.
func mintFor(t *testing.T, user string, g grants, d time.Duration) string {
	t.Helper()
	return mint(t, user, g, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(d).Unix() })
}

// TestSDKOutboxResumeAndReset: the server stops and comes back on the same
// address; the socket reports disconnect and reconnecting, an emit made
// while it was down waits in the outbox and is stored once when back, the
// connection is restored (same id) and the missed message replayed. A
// socket opened from a stored position gets what followed it; one opened
// from a position the server cannot honour gets `reset`.
func TestSDKOutboxResumeAndReset(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	s1 := startServerData(t, dir, "--addr", addr)
	b := newBrowser(t)
	p := sdkPage(b, s1, "alice", nil)
	p.run(`open1("s", "/ns/default", {rooms: ["lobby"]}, ["m"])`)
	p.wait("connected", `s.connected && s.role === "leader"`)
	id := p.evalString(`s.id`)
	first := pubN(t, s1, "/ns/default/rooms/lobby/messages", "m", 0)
	p.waitNs("s", "m", []int{0})

	s1.Stop()
	p.wait("disconnect, then reconnecting", `count("s", "disconnect") === 1 && count("s", "reconnecting") >= 1 && s.state === "reconnecting" && !s.connected`)
	if got := p.evalString(`states.s.find((e) => e[0] === "disconnect")[1]`); got != "server shutdown" {
		t.Errorf("disconnect reason %q, want server shutdown (the server's end event)", got)
	}
	p.run(`window.offline = s.to("lobby").emit("m", {n: 1}).then((r) => (window.offlineRes = r));
		s.join("dev").then(() => (window.devJoined = true));
		s.on("connect", (info) => (window.atConnect = info.rooms.slice()))`)

	s2 := startServerData(t, dir, "--addr", addr)
	// Published while the page is still away (it retries every 2 s): it
	// comes from the replay.
	pubN(t, s2, "/ns/default/rooms/lobby/messages", "m", 2)
	p.wait("connected again", `s.connected && count("s", "connect") === 2`)
	p.wait("the offline emit stored", `window.offlineRes !== undefined`)
	pubN(t, s2, "/ns/default/rooms/lobby/messages", "m", 3) // a marker
	p.wait("the marker", `ns("s", "m").includes(3)`)
	got := p.evalInts(`ns("s", "m")`)
	sorted := slices.Clone(got)
	slices.Sort(sorted)
	if !slices.Equal(sorted, []int{0, 1, 2, 3}) || got[0] != 0 || got[3] != 3 {
		t.Errorf("got %v, want 0, then 1 and 2 (either order), then 3, each once", got)
	}
	if n := historyCount(t, s2, "lobby", 1); n != 1 {
		t.Errorf("the emit made offline is %d times in history, want once", n)
	}
	// A room joined offline is in when `connect` fires.
	var atConnect []string
	p.eval(`window.atConnect`, &atConnect)
	if !slices.Equal(atConnect, []string{"dev", "lobby"}) && !slices.Equal(atConnect, []string{"lobby", "dev"}) {
		t.Errorf("rooms at connect %v, want lobby and dev (joined while offline)", atConnect)
	}
	p.wait("the offline join resolved", `window.devJoined === true`)
	if n := roomMembers(t, s2, "dev"); n != 1 {
		t.Errorf("dev has %d members, want 1", n)
	}
	var restored bool
	p.eval(`s.info.restored`, &restored)
	if after := p.evalString(`s.id`); after != id || !restored {
		t.Errorf("after the restart: id %s restored %v, want %s restored", after, restored, id)
	}

	// A stored position (without the token) resumes a fresh connection
	// after it: the messages that followed, none before.
	p.run(fmt.Sprintf(`open1("v", "/ns/default", {rooms: ["lobby"], lastEventId: %s}, ["m"])`, js(first)))
	p.wait("v connected", `v.connected && v.role === "own"`)
	p.wait("v's replay", `ns("v", "m").length >= 3`)
	if got := p.evalInts(`ns("v", "m")`); len(got) != 3 || got[0] == 0 || got[2] != 3 {
		t.Errorf("resumed after message 0: got %v, want 1 and 2 (either order) then 3", got)
	}

	// A position the server cannot honour: reset, then live.
	p.run(`open1("r", "/ns/default", {rooms: ["lobby"], lastEventId: "deadbeef-1"}, ["m"])`)
	p.wait("reset", `count("r", "reset") === 1 && r.connected`)
	var reason string
	p.eval(`states.r.find((x) => x[0] === "reset")[1]`, &reason)
	if !strings.Contains(reason, "recreated") {
		t.Errorf("reset reason %q", reason)
	}
	pubN(t, s2, "/ns/default/rooms/lobby/messages", "m", 4)
	p.waitNs("r", "m", []int{4})
}

// TestSDKTicketsInLockedNamespace: in a JWT namespace the socket opens its
// stream with a ticket; when the JWT expires the server ends the stream,
// and the SDK takes a fresh JWT from the token function, a new ticket, and
// resumes the same connection with last_event_id: what was published
// meanwhile arrives, once.
func TestSDKTicketsInLockedNamespace(t *testing.T) {
	s := startSecure(t)
	logsOnFailure(t, s)
	g := grants{"subscribe": []string{"chat"}, "publish": []string{"chat"}, "join": []string{"chat"}}
	b := newBrowser(t)
	p := sdkPage(b, s, "alice", nil)
	// Minted once the page is up: the first stream opens well within the
	// short one's life.
	short, long := mintFor(t, "alice", g, 4*time.Second), mintFor(t, "alice", g, time.Hour)
	p.run(fmt.Sprintf(`window.tokens = [%s, %s], window.calls = 0,
		open1("s", "/ns/secure", {rooms: ["chat"], shared: false, token: () => tokens[Math.min(window.calls++, 1)]}, ["m"])`, js(short), js(long)))
	p.wait("connected", `s.connected`)
	id := p.evalString(`s.id`)
	publish := func(n int) {
		t.Helper()
		if code, body, _ := s.do(t, http.MethodPost, "/ns/secure/rooms/chat/messages", map[string]any{"event": "m", "data": map[string]int{"n": n}}, secAPIKey); code != http.StatusAccepted {
			t.Fatalf("publish %d: %d %v", n, code, body)
		}
	}
	publish(0)
	p.waitNs("s", "m", []int{0})

	p.wait("the stream ended by the JWT's expiry", `count("s", "disconnect") === 1`)
	if got := p.evalString(`states.s.find((e) => e[0] === "disconnect")[1]`); got != "token expired" {
		t.Errorf("disconnect reason %q, want token expired (the server's end event)", got)
	}
	publish(1)
	p.wait("connected again", `s.connected && count("s", "connect") === 2`)
	p.await(`s.to("chat").emit("m", {n: 2}).then(() => true)`, new(bool))
	p.waitNs("s", "m", []int{0, 1, 2})
	var st struct {
		ID       string
		Restored bool
		Calls    int
	}
	p.eval(`({ID: s.id, Restored: s.info.restored, Calls: window.calls})`, &st)
	if st.ID != id || !st.Restored || st.Calls < 2 {
		t.Errorf("after the expiry: %+v, want id %s restored, and a second token asked for", st, id)
	}
	// A static token the server refuses stops the socket with an error.
	p.run(fmt.Sprintf(`open1("x", "/ns/secure", {rooms: ["chat"], shared: false, token: %s}, [])`, js(short)))
	p.wait("the refused token's error", `count("x", "error") === 1 && x.state === "disconnected"`)
	if got := p.evalString(`states.x.find((e) => e[0] === "error")[1]`); got != "401" {
		t.Errorf("the refused token's error: status %s, want 401", got)
	}

	// Each ticket is single use: two streams, two tickets.
	if n := scrape(t, s)[`roomcast_http_requests_total{code=201,method=POST,route=/ns/secure/tickets}`]; n != 2 {
		t.Errorf("%v tickets issued, want 2 (one per stream)", n)
	}
}

// TestSDKGroups: consumer groups through the SDK: two workers share ten
// jobs, each handled once and acknowledged; a nacked job comes back at
// once; a job held past the ack wait is redelivered, the old delivery is
// revoked and its late ack reports false.
func TestSDKGroups(t *testing.T) {
	s := startServer(t)
	logsOnFailure(t, s)
	b := newBrowser(t)
	const worker = `window.sock = rc.connect("/ns/default", {shared: false}); window.jobs = []; window.revoked = [];
		window.g = sock.group(%s, %s);
		g.on("revoked", (job, reason) => revoked.push([job.data.n, reason]));
		g.on((job) => { jobs.push([job.data.n, job.delivery]); (window.handle || ((j) => j.ack()))(job); })`
	workers := []*tab{sdkPage(b, s, "w1", nil), sdkPage(b, s, "w2", nil)}
	for _, w := range workers {
		w.run(fmt.Sprintf(worker, js("jobs"), js("workers")))
		w.wait("in the group", `g.connected`)
	}
	for i := 0; i < 10; i++ {
		pubN(t, s, "/ns/default/rooms/jobs/messages", "job", i)
	}
	groupSettled := func(group string) bool {
		_, st, _ := s.do(t, http.MethodGet, "/ns/default/rooms/jobs/groups/"+group, nil, "")
		return st["pending"] == float64(0) && st["in_flight"] == float64(0)
	}
	eventually(t, webTimeout, "ten jobs acknowledged", func() bool { return groupSettled("workers") })
	var all []int
	for _, w := range workers {
		var jobs [][2]int
		w.eval(`jobs`, &jobs)
		for _, j := range jobs {
			all = append(all, j[0])
		}
	}
	slices.Sort(all)
	if !slices.Equal(all, seq(0, 10)) {
		t.Errorf("jobs handled %v, want 0…9 each once", all)
	}
	for _, w := range workers {
		w.run(`g.close()`)
	}

	// One worker, ack wait 1 s: job 0 is nacked once, job 1 held.
	if code, body, _ := s.do(t, http.MethodPut, "/ns/default/rooms/jobs/groups/solo", map[string]any{"ack_wait": "1s"}, ""); code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("create group solo: %d %v", code, body)
	}
	w := workers[0]
	w.run(`window.jobs = [], window.acked = [], window.revoked = [], window.handle = (job) => {
		if (job.data.n === 0 && job.delivery === 1) job.nack();
		else if (job.data.n === 1 && job.delivery === 1) window.held = job;
		else job.ack().then((ok) => acked.push([job.data.n, ok]));
	}`)
	w.run(fmt.Sprintf(`window.g = sock.group(%s, %s),
		g.on("revoked", (job, reason) => revoked.push([job.data.n, reason])),
		g.on((job) => { jobs.push([job.data.n, job.delivery]); handle(job); })`, js("jobs"), js("solo")))
	w.wait("in group solo", `g.connected`)
	pubN(t, s, "/ns/default/rooms/jobs/messages", "job", 0)
	pubN(t, s, "/ns/default/rooms/jobs/messages", "job", 1)
	eventually(t, webTimeout, "group solo settled", func() bool { return groupSettled("solo") })
	var late bool
	w.await(`held.ack()`, &late)
	if late {
		t.Errorf("the ack of a redelivered job reported true")
	}
	// Nothing is delivered again after an ack: no third delivery within
	// three ack waits (the group is idle; a redelivery would come after one).
	w.never("a delivery after the acks", 3*time.Second, `jobs.length > 4`)
	var got struct {
		Jobs, Acked []any
		Revoked     [][]any
	}
	w.eval(`({Jobs: jobs.map(String).sort(), Acked: acked.map(String).sort(), Revoked: revoked})`, &got)
	if j, _ := json.Marshal(got.Jobs); string(j) != `["0,1","0,2","1,1","1,2"]` {
		t.Errorf("deliveries (job, delivery) %s, want each job delivered exactly twice", j)
	}
	if j, _ := json.Marshal(got.Acked); string(j) != `["0,true","1,true"]` {
		t.Errorf("acks %s, want both second deliveries acknowledged, once each", j)
	}
	// Job 1's lease ran out: the server's `revoked` (or, when the
	// redelivery overtakes it, the SDK seeing the message again) revokes it.
	if len(got.Revoked) != 1 || got.Revoked[0][0] != float64(1) || got.Revoked[0][1] == "" {
		t.Errorf("revoked %v, want job 1 once, with a reason", got.Revoked)
	}

	// A delivery that arrives before any handler waits for the first one.
	w.run(`window.late = sock.group("jobs", "late"), late.on("connect", () => (window.lateUp = true))`)
	w.wait("in group late", `window.lateUp === true`)
	pubN(t, s, "/ns/default/rooms/jobs/messages", "job", 2)
	eventually(t, webTimeout, "the delivery held by the member", func() bool {
		_, st, _ := s.do(t, http.MethodGet, "/ns/default/rooms/jobs/groups/late", nil, "")
		return st["in_flight"] == float64(1)
	})
	w.run(`late.on((job) => job.ack().then((ok) => (window.lateAck = [job.data.n, job.delivery, ok])))`)
	var lateAck []any
	w.wait("the held delivery handled", `window.lateAck !== undefined`)
	w.eval(`lateAck`, &lateAck)
	if fmt.Sprint(lateAck) != "[2 1 true]" {
		t.Errorf("the held delivery: %v, want job 2, first delivery, acknowledged", lateAck)
	}

	// A member disconnected on request (its resume answered 204) stops.
	w.run(`late.on("disconnect", (r) => (window.lateGone = r)),
		fetch("/ns/default/connections/" + late.id, {method: "DELETE", headers: {Authorization: "Bearer " + late.info.token}})`)
	w.wait("the member stopped", `window.lateGone === "io server disconnect" && late.closed`)
}

// TestWebChatTabsShareOneConnection: two chat tabs of one browser profile
// use one connection; a message typed in one shows once in both (the
// sending tab relays its broadcast to its sibling), and once at another
// person's.
func TestWebChatTabsShareOneConnection(t *testing.T) {
	s := startServer(t)
	logsOnFailure(t, s)
	b := newBrowser(t)
	one := b.tab("alice-1")
	openChat(one, s.URL, "alice")
	two := b.sibling(one, "alice-2")
	two.do(chromedp.Navigate(s.URL + "/chat.html")) // the name is remembered
	two.waitLive()
	bob := b.tab("bob")
	openChat(bob, s.URL, "bob")
	if got := scrape(t, s)["roomcast_sse_streams"]; got != 2 {
		t.Fatalf("%v SSE streams for two people (one with two tabs), want 2", got)
	}
	if a, b := one.evalString(`window.roomcastChat.stats.id`), two.evalString(`window.roomcastChat.stats.id`); a != b {
		t.Fatalf("alice's tabs have connections %s and %s, want one", a, b)
	}
	one.say("typed in the first tab")
	two.waitMessage("lobby", "typed in the first tab")
	bob.waitMessage("lobby", "typed in the first tab")
	marker(t, s, "lobby", "marker", "lobby", one, two, bob)
	for _, tb := range []*tab{one, two, bob} {
		exactlyOnce(t, tb, "lobby", "typed in the first tab", "marker")
	}

	// Typing is volatile: bob's shows in both of alice's tabs (through the
	// leader); alice's shows at bob's, and not in her other tab (the same
	// connection: herself), which gets it relayed by the sending tab.
	typing := `document.querySelector("#typing").textContent`
	bob.do(chromedp.SendKeys(chromedp.CSS("#text"), "an answer"))
	one.wait("bob's typing indicator", typing+` === "bob is typing…"`)
	two.wait("bob's typing indicator", typing+` === "bob is typing…"`)
	before := two.evalInt(`window.roomcastChat.stats.received.lobby || 0`)
	one.do(chromedp.SendKeys(chromedp.CSS("#text"), "a question"))
	bob.wait("alice's typing indicator", typing+` === "alice is typing…"`)
	two.wait("alice's typing relayed to her other tab", fmt.Sprintf(`window.roomcastChat.stats.received.lobby > %d`, before))
	if got := two.evalString(typing); got != "bob is typing…" && got != "" {
		t.Errorf("alice's second tab shows %q, want bob's typing or nothing (not her own)", got)
	}
	if ev := historyEvents(t, s, "lobby"); slices.Contains(ev, "typing") {
		t.Errorf("lobby's history holds %q: want no typing event", ev)
	}
}

// TestSDKLeases: a job's lease through the SDK, on a group with a 2 s ack
// wait: job.deadline is ack_wait ahead; progress() keeps the job past its
// first deadline (never revoked, acknowledged at the end); a job left alone
// is revoked by the server's `revoked` event and its ack reports false;
// nack({delay}) hands it back for at least the delay; a message handed back
// past max_deliver is parked and announced as dead_letter to the group's
// members and to the room's subscribers.
func TestSDKLeases(t *testing.T) {
	s := startServer(t)
	logsOnFailure(t, s)
	for group, cfg := range map[string]map[string]any{
		"work": {"ack_wait": "2s", "backoff": []string{}},
		"once": {"ack_wait": "2s", "max_deliver": 1},
	} {
		room := "tasks"
		if group == "once" {
			room = "parked"
		}
		if code, body, _ := s.do(t, http.MethodPut, "/ns/default/rooms/"+room+"/groups/"+group, cfg, ""); code != http.StatusOK && code != http.StatusCreated {
			t.Fatalf("create group %s: %d %v", group, code, body)
		}
	}
	b := newBrowser(t)
	w := sdkPage(b, s, "worker", nil)
	w.run(`window.sock = rc.connect("/ns/default", {shared: false, rooms: ["tasks", "parked"]});
		window.jobs = []; window.revoked = []; window.dead = []; window.roomDead = [];
		sock.on("dead_letter", (d, env) => roomDead.push([d.group, d.event, d.deliveries, env.room]));
		window.g = sock.group("tasks", "work");
		g.on("revoked", (job, reason) => revoked.push([job.data.n, job.delivery, reason]));
		g.on((job) => { jobs.push({n: job.data.n, delivery: job.delivery, at: Date.now(), left: job.deadline - Date.now(), job}); });`)
	w.wait("connected and in the group, with its config", `sock.connected && g.connected && g.ackWait === 2000`)

	// The deadline is ack_wait (2 s) ahead, on the page's clock.
	pubN(t, s, "/ns/default/rooms/tasks/messages", "task", 0)
	w.wait("job 0", `jobs.length === 1`)
	if left := w.evalInt(`jobs[0].left`); left < 1500 || left > 2100 {
		t.Errorf("job 0's deadline %d ms ahead, want about 2000", left)
	}
	// progress() twice, a second apart: the job is held for 3 s, past its
	// first deadline, and is neither revoked nor redelivered.
	w.run(`window.progressed = [];
		window.tick = setInterval(() => jobs[0].job.progress().then((ok) => progressed.push([ok, jobs[0].job.deadline - Date.now()])), 1000)`)
	w.wait("two extensions", `progressed.length >= 3`)
	w.run(`clearInterval(tick)`)
	var progressed [][2]any
	w.eval(`progressed`, &progressed)
	for _, p := range progressed {
		if p[0] != true || p[1].(float64) < 1500 {
			t.Errorf("progress answered %v, want true and a deadline about 2 s ahead", p)
		}
	}
	if n := w.evalInt(`revoked.length + jobs.length`); n != 1 {
		t.Fatalf("after progress: %d revoked and deliveries, want job 0 alone", n)
	}
	var ok bool
	w.await(`jobs[0].job.ack()`, &ok)
	if !ok {
		t.Errorf("the ack of a job kept with progress reported false")
	}

	// Job 1 is left alone: the server revokes it when its lease runs out
	// and delivers it again; the late ack reports false.
	pubN(t, s, "/ns/default/rooms/tasks/messages", "task", 1)
	w.wait("job 1 revoked and delivered again", `revoked.length === 1 && jobs.filter((j) => j.n === 1).length === 2`)
	var rev []any
	w.eval(`revoked[0]`, &rev)
	if rev[0] != float64(1) || rev[1] != float64(1) || rev[2] == "" {
		t.Errorf("revoked %v, want job 1's first delivery, with a reason", rev)
	}
	w.await(`jobs[1].job.ack()`, &ok)
	if ok {
		t.Errorf("the ack of a revoked job reported true")
	}
	w.await(`jobs[2].job.nack({delay: "1s"}).then((ok) => (window.nackedAt = Date.now(), ok))`, &ok)
	if !ok {
		t.Fatalf("nack reported false")
	}
	w.wait("job 1 delivered a third time", `jobs.length === 4`)
	if waited := w.evalInt(`jobs[3].at - nackedAt`); waited < 900 {
		t.Errorf("redelivered %d ms after a nack with a 1 s delay", waited)
	}
	w.await(`jobs[3].job.ack()`, &ok)
	if !ok || w.evalInt(`jobs[3].delivery`) != 3 {
		t.Errorf("the third delivery: ack %v, delivery %d; want true, 3", ok, w.evalInt(`jobs[3].delivery`))
	}

	// Group "once" of room parked (max_deliver 1): a nacked message is parked and
	// announced to the member (group.on("dead_letter")) and to the room's
	// subscribers (socket.on("dead_letter")).
	w.run(`g.close(); window.g2 = sock.group("parked", "once");
		g2.on("dead_letter", (d, env) => dead.push([d.group, d.event, d.deliveries, d.id, env.event]));
		g2.on((job) => { jobs.push({n: job.data.n, delivery: job.delivery}); job.nack(); })`)
	w.wait("in group once", `g2.connected`)
	id := pubN(t, s, "/ns/default/rooms/parked/messages", "task", 2)
	w.wait("the dead letter notices", `dead.length === 1 && roomDead.some((d) => d[0] === "once")`)

	var dead []any
	w.eval(`dead[0]`, &dead)
	if fmt.Sprint(dead) != fmt.Sprintf("[once task 1 %s dead_letter]", id) {
		t.Errorf("the group's dead_letter %v, want group once, event task, 1 delivery, message %s", dead, id)
	}
	w.never("another dead letter notice", time.Second, `dead.length > 1 || roomDead.length > 1`)
	_, list, _ := s.do(t, http.MethodGet, "/ns/default/rooms/parked/groups/once/dead", nil, "")
	if dl, _ := list["dead_letters"].([]any); len(dl) != 1 {
		t.Errorf("dead letters of once: %v, want one", list)
	}
}

// TestSDKServerEnds: the server's `end` event. A socket disconnected on
// request (DELETE /connections/{id}) stops: state disconnected, reason "io
// server disconnect", no reconnect; connect() opens a new connection. A
// group member disconnected likewise stops.
func TestSDKServerEnds(t *testing.T) {
	s := startServer(t)
	logsOnFailure(t, s)
	b := newBrowser(t)
	p := sdkPage(b, s, "alice", nil)
	p.run(`open1("s", "/ns/default", {rooms: ["lobby"], shared: false}, ["m"])`)
	p.wait("connected", `s.connected`)
	id := p.evalString(`s.id`)
	// Deleted by someone else than the SDK (here the page, with the token).
	p.await(`fetch("/ns/default/connections/" + s.id, {method: "DELETE", headers: {Authorization: "Bearer " + s.info.token}}).then((r) => r.status)`, new(int))
	p.wait("the socket stopped", `s.state === "disconnected" && count("s", "disconnect") === 1`)
	if got := p.evalString(`states.s.find((e) => e[0] === "disconnect")[1]`); got != "io server disconnect" {
		t.Errorf("disconnect reason %q, want io server disconnect", got)
	}
	p.never("a reconnect after the server's disconnect", 3*time.Second, `count("s", "reconnecting") > 0 || s.state !== "disconnected"`)
	if n := roomMembers(t, s, "lobby"); n != 0 {
		t.Errorf("lobby has %d members after the disconnect, want 0", n)
	}
	p.run(`s.connect()`)
	p.wait("connected again", `s.connected && count("s", "connect") === 2`)
	if again := p.evalString(`s.id`); again == id {
		t.Errorf("connect() after the server's disconnect: the old id %s, want a new connection", again)
	}
	pubN(t, s, "/ns/default/rooms/lobby/messages", "m", 1)
	p.waitNs("s", "m", []int{1})

	// A group member disconnected on request stops too.
	p.run(`window.g = s.group("tasks", "w"); g.on("disconnect", (r) => (window.gone = r)); g.on("reconnecting", () => (window.gRetry = true))`)
	p.wait("in the group", `g.connected`)
	var code int
	p.await(`fetch("/ns/default/connections/" + g.id, {method: "DELETE", headers: {Authorization: "Bearer " + g.info.token}}).then((r) => r.status)`, &code)
	if code != http.StatusNoContent {
		t.Fatalf("disconnect the member: %d", code)
	}
	p.wait("the member stopped", `window.gone === "io server disconnect" && g.closed`)
	if p.evalString(`String(window.gRetry || false)`) != "false" {
		t.Errorf("the group member tried to reconnect after the server's disconnect")
	}
}
