package main

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
)

// e2eReconnect reopens path resuming from lastID, through the Last-Event-ID
// header or the last_event_id query parameter.
func e2eReconnect(t *testing.T, s *testServer, path, lastID string, viaQuery bool) *e2eClient {
	t.Helper()
	if !viaQuery {
		return e2eOpen(t, s, path, lastID)
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return e2eOpen(t, s, path+sep+"last_event_id="+url.QueryEscape(lastID), "")
}

func e2eSorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// e2eCheckRestored checks that c is the same connection as old, restored.
func e2eCheckRestored(t *testing.T, c, old *e2eClient, resumedFrom string, wantRooms []string) {
	t.Helper()
	if !c.Restored || c.ID != old.ID || c.Token != old.Token {
		t.Fatalf("resumed connection: restored %v id %s token %s, want restored, id %s and the same token",
			c.Restored, c.ID, c.Token, old.ID)
	}
	if !e2eEqualJSON(t, e2eAnySlice(e2eSorted(c.Rooms)), wantRooms) {
		t.Fatalf("resumed connection rooms %v, want %v", c.Rooms, wantRooms)
	}
	if c.FirstID != resumedFrom {
		t.Fatalf("connected id %s, want the resumed position %s", c.FirstID, resumedFrom)
	}
}

func TestE2EResumeRoomStream(t *testing.T) {
	t.Parallel()
	for _, viaQuery := range []bool{false, true} {
		t.Run(fmt.Sprintf("query=%v", viaQuery), func(t *testing.T) {
			t.Parallel()
			s := startServer(t)
			const path = "/ns/default/rooms/r/events"
			c := e2eOpen(t, s, path, "")
			m1 := e2ePub(t, s, "/ns/default/rooms/r/messages", "m", 1, "")
			m2 := e2ePub(t, s, "/ns/default/rooms/r/messages", "m", 2, "")
			c.expect(t, m1, m2)
			last := c.LastID
			c.Close()
			e2eWaitDisconnects(t, s, c.ID, 1)

			var missed []string
			for i := 3; i <= 8; i++ {
				e2ePub(t, s, "/ns/default/rooms/other/messages", "noise", i, "")
				if i == 5 {
					missed = append(missed, e2ePub(t, s, "/ns/default/messages", "all", i, ""))
					continue
				}
				missed = append(missed, e2ePub(t, s, "/ns/default/rooms/r/messages", "m", i, ""))
			}
			r := e2eReconnect(t, s, path, last, viaQuery)
			e2eCheckRestored(t, r, c, last, []string{"r"})
			got := r.expect(t, missed...)
			for _, m := range got {
				if !strings.HasSuffix(m.EventID, "."+c.Token) {
					t.Fatalf("replayed id %s does not carry the token", m.EventID)
				}
			}
			live := e2ePub(t, s, "/ns/default/rooms/r/messages", "m", 9, "")
			r.expect(t, live)
			r.expect(t, e2eSentinel(t, s)) // no duplicate after the live one
		})
	}
}

func TestE2EResumeConnectionStream(t *testing.T) {
	t.Parallel()
	for _, viaQuery := range []bool{false, true} {
		t.Run(fmt.Sprintf("query=%v", viaQuery), func(t *testing.T) {
			t.Parallel()
			s := startServer(t)
			other := e2eOpen(t, s, "/ns/default/events?rooms=b", "")
			c := e2eOpen(t, s, "/ns/default/events?rooms=a", "")
			e2eMembership(t, s, http.MethodPut, "b", c.ID, c.Token, true, []string{"a", "b"})
			m1 := e2ePub(t, s, "/ns/default/rooms/a/messages", "m", 1, "")
			c.expect(t, m1)
			sentinel := e2eSentinel(t, s)
			other.expect(t, sentinel)
			c.expect(t, sentinel)
			last := c.LastID
			c.Close()
			e2eWaitDisconnects(t, s, c.ID, 1)

			var missed []string
			missed = append(missed, e2ePub(t, s, "/ns/default/rooms/a/messages", "m", 2, ""))
			missed = append(missed, e2ePub(t, s, "/ns/default/rooms/b/messages", "m", 3, ""))
			e2ePub(t, s, "/ns/default/rooms/z/messages", "not-joined", 4, "")
			missed = append(missed, e2ePub(t, s, "/ns/default/connections/"+c.ID+"/messages", "dm", 5, ""))
			e2ePub(t, s, "/ns/default/connections/"+other.ID+"/messages", "dm-other", 6, "")
			missed = append(missed, e2ePub(t, s, "/ns/default/messages", "all", 7, ""))
			missed = append(missed, s.publish(t, "/ns/default/messages", map[string]any{"event": "multi", "data": 8, "rooms": []string{"z", "b", "a"}}, ""))
			s.publish(t, "/ns/default/messages", map[string]any{"event": "not-me", "data": 9, "except": []string{c.ID}}, other.Token)
			s.publish(t, "/ns/default/messages", map[string]any{"event": "not-b", "data": 10, "rooms": []string{"a"}, "except": []string{"b"}}, "")
			missed = append(missed, e2ePub(t, s, "/ns/default/connections/"+c.ID+"/messages", "dm", 11, other.Token))

			// EventSource reconnects to the same URL; a client may also
			// come back without the rooms query: both restore a and b.
			path := "/ns/default/events?rooms=a"
			if viaQuery {
				path = "/ns/default/events"
			}
			r := e2eReconnect(t, s, path, last, viaQuery)
			e2eCheckRestored(t, r, c, last, []string{"a", "b"})
			got := r.expect(t, missed...)
			if got[len(got)-1].Env["from"] != other.ID || got[2].Env["to"] != c.ID {
				t.Fatalf("replayed direct messages: %v / %v", got[2].Env, got[len(got)-1].Env)
			}
			conn := e2eGet(t, s, "/ns/default/connections/"+c.ID)
			if !e2eEqualJSON(t, conn["rooms"], []string{"a", "b"}) {
				t.Fatalf("GET /connections after resume: rooms %v, want [a b]", conn["rooms"])
			}
			// Live again, in both rooms and directly; the token still
			// authorizes.
			live := []string{
				e2ePub(t, s, "/ns/default/rooms/b/messages", "m", 12, ""),
				e2ePub(t, s, "/ns/default/connections/"+c.ID+"/messages", "dm", 13, ""),
				e2ePub(t, s, "/ns/default/rooms/a/messages", "m", 14, c.Token),
			}
			r.expect(t, live...)
			e2eMembership(t, s, http.MethodDelete, "b", c.ID, c.Token, true, []string{"a"})
			e2ePub(t, s, "/ns/default/rooms/b/messages", "m", 15, "")
			r.expect(t, e2eSentinel(t, s))
		})
	}
}

// TestE2EResumePositionOnly: a Last-Event-ID without the token (what a
// history page's `last` gives, or a client that kept only the message id)
// is a new connection, but it still gets every message of its rooms after
// that position: no silent gap.
func TestE2EResumePositionOnly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, path string }{
		{"room stream", "/ns/default/rooms/p/events"},
		{"connection stream", "/ns/default/events?rooms=p"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t)
			c := e2eOpen(t, s, tc.path, "")
			m1 := e2ePub(t, s, "/ns/default/rooms/p/messages", "m", 1, "")
			c.expect(t, m1)
			c.Close()
			e2eWaitDisconnects(t, s, c.ID, 1)
			missed := []string{
				e2ePub(t, s, "/ns/default/rooms/p/messages", "m", 2, ""),
				e2ePub(t, s, "/ns/default/messages", "all", 3, ""),
				e2ePub(t, s, "/ns/default/rooms/p/messages", "m", 4, ""),
			}
			e2ePub(t, s, "/ns/default/rooms/q/messages", "other", 5, "")
			for _, viaQuery := range []bool{false, true} {
				r := e2eReconnect(t, s, tc.path, e2ePosition(c.LastID), viaQuery)
				if r.Restored || r.ID == c.ID {
					t.Fatalf("position-only resume: restored %v id %s, want a new connection", r.Restored, r.ID)
				}
				if r.FirstID != m1+"."+r.Token {
					t.Fatalf("connected id %s, want %s.<new token>", r.FirstID, m1)
				}
				r.expect(t, missed...)
				r.expect(t, e2ePub(t, s, "/ns/default/rooms/p/messages", "m", 6, ""))
				r.Close()
				missed = append(missed, r.LastID[:strings.Index(r.LastID, ".")])
			}
		})
	}
}

