package main

// Browser tests of the web app (web/static): the real program on loopback,
// driven through Debian's chromium with chromedp. Each test starts one
// headless Chromium; each simulated person gets a browser context of its own
// (separate storage, separate connections), like a separate browser.
//
// The tests wait for conditions by polling the page with a deadline, and
// prove that something did NOT arrive with a marker: messages of a namespace
// reach a connection in publish order, so once a marker published later is
// on the page, anything published before it that was going to arrive has.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/roomcast/roomcast/internal/fault"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "also write the README's screenshots to docs/screenshots")

const (
	webTimeout    = 30 * time.Second // one browser action, or one awaited condition
	artifactsDir  = "testdata/artifacts"
	screenshotDir = "../../docs/screenshots"
)

// chromiumPath finds Debian's chromium. Missing, the test fails (it does not
// skip): `make deps` installs it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: the browser tests need Debian's chromium " +
		"(`make deps` installs it: apt-get update && apt-get install -y chromium)")
	return ""
}

// browser is one headless Chromium for a test.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu     sync.Mutex
	errors []string // uncaught exceptions of any page
}

// newBrowser starts Chromium; extra adds command-line options.
func newBrowser(t *testing.T, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	path := chromiumPath(t)
	// Not t.TempDir: Chromium's helper processes may still write in the
	// profile for a moment after the browser exits, which would fail the
	// test in TempDir's cleanup; this one is removed with retries.
	profile, err := os.MkdirTemp("", "roomcast-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 50; i++ {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond) // bounded retries, not a wait for a condition
		}
		t.Logf("could not remove the Chromium profile %s", profile)
	})
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		// The machine has no internet: without these, Chromium's own
		// background connections are refused and slow it down.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 800),
	)
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	// The first Do starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start %s: %v", path, err)
	}
	b := &browser{t: t, ctx: ctx}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.errors) > 0 {
			t.Errorf("uncaught exceptions in the pages:\n%s", strings.Join(b.errors, "\n"))
		}
	})
	return b
}

// tab opens a page in a new browser context (its own storage and
// connections) with a desktop-sized viewport.
func (b *browser) tab(name string) *tab {
	b.t.Helper()
	return b.newTab(b.ctx, name, chromedp.WithNewBrowserContext())
}

// sibling opens another page in of's browser context: a second tab of the
// same browser profile (shared storage, locks and BroadcastChannels).
func (b *browser) sibling(of *tab, name string) *tab {
	b.t.Helper()
	return b.newTab(of.ctx, name)
}

func (b *browser) newTab(parent context.Context, name string, opts ...chromedp.ContextOption) *tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(parent, append(opts, chromedp.WithListener(func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			d := e.ExceptionDetails
			text := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				text = d.Exception.Description
			}
			b.mu.Lock()
			b.errors = append(b.errors, fmt.Sprintf("%s: %s (%s:%d)", name, text, d.URL, d.LineNumber))
			b.mu.Unlock()
		}
	}))...)
	b.t.Cleanup(cancel)
	// The target lives as long as the context of its first Run: that one
	// must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("%s: open a tab: %v", name, err)
	}
	tb := &tab{t: b.t, ctx: ctx, name: name, close: cancel}
	tb.do(chromedp.EmulateViewport(1280, 800))
	return tb
}

// tab is one page of one person.
type tab struct {
	t     *testing.T
	ctx   context.Context
	name  string
	close context.CancelFunc // closes the page (and the pages opened as its siblings)
}

func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, webTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v\npage text:\n%s", tb.name, err, tb.text())
	}
}

// click clicks the first element matching css once there is one, in one
// step in the page: a chromedp.Click finds the node, then clicks it by its
// node id, and fails if the page re-rendered that part in between (the
// parcel page redraws its list when an offer changes state).
func (tb *tab) click(css string) {
	tb.t.Helper()
	sel, _ := json.Marshal(css)
	tb.wait("a "+css+" to click", `(() => { const el = document.querySelector(`+string(sel)+`); if (!el) return false; el.focus(); el.click(); return true })()`)
}

// eval evaluates a JavaScript expression and decodes its value into out.
func (tb *tab) eval(expr string, out any) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, webTimeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr))
	if err != nil {
		tb.t.Fatalf("%s: evaluate %s: %v", tb.name, expr, err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		tb.t.Fatalf("%s: evaluate %s: decode %s: %v", tb.name, expr, raw, err)
	}
}

func (tb *tab) evalInt(expr string) int {
	tb.t.Helper()
	var n int
	tb.eval(expr, &n)
	return n
}

func (tb *tab) evalStrings(expr string) []string {
	tb.t.Helper()
	var s []string
	tb.eval(expr, &s)
	return s
}

// text returns the page's visible text, for failure messages.
func (tb *tab) text() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		return "(unavailable: " + err.Error() + ")"
	}
	return s
}

// wait polls a JavaScript condition until it is true, and fails after
// webTimeout with the page's text.
func (tb *tab) wait(what, cond string) {
	tb.t.Helper()
	deadline := time.Now().Add(webTimeout)
	for {
		var ok bool
		tb.eval("Boolean("+cond+")", &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s: timed out after %s waiting for %s\n(%s)\npage text:\n%s", tb.name, webTimeout, what, cond, tb.text())
		}
		time.Sleep(50 * time.Millisecond) // polling interval, bounded by the deadline
	}
}

// never polls a JavaScript condition for d and fails as soon as it is true:
// a check that something does not happen within a window (the window is
// the assertion, not a wait for a condition).
func (tb *tab) never(what string, d time.Duration, cond string) {
	tb.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		var bad bool
		tb.eval("Boolean("+cond+")", &bad)
		if bad {
			tb.t.Fatalf("%s: %s happened (%s)\npage text:\n%s", tb.name, what, cond, tb.text())
		}
		time.Sleep(50 * time.Millisecond) // polling interval, bounded by the window
	}
}

