package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCrashKill9KeepsAcknowledgedPublishes: a child server takes publishes
// at full speed and is killed with SIGKILL several times, restarting on the
// same data dir. Every publish answered 2xx is in history afterwards, and a
// consumer group created before the first publish delivers each at least
// once (duplicates are reported, not failed: the guarantee is
// at-least-once).
func TestCrashKill9KeepsAcknowledgedPublishes(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: not in -short")
	}
	data := t.TempDir()
	args := []string{"--max-msgs-per-room", "-1", "--shutdown-timeout", "2s"}
	srv := &testServer{t: t}

	var mu sync.Mutex
	acked := map[string]string{} // payload key → message id
	const cycles, publishers, perCycle = 3, 8, 1500
	for cycle := 0; cycle < cycles; cycle++ {
		c := startChild(t, data, args...)
		srv.URL = c.URL
		if cycle == 0 {
			code, body, _ := srv.do(t, http.MethodPut, "/ns/default/rooms/parcels/groups/couriers", `{"max_in_flight":200}`, "")
			if code != http.StatusOK {
				t.Fatalf("create group: %d %v", code, body)
			}
		}
		var sent atomic.Int64
		var wg sync.WaitGroup
		stop := make(chan struct{})
		client := &http.Client{Timeout: 5 * time.Second}
		for p := 0; p < publishers; p++ {
			wg.Add(1)
			go func(p int) {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if sent.Add(1) > perCycle {
						return
					}
					key := fmt.Sprintf("c%d-p%d-%d", cycle, p, i)
					body := fmt.Sprintf(`{"event":"pickup","data":{"key":%q}}`, key)
					resp, err := client.Post(c.URL+"/ns/default/rooms/parcels/messages", "application/json", strings.NewReader(body))
					if err != nil {
						return // the server is gone
					}
					var out struct{ ID string }
					err = json.NewDecoder(resp.Body).Decode(&out)
					resp.Body.Close()
					if resp.StatusCode == http.StatusAccepted && err == nil && out.ID != "" {
						mu.Lock()
						acked[key] = out.ID
						mu.Unlock()
					}
				}
			}(p)
		}
		// Kill mid-stream: once a third of this cycle's publishes went out
		// (bounded in time), without any warning to the server.
		deadline := time.Now().Add(20 * time.Second)
		for sent.Load() < perCycle/3 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		c.kill()
		close(stop)
		wg.Wait()
	}
	if len(acked) == 0 {
		t.Fatal("no publish was acknowledged")
	}

	c := startChild(t, data, args...)
	srv.URL = c.URL
	// History: page through everything.
	inHistory := map[string]bool{}
	after := ""
	for pages := 0; pages < 1000; pages++ {
		path := "/ns/default/rooms/parcels/messages?limit=1000"
		if after != "" {
			path += "&after=" + after
		} else {
			path += "&after=" + strings.Split(firstID(acked), "-")[0] + "-0"
		}
		code, body, _ := srv.do(t, http.MethodGet, path, nil, "")
		if code != http.StatusOK {
			t.Fatalf("history: %d %v", code, body)
		}
		msgs, _ := body["messages"].([]any)
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			mm := m.(map[string]any)
			inHistory[mm["data"].(map[string]any)["key"].(string)] = true
		}
		after = body["last"].(string)
	}
	for key, id := range acked {
		if !inHistory[key] {
			t.Errorf("publish %s answered 202 with id %s is missing from history", key, id)
		}
	}

	// The group delivers every acknowledged publish at least once.
	st := srv.subscribe(t, "/ns/default/rooms/parcels/events?group=couriers", "")
	_, token, _ := st.connected()
	got := map[string]int{}
	var pendingAcks []string
	flush := func() {
		if len(pendingAcks) == 0 {
			return
		}
		code, body, _ := srv.do(t, http.MethodPost, "/ns/default/rooms/parcels/groups/couriers/acks", map[string]any{"ids": pendingAcks}, token)
		if code != http.StatusNoContent {
			t.Fatalf("ack: %d %v", code, body)
		}
		pendingAcks = pendingAcks[:0]
	}
	missing := func() int {
		n := 0
		for key := range acked {
			if got[key] == 0 {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(60 * time.Second)
	for missing() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("group delivered %d distinct publishes; %d acknowledged ones missing", len(got), missing())
		}
		select {
		case ev, ok := <-st.events:
			if !ok {
				t.Fatal("group stream ended")
			}
			var d struct {
				AckID string `json:"ack_id"`
				Data  struct{ Key string }
			}
			if err := json.Unmarshal([]byte(ev.Data), &d); err != nil || d.AckID == "" {
				t.Fatalf("not a delivery: %s", ev.Data)
			}
			got[d.Data.Key]++
			pendingAcks = append(pendingAcks, d.AckID)
			if len(pendingAcks) >= 100 {
				flush()
			}
		case <-time.After(200 * time.Millisecond):
			flush()
		}
	}
	flush()
	dups := 0
	for _, n := range got {
		dups += n - 1
	}
	t.Logf("%d cycles of kill -9: %d publishes acknowledged, all in history and delivered to the group; %d stored but unacknowledged (in flight at the kill); %d duplicate deliveries",
		cycles, len(acked), len(got)-len(acked), dups)
}