// TestE2EResumeWhilePublishing resumes in the middle of a steady stream of
// publishes: the replay and the live messages queued meanwhile must join
// with no gap and no duplicate.
func TestE2EResumeWhilePublishing(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	const path = "/ns/default/rooms/busy/events"
	c := e2eOpen(t, s, path, "")
	var first []string
	for i := 0; i < 20; i++ {
		first = append(first, e2ePub(t, s, "/ns/default/rooms/busy/messages", "m", i, ""))
	}
	c.expect(t, first...)
	c.Close()
	e2eWaitDisconnects(t, s, c.ID, 1)

	const n = 150
	ids := make(chan string, n)
	errs := make(chan error, 1)
	go func() {
		defer close(ids)
		for i := 0; i < n; i++ {
			code, out, _ := s.do(t, http.MethodPost, "/ns/default/rooms/busy/messages", map[string]any{"event": "m", "data": 100 + i}, "")
			id, _ := out["id"].(string)
			if code != http.StatusAccepted || id == "" {
				errs <- fmt.Errorf("publish %d: %d %v", i, code, out)
				return
			}
			ids <- id
		}
	}()
	var want []string
	for len(want) < 40 { // resume once 40 were published while away
		select {
		case id, ok := <-ids:
			if !ok {
				t.Fatalf("publisher stopped: %v", <-errs)
			}
			want = append(want, id)
		case <-time.After(e2eTimeout):
			t.Fatal("publisher stalled")
		}
	}
	r := e2eOpen(t, s, path, c.LastID)
	e2eCheckRestored(t, r, c, c.LastID, []string{"busy"})
	for id := range ids {
		want = append(want, id)
	}
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if len(want) != n {
		t.Fatalf("published %d, want %d", len(want), n)
	}
	r.expect(t, want...)
	r.expect(t, e2eSentinel(t, s))
}

