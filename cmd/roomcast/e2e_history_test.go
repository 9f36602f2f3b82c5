package main

import (
	"net/http"
	"net/url"
	"testing"
)

// e2eHistory fetches a history page and returns its message ids and answer.
func e2eHistory(t *testing.T, s *testServer, room, query string) ([]string, map[string]any) {
	t.Helper()
	out := e2eGet(t, s, "/ns/default/rooms/"+room+"/messages"+query)
	if out["room"] != room {
		t.Fatalf("history %s%s: room %v", room, query, out["room"])
	}
	msgs, ok := out["messages"].([]any)
	if !ok {
		t.Fatalf("history %s%s: messages %v is not a list", room, query, out["messages"])
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		env, _ := m.(map[string]any)
		ids[i], _ = env["id"].(string)
		if env["ns"] != "default" || env["event"] == nil || ids[i] == "" {
			t.Fatalf("history %s%s: message %d is not an envelope: %v", room, query, i, m)
		}
	}
	if len(ids) > 0 && out["last"] != ids[len(ids)-1] {
		t.Fatalf("history %s%s: last %v, want %s", room, query, out["last"], ids[len(ids)-1])
	}
	return ids, out
}

func e2eSameIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d ids %v, want %d %v", what, len(got), got, len(want), want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: id %d is %s, want %s (got %v, want %v)", what, i, got[i], want[i], got, want)
		}
	}
}

func TestE2EHistory(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	// What a connection in room h alone would receive: room h, any
	// multi-room message naming h, namespace-wide messages; not other
	// rooms, direct messages or messages excepting h.
	var want, nsWide []string
	for i := 0; i < 12; i++ {
		switch i {
		case 3:
			e2ePub(t, s, "/ns/default/rooms/other/messages", "x", i, "")
		case 5:
			want = append(want, e2ePub(t, s, "/ns/default/messages", "all", i, ""))
			nsWide = append(nsWide, want[len(want)-1])
		case 7:
			want = append(want, s.publish(t, "/ns/default/messages", map[string]any{"event": "multi", "data": i, "rooms": []string{"other", "h"}}, ""))
		case 8:
			e2ePub(t, s, "/ns/default/connections/AAAAAAAAAAAAAAAAAAAAAA/messages", "dm", i, "")
		case 9:
			nsWide = append(nsWide, s.publish(t, "/ns/default/messages", map[string]any{"event": "x", "data": i, "except": []string{"h"}}, ""))
		default:
			want = append(want, e2ePub(t, s, "/ns/default/rooms/h/messages", "chat", i, ""))
		}
	}
	ids, out := e2eHistory(t, s, "h", "")
	e2eSameIDs(t, "full history", ids, want)
	if out["truncated"] != false {
		t.Fatalf("full history truncated %v, want false", out["truncated"])
	}
	msgs := out["messages"].([]any)
	if first := msgs[0].(map[string]any); first["room"] != "h" || first["event"] != "chat" || first["data"] != 0.0 || first["from"] != nil {
		t.Fatalf("first history message %v, want room h event chat data 0 from null", first)
	}

	// Latest N without after.
	ids, _ = e2eHistory(t, s, "h", "?limit=3")
	e2eSameIDs(t, "latest 3", ids, want[len(want)-3:])
	ids, _ = e2eHistory(t, s, "h", "?limit=1")
	e2eSameIDs(t, "latest 1", ids, want[len(want)-1:])

	// Pages with after: walk the whole history 2 at a time.
	var walked []string
	after := ""
	for page := 0; page < len(want); page++ {
		q := "?limit=2"
		if after != "" {
			q += "&after=" + url.QueryEscape(after)
		}
		if page == 0 {
			// The first page starts from before the first message.
			q += "&after=" + e2eEpoch(t, want[0]) + "-0"
		}
		ids, out := e2eHistory(t, s, "h", q)
		if len(ids) == 0 {
			if out["last"] != nil {
				t.Fatalf("empty page with last %v", out["last"])
			}
			break
		}
		if len(ids) > 2 {
			t.Fatalf("page %d has %d messages, limit 2", page, len(ids))
		}
		walked = append(walked, ids...)
		after = out["last"].(string)
	}
	e2eSameIDs(t, "paged history", walked, want)
	// after in the middle, and an SSE id (with token) works as after too.
	ids, _ = e2eHistory(t, s, "h", "?after="+want[2]+"&limit=3")
	e2eSameIDs(t, "after 3rd", ids, want[3:6])
	ids, _ = e2eHistory(t, s, "h", "?after="+want[2]+".AAAAAAAAAAAAAAAAAAAAAA&limit=3")
	e2eSameIDs(t, "after 3rd with token", ids, want[3:6])
	ids, _ = e2eHistory(t, s, "h", "?after="+want[len(want)-1])
	e2eSameIDs(t, "after the last", ids, nil)

	// A room without messages of its own still has the namespace-wide ones.
	ids, _ = e2eHistory(t, s, "quiet", "")
	e2eSameIDs(t, "quiet room", ids, nsWide)

	// Bad parameters.
	for _, q := range []string{"limit=0", "limit=-1", "limit=abc", "limit=1.5", "limit=1001", "limit=99999999999999999999",
		"after=garbage", "after=" + want[0] + "x", "after=-1", "after=ABCDEF-1", "after=" + e2eEpoch(t, want[0]) + "-01",
		"after=" + e2eEpoch(t, want[0]) + "--1", "after=" + want[0] + ".short"} {
		p := e2eProblem(t, s, http.MethodGet, "/ns/default/rooms/h/messages?"+q, nil, nil, http.StatusBadRequest)
		field := "limit"
		if q[:5] == "after" {
			field = "after"
		}
		e2eFieldError(t, p, field)
	}
	// A position of another epoch (the store was recreated): 410.
	other := "ffffffffffffffff-1"
	if e2eEpoch(t, want[0]) == "ffffffffffffffff" {
		other = "0-1"
	}
	e2eProblem(t, s, http.MethodGet, "/ns/default/rooms/h/messages?after="+other, nil, nil, http.StatusGone)
	e2eProblem(t, s, http.MethodGet, "/ns/default/rooms/h%20x/messages", nil, nil, http.StatusBadRequest)
}

// TestE2EHistoryRetention: with a per-room limit, history keeps the latest
// messages and says when `after` is older than what was kept.
func TestE2EHistoryRetention(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--max-msgs-per-room", "5")
	var ids []string
	for i := 0; i < 9; i++ {
		ids = append(ids, e2ePub(t, s, "/ns/default/rooms/r/messages", "m", i, ""))
	}
	got, out := e2eHistory(t, s, "r", "")
	e2eSameIDs(t, "history after retention", got, ids[4:])
	if out["truncated"] != false {
		t.Fatalf("latest page truncated %v, want false (no after)", out["truncated"])
	}
	got, out = e2eHistory(t, s, "r", "?after="+ids[0])
	e2eSameIDs(t, "after a removed message", got, ids[4:])
	if out["truncated"] != true {
		t.Fatalf("after %s (removed): truncated %v, want true", ids[0], out["truncated"])
	}
	got, out = e2eHistory(t, s, "r", "?after="+ids[5])
	e2eSameIDs(t, "after a kept message", got, ids[6:])
	if out["truncated"] != false {
		t.Fatalf("after %s (kept): truncated %v, want false", ids[5], out["truncated"])
	}
}
