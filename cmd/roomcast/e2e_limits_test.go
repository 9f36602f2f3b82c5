package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestE2EConcurrentPublishers: 8 publishers × 250 messages to one room. Two
// subscribers each get all 2,000 exactly once, ids strictly increasing, and
// each publisher's messages in its publish order.
func TestE2EConcurrentPublishers(t *testing.T) {
	t.Parallel()
	const publishers, each = 8, 250
	s := startServer(t)
	subs := []*e2eClient{
		e2eOpen(t, s, "/ns/default/rooms/race/events", ""),
		e2eOpen(t, s, "/ns/default/events?rooms=race", ""),
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: publishers}, Timeout: e2eTimeout}
	defer client.CloseIdleConnections()

	start := time.Now()
	defer func() { t.Logf("phases: %v", time.Since(start)) }()
	published := make([][]string, publishers)
	errs := make(chan error, publishers)
	var wg sync.WaitGroup
	for p := 0; p < publishers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < each; n++ {
				body := fmt.Sprintf(`{"event":"m","data":{"p":%d,"n":%d}}`, p, n)
				resp, err := client.Post(s.URL+"/ns/default/rooms/race/messages", "application/json", strings.NewReader(body))
				if err != nil {
					errs <- fmt.Errorf("publisher %d message %d: %v", p, n, err)
					return
				}
				var out struct{ ID string }
				err = e2eDecodeJSON(resp.Body, &out)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted || err != nil || out.ID == "" {
					errs <- fmt.Errorf("publisher %d message %d: status %d id %q err %v", p, n, resp.StatusCode, out.ID, err)
					return
				}
				published[p] = append(published[p], out.ID)
			}
		}()
	}
	wg.Wait()
	t.Logf("published in %v", time.Since(start))
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	owner := map[string][2]int{} // id → publisher, n
	for p, ids := range published {
		for n, id := range ids {
			if n > 0 && e2eSeq(t, id) <= e2eSeq(t, ids[n-1]) {
				t.Fatalf("publisher %d: id %s after %s: ids must grow in publish order", p, id, ids[n-1])
			}
			if _, dup := owner[id]; dup {
				t.Fatalf("id %s answered twice", id)
			}
			owner[id] = [2]int{p, n}
		}
	}

	for i, sub := range subs {
		next := make([]int, publishers) // next n expected from each publisher
		var last uint64
		for k := 0; k < publishers*each; k++ {
			m := sub.recv(t)
			seq := e2eSeq(t, m.ID())
			if seq <= last {
				t.Fatalf("subscriber %d, message %d: id %s not above the previous sequence %d (duplicate or reordered)", i, k, m.ID(), last)
			}
			last = seq
			data, _ := m.Env["data"].(map[string]any)
			p, n := int(data["p"].(float64)), int(data["n"].(float64))
			if who, ok := owner[m.ID()]; !ok || who != [2]int{p, n} {
				t.Fatalf("subscriber %d: message %s carries p=%d n=%d, published as %v (known %v)", i, m.ID(), p, n, who, ok)
			}
			if n != next[p] {
				t.Fatalf("subscriber %d: publisher %d's message %d arrived when %d was due", i, p, n, next[p])
			}
			next[p]++
		}
	}
	sentinel := e2eSentinel(t, s) // and nothing more
	for _, sub := range subs {
		sub.expect(t, sentinel)
	}
}