// screenshot writes the viewport as a PNG test artifact and, with
// -update-screenshots, as the README's screenshot readme (when not empty).
func (tb *tab) screenshot(name, readme string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, webTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Fatalf("%s: screenshot: %v", tb.name, err)
	}
	if len(png) < 1000 {
		tb.t.Fatalf("%s: screenshot %s is only %d bytes", tb.name, name, len(png))
	}
	write := func(dir, file string) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			tb.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), png, 0o644); err != nil {
			tb.t.Fatal(err)
		}
	}
	write(artifactsDir, name+".png")
	if readme != "" && *updateScreenshots {
		write(screenshotDir, readme+".png")
	}
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// freeAddr returns a loopback address with a port free right now, for a
// server that must come back on the same origin after a restart.
func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := fault.FreeAddr() // outside the ephemeral range: no :0 listener takes it first
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// logsOnFailure prints the server's connection log lines when t fails: what
// the pages did, seen from the server.
func logsOnFailure(t *testing.T, s *testServer) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		var lines []string
		for _, l := range strings.Split(s.logs.String(), "\n") {
			if strings.Contains(l, "msg=connect") || strings.Contains(l, "msg=disconnect") || strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") ||
				strings.Contains(l, `"msg":"connect"`) || strings.Contains(l, `"msg":"disconnect"`) || strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) {
				lines = append(lines, l)
			}
		}
		if len(lines) > 200 {
			lines = lines[len(lines)-200:]
		}
		t.Logf("server %s connection log:\n%s", s.URL, strings.Join(lines, "\n"))
	})
}

// --- chat --------------------------------------------------------------

// openChat opens the chat as name and waits until it is connected.
func openChat(tb *tab, base, name string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(base+"/chat.html"),
		chromedp.WaitVisible(chromedp.CSS("#name")),
		chromedp.SendKeys(chromedp.CSS("#name"), name+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS("#text")))
	tb.waitLive()
}

func (tb *tab) waitLive() {
	tb.t.Helper()
	tb.wait("the connection to be live", `document.querySelector("#status").dataset.state === "live"`)
}

// say types text into the message box and presses Enter.
func (tb *tab) say(text string) {
	tb.t.Helper()
	tb.do(chromedp.SendKeys(chromedp.CSS("#text"), text+kb.Enter))
}

