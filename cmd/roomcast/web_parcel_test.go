package main

// Browser tests of the parcel demo on the queue's guarantees: leases
// counted down, revoked offers withdrawn, one owner per parcel, progress,
// and the vendor's outbox across an outage. Helpers are in web_test.go.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// offerOf returns the driver tab showing an offer of order, waiting for one.
func offerOf(t *testing.T, order string, drivers ...*tab) (*tab, []*tab) {
	t.Helper()
	sel := fmt.Sprintf(`#jobs li.job[data-order=%q][data-state=offered]`, order)
	var holder *tab
	eventually(t, webTimeout, "an offer of "+order, func() bool {
		for _, d := range drivers {
			if d.evalInt(`document.querySelectorAll(`+js(sel)+`).length`) == 1 {
				holder = d
				return true
			}
		}
		return false
	})
	var others []*tab
	for _, d := range drivers {
		if d != holder {
			others = append(others, d)
		}
	}
	return holder, others
}

// vendorOrder requests a pickup through the vendor's form and returns its
// order id once the page shows it.
func vendorOrder(v *tab, customer string) string {
	v.t.Helper()
	before := v.evalInt(`document.querySelectorAll("#orders tbody tr[data-order]").length`)
	v.do(chromedp.SendKeys(chromedp.CSS("#customer"), customer),
		chromedp.SendKeys(chromedp.CSS("#address"), "1 Harbor Road"+kb.Enter))
	v.wait("the new order's row", fmt.Sprintf(`document.querySelectorAll("#orders tbody tr[data-order]").length === %d`, before+1))
	return v.evalString(`document.querySelector("#orders tbody tr[data-order]").dataset.order`)
}

