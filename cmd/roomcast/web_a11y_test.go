package main

// Accessibility and phone-layout tests of the web app: axe-core (vendored
// in testdata/axe, injected by the test: the pages load nothing from
// elsewhere) in light and dark mode on every page with content, and the
// layouts at 390×844.

import (
	"context"
	_ "embed"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// axeSource is axe-core 4.14.1 (npm package axe-core, file axe.min.js,
// MPL-2.0: testdata/axe/LICENSE). Refresh: npm pack axe-core@VERSION, copy
// package/axe.min.js and package/LICENSE here, and update the version
// checked in TestAxeVendored.
//
//go:embed testdata/axe/axe.min.js
var axeSource string

func TestAxeVendored(t *testing.T) {
	if !strings.HasPrefix(axeSource, "/*! axe v4.14.1") {
		t.Fatalf("testdata/axe/axe.min.js is not axe-core 4.14.1: %.40q", axeSource)
	}
}

// colorScheme emulates prefers-color-scheme (light or dark).
func colorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		return err
	})
}

type axeViolation struct {
	ID, Impact, Help string
	Nodes            []string
}

// axe runs axe-core on the page as it is and fails on any violation.
func (tb *tab) axe(what string) {
	tb.t.Helper()
	var ok bool
	tb.eval(`typeof axe === "object"`, &ok)
	if !ok {
		tb.eval(axeSource+"\n;true", &ok)
	}
	var vs []axeViolation
	tb.await(`axe.run(document, {resultTypes: ["violations"]}).then((r) => r.violations.map((v) => ({
		ID: v.id, Impact: v.impact || "", Help: v.help,
		Nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + " — " + (n.failureSummary || "").replace(/\s+/g, " ")),
	})))`, &vs)
	for _, v := range vs {
		tb.t.Errorf("%s: axe %s (%s): %s\n  %s", what, v.ID, v.Impact, v.Help, strings.Join(v.Nodes, "\n  "))
	}
}

// TestWebAccessibility: every page, with content in it (messages, orders in
// each state, offers, a dead letter, a live tail, the login), has no axe-core
// violation in light or in dark mode.
func TestWebAccessibility(t *testing.T) {
	s := startServer(t)
	logsOnFailure(t, s)
	b := newBrowser(t)

	// Content: a chat between two people; a driver with offers, one picked
	// up; a vendor with orders in several states; an admin page with a
	// room open, a live tail and a dead letter.
	alice, bob := b.tab("alice"), b.tab("bob")
	openChat(alice, s.URL, "alice")
	openChat(bob, s.URL, "bob")
	alice.say("Hello Bob, is the release out?")
	bob.waitMessage("lobby", "Hello Bob, is the release out?")
	bob.say("Yes, all green.")
	alice.waitMessage("lobby", "Yes, all green.")

	driver := b.tab("driver")
	openParcel(driver, s.URL, "driver=driver-1")
	eventually(t, webTimeout, "the driver in its group", func() bool {
		_, g, _ := s.do(t, http.MethodGet, "/ns/default/rooms/pickups/groups/drivers", nil, "")
		ms, _ := g["members"].([]any)
		return len(ms) == 1
	})
	vendor := b.tab("vendor")
	openParcel(vendor, s.URL, "vendor=acme")
	for _, c := range []string{"Ada Lovelace", "Alan Turing", "Grace Hopper"} {
		vendorOrder(vendor, c)
	}
	driver.wait("three offers", `document.querySelectorAll("#jobs li.job[data-state=offered]").length === 3`)
	driver.click(`#jobs li.job[data-state=offered] button.pickup`)
	driver.wait("one picked up", `document.querySelectorAll("#jobs li.job[data-state=picked]").length === 1`)
	driver.click(`#jobs li.job[data-state=picked] button.deliver`)
	driver.click(`#jobs li.job[data-state=offered] button.pickup`)
	vendor.wait("orders delivered, in transit and requested", `document.querySelector("#orders tr[data-status=delivered]") &&
		document.querySelector("#orders tr[data-status=in-transit]") && document.querySelector("#orders tr[data-status=requested]")`)

	if code, body, _ := s.do(t, http.MethodPut, "/ns/default/rooms/jobs/groups/parkers", map[string]any{"ack_wait": "1s", "max_deliver": 1}, ""); code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("create group parkers: %d %v", code, body)
	}
	parker := s.subscribe(t, "/ns/default/rooms/jobs/events?group=parkers", "")
	parker.connected()
	s.publish(t, "/ns/default/rooms/jobs/messages", map[string]any{"event": "job", "data": map[string]string{"task": "parked"}}, "")
	parker.Expect("job")
	parker.Expect("revoked")
	parker.Expect("dead_letter")
	admin := b.tab("admin")
	admin.do(chromedp.Navigate(s.URL + "/admin.html"))
	admin.wait("the admin page live", `document.querySelector("#updated").dataset.state === "live"`)
	admin.do(chromedp.SendKeys(chromedp.CSS("#watch"), "jobs"+kb.Enter))
	admin.wait("the dead letter", `document.querySelector("#dead-table tr[data-group=parkers]") !== null`)
	admin.do(chromedp.SendKeys(chromedp.CSS("#tail-room"), "lobby"), chromedp.Click(chromedp.CSS("#tail-start")))
	admin.wait("the tail watching", `document.querySelector("#tail-state").textContent.startsWith("Watching")`)
	s.publish(t, "/ns/default/rooms/lobby/messages", map[string]any{"event": "chat message", "data": map[string]string{"name": "ops", "text": "tail"}}, "")
	admin.wait("the tail's event", `document.querySelectorAll("#tail li").length > 0`)

	landing := b.tab("visitor")
	landing.do(chromedp.Navigate(s.URL + "/"))
	choose := b.tab("chooser")
	choose.do(chromedp.Navigate(s.URL + "/parcel.html"))
	choose.wait("the role form", `!document.querySelector("#choose").hidden`)

	pages := []struct {
		name string
		tb   *tab
	}{{"landing", landing}, {"chat", bob}, {"parcel (choose a role)", choose}, {"vendor", vendor}, {"driver", driver}, {"admin", admin}}
	for _, scheme := range []string{"light", "dark"} {
		for _, p := range pages {
			p.tb.do(colorScheme(scheme))
			p.tb.axe(p.name + " in " + scheme + " mode")
		}
	}

	// The admin's login, on a server with credentials.
	sec := startSecure(t)
	login := b.tab("login")
	login.do(chromedp.Navigate(sec.URL + "/admin.html"))
	login.wait("the login", `!document.querySelector("#login").hidden`)
	for _, scheme := range []string{"light", "dark"} {
		login.do(colorScheme(scheme))
		login.axe("admin login in " + scheme + " mode")
	}
}