// countExpr counts the messages of room whose text is text.
func countExpr(room, text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll("#log-%s li.msg .text")].filter(e => e.textContent === %s).length`, room, js(text))
}

func (tb *tab) waitMessage(room, text string) {
	tb.t.Helper()
	tb.wait(fmt.Sprintf("message %q in %s", text, room), countExpr(room, text)+" >= 1")
}

// messages returns the texts of room's messages, in page order.
func (tb *tab) messages(room string) []string {
	tb.t.Helper()
	return tb.evalStrings(fmt.Sprintf(`[...document.querySelectorAll("#log-%s li.msg .text")].map(e => e.textContent)`, room))
}

func (tb *tab) waitPresence(want ...string) {
	tb.t.Helper()
	slices.Sort(want)
	w, _ := json.Marshal(want)
	tb.wait(fmt.Sprintf("presence %v", want),
		fmt.Sprintf(`JSON.stringify([...document.querySelectorAll("#presence-list li[data-id]")].map(e => e.textContent).sort()) === %s`, js(string(w))))
}

// marker publishes a server message to room (namespace-wide when room is
// empty) and waits until every tab shows it in showIn.
func marker(t *testing.T, s *testServer, room, text, showIn string, tabs ...*tab) {
	t.Helper()
	path := "/ns/default/messages"
	if room != "" {
		path = "/ns/default/rooms/" + room + "/messages"
	}
	s.publish(t, path, map[string]any{"event": "chat message", "data": map[string]string{"name": "roomcast", "text": text}}, "")
	for _, tb := range tabs {
		tb.waitMessage(showIn, text)
	}
}

// exactlyOnce checks that each text is shown exactly once in room.
func exactlyOnce(t *testing.T, tb *tab, room string, texts ...string) {
	t.Helper()
	for _, text := range texts {
		if n := tb.evalInt(countExpr(room, text)); n != 1 {
			t.Errorf("%s: %q shown %d times in %s, want once; messages: %q", tb.name, text, n, room, tb.messages(room))
		}
	}
}

func roomMembers(t *testing.T, s *testServer, room string) int {
	t.Helper()
	code, body, _ := s.do(t, http.MethodGet, "/ns/default/rooms/"+room+"/members", nil, "")
	if code != http.StatusOK {
		t.Fatalf("members of %s: %d %v", room, code, body)
	}
	ms, _ := body["members"].([]any)
	return len(ms)
}

// TestWebChat: two people chat in a room, each sees the other's messages
// once and their own once; presence lists both; typing shows; joining and
// leaving a room changes what arrives.
func TestWebChat(t *testing.T) {
	s := startServer(t)
	logsOnFailure(t, s)
	b := newBrowser(t)
	alice, bob := b.tab("alice"), b.tab("bob")
	openChat(alice, s.URL, "alice")
	openChat(bob, s.URL, "bob")

	// Presence: both are in the lobby, with their names (names travel in
	// messages: bob's join announcement, alice's direct answer).
	alice.waitPresence("alice (you)", "bob")
	bob.waitPresence("alice", "bob (you)")

	lines := []string{
		"Hi Bob! Did the deploy go out?",
		"Yes, rolled out at 14:02, all green.",
		"Great, thanks — I'll tell the team.",
	}
	alice.say(lines[0])
	alice.wait("own message accepted", `document.querySelector("#log-lobby li.msg.mine[data-state=sent]") !== null`)
	bob.waitMessage("lobby", lines[0])
	bob.say(lines[1])
	alice.waitMessage("lobby", lines[1])
	alice.say(lines[2])
	bob.waitMessage("lobby", lines[2])
	marker(t, s, "lobby", "Standup in 5 minutes in #lobby", "lobby", alice, bob)
	want := append(slices.Clone(lines), "Standup in 5 minutes in #lobby")
	for _, tb := range []*tab{alice, bob} {
		exactlyOnce(t, tb, "lobby", want...)
		if got := tb.messages("lobby"); !slices.Equal(got, want) {
			t.Errorf("%s: lobby shows %q, want %q", tb.name, got, want)
		}
	}
	if n := alice.evalInt(`document.querySelectorAll("#log-lobby li.msg.mine").length`); n != 2 {
		t.Errorf("alice: %d messages marked as hers, want 2", n)
	}

	// Typing: bob types without sending; alice sees it. It is volatile:
	// never in the history (which a page reloaded, or a newcomer, reads).
	bob.do(chromedp.SendKeys(chromedp.CSS("#text"), "typing a long answer"))
	alice.wait("bob's typing indicator", `document.querySelector("#typing").textContent === "bob is typing…"`)
	if got := bob.evalString(`document.querySelector("#typing").textContent`); got != "" {
		t.Errorf("bob's own page shows %q while he types, want nothing", got)
	}
	if ev := historyEvents(t, s, "lobby"); slices.Contains(ev, "typing") || !slices.Contains(ev, "chat message") {
		t.Errorf("lobby's history holds %q: want chat messages and no typing event", ev)
	}
	alice.screenshot("chat-alice", "chat")
	bob.do(chromedp.SendKeys(chromedp.CSS("#text"), kb.Enter))
	alice.waitMessage("lobby", "typing a long answer")
	alice.wait("typing indicator cleared by the message", `document.querySelector("#typing").textContent === ""`)

	// Rooms: both join "dev"; bob speaks there.
	for _, tb := range []*tab{bob, alice} {
		tb.do(chromedp.SendKeys(chromedp.CSS("#join-room"), "dev"+kb.Enter),
			chromedp.WaitVisible(chromedp.CSS("#log-dev")))
	}
	bob.waitPresence("alice", "bob (you)")
	alice.waitPresence("alice (you)", "bob")
	bob.say("dev-1")
	alice.waitMessage("dev", "dev-1")

	// alice leaves dev: nothing of dev reaches her stream any more.
	alice.do(chromedp.Click(chromedp.CSS("#leave")))
	alice.wait("dev gone from the room list", `document.querySelector("#log-dev") === null && document.querySelector("#room-title").textContent === "# lobby"`)
	eventually(t, webTimeout, "alice out of dev on the server", func() bool { return roomMembers(t, s, "dev") == 1 })
	bob.waitPresence("bob (you)")
	before := alice.evalInt(`window.roomcastChat.stats.received.dev || 0`)
	bob.do(chromedp.Click(chromedp.CSS(`#room-list li[data-room="dev"] button`)))
	bob.say("dev-2")
	bob.wait("dev-2 sent", `(document.querySelector("#log-dev li.msg.mine[data-state=sent]:last-child .text") || {}).textContent === "dev-2"`)
	marker(t, s, "", "Namespace-wide notice", "lobby", alice)
	if after := alice.evalInt(`window.roomcastChat.stats.received.dev || 0`); after != before {
		t.Errorf("alice received %d events of dev after leaving it", after-before)
	}
	if strings.Contains(alice.text(), "dev-2") {
		t.Errorf("alice shows dev-2 although she left dev")
	}

	// alice joins again: history brings dev-2, live messages arrive again.
	alice.do(chromedp.SendKeys(chromedp.CSS("#join-room"), "dev"+kb.Enter))
	alice.waitMessage("dev", "dev-2")
	bob.waitPresence("alice", "bob (you)")
	bob.say("dev-3")
	alice.waitMessage("dev", "dev-3")
	marker(t, s, "dev", "dev marker", "dev", alice, bob)
	exactlyOnce(t, alice, "dev", "dev-1", "dev-2", "dev-3", "dev marker")
	exactlyOnce(t, bob, "dev", "dev-1", "dev-2", "dev-3", "dev marker")
	if got := alice.evalInt(`window.roomcastChat.stats.received.dev || 0`); got <= before {
		t.Errorf("alice received no dev event after joining again")
	}

	// The phone-sized layout, for the artifacts.
	bob.do(chromedp.EmulateViewport(390, 844))
	bob.screenshot("chat-bob-phone", "")
}

