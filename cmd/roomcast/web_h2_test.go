package main

// Why HTTP/2 matters to SSE, shown in a real browser: Chromium allows 6
// HTTP/1.1 connections per origin, and an EventSource holds one for as long
// as it is open, so a page (or a set of tabs) with more than 6 streams to
// one origin stalls; over HTTP/2 every stream is multiplexed on one
// connection.

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// openEventSources is the page script: n EventSources on one room, each
// recording when it is connected and what "hello" events it gets.
func openEventSources(n int) string {
	return fmt.Sprintf(`(() => {
	window.es = []; window.opened = []; window.got = [];
	for (let i = 0; i < %d; i++) {
		const e = new EventSource('/ns/default/rooms/tabs/events');
		opened.push(false); got.push([]);
		e.addEventListener('connected', () => { opened[i] = true; });
		e.addEventListener('hello', ev => got[i].push(JSON.parse(ev.data).data));
		es.push(e);
	}
	return true;
})()`, n)
}

// TestWebEventSourcesHTTP2VersusHTTP1: a page opens 10 EventSources to one
// origin. Over HTTPS (HTTP/2, the certificate made by the test and trusted
// by its key's hash) all 10 connect and receive a message. Over HTTP/1.1
// only 6 connect; the 7th to 10th stay CONNECTING while the first 6 receive
// a message, and closing one lets exactly one more in: the browser's
// 6-connection limit, not the server, holds them.
func TestWebEventSourcesHTTP2VersusHTTP1(t *testing.T) {
	cert := newTestCert(t, 9001)
	secure, _, _ := startTLS(t, cert)
	plain := startServer(t)
	logsOnFailure(t, secure)
	logsOnFailure(t, plain)
	// Trust exactly this certificate's key (Chromium needs a profile dir
	// for the flag, which newBrowser gives it).
	spki := sha256.Sum256(cert.Leaf.RawSubjectPublicKeyInfo)
	b := newBrowser(t, chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])))

	// Two sections rather than subtests: a tab fails the test that made
	// its browser.
	const n = 10
	{ // HTTP/2
		tb := b.tab("h2")
		tb.do(chromedp.Navigate(secure.URL + "/healthz"))
		var proto string
		tb.eval(`performance.getEntriesByType('navigation')[0].nextHopProtocol`, &proto)
		if proto != "h2" {
			t.Fatalf("HTTP/2: the page came over %q, want h2", proto)
		}
		var ok bool
		tb.eval(openEventSources(n), &ok)
		tb.wait("10 EventSources connected", `opened.filter(Boolean).length === 10`)
		if got := e2eMembers(t, secure, "tabs"); got != n {
			t.Fatalf("HTTP/2: the server has %d members in the room, want %d", got, n)
		}
		e2ePub(t, secure, "/ns/default/rooms/tabs/messages", "hello", "to all", "")
		tb.wait("every EventSource to receive the message", `got.every(g => g.length === 1 && g[0] === "to all")`)
	}

	{ // HTTP/1.1
		tb := b.tab("h1")
		tb.do(chromedp.Navigate(plain.URL + "/healthz"))
		var proto string
		tb.eval(`performance.getEntriesByType('navigation')[0].nextHopProtocol`, &proto)
		if proto != "http/1.1" {
			t.Fatalf("HTTP/1.1: the page came over %q, want http/1.1", proto)
		}
		var ok bool
		tb.eval(openEventSources(n), &ok)
		tb.wait("6 EventSources connected", `opened.filter(Boolean).length === 6`)
		// A message reaches the 6; by the time it has, the others had every
		// chance to connect.
		e2ePub(t, plain, "/ns/default/rooms/tabs/messages", "hello", "to the first six", "")
		tb.wait("the 6 connected EventSources to receive the message", `got.filter(g => g.length === 1).length === 6`)
		states := tb.evalStrings(`es.map((e, i) => i + ":" + e.readyState + (opened[i] ? ":connected" : ""))`)
		want := []string{"0:1:connected", "1:1:connected", "2:1:connected", "3:1:connected", "4:1:connected", "5:1:connected", "6:0", "7:0", "8:0", "9:0"}
		if strings.Join(states, " ") != strings.Join(want, " ") {
			t.Fatalf("HTTP/1.1: EventSource states (index:readyState) %v, want %v: the 7th onwards stalled in CONNECTING", states, want)
		}
		if got := e2eMembers(t, plain, "tabs"); got != 6 {
			t.Fatalf("HTTP/1.1: the server has %d members in the room, want 6 (the stalled requests never reached it)", got)
		}
		// Closing one frees its connection for the 7th.
		tb.eval(`(() => { es[0].close(); return true; })()`, &ok)
		tb.wait("the 7th EventSource to connect once one is closed", `opened[6] === true`)
		if got := tb.evalInt(`es.filter(e => e.readyState === 0).length`); got != 3 {
			t.Fatalf("HTTP/1.1: %d EventSources still connecting after one closed, want 3", got)
		}
	}
}