// TestE2EResumeImmediateReconnect closes the stream and reconnects as soon
// as the server has dropped the old connection (as a client whose network
// blinked does): the connection must be restored with the missed message,
// whatever the server was still doing with the old stream.
func TestE2EResumeImmediateReconnect(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	const path = "/ns/default/rooms/flap/events"
	c := e2eOpen(t, s, path, "")
	id, token := c.ID, c.Token
	last := c.LastID
	// Background publishes keep the engine busy, as in production: the
	// server's handling of a stream's end then takes longer.
	stop := make(chan struct{})
	noise := make(chan struct{})
	go func() {
		defer close(noise)
		client := &http.Client{Timeout: e2eTimeout}
		for n := 0; n < 100000; n++ {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := client.Post(s.URL+"/ns/default/rooms/noise/messages", "application/json", strings.NewReader(`{"event":"n"}`))
			if err != nil {
				return
			}
			resp.Body.Close()
		}
	}()
	defer func() { close(stop); <-noise }()
	for i := 0; i < 50; i++ {
		c.Close()
		m := e2ePub(t, s, "/ns/default/rooms/flap/messages", "m", i, "")
		// Reconnect the moment presence no longer lists the old stream:
		// poll back to back (each poll is a request), bounded in time.
		for deadline := time.Now().Add(e2eTimeout); e2eMembers(t, s, "flap") != 0; {
			if time.Now().After(deadline) {
				t.Fatalf("reconnect %d: the old stream is still in the room after %s", i, e2eTimeout)
			}
		}
		c = e2eOpen(t, s, path, last)
		if !c.Restored || c.ID != id || c.Token != token {
			// Diagnose: when did the previous stream's disconnect (logged
			// once its session is saved) happen, against this connect?
			prev := e2eWaitDisconnects(t, s, id, len(e2eLogs(s, "msg", "connect", "conn_id", id)))
			now := e2eLogs(s, "msg", "connect", "conn_id", c.ID)
			t.Fatalf("reconnect %d: restored %v id %s, want restored %s; the previous stream's disconnect (reason %q) was logged at %s, this connect at %s",
				i, c.Restored, c.ID, id, prev["reason"], prev["time"], now[0]["time"])
		}
		c.expect(t, m)
		last = c.LastID
	}
}

// TestE2EResumeAbortedHandshake: a client that drops while its resume is
// being set up (a flaky network makes EventSource do exactly that) must not
// lose its session: its next resume is still restored.
func TestE2EResumeAbortedHandshake(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	const path = "/ns/default/rooms/ab/events"
	c := e2eOpen(t, s, path, "")
	c.expect(t, e2ePub(t, s, "/ns/default/rooms/ab/messages", "m", 0, ""))
	c.Close()
	e2eWaitDisconnects(t, s, c.ID, 1)
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nLast-Event-ID: %s\r\n\r\n", path, u.Host, c.LastID); err != nil {
			t.Fatal(err)
		}
		// A deliberate sweep of how long the client stays before dropping
		// (0 to 2 ms), not a wait for a condition.
		time.Sleep(time.Duration(i%21) * 100 * time.Microsecond)
		local := conn.LocalAddr().String()
		conn.Close()
		// The access log line is written when the aborted request's
		// handler has returned (its session saved, if it got that far).
		var aborted []e2eLogRecord
		eventually(t, e2eTimeout, "the aborted request to end", func() bool {
			aborted = e2eLogs(s, "msg", "request", "remote", local)
			return len(aborted) > 0
		})
		r := e2eOpen(t, s, path, c.LastID)
		if !r.Restored || r.ID != c.ID {
			t.Fatalf("round %d: resume after an aborted one: restored %v id %s, want restored %s; the aborted request ended with status %s after %s and lost the session",
				i, r.Restored, r.ID, c.ID, aborted[0]["status"], aborted[0]["duration"])
		}
		r.Close()
		n := len(e2eLogs(s, "msg", "connect", "conn_id", c.ID))
		e2eWaitDisconnects(t, s, c.ID, n)
	}
}

