package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestCLIPublishBatch: `roomcast publish --batch NS [ROOM]` publishes the
// JSON lines of stdin in batches, in order, prints one id per message, the
// problem of a refused line with its number on stderr (exit 3, the others
// still published), and stops at a line that is not JSON (exit 2, the lines
// before it sent).
func TestCLIPublishBatch(t *testing.T) {
	s := startClientServer(t, "")
	cl, _, _ := newClient(t, s)
	srv := "--server=" + s.URL
	history := func(room string) []string {
		t.Helper()
		h, err := cl.RoomHistoryWithResponse(context.Background(), "default", room, nil)
		clientStatus(t, "history", h.StatusCode(), h.Body, err, http.StatusOK)
		var out []string
		for _, m := range h.JSON200.Messages {
			out = append(out, fmt.Sprintf("%s:%v", m.Event, m.Data))
		}
		return out
	}

	lines := strings.Join([]string{
		`{"event":"chat","data":1}`,
		``,
		`{"event":"chat","data":2,"rooms":["other"]}`,
		`{"event":"chat","data":3,"id":"k3"}`,
		`{"data":4}`,
		`{"event":"chat","data":5}`,
	}, "\n") + "\n"
	out, errOut, code := cli(t, nil, lines, "publish", "--batch", "default", "lobby", "--batch-size", "2", srv)
	if code != exitRefused {
		t.Fatalf("exit %d, want %d (a refused line); stderr %s", code, exitRefused, errOut)
	}
	ids := strings.Fields(out)
	if len(ids) != 4 {
		t.Fatalf("printed %q, want 4 ids (lines 1, 3, 4, 6)", out)
	}
	for i, id := range ids {
		if !messageIDRe.MatchString(id) || i > 0 && e2eSeq(t, id) <= e2eSeq(t, ids[i-1]) {
			t.Fatalf("ids %v: want growing message ids", ids)
		}
	}
	if !strings.Contains(errOut, "line 5: publish: 400 invalid request: event is required") {
		t.Errorf("stderr %q, want line 5's problem", errOut)
	}
	if got := strings.Join(history("lobby"), " "); got != "chat:1 chat:3 chat:5" {
		t.Errorf("lobby history %q, want chat:1 chat:3 chat:5 (lines without rooms go to ROOM)", got)
	}
	if got := strings.Join(history("other"), " "); got != "chat:2" {
		t.Errorf("other history %q, want chat:2", got)
	}

	// --json: one result per message with its line; a key seen before.
	out, _ = cliWant(t, 0, nil, `{"event":"chat","data":3,"id":"k3"}`+"\n", "publish", "--batch", "default", "lobby", "--json", srv)
	var res struct {
		Line      int
		ID        string
		Duplicate bool
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Line != 1 || res.ID != ids[2] || !res.Duplicate {
		t.Errorf("--json printed %q, want line 1, id %s, duplicate", out, ids[2])
	}

	// A line that is not a JSON object stops the command; those before it
	// were sent.
	_, errOut = cliWant(t, exitUsage, nil, `{"event":"chat","data":6}`+"\n"+`not json`+"\n"+`{"event":"chat","data":7}`+"\n",
		"publish", "--batch", "default", "lobby", srv)
	if !strings.Contains(errOut, "line 2") {
		t.Errorf("stderr %q, want line 2 named", errOut)
	}
	if got := history("lobby"); got[len(got)-1] != "chat:6" {
		t.Errorf("lobby history ends with %q, want chat:6 (sent before the bad line) and not chat:7", got[len(got)-1])
	}
	cliWant(t, exitUsage, nil, "", "publish", "--batch", "default", "lobby", "--volatile", srv)
}

// TestCLIVolatile: `publish --volatile` is delivered live, prints nothing
// and stores nothing; `subscribe` prints a volatile message with "-" for
// its id and the word volatile.
func TestCLIVolatile(t *testing.T) {
	s := startClientServer(t, "")
	cl, _, _ := newClient(t, s)
	srv := "--server=" + s.URL
	p := cliStart(t, nil, "", "subscribe", "default", "lobby", "--limit", "1", srv)
	eventually(t, specTimeout, "the subscriber connected", func() bool { return strings.Contains(p.stderr.String(), "connected") })
	out, _ := cliWant(t, 0, nil, "", "publish", "default", "lobby", "typing", `{"on":true}`, "--volatile", srv)
	if out != "" {
		t.Errorf("publish --volatile printed %q, want nothing (no id)", out)
	}
	if l := p.line(); l != `- #lobby typing volatile {"on":true}` {
		t.Errorf("subscribe printed %q for a volatile message", l)
	}
	id := tickPublish(t, cl, "lobby", 1)
	if l := p.line(); !strings.HasPrefix(l, id+" #lobby tick") {
		t.Errorf("subscribe printed %q, want the stored message %s", l, id)
	}
	if _, errOut, code := p.wait(); code != 0 {
		t.Errorf("subscribe --limit 1: exit %d (%s), want 0 after one stored message", code, errOut)
	}
	h, err := cl.RoomHistoryWithResponse(context.Background(), "default", "lobby", nil)
	clientStatus(t, "history", h.StatusCode(), h.Body, err, http.StatusOK)
	if len(h.JSON200.Messages) != 1 || h.JSON200.Messages[0].Id != id {
		t.Errorf("history %s, want only %s", h.Body, id)
	}
}