// TestWebParcelLeases: two drivers and a 2 s ack wait. An offer shows its
// countdown; "More time" keeps it past its first deadline and "Pick up"
// then makes it that driver's; an offer left alone is withdrawn from the
// slow driver ("taken by another driver") and goes to the other, who picks
// it up: each parcel has one owner, and the vendor hears of one driver.
func TestWebParcelLeases(t *testing.T) {
	s := startServer(t)
	logsOnFailure(t, s)
	if code, body, _ := s.do(t, http.MethodPut, "/ns/default/rooms/pickups/groups/drivers", map[string]any{"ack_wait": "2s", "backoff": []string{}}, ""); code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("create group drivers: %d %v", code, body)
	}
	b := newBrowser(t)
	d1, d2 := b.tab("driver-1"), b.tab("driver-2")
	openParcel(d1, s.URL, "driver=driver-1")
	openParcel(d2, s.URL, "driver=driver-2")
	eventually(t, webTimeout, "two members in group drivers", func() bool {
		_, body, _ := s.do(t, http.MethodGet, "/ns/default/rooms/pickups/groups/drivers", nil, "")
		ms, _ := body["members"].([]any)
		return len(ms) == 2
	})
	for _, d := range []*tab{d1, d2} {
		d.wait("the ack wait named", `document.querySelector("#ack-wait").textContent.includes("2s")`)
	}
	vendor := b.tab("acme")
	openParcel(vendor, s.URL, "vendor=acme")

	// First pickup: its driver asks for more time twice, past the first
	// deadline, then picks it up.
	first := vendorOrder(vendor, "Ada Lovelace")
	holder, _ := offerOf(t, first, d1, d2)
	card := fmt.Sprintf(`#jobs li.job[data-order=%q]`, first)
	holder.wait("the countdown", `/Pick up within [12] s/.test(document.querySelector(`+js(card+" .countdown")+`).textContent)`)
	for i := 0; i < 2; i++ {
		holder.click(card + " button.more")
		holder.never("the offer withdrawn while extended", 1200*time.Millisecond, `document.querySelector(`+js(card)+`).dataset.state !== "offered"`)
	}
	holder.click(card + " button.pickup")
	holder.wait("picked up", `document.querySelector(`+js(card)+`).dataset.state === "picked"`)
	if focused := holder.evalString(`document.activeElement.className`); !strings.Contains(focused, "deliver") {
		t.Errorf("%s: after Pick up the focus is on %q, want the card's next action (Mark delivered)", holder.name, focused)
	}
	vendor.wait("the first order in transit", fmt.Sprintf(`document.querySelector('#orders tr[data-order=%q]').dataset.status === "in-transit"`, first))

	// Second pickup: its first driver lets the time run out; the offer is
	// withdrawn from that card and goes to the other driver.
	second := vendorOrder(vendor, "Grace Hopper")
	slow, rest := offerOf(t, second, d1, d2)
	fast := rest[0]
	card2 := fmt.Sprintf(`#jobs li.job[data-order=%q]`, second)
	slow.screenshot("parcel-driver-countdown", "parcel-driver")
	slow.wait("the slow driver's card withdrawn", `(document.querySelector(`+js(card2)+`) || {dataset: {}}).dataset.state === "withdrawn" &&
		document.querySelector(`+js(card2)+`).textContent.includes("Taken by another driver")`)
	if n := slow.evalInt(`document.querySelectorAll(` + js(card2+" button.pickup") + `).length`); n != 0 {
		t.Errorf("%s: the withdrawn card still offers Pick up", slow.name)
	}
	fast.wait("the offer at the other driver", `(document.querySelector(`+js(card2)+`) || {dataset: {}}).dataset.state === "offered"`)
	fast.click(card2 + " button.pickup")
	fast.wait("picked up by the other driver", `document.querySelector(`+js(card2)+`).dataset.state === "picked"`)
	vendor.wait("the second order in transit with the other driver", fmt.Sprintf(`(document.querySelector('#orders tr[data-order=%q]') || {dataset: {}}).dataset.status === "in-transit" &&
		document.querySelector('#orders tr[data-order=%q]').textContent.includes(%q)`, second, second, strings.TrimPrefix(fast.name, "")))
	eventually(t, webTimeout, "group drivers settled", func() bool {
		_, g, _ := s.do(t, http.MethodGet, "/ns/default/rooms/pickups/groups/drivers", nil, "")
		return g["pending"] == float64(0) && g["in_flight"] == float64(0)
	})
	// One owner per parcel: each order picked up by one driver, and the
	// vendor told of one driver, once.
	picked := map[string][]string{}
	for _, d := range []*tab{d1, d2} {
		for _, o := range d.evalStrings(`window.roomcastParcel.picked`) {
			picked[o] = append(picked[o], d.name)
		}
	}
	if len(picked[first]) != 1 || picked[first][0] != holder.name || len(picked[second]) != 1 || picked[second][0] != fast.name {
		t.Errorf("picked up: %v; want %s by %s and %s by %s, once each", picked, first, holder.name, second, fast.name)
	}
	_, hist, _ := s.do(t, http.MethodGet, "/ns/default/rooms/vendor-acme/messages", nil, "")
	msgs, _ := hist["messages"].([]any)
	transit := map[string]int{}
	for _, m := range msgs {
		env := m.(map[string]any)
		if env["event"] == "in-transit" {
			transit[env["data"].(map[string]any)["order"].(string)]++
		}
	}
	if transit[first] != 1 || transit[second] != 1 || len(transit) != 2 {
		t.Errorf("in-transit notices %v, want one per order", transit)
	}
}