// TestE2ESlowConsumer: a client that never reads its stream is closed by
// the server; a healthy subscriber of the same room keeps getting every
// message and publishes keep being accepted.
func TestE2ESlowConsumer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
	}{
		// The write deadline or the queue, whichever comes first.
		{"queue 16, write timeout 1s", []string{"--queue-size", "16", "--write-timeout", "1s"}},
		// Only the queue can catch it: a fan-out that waited for the stuck
		// client would stall the healthy one past the test's timeout.
		{"queue 16, write timeout 60s", []string{"--queue-size", "16", "--write-timeout", "60s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, tc.args...)
			healthy := e2eOpen(t, s, "/ns/default/rooms/slow/events", "")

			stuck := e2eStuckReader(t, s, "/ns/default/rooms/slow/events")
			eventually(t, e2eTimeout, "the stuck reader to join", func() bool { return e2eMembers(t, s, "slow") == 2 })
			var stuckID string
			for _, m := range e2eGet(t, s, "/ns/default/rooms/slow/members")["members"].([]any) {
				if id := m.(map[string]any)["id"].(string); id != healthy.ID {
					stuckID = id
				}
			}

			pad := strings.Repeat("x", 16<<10)
			dropped := false
			for i := 0; i < 2000 && !dropped; i++ {
				id := e2ePub(t, s, "/ns/default/rooms/slow/messages", "big", map[string]any{"i": i, "pad": pad}, "")
				healthy.expect(t, id)
				if i%8 == 7 {
					dropped = e2eMembers(t, s, "slow") == 1
				}
			}
			if !dropped {
				t.Fatalf("the stuck reader is still a member after 2000 messages of 16 KiB")
			}
			published := len(e2eLogs(s, "msg", "request", "method", "POST"))
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("server log of %s:\n%s", stuckID, strings.Join(e2eLogLines(s, stuckID), "\n"))
				}
			})
			rec := e2eWaitDisconnects(t, s, stuckID, 1)
			if rec["reason"] != "slow consumer" && !strings.Contains(rec["reason"], "timeout") {
				t.Fatalf("stuck reader's disconnect: %v, want reason slow consumer or a write timeout", rec)
			}
			t.Logf("stuck reader dropped after %d publishes, reason %q", published, rec["reason"])
			// The server closed the stuck connection: reading it now drains
			// what was buffered and ends.
			if err := stuck.SetReadDeadline(time.Now().Add(e2eTimeout)); err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(io.Discard, stuck)
			if err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("stuck connection after %d bytes: %v, want it closed by the server", n, err)
			}
			// Healthy is still live and nothing is lost.
			healthy.expect(t, e2ePub(t, s, "/ns/default/rooms/slow/messages", "small", 1, ""))
			if n := e2eMembers(t, s, "slow"); n != 1 {
				t.Fatalf("slow has %d members, want 1", n)
			}
		})
	}
}

// e2eStuckReader opens an SSE stream on a raw connection with a small
// receive buffer and never reads it.
func e2eStuckReader(t *testing.T, s *testServer, path string) net.Conn {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	d := net.Dialer{Timeout: e2eTimeout, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", path, u.Host); err != nil {
		t.Fatal(err)
	}
	return conn
}

func TestE2EHeartbeat(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--heartbeat", "100ms")
	c := e2eOpen(t, s, "/ns/default/rooms/hb/events", "")
	for i := 0; i < 3; i++ {
		select {
		case comment := <-c.Comments:
			if comment != "heartbeat" {
				t.Fatalf("comment %q, want heartbeat", comment)
			}
		case <-time.After(e2eTimeout):
			t.Fatalf("no heartbeat comment %d within %s", i+1, e2eTimeout)
		}
	}
	// Heartbeats are comments, never events, and do not disturb messages.
	c.expect(t, e2ePub(t, s, "/ns/default/rooms/hb/messages", "m", 1, ""))
}

// TestE2EBodyTooLarge: bodies over --max-body get 413 whatever the
// endpoint, with or without Content-Length.
func TestE2EBodyTooLarge(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--max-body", "1024")
	c := e2eOpen(t, s, "/ns/default/rooms/big/events", "")
	big := map[string]any{"event": "m", "data": strings.Repeat("y", 2000)}
	for _, path := range []string{"/ns/default/messages", "/ns/default/rooms/big/messages", "/ns/default/connections/" + c.ID + "/messages"} {
		e2eProblem(t, s, http.MethodPost, path, big, nil, http.StatusRequestEntityTooLarge)
		e2eProblem(t, s, http.MethodPost, path, io.MultiReader(strings.NewReader(`{"event":"m","data":"`), strings.NewReader(strings.Repeat("z", 5000)), strings.NewReader(`"}`)), nil, http.StatusRequestEntityTooLarge)
	}
	// Just under the limit is fine and delivered whole.
	data := strings.Repeat("w", 900)
	c.expect(t, e2ePub(t, s, "/ns/default/rooms/big/messages", "m", data, ""))[0].check(t, data)
	c.expect(t, e2eSentinel(t, s))
}