func TestE2EResetUnknownEpoch(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	witness := e2eOpen(t, s, "/ns/default/rooms/e/events", "")
	m0 := e2ePub(t, s, "/ns/default/rooms/e/messages", "m", 0, "")
	witness.expect(t, m0) // applied: later streams start after it
	epoch := e2eEpoch(t, m0)
	other := "ffffffffffffffff"
	if epoch == other {
		other = "0"
	}
	for _, tc := range []struct{ name, last string }{
		{"unknown epoch", other + "-1"},
		{"unknown epoch with token", other + "-1.AAAAAAAAAAAAAAAAAAAAAA"},
		{"ahead of the log", epoch + "-999999"},
		{"unknown token", epoch + "-1.AAAAAAAAAAAAAAAAAAAAAA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/ns/default/rooms/e/events", "/ns/default/events?rooms=e"} {
				c := e2eOpen(t, s, path, tc.last)
				if c.Restored {
					t.Fatalf("%s: restored from %s", path, tc.last)
				}
				if tc.name == "unknown token" {
					// The position is in the log: the URL's room is replayed
					// from it whatever became of the session, then the reset
					// says the connection itself was lost.
					ev := c.Next(e2eTimeout)
					for ev.Event == "m" {
						ev = c.Next(e2eTimeout)
					}
					if ev.Event != "reset" || !strings.Contains(ev.Data, "unknown") {
						t.Fatalf("%s: got %s %s after the replay, want a reset naming the unknown session", path, ev.Event, ev.Data)
					}
					c.expect(t, e2ePub(t, s, "/ns/default/rooms/e/messages", "m", 1, ""))
					c.Close()
					continue
				}
				d := c.expectReset(t)
				if pos, _ := d["position"].(string); e2eEpoch(t, pos) != epoch {
					t.Fatalf("reset position %v: want the current epoch %s", d["position"], epoch)
				}
				// Live after the reset.
				c.expect(t, e2ePub(t, s, "/ns/default/rooms/e/messages", "m", 1, ""))
				c.Close()
			}
		})
	}
}

func TestE2EResetRetention(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--max-msgs-per-room", "5")
	const path = "/ns/default/rooms/ret/events"
	c := e2eOpen(t, s, path, "")
	c.expect(t, e2ePub(t, s, "/ns/default/rooms/ret/messages", "m", 0, ""))
	c.Close()
	e2eWaitDisconnects(t, s, c.ID, 1)
	witness := e2eOpen(t, s, "/ns/default/rooms/ret/events", "")
	var ids []string
	for i := 1; i <= 10; i++ {
		ids = append(ids, e2ePub(t, s, "/ns/default/rooms/ret/messages", "m", i, ""))
	}
	// Once the witness has them, they are applied: a stream opened now
	// stands at the last one.
	witness.expect(t, ids...)

	var r *e2eClient
	for _, last := range []string{c.LastID, e2ePosition(c.LastID)} {
		r = e2eOpen(t, s, path, last)
		d := r.expectReset(t)
		// The reset's position is where the stream now stands: the last
		// message, and the first live one follows it.
		if d["position"] != ids[len(ids)-1] {
			t.Fatalf("reset position %v, want %s", d["position"], ids[len(ids)-1])
		}
		live := e2ePub(t, s, "/ns/default/rooms/ret/messages", "m", 11, "")
		r.expect(t, live)
		ids = append(ids, live)
		r.Close()
		e2eWaitDisconnects(t, s, r.ID, 1)
	}

	// A resume from a position still within retention is not a reset.
	more := []string{
		e2ePub(t, s, "/ns/default/rooms/ret/messages", "m", 12, ""),
		e2ePub(t, s, "/ns/default/rooms/ret/messages", "m", 13, ""),
	}
	again := e2eOpen(t, s, path, r.LastID)
	e2eCheckRestored(t, again, r, r.LastID, []string{"ret"})
	again.expect(t, more...)
}