// TestWebChatSurvivesRestart: the server stops and comes back on the same
// address mid-chat; the pages show "reconnecting", resume by themselves and
// lose nothing, including a message typed while the server was down and
// one published before the browsers were back.
func TestWebChatSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	s1 := startServerData(t, dir, "--addr", addr)
	b := newBrowser(t)
	alice, bob := b.tab("alice"), b.tab("bob")
	openChat(alice, s1.URL, "alice")
	openChat(bob, s1.URL, "bob")
	alice.waitPresence("alice (you)", "bob")

	alice.say("before the restart (alice)")
	bob.waitMessage("lobby", "before the restart (alice)")
	bob.say("before the restart (bob)")
	alice.waitMessage("lobby", "before the restart (bob)")
	var aliceID string
	alice.eval(`window.roomcastChat.stats.id`, &aliceID)

	s1.Stop()
	for _, tb := range []*tab{alice, bob} {
		tb.wait("the reconnecting state", `document.querySelector("#status").dataset.state === "reconnecting" && document.querySelector("#status").textContent.startsWith("Reconnecting")`)
	}
	alice.say("typed while the server was down")
	alice.wait("the message to wait for the connection", `document.querySelector("#log-lobby li.msg.mine[data-state=waiting]") !== null`)
	alice.screenshot("chat-reconnecting", "")

	s2 := startServerData(t, dir, "--addr", addr)
	if s2.URL != s1.URL {
		t.Fatalf("restarted on %s, want %s", s2.URL, s1.URL)
	}
	// Published before the browsers reconnect (they retry every 2 s):
	// they get it from the replay.
	s2.publish(t, "/ns/default/rooms/lobby/messages", map[string]any{"event": "chat message", "data": map[string]string{"name": "roomcast", "text": "published while you were reconnecting"}}, "")
	alice.waitLive()
	bob.waitLive()
	var restored bool
	var id string
	alice.eval(`window.roomcastChat.stats.restored`, &restored)
	alice.eval(`window.roomcastChat.stats.id`, &id)
	if !restored || id != aliceID {
		t.Errorf("alice's connection after the restart: restored %v, id %s; want restored, id %s", restored, id, aliceID)
	}
	bob.waitMessage("lobby", "typed while the server was down")
	alice.wait("the queued message sent", `document.querySelector("#log-lobby li.msg.mine[data-state=waiting]") === null`)
	bob.say("after the restart (bob)")
	alice.waitMessage("lobby", "after the restart (bob)")
	marker(t, s2, "lobby", "final marker", "lobby", alice, bob)

	want := []string{"before the restart (alice)", "before the restart (bob)", "published while you were reconnecting",
		"typed while the server was down", "after the restart (bob)", "final marker"}
	for _, tb := range []*tab{alice, bob} {
		exactlyOnce(t, tb, "lobby", want...)
		got := tb.messages("lobby")
		if !slices.Equal(got, want) {
			t.Errorf("%s: lobby shows %q, want %q", tb.name, got, want)
		}
		// In server order, the times never run backwards: the message typed
		// offline shows when it was stored, not when it was typed.
		times := tb.evalStrings(`[...document.querySelectorAll("#log-lobby li.msg time")].map((e) => e.dateTime)`)
		for i := 1; i < len(times); i++ {
			a, _ := time.Parse(time.RFC3339Nano, times[i-1])
			b, _ := time.Parse(time.RFC3339Nano, times[i])
			if b.Before(a) {
				t.Errorf("%s: the times of the lobby run backwards: %v", tb.name, times)
				break
			}
		}
	}

	// After a reload (a new connection), alice's own messages are still
	// hers, on the right.
	alice.do(chromedp.Reload())
	alice.waitLive()
	alice.waitMessage("lobby", "typed while the server was down")
	mine := alice.evalStrings(`[...document.querySelectorAll("#log-lobby li.msg.mine .text")].map((e) => e.textContent)`)
	if !slices.Equal(mine, []string{"before the restart (alice)", "typed while the server was down"}) {
		t.Errorf("alice after a reload: her messages %q, want the two she sent", mine)
	}
}

// --- parcel service -----------------------------------------------------

func openParcel(tb *tab, base, query string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(base + "/parcel.html?" + query))
	tb.waitLive()
}