func (m e2eMsg) check(t *testing.T, data any) {
	t.Helper()
	if !e2eEqualJSON(t, m.Env["data"], data) {
		t.Fatalf("message %s: data %v, want %v", m.ID(), m.Env["data"], data)
	}
}

// TestE2EBadInputs: every malformed request gets its 4xx status and a
// problem+json body, and the server keeps working.
func TestE2EBadInputs(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	c := e2eOpen(t, s, "/ns/default/rooms/ok/events", "")
	const pub = "/ns/default/rooms/ok/messages"
	type bad struct {
		name    string
		method  string
		path    string
		body    any
		headers map[string]string
		status  int
		field   string // a field error expected in the problem, if any
	}
	cases := []bad{
		{"invalid JSON", "POST", pub, `{"event":`, nil, 400, ""},
		{"not JSON", "POST", pub, `event=x`, nil, 400, ""},
		{"empty body", "POST", pub, ``, nil, 400, ""},
		{"blank body", "POST", pub, "  \n ", nil, 400, ""},
		{"null body", "POST", pub, `null`, nil, 400, "event"},
		{"array body", "POST", pub, `[{"event":"x"}]`, nil, 400, ""},
		{"two objects", "POST", pub, `{"event":"x"}{"event":"y"}`, nil, 400, ""},
		{"unknown field", "POST", pub, `{"event":"x","room":"a"}`, nil, 400, ""},
		{"unknown field on /messages", "POST", "/ns/default/messages", `{"event":"x","to":"a"}`, nil, 400, ""},
		{"event not a string", "POST", pub, `{"event":1}`, nil, 400, ""},
		{"rooms not a list", "POST", "/ns/default/messages", `{"event":"x","rooms":"ok"}`, nil, 400, ""},
		{"raw newline in a string", "POST", pub, "{\"event\":\"x\",\"data\":\"a\nb\"}", nil, 400, ""},
		{"no event", "POST", pub, `{"data":1}`, nil, 400, "event"},
	}
	for _, ev := range []string{"", "connected", "reset", "error", "a\nb", "a\rb", "a\r\nb", "a\x00b", "\n", "a\u2028b", "a\u2029b", "a\x7fb", "a\u0085b", "\tx", strings.Repeat("e", 129)} {
		cases = append(cases, bad{fmt.Sprintf("event %q", ev), "POST", pub, map[string]any{"event": ev, "data": 1}, nil, 400, "event"})
	}
	badRooms := []string{"a b", " a", ".a", "a.", "a..b", ".", "..", ">", "*", "a.>", "a.*", "a/b", "a\\b", "a%b", "é", strings.Repeat("r", 129), strings.Repeat("r", 200), "a\x00b", "a\rb", "a\nb", "a\r\nb", "\x00", "a,b"}
	for _, r := range badRooms {
		cases = append(cases,
			bad{fmt.Sprintf("rooms [%q]", r), "POST", "/ns/default/messages", map[string]any{"event": "x", "rooms": []string{"ok", r}}, nil, 400, "rooms[1]"},
			bad{fmt.Sprintf("except [%q]", r), "POST", pub, map[string]any{"event": "x", "except": []string{r}}, nil, 400, "except[0]"},
		)
		esc := url.PathEscape(r)
		for _, p := range []struct{ method, path string }{
			{"POST", "/ns/default/rooms/" + esc + "/messages"},
			{"GET", "/ns/default/rooms/" + esc + "/events"},
			{"GET", "/ns/default/rooms/" + esc},
			{"GET", "/ns/default/rooms/" + esc + "/members"},
			{"GET", "/ns/default/rooms/" + esc + "/messages"},
			{"PUT", "/ns/default/rooms/" + esc + "/members/" + c.ID},
			{"DELETE", "/ns/default/rooms/" + esc + "/members/" + c.ID},
		} {
			if r == "a/b" || r == "." || r == ".." || r == "a\\b" {
				continue // not one path segment; tested in bodies and queries
			}
			cases = append(cases, bad{fmt.Sprintf("room %q in %s %s", r, p.method, p.path), p.method, p.path, `{"event":"x"}`,
				map[string]string{"Authorization": "Bearer " + c.Token}, 400, "room"})
		}
	}
	for _, q := range []string{"a%20b", "ok,,b", ",", "ok,", "%3E", "*", "a%0Ab", "a%0D", "a%00b", "a%0D%0Aevent:%20x", ".a", strings.Repeat("q", 200), "ok,a.*"} {
		cases = append(cases, bad{"rooms query " + q, "GET", "/ns/default/events?rooms=" + q, nil, nil, 400, "rooms"})
	}
	// Percent-encoded control characters right in the path.
	for _, p := range []string{"/ns/default/rooms/a%00b/messages", "/ns/default/rooms/a%0Db/messages", "/ns/default/rooms/a%0Ab/messages", "/ns/default/rooms/%0D%0A/events", "/ns/default/rooms/a%2Fb/messages", "/ns/default/rooms/a%2Eb%2E/events"} {
		cases = append(cases, bad{"path " + p, "GET", p, nil, nil, 400, "room"})
	}
	for _, id := range []string{"short", strings.Repeat("A", 23), "AAAAAAAAAAAAAAAAAAAA.A", "AAAAAAAAAAAAAAAAAAAA%0A"} {
		cases = append(cases,
			bad{"connection id " + id, "GET", "/ns/default/connections/" + id, nil, nil, 400, "id"},
			bad{"direct to " + id, "POST", "/ns/default/connections/" + id + "/messages", `{"event":"x"}`, nil, 400, "id"},
		)
	}
	for _, p := range []string{"/ns/nope/events", "/ns/nope/rooms/ok/events", "/ns/nope/rooms", "/ns/nope", "/ns/Default/rooms"} {
		cases = append(cases, bad{"unknown namespace " + p, "GET", p, nil, nil, 404, ""})
	}
	cases = append(cases,
		bad{"publish to an unknown namespace", "POST", "/ns/nope/messages", `{"event":"x"}`, nil, 404, ""},
		bad{"invalid namespace name", "GET", "/ns/a.b/rooms", nil, nil, 400, "ns"},
		bad{"unknown endpoint", "GET", "/ns/default/nothing", nil, nil, 404, ""},
	)
	epoch := e2eEpoch(t, c.FirstID)
	for _, last := range []string{"garbage", "1", "-1", epoch, epoch + "-", "-5", "xyz-1", strings.ToUpper(epoch) + "X-1", epoch + "-01", epoch + "-1x",
		epoch + "-18446744073709551616", "abcdefabcdefabcdef-1", epoch + "-1.short", epoch + "-1.AAAAAAAAAAAAAAAAAAAAAA.x",
		epoch + "-1.AAAAAAAAAAAAAAAAAAAA!!", epoch + "-1 .AAAAAAAAAAAAAAAAAAAAAA"} {
		for _, path := range []string{"/ns/default/events", "/ns/default/rooms/ok/events"} {
			cases = append(cases,
				bad{fmt.Sprintf("Last-Event-ID %q on %s", last, path), "GET", path, nil, map[string]string{"Last-Event-ID": last}, 400, "Last-Event-ID"},
				bad{fmt.Sprintf("last_event_id %q on %s", last, path), "GET", path + "?last_event_id=" + url.QueryEscape(last), nil, nil, 400, "last_event_id|Last-Event-ID"},
			)
		}
	}
	for _, tc := range cases {
		p := e2eProblem(t, s, tc.method, tc.path, tc.body, tc.headers, tc.status)
		if tc.field != "" {
			e2eFieldError(t, p, tc.field)
		}
		if t.Failed() {
			t.Fatalf("case %q", tc.name)
		}
	}
	// The limits themselves are accepted: a 128-character room and event.
	long := strings.Repeat("L", 128)
	lc := e2eOpen(t, s, "/ns/default/events?rooms="+long, "")
	lm := lc.expect(t, e2ePub(t, s, "/ns/default/rooms/"+long+"/messages", long, 1, ""))[0]
	if lm.Event != long || lm.Env["room"] != long {
		t.Fatalf("128-character room and event: got event %q room %v", lm.Event, lm.Env["room"])
	}
	// None of the bad requests reached the room, and the server still serves.
	c.expect(t, e2ePub(t, s, pub, "m", "still here", ""))
	sentinel := e2eSentinel(t, s)
	c.expect(t, sentinel)
	lc.expect(t, sentinel)
	if recs := e2eLogs(s, "level", "ERROR"); len(recs) > 0 {
		t.Fatalf("server logged errors: %v", recs)
	}
}