func TestE2EResetRecoveryWindow(t *testing.T) {
	t.Parallel()
	const window = time.Second
	s := startServer(t, "--recovery-window", window.String())
	c := e2eOpen(t, s, "/ns/default/events?rooms=r", "")
	e2eMembership(t, s, http.MethodPut, "extra", c.ID, c.Token, true, []string{"extra", "r"})
	c.expect(t, e2ePub(t, s, "/ns/default/rooms/r/messages", "m", 1, ""))
	c.Close()
	gone := e2eLogTime(t, e2eWaitDisconnects(t, s, c.ID, 1))
	// The server compares the session's save time (just before that log
	// line) with the window: wait on the clock, with margin.
	eventually(t, window+e2eTimeout, "the recovery window to pass", func() bool {
		return time.Since(gone) > window+300*time.Millisecond
	})
	witness := e2eOpen(t, s, "/ns/default/events?rooms=r,extra", "")
	m2 := e2ePub(t, s, "/ns/default/rooms/r/messages", "m", 2, "")
	witness.expect(t, m2, e2ePub(t, s, "/ns/default/rooms/extra/messages", "m", 3, "")) // applied before the reconnect

	r := e2eOpen(t, s, "/ns/default/events?rooms=r", c.LastID)
	if r.Restored || r.ID == c.ID || r.Token == c.Token {
		t.Fatalf("after the recovery window: restored %v id %s, want a new connection", r.Restored, r.ID)
	}
	if !e2eEqualJSON(t, e2eAnySlice(r.Rooms), []string{"r"}) {
		t.Fatalf("rooms %v, want only r (extra is not restored)", r.Rooms)
	}
	// Room r (in the URL) is replayed from the position, extra is not; then
	// the reset names the window.
	r.expect(t, m2)
	d := r.expectReset(t)
	if reason, _ := d["reason"].(string); !strings.Contains(reason, "recovery window") {
		t.Fatalf("reset reason %q, want it to name the recovery window", reason)
	}
	e2eProblem(t, s, http.MethodPut, "/ns/default/rooms/x/members/"+c.ID, nil, map[string]string{"Authorization": "Bearer " + c.Token}, http.StatusUnauthorized)
	e2ePub(t, s, "/ns/default/rooms/extra/messages", "m", 4, "")
	r.expect(t, e2ePub(t, s, "/ns/default/rooms/r/messages", "m", 5, ""))
}

func TestE2ERestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s1 := startServerData(t, dir)
	c := e2eOpen(t, s1, "/ns/default/events?rooms=r", "")
	e2eMembership(t, s1, http.MethodPut, "j", c.ID, c.Token, true, []string{"j", "r"})
	var before []string
	for i := 0; i < 3; i++ {
		before = append(before, e2ePub(t, s1, "/ns/default/rooms/r/messages", "m", i, ""))
	}
	c.expect(t, before...)
	s1.Stop()
	c.Ended(e2eTimeout)
	if len(e2eLogs(s1, "msg", "disconnect", "conn_id", c.ID, "reason", "server closing")) != 1 {
		t.Fatalf("no disconnect line with reason server closing for %s:\n%s", c.ID, s1.logs.String())
	}

	s2 := startServerData(t, dir)
	ids, _ := e2eHistory(t, s2, "r", "")
	e2eSameIDs(t, "history after restart", ids, before)

	after := []string{
		e2ePub(t, s2, "/ns/default/rooms/r/messages", "m", 3, ""),
		e2ePub(t, s2, "/ns/default/rooms/j/messages", "m", 4, ""),
		e2ePub(t, s2, "/ns/default/connections/"+c.ID+"/messages", "dm", 5, ""),
	}
	e2ePub(t, s2, "/ns/default/rooms/other/messages", "m", 6, "")
	lastSeq := e2eSeq(t, before[len(before)-1])
	for _, id := range after {
		if e2eEpoch(t, id) != e2eEpoch(t, before[0]) || e2eSeq(t, id) <= lastSeq {
			t.Fatalf("id %s after restart: want epoch %s and a sequence above %d", id, e2eEpoch(t, before[0]), lastSeq)
		}
		lastSeq = e2eSeq(t, id)
	}
	r := e2eOpen(t, s2, "/ns/default/events?rooms=r", c.LastID)
	e2eCheckRestored(t, r, c, c.LastID, []string{"j", "r"})
	r.expect(t, after...)
	r.expect(t, e2ePub(t, s2, "/ns/default/rooms/j/messages", "m", 7, ""))
	ids, _ = e2eHistory(t, s2, "r", "?after="+before[0])
	e2eSameIDs(t, "history across the restart", ids, append(before[1:], after[0]))
}