// TestWebParcelService: three drivers share twelve pickups of two vendors
// through the consumer group, none delivered twice; the online vendor sees
// every notice live, the one that was away catches up when it comes back,
// and a reload resumes without replaying what was seen.
func TestWebParcelService(t *testing.T) {
	s := startServer(t)
	logsOnFailure(t, s)
	b := newBrowser(t)
	drivers := make([]*tab, 3)
	for i := range drivers {
		name := fmt.Sprintf("driver-%d", i+1)
		drivers[i] = b.tab(name)
		openParcel(drivers[i], s.URL, "driver="+name)
	}
	eventually(t, webTimeout, "three members in group drivers", func() bool {
		_, body, _ := s.do(t, http.MethodGet, "/ns/default/rooms/pickups/groups/drivers", nil, "")
		ms, _ := body["members"].([]any)
		return len(ms) == 3
	})

	// globex requests two pickups and goes away.
	globex := b.tab("globex")
	openParcel(globex, s.URL, "vendor=globex")
	for i, c := range []string{"Grace Hopper", "Alan Turing"} {
		globex.do(chromedp.SendKeys(chromedp.CSS("#customer"), c),
			chromedp.SendKeys(chromedp.CSS("#address"), fmt.Sprintf("%d Harbor Road", i+1)+kb.Enter))
		globex.wait("the request stored and the form cleared", fmt.Sprintf(
			`document.querySelectorAll("#orders tbody tr[data-status=requested]").length === %d && document.querySelector("#customer").value === ""`, i+1))
	}
	globex.do(chromedp.Navigate("about:blank"))

	acme := b.tab("acme")
	openParcel(acme, s.URL, "vendor=acme")
	acme.do(chromedp.Click(chromedp.CSS("#demo")))
	acme.wait("ten orders", `document.querySelectorAll("#orders tbody tr[data-order]").length === 10`)

	// Every pickup is offered to exactly one driver before anyone acts, so
	// that the split does not depend on how fast the test clicks.
	offered := func() []string {
		var all []string
		for _, d := range drivers {
			all = append(all, d.evalStrings(`[...document.querySelectorAll("#jobs li.job[data-state=offered]")].map(e => e.dataset.order)`)...)
		}
		return all
	}
	eventually(t, webTimeout, "twelve offers", func() bool { return len(offered()) >= 12 })
	all := offered()
	if len(all) != 12 || len(uniq(all)) != 12 {
		t.Fatalf("offers %v: want twelve distinct pickups", all)
	}
	for _, d := range drivers {
		if n := d.evalInt(`document.querySelectorAll("#jobs li.job").length`); n == 0 {
			t.Errorf("%s was offered nothing: the group did not share the work", d.name)
		}
	}
	drivers[0].screenshot("parcel-driver", "")

	// The drivers work: Pick up (acknowledge, "in-transit"), then Mark
	// delivered, with real clicks.
	// First a moment with every status on acme's screen: two drivers
	// deliver one acme order each, the third only picks one up.
	const acmePickup = `#jobs li.job[data-order^="acme-"] button.pickup:enabled`
	staged := map[string]int{}
	for i, d := range drivers {
		if d.evalInt(`document.querySelectorAll(`+js(acmePickup)+`).length`) == 0 {
			continue
		}
		d.click(acmePickup)
		if i < 2 {
			d.click(`#jobs button.deliver:enabled`)
			staged["delivered"]++
		} else {
			staged["in-transit"]++
		}
	}
	acme.wait("the staged statuses", fmt.Sprintf(`document.querySelectorAll("#orders tbody tr[data-status=delivered]").length === %d &&
		document.querySelectorAll("#orders tbody tr[data-status=in-transit]").length === %d`, staged["delivered"], staged["in-transit"]))
	acme.screenshot("parcel-vendor", "parcel")

	deadline := time.Now().Add(2 * time.Minute)
	for {
		left := 0
		for _, d := range drivers {
			var st struct{ Open, Pickup, Deliver int }
			d.eval(`({Open: document.querySelectorAll("#jobs li.job").length,
				Pickup: document.querySelectorAll("#jobs button.pickup:enabled").length,
				Deliver: document.querySelectorAll("#jobs button.deliver:enabled").length})`, &st)
			left += st.Open
			switch {
			case st.Deliver > 0:
				d.click("#jobs button.deliver:enabled")
			case st.Pickup > 0:
				d.click("#jobs button.pickup:enabled")
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drivers still have %d open pickups after 2 minutes", left)
		}
	}
	var delivered []string
	for _, d := range drivers {
		mine := d.evalStrings(`window.roomcastParcel.delivered`)
		if len(mine) == 0 {
			t.Errorf("%s delivered nothing", d.name)
		}
		delivered = append(delivered, mine...)
	}
	if len(delivered) != 12 || len(uniq(delivered)) != 12 {
		t.Fatalf("delivered %v: want twelve pickups, each once", delivered)
	}
	eventually(t, webTimeout, "group drivers settled", func() bool {
		_, g, _ := s.do(t, http.MethodGet, "/ns/default/rooms/pickups/groups/drivers", nil, "")
		return g["pending"] == float64(0) && g["in_flight"] == float64(0)
	})

	// acme, online, saw every notice live: each order in transit, then
	// delivered, once each.
	checkVendor := func(v *tab, orders int) {
		t.Helper()
		v.wait("every order delivered", fmt.Sprintf(`document.querySelectorAll("#orders tbody tr[data-status=delivered]").length === %d`, orders))
		var notices []struct{ Event, Order string }
		v.eval(`window.roomcastParcel.notices`, &notices)
		seen := map[string][]string{}
		for _, n := range notices {
			seen[n.Order] = append(seen[n.Order], n.Event)
		}
		if len(seen) != orders {
			t.Errorf("%s: notices for %d orders, want %d: %v", v.name, len(seen), orders, seen)
		}
		for order, evs := range seen {
			if !slices.Equal(evs, []string{"in-transit", "delivered"}) {
				t.Errorf("%s: order %s notices %v, want [in-transit delivered]", v.name, order, evs)
			}
		}
	}
	checkVendor(acme, 10)
	acme.screenshot("parcel-vendor-done", "")

	// globex comes back: it resumes from its stored position and gets the
	// notices it missed.
	openParcel(globex, s.URL, "vendor=globex")
	checkVendor(globex, 2)
	if n := globex.evalInt(`[...document.querySelectorAll("#notices li")].filter(e => e.textContent.includes("while you were away")).length`); n != 4 {
		t.Errorf("globex: %d notices marked as missed while away, want 4", n)
	}

	// A reload of acme resumes after the last notice it saw: nothing is
	// replayed twice, the statuses stay.
	acme.do(chromedp.Reload())
	acme.waitLive()
	s.publish(t, "/ns/default/rooms/vendor-acme/messages", map[string]any{"event": "delivered", "data": map[string]string{"order": "acme-marker", "driver": "test"}}, "")
	acme.wait("the marker notice", `window.roomcastParcel.notices.some(n => n.order === "acme-marker")`)
	if n := acme.evalInt(`window.roomcastParcel.notices.length`); n != 1 {
		t.Errorf("acme after reload: %d notices, want only the marker (no replay of seen ones)", n)
	}
	if n := acme.evalInt(`document.querySelectorAll("#orders tbody tr[data-status=delivered]").length`); n != 11 {
		t.Errorf("acme after reload: %d delivered rows, want 11 (10 orders and the marker)", n)
	}
}

func uniq(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// --- admin -----------------------------------------------------------------

// TestWebAdmin: the admin view shows the namespace, rooms with member
// counts, connections, consumer groups with pending and in-flight counts
// (as the API reports them), the message rate, and publishes.
func TestWebAdmin(t *testing.T) {
	s := startServer(t)
	logsOnFailure(t, s)
	for _, path := range []string{"/ns/default/events?rooms=lobby", "/ns/default/events?rooms=lobby,dev"} {
		st := s.subscribe(t, path, "")
		st.connected()
	}
	// Group "drivers" has one member holding three deliveries; group
	// "audit" has no member: its three messages are pending.
	if code, body, _ := s.do(t, http.MethodPut, "/ns/default/rooms/pickups/groups/audit", nil, ""); code != http.StatusOK {
		t.Fatalf("create group audit: %d %v", code, body)
	}
	driver := s.subscribe(t, "/ns/default/rooms/pickups/events?group=drivers", "")
	driver.connected()
	eventually(t, webTimeout, "the driver in its group", func() bool {
		_, g, _ := s.do(t, http.MethodGet, "/ns/default/rooms/pickups/groups/drivers", nil, "")
		ms, _ := g["members"].([]any)
		return len(ms) == 1
	})
	for i := 0; i < 3; i++ {
		s.publish(t, "/ns/default/rooms/pickups/messages", map[string]any{"event": "pickup", "data": map[string]int{"n": i}}, "")
	}
	for i := 0; i < 3; i++ {
		driver.Next(webTimeout)
	}

	b := newBrowser(t)
	admin := b.tab("admin")
	admin.do(chromedp.Navigate(s.URL + "/admin.html"))
	cellExpr := func(row, cls string) string {
		return fmt.Sprintf(`(document.querySelector(%s) || {textContent: ""}).textContent`, js(row+" td."+cls))
	}
	admin.wait("namespace default with 3 connections", cellExpr(`#ns-table tr[data-ns="default"]`, "connections")+` === "3"`)
	admin.wait("lobby with 2 members", cellExpr(`#rooms-table tr[data-room="lobby"]`, "members")+` === "2"`)
	admin.wait("dev with 1 member", cellExpr(`#rooms-table tr[data-room="dev"]`, "members")+` === "1"`)
	admin.wait("two connections listed", `document.querySelectorAll("#conns-table tr[data-conn]").length === 2`)

	_, drivers, _ := s.do(t, http.MethodGet, "/ns/default/rooms/pickups/groups/drivers", nil, "")
	_, audit, _ := s.do(t, http.MethodGet, "/ns/default/rooms/pickups/groups/audit", nil, "")
	if drivers["in_flight"] != float64(3) || audit["pending"] != float64(3) {
		t.Fatalf("API: drivers %v, audit %v; want 3 in flight and 3 pending", drivers, audit)
	}
	row := func(g string) string { return fmt.Sprintf(`#groups-table tr[data-room="pickups"][data-group=%q]`, g) }
	admin.wait("drivers: 1 member, 3 in flight, 0 pending",
		cellExpr(row("drivers"), "members")+` === "1" && `+cellExpr(row("drivers"), "in-flight")+` === "3" && `+cellExpr(row("drivers"), "pending")+` === "0"`)
	admin.wait("audit: 3 pending, 0 in flight",
		cellExpr(row("audit"), "pending")+` === "3" && `+cellExpr(row("audit"), "in-flight")+` === "0"`)

	// Rate: once the page has its starting point, twenty messages to the
	// lobby are counted, each once.
	admin.wait("the rate's starting point", `document.querySelector("#rate").dataset.count !== undefined`)
	for i := 0; i < 20; i++ {
		s.publish(t, "/ns/default/rooms/lobby/messages", map[string]any{"event": "chat message", "data": map[string]any{"name": "load", "text": fmt.Sprint(i)}}, "")
	}
	admin.wait("twenty messages counted", `document.querySelector("#rate").dataset.count === "20"`)
	var rate string
	admin.eval(`document.querySelector("#rate").textContent`, &rate)
	if rate == "0.0" || rate == "" {
		t.Errorf("rate %q with twenty messages counted", rate)
	}
	var source string
	admin.eval(`document.querySelector("#rate-source").textContent`, &source)
	if !strings.Contains(source, "roomcast_messages_published_total") {
		t.Errorf("rate source %q, want the /metrics counter", source)
	}
	admin.screenshot("admin", "")

	// Without /metrics (forced here), the rate is counted from the rooms'
	// histories: each message once, from the page's starting point on.
	admin.do(chromedp.Navigate(s.URL + "/admin.html?rate=history"))
	admin.wait("the history starting point", `document.querySelector("#rate").dataset.count !== undefined`)
	for i := 0; i < 5; i++ {
		s.publish(t, "/ns/default/rooms/lobby/messages", map[string]any{"event": "chat message", "data": map[string]any{"name": "load", "text": fmt.Sprint(i)}}, "")
	}
	s.publish(t, "/ns/default/messages", map[string]any{"event": "notice", "data": "to everyone"}, "") // in the history of both rooms, counted once
	admin.wait("six messages counted from the histories", `document.querySelector("#rate").dataset.count === "6"`)
	admin.eval(`document.querySelector("#rate-source").textContent`, &source)
	if !strings.HasPrefix(source, "Counted by polling the history") {
		t.Errorf("rate source %q, want the history method", source)
	}

	// Publish through the form, to the lobby.
	admin.do(chromedp.SendKeys(chromedp.CSS("#pub-rooms"), "lobby"),
		chromedp.Click(chromedp.CSS("#pub-send")))
	admin.wait("the published id", `(document.querySelector("#pub-result").dataset.id || "") !== ""`)
	var id string
	admin.eval(`document.querySelector("#pub-result").dataset.id`, &id)
	_, hist, _ := s.do(t, http.MethodGet, "/ns/default/rooms/lobby/messages?limit=1", nil, "")
	msgs, _ := hist["messages"].([]any)
	if len(msgs) != 1 {
		t.Fatalf("lobby history: %v", hist)
	}
	last := msgs[0].(map[string]any)
	if last["id"] != id || last["event"] != "chat message" || last["data"].(map[string]any)["text"] != "Hello from the admin view" {
		t.Errorf("last lobby message %v, want id %s with the form's data", last, id)
	}
	// A bad room is refused with the server's per-field message.
	admin.do(chromedp.Clear(chromedp.CSS("#pub-rooms")),
		chromedp.SendKeys(chromedp.CSS("#pub-rooms"), "bad room"),
		chromedp.Click(chromedp.CSS("#pub-send")))
	admin.wait("the validation error", `document.querySelector("#pub-result").textContent.startsWith("Not published") && document.querySelector("#pub-result").textContent.includes("rooms")`)

	// Node status, and the open dev setup said as such.
	admin.wait("the server panel", `document.querySelector("#s-version").textContent === "dev" && document.querySelectorAll("#nodes li").length === 1`)
	if note := admin.evalString(`document.querySelector("#open-note").textContent`); !strings.Contains(note, "open and has no credentials") {
		t.Errorf("open note %q, want the open dev setup named", note)
	}
	if admin.evalString(`String(document.querySelector("#login").hidden)`) != "true" {
		t.Errorf("the login shows on an open dev setup")
	}

	// A room's members and history.
	admin.do(chromedp.Click(chromedp.CSS(`#rooms-table tr[data-room="lobby"] button`)))
	admin.wait("lobby's panel: two members, its history", `!document.querySelector("#room-panel").hidden &&
		document.querySelectorAll("#room-members tr[data-conn]").length === 2 &&
		document.querySelector("#room-history li[data-event]") !== null`)
	if got := admin.evalString(`document.activeElement.id`); got != "room-h" {
		t.Errorf("after Open the focus is on #%s, want the room's heading", got)
	}
	// Disconnecting another's connection needs admin rights, which an open
	// namespace without credentials cannot grant: refused, and said so.
	admin.do(chromedp.Click(chromedp.CSS(`#conns-table tr[data-conn] button`)))
	admin.wait("the refused disconnect", `document.querySelector("#conns-result").textContent.includes("needs admin rights")`)

	// The live tail of a room sees a message as it arrives.
	admin.do(chromedp.SendKeys(chromedp.CSS("#tail-room"), "lobby"), chromedp.Click(chromedp.CSS("#tail-start")))
	admin.wait("the tail watching", `document.querySelector("#tail-state").textContent.startsWith("Watching lobby")`)
	s.publish(t, "/ns/default/rooms/lobby/messages", map[string]any{"event": "tail me", "data": map[string]string{"text": "seen live"}}, "")
	admin.wait("the message in the tail", `window.roomcastAdmin.tail.some((e) => e.event === "tail me" && e.data.text === "seen live") &&
		document.querySelector("#tail li[data-event='tail me']") !== null`)

	// A dead letter (group parkers: ack wait 1 s, one delivery) is listed
	// and replayed from the page: its group gets it again, as new.
	if code, body, _ := s.do(t, http.MethodPut, "/ns/default/rooms/jobs/groups/parkers", map[string]any{"ack_wait": "1s", "max_deliver": 1}, ""); code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("create group parkers: %d %v", code, body)
	}
	parker := s.subscribe(t, "/ns/default/rooms/jobs/events?group=parkers", "")
	_, parkerTok, _ := parker.connected()
	s.publish(t, "/ns/default/rooms/jobs/messages", map[string]any{"event": "job", "data": map[string]string{"task": "parked"}}, "")
	if env := parker.Expect("job").envelope(t); env["delivery"] != float64(1) {
		t.Fatalf("first delivery %v", env)
	}
	parker.Expect("revoked")
	parker.Expect("dead_letter")
	admin.do(chromedp.SendKeys(chromedp.CSS("#watch"), "jobs"+kb.Enter))
	admin.wait("the dead letter listed", `document.querySelector("#dead-table tr[data-group=parkers]") !== null &&
		document.querySelector("#groups-table tr[data-group=parkers] td.dead").textContent === "1"`)
	admin.run(`document.querySelector("#groups-h").scrollIntoView()`)
	admin.screenshot("admin", "admin")
	admin.do(chromedp.Click(chromedp.CSS(`#dead-table tr[data-group=parkers] button.replay`)))
	ev := parker.Expect("job")
	env := ev.envelope(t)
	if env["delivery"] != float64(1) || env["data"].(map[string]any)["task"] != "parked" {
		t.Fatalf("the replayed delivery %v, want the parked message as a first delivery", env)
	}
	if code, _, _ := s.do(t, http.MethodPost, "/ns/default/rooms/jobs/groups/parkers/acks", map[string]any{"ids": []string{env["ack_id"].(string)}}, parkerTok); code != http.StatusNoContent {
		t.Fatalf("ack the replayed delivery: %d", code)
	}
	admin.wait("no dead letter left, the focus on the section", `document.querySelector("#dead-table tr[data-group=parkers]") === null && document.activeElement.id === "dead-h"`)
}

// TestWebAdminLogin: on a server with credentials the admin page asks for
// one first, refuses a wrong one, and with an API key acts on a locked
// namespace: a live tail, and disconnecting a connection. The credential
// stays in the tab across a reload, and is gone after Sign out.
func TestWebAdminLogin(t *testing.T) {
	s := startSecure(t)
	logsOnFailure(t, s)
	b := newBrowser(t)
	admin := b.tab("admin")
	admin.do(chromedp.Navigate(s.URL + "/admin.html"))
	admin.wait("the login", `!document.querySelector("#login").hidden && document.querySelector("#groups-table").closest("section").hidden`)
	admin.do(chromedp.SendKeys(chromedp.CSS("#credential"), "not-the-key-0123456789"+kb.Enter))
	admin.wait("the refusal", `document.querySelector("#login-error").textContent.startsWith("Not accepted by namespace secure")`)
	admin.run(`document.querySelector("#credential").value = ""`)
	admin.do(chromedp.SendKeys(chromedp.CSS("#credential"), secAPIKey+kb.Enter))
	admin.wait("signed in, namespace secure shown", `document.querySelector("#login").hidden && document.querySelector("#ns").value === "secure" &&
		document.querySelector("#who").textContent === "Signed in (API key)"`)

	// A connection of namespace secure, in room chat.
	conn, code := s.subscribeWith(t, "/ns/secure/events?rooms=chat", map[string]string{"Authorization": "Bearer " + secAPIKey})
	if code != http.StatusOK {
		t.Fatalf("subscribe to secure: %d", code)
	}
	conn.connected()
	admin.wait("the connection listed", `document.querySelectorAll("#conns-table tr[data-conn]").length === 1`)
	admin.do(chromedp.SendKeys(chromedp.CSS("#tail-room"), "chat"), chromedp.Click(chromedp.CSS("#tail-start")))
	admin.wait("the tail watching", `document.querySelector("#tail-state").textContent.startsWith("Watching chat in namespace secure")`)
	if code, body, _ := s.do(t, http.MethodPost, "/ns/secure/rooms/chat/messages", map[string]any{"event": "m", "data": "locked"}, secAPIKey); code != http.StatusAccepted {
		t.Fatalf("publish: %d %v", code, body)
	}
	admin.wait("the message in the tail", `window.roomcastAdmin.tail.some((e) => e.event === "m" && e.data === "locked")`)
	admin.do(chromedp.Click(chromedp.CSS(`#conns-table tr[data-conn] button`)))
	admin.wait("disconnected", `document.querySelector("#conns-result").textContent.startsWith("Disconnected")`)
	conn.Ended(webTimeout)

	admin.do(chromedp.Reload())
	admin.wait("still signed in after a reload", `document.querySelector("#login").hidden && document.querySelector("#who").textContent !== ""`)
	admin.do(chromedp.Click(chromedp.CSS("#signout")))
	admin.wait("signed out", `!document.querySelector("#login").hidden && sessionStorage.getItem("roomcast.admin.credential") === null`)
}

// TestWebPages: the landing page links the three apps, and every page is
// self-contained and accessible: a language, one h1, a label for every
// control, a live region where content arrives, nothing loaded from another
// origin, and no horizontal scrolling on a phone-sized screen.
func TestWebPages(t *testing.T) {
	s := startServer(t)
	logsOnFailure(t, s)
	b := newBrowser(t)
	tb := b.tab("visitor")

	tb.do(chromedp.Navigate(s.URL + "/"))
	links := tb.evalStrings(`[...document.querySelectorAll("main a.panel")].map(a => a.getAttribute("href"))`)
	if want := []string{"chat.html", "parcel.html", "admin.html"}; !slices.Equal(links, want) {
		t.Errorf("landing page links %v, want %v", links, want)
	}
	tb.screenshot("landing", "")

	pages := []struct {
		path, ready, live string
	}{
		{"/", `true`, ``},
		{"/chat.html", `document.querySelector("#status").dataset.state === "live"`, `#log-lobby[aria-live=polite]`},
		{"/parcel.html", `!document.querySelector("#choose").hidden`, ``},
		{"/parcel.html?vendor=acme", `document.querySelector("#status").dataset.state === "live"`, `#announce[role=status]`},
		{"/parcel.html?driver=driver-1", `document.querySelector("#status").dataset.state === "live"`, `#announce[role=status]`},
		{"/admin.html", `document.querySelector("#updated").dataset.state === "live"`, `#pub-result[role=status]`},
	}
	for _, p := range pages {
		tb.do(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(s.URL+p.path))
		if p.path == "/chat.html" {
			tb.do(chromedp.SendKeys(chromedp.CSS("#name"), "visitor"+kb.Enter))
		}
		tb.wait(p.path+" ready", p.ready)
		var got struct {
			Lang               string
			H1                 int
			Unlabelled, Remote []string
			Live               bool
		}
		tb.eval(fmt.Sprintf(`({
			Lang: document.documentElement.lang,
			H1: document.querySelectorAll("h1").length,
			Unlabelled: [...document.querySelectorAll("input, select, textarea")]
				.filter(e => e.labels.length === 0 && !e.getAttribute("aria-label")).map(e => e.id || e.name),
			Remote: [...performance.getEntriesByType("resource").map(e => e.name),
				...[...document.querySelectorAll("script[src], link[href], img[src]")].map(e => e.src || e.href)]
				.filter(u => !u.startsWith(location.origin + "/")),
			Live: %s === "" || document.querySelector(%[1]s) !== null,
		})`, js(p.live)), &got)
		if got.Lang != "en" || got.H1 != 1 || len(got.Unlabelled) > 0 || len(got.Remote) > 0 || !got.Live {
			t.Errorf("%s: lang %q, %d h1, unlabelled controls %v, resources from elsewhere %v, live region %s present %v",
				p.path, got.Lang, got.H1, got.Unlabelled, got.Remote, p.live, got.Live)
		}
		tb.do(chromedp.EmulateViewport(390, 844))
		var overflow int
		tb.eval(`document.documentElement.scrollWidth - window.innerWidth`, &overflow)
		if overflow > 0 {
			t.Errorf("%s: %d px of horizontal scrolling on a 390 px wide screen", p.path, overflow)
		}
		if p.path == "/parcel.html" {
			tb.screenshot("parcel-choose-phone", "")
		}
	}
}