// TestE2EMethodNotAllowed: a known path with the wrong method is 405 with a
// problem body.
func TestE2EMethodNotAllowed(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	cases := e2eWrongMethods
	for _, tc := range cases {
		e2eProblem(t, s, tc.method, tc.path, nil, nil, http.StatusMethodNotAllowed)
	}
}

// e2eWrongMethods are known paths asked with a method they do not serve.
var e2eWrongMethods = []struct{ method, path, allow string }{
	{"DELETE", "/ns/default/messages", "POST"},
	{"GET", "/ns/default/messages", "POST"},
	{"PUT", "/ns/default/rooms/x/messages", "GET, POST"},
	{"POST", "/ns/default/rooms", "GET"},
	{"POST", "/ns/default/events", "GET"},
	{"POST", "/ns/default/rooms/x/events", "GET"},
	{"PATCH", "/ns/default/rooms/x/members/AAAAAAAAAAAAAAAAAAAAAA", "PUT, DELETE"},
	{"POST", "/ns/default/connections/AAAAAAAAAAAAAAAAAAAAAA", "GET, DELETE"},
}

// TestE2EMethodNotAllowedAllowHeader: RFC 9110 §15.5.6 says a 405 MUST carry
// Allow with the methods the path supports.
func TestE2EMethodNotAllowedAllowHeader(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	for _, tc := range e2eWrongMethods {
		_, hdr, _ := e2eReq(t, s, tc.method, tc.path, nil, nil)
		got := strings.Join(hdr.Values("Allow"), ", ")
		for _, m := range strings.Split(tc.allow, ", ") {
			if !strings.Contains(got, m) {
				t.Errorf("%s %s: Allow %q, want it to list %s", tc.method, tc.path, got, tc.allow)
				break
			}
		}
	}
}

func e2eDecodeJSON(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

// TestMaxConnectionsPerNode: past --max-connections streams on the node a
// new one is answered 503 with a problem, and a slot frees when a stream
// ends.
func TestMaxConnectionsPerNode(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--max-connections", "2")
	a := s.subscribe(t, "/ns/default/rooms/a/events", "")
	s.subscribe(t, "/ns/default/rooms/b/events", "")
	p := e2eProblem(t, s, http.MethodGet, "/ns/default/rooms/c/events", nil, nil, http.StatusServiceUnavailable)
	if p["status"] != float64(http.StatusServiceUnavailable) {
		t.Errorf("problem %v, want status 503", p)
	}
	a.Close()
	eventually(t, 10*time.Second, "a slot to free up", func() bool {
		st, code := s.trySubscribe(t, "/ns/default/rooms/c/events", "")
		if st != nil {
			st.Close()
		}
		return code == http.StatusOK
	})
}
