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
			code, body, _ := srv.do(t, http.MethodPut, "/ns/default/rooms/parcels/groups/couriers", `{"max_in_flight":500}`, "")
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