// TestWebParcelVendorOutbox: the vendor requests a pickup while the server
// is down: the form is cleared at once, the order shows "sending…" and is
// not counted; after a long outage the page offers "Retry now"; once the
// server is back and the button is pressed, the order is stored, once, and
// counted.
func TestWebParcelVendorOutbox(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	s1 := startServerData(t, dir, "--addr", addr)
	b := newBrowser(t)
	v := b.tab("acme")
	openParcel(v, s1.URL, "vendor=acme")
	s1.Stop()
	v.wait("the reconnecting state", `document.querySelector("#status").dataset.state === "reconnecting"`)
	v.do(chromedp.SendKeys(chromedp.CSS("#customer"), "Barbara Liskov"),
		chromedp.SendKeys(chromedp.CSS("#address"), "7 Abstraction Ave"+kb.Enter))
	v.wait("the form cleared and the order sending", `document.querySelector("#customer").value === "" &&
		document.querySelector("#orders tbody tr[data-status=sending] .pill").textContent === "sending…"`)
	if n := v.evalString(`document.querySelector("#n-requested").textContent`); n != "0" {
		t.Errorf("requested count %s while the order is not stored, want 0", n)
	}
	order := v.evalString(`document.querySelector("#orders tbody tr[data-status=sending]").dataset.order`)
	v.wait("the Retry now button after a long outage", `document.querySelector("#orders tbody tr[data-status=sending] button") !== null`)
	v.screenshot("parcel-vendor-outage", "")

	s2 := startServerData(t, dir, "--addr", addr)
	v.do(chromedp.Click(chromedp.CSS(`#orders tbody tr[data-status=sending] button`)))
	v.wait("the order stored and counted", fmt.Sprintf(`document.querySelector('#orders tr[data-order=%q]').dataset.status === "requested" &&
		document.querySelector("#n-requested").textContent === "1"`, order))
	_, hist, _ := s2.do(t, http.MethodGet, "/ns/default/rooms/pickups/messages", nil, "")
	msgs, _ := hist["messages"].([]any)
	stored := 0
	for _, m := range msgs {
		if d, _ := m.(map[string]any)["data"].(map[string]any); d != nil && d["order"] == order {
			stored++
		}
	}
	if stored != 1 {
		t.Errorf("order %s stored %d times, want once", order, stored)
	}
}

// TestWebParcelNotPickedUp: a pickup no driver takes (max_deliver 1, ack
// wait 1 s: its one offer runs out) is parked; the vendor learns it from the
// room's dead_letter notice ("no driver took it", counted as not picked
// up) and requests it again, which offers it to a driver once more.
func TestWebParcelNotPickedUp(t *testing.T) {
	s := startServer(t)
	logsOnFailure(t, s)
	if code, body, _ := s.do(t, http.MethodPut, "/ns/default/rooms/pickups/groups/drivers", map[string]any{"ack_wait": "1s", "max_deliver": 1}, ""); code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("create group drivers: %d %v", code, body)
	}
	b := newBrowser(t)
	d := b.tab("driver-1")
	openParcel(d, s.URL, "driver=driver-1")
	eventually(t, webTimeout, "the driver in its group", func() bool {
		_, g, _ := s.do(t, http.MethodGet, "/ns/default/rooms/pickups/groups/drivers", nil, "")
		ms, _ := g["members"].([]any)
		return len(ms) == 1
	})
	v := b.tab("acme")
	openParcel(v, s.URL, "vendor=acme")
	order := vendorOrder(v, "Frances Allen")
	row := fmt.Sprintf(`document.querySelector('#orders tr[data-order=%q]')`, order)
	d.wait("the offer", fmt.Sprintf(`document.querySelector('#jobs li.job[data-order=%q]') !== null`, order))
	d.wait("the offer withdrawn", fmt.Sprintf(`document.querySelector('#jobs li.job[data-order=%q]').dataset.state === "withdrawn"`, order))
	v.wait("the vendor told that no driver took it", row+`.dataset.status === "unclaimed" && document.querySelector("#n-unclaimed").textContent === "1" &&
		document.querySelector("#notices li[data-event=dead_letter]").textContent.includes("no driver took it")`)
	v.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#orders tr[data-order=%q] button`, order))))
	v.wait("requested again", row+`.dataset.status === "requested" && document.querySelector("#n-unclaimed").textContent === "0"`)
	d.wait("offered again", fmt.Sprintf(`document.querySelector('#jobs li.job[data-order=%q]').dataset.state === "offered"`, order))
}