// TestWebPhoneLayouts: at 390×844, the chat's message box is on the screen
// with 32 messages in the room (rooms and people folded away), the driver's
// first offer comes before the explanation, and the admin tables fit the
// width (one card per row, every cell labelled).
func TestWebPhoneLayouts(t *testing.T) {
	s := startServer(t)
	logsOnFailure(t, s)
	b := newBrowser(t)
	phone := chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)

	chat := b.tab("alice")
	chat.do(phone)
	openChat(chat, s.URL, "alice")
	for i := 0; i < 32; i++ {
		s.publish(t, "/ns/default/rooms/lobby/messages", map[string]any{"event": "chat message", "data": map[string]string{"name": "bob", "text": fmt.Sprintf("message %d of a long conversation", i+1)}}, "")
	}
	chat.waitMessage("lobby", "message 32 of a long conversation")
	var box struct{ Top, Bottom, Height float64 }
	chat.eval(`(() => { const r = document.querySelector("#text").getBoundingClientRect(); return {Top: r.top, Bottom: r.bottom, Height: innerHeight}; })()`, &box)
	if box.Top < 0 || box.Bottom > box.Height {
		t.Errorf("chat at 390×844: the message box spans y %.0f–%.0f, want within the screen (0–%.0f)", box.Top, box.Bottom, box.Height)
	}
	var folded struct{ Rooms, People, Scrolls bool }
	chat.eval(`({Rooms: !document.querySelector("#rooms-fold").open, People: !document.querySelector("#people-fold").open,
		Scrolls: document.querySelector("#logs").scrollHeight > document.querySelector("#logs").clientHeight})`, &folded)
	if !folded.Rooms || !folded.People || !folded.Scrolls {
		t.Errorf("chat at 390×844: %+v, want rooms and people folded, the messages scrolling", folded)
	}
	chat.say("typed on a phone")
	chat.wait("own message sent", `document.querySelector("#log-lobby li.msg.mine[data-state=sent]") !== null`)
	chat.screenshot("chat-phone", "chat-phone")

	driver := b.tab("driver")
	driver.do(phone)
	openParcel(driver, s.URL, "driver=driver-1")
	s.publish(t, "/ns/default/rooms/pickups/messages", map[string]any{"event": "pickup", "data": map[string]string{"order": "acme-1", "vendor": "acme", "customer": "Ada Lovelace", "address": "1 Analytical Way"}}, "")
	driver.wait("the offer", `document.querySelector("#jobs li.job[data-state=offered]") !== null`)
	var pos struct{ Offer, Explanation float64 }
	driver.eval(`({Offer: document.querySelector("#jobs li.job").getBoundingClientRect().top, Explanation: document.querySelector("#shift-h").getBoundingClientRect().top})`, &pos)
	if pos.Offer > 200 || pos.Offer > pos.Explanation {
		t.Errorf("driver at 390×844: the first offer at y %.0f, the explanation at %.0f; want the offer first, near the top", pos.Offer, pos.Explanation)
	}
	driver.screenshot("parcel-driver-phone", "")

	admin := b.tab("admin")
	admin.do(phone)
	admin.do(chromedp.Navigate(s.URL + "/admin.html"))
	admin.wait("the groups listed", `document.querySelector("#groups-table tr[data-group=drivers]") !== null`)
	var fit struct {
		Overflow float64
		Display  string
		Labels   []string
	}
	admin.eval(`({Overflow: document.documentElement.scrollWidth - innerWidth,
		Display: getComputedStyle(document.querySelector("#groups-table tr[data-group=drivers]")).display,
		Labels: [...document.querySelectorAll("#groups-table tr[data-group=drivers] > *")].map((c) => getComputedStyle(c, "::before").content)})`, &fit)
	if fit.Overflow > 0 || fit.Display != "block" {
		t.Errorf("admin at 390×844: %.0f px of sideways scroll, group rows displayed as %q; want none, one card per row", fit.Overflow, fit.Display)
	}
	for _, l := range fit.Labels {
		if l == "none" || l == "" || l == `""` {
			t.Errorf("admin at 390×844: a group cell without its label: %q", fit.Labels)
			break
		}
	}
	admin.run(`document.querySelector("#groups-h").scrollIntoView()`)
	admin.screenshot("admin-phone", "")
}