func firstID(m map[string]string) string {
	for _, id := range m {
		return id
	}
	return ""
}

// TestCrashKill9KeepsSessions: a connection's session is saved before its
// client learns of it (connected, a join's answer), so a kill -9 forgets no
// client: after the restart, a resume with the SSE id it last received
// gets the same connection back — id, token, rooms from the URL and from
// REST — and every message it missed (room, joined room, direct) with no
// reset. A resume whose session is unknown still replays the URL's rooms,
// then says what was lost.
func TestCrashKill9KeepsSessions(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: not in -short")
	}
	data := t.TempDir()
	c := startChild(t, data, "--log-level", "warn")
	srv := &testServer{t: t, URL: c.URL}
	st := srv.subscribe(t, "/ns/default/events?rooms=a", "")
	id, token, _ := st.connected()
	if code, body, _ := srv.do(t, http.MethodPut, "/ns/default/rooms/b/members/"+id, nil, token); code != http.StatusOK {
		t.Fatalf("join b: %d %v", code, body)
	}
	first := srv.publish(t, "/ns/default/rooms/a/messages", `{"event":"m","data":0}`, "")
	ev := st.Expect("m")
	if env := ev.envelope(t); env["id"] != first {
		t.Fatalf("got %v, want %s", env, first)
	}
	c.kill() // no warning, no graceful save
	st.Ended(e2eTimeout)

	c2 := startChild(t, data, "--log-level", "warn")
	srv.URL = c2.URL
	missed := []string{
		srv.publish(t, "/ns/default/rooms/a/messages", `{"event":"m","data":1}`, ""),
		srv.publish(t, "/ns/default/rooms/b/messages", `{"event":"m","data":2}`, ""),
		srv.publish(t, "/ns/default/connections/"+id+"/messages", `{"event":"m","data":3}`, ""),
		srv.publish(t, "/ns/default/rooms/c/messages", `{"event":"m","data":"not its room"}`, ""),
	}
	again := srv.subscribe(t, "/ns/default/events?rooms=a", ev.ID)
	cev := again.Expect("connected")
	var conn struct {
		ID, Token string
		Rooms     []string
		Restored  bool
	}
	if err := json.Unmarshal([]byte(cev.Data), &conn); err != nil {
		t.Fatal(err)
	}
	if !conn.Restored || conn.ID != id || conn.Token != token || strings.Join(conn.Rooms, ",") != "a,b" {
		t.Fatalf("after kill -9: connected %s, want %s restored in a and b", cev.Data, id)
	}
	for _, want := range missed[:3] {
		ev := again.Next(e2eTimeout)
		if ev.Event != "m" || ev.envelope(t)["id"] != want {
			t.Fatalf("after kill -9 got %s %s, want message %s (no reset, no gap)", ev.Event, ev.Data, want)
		}
	}
	// The connection is live: a sentinel, not a wait, proves nothing else
	// came first.
	sentinel := srv.publish(t, "/ns/default/rooms/b/messages", `{"event":"m","data":"sentinel"}`, "")
	if ev := again.Next(e2eTimeout); ev.envelope(t)["id"] != sentinel {
		t.Fatalf("got %s %s, want the sentinel", ev.Event, ev.Data)
	}

	// A resume with a token whose session is unknown here replays the URL's
	// room from the position, then resets with what was lost.
	unknown := srv.subscribe(t, "/ns/default/events?rooms=a", first+".AAAAAAAAAAAAAAAAAAAAAA")
	unknown.Expect("connected")
	if ev := unknown.Next(e2eTimeout); ev.Event != "m" || ev.envelope(t)["id"] != missed[0] {
		t.Fatalf("unknown session: got %s %s, want room a's missed message %s replayed", ev.Event, ev.Data, missed[0])
	}
	reset := unknown.Expect("reset").envelope(t)
	if r, _ := reset["reason"].(string); !strings.Contains(r, "not restored") || !strings.Contains(r, "unknown") {
		t.Errorf("reset %v, want the true reason (an unknown session)", reset)
	}
}
