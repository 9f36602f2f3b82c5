package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/fault"
)

// clusterNode is one roomcast node of a test cluster, in its own process.
type clusterNode struct {
	*child
	srv *testServer
}

// freePorts returns n free loopback ports for the nodes' routes, outside
// the kernel's ephemeral range (fault.FreeAddr): a port another node's
// NATS client listener (bound to :0) cannot have taken first.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var out []int
	for i := 0; i < n; i++ {
		addr, err := fault.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		out = append(out, p)
	}
	return out
}

// startCluster starts n nodes at once (a node's engine waits for the
// others to form a quorum before it serves).
func startCluster(t testing.TB, n int, extra ...string) []*clusterNode {
	t.Helper()
	ports := freePorts(t, n)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	nodes := make([]*clusterNode, n)
	urls := make([]<-chan string, n)
	for i := range nodes {
		args := append([]string{"--addr", "127.0.0.1:0", "--data", t.TempDir(), "--log-level", "info",
			"--node-name", fmt.Sprintf("n%d", i+1), "--cluster-name", "rc",
			"--cluster-listen", fmt.Sprintf("127.0.0.1:%d", ports[i]), "--routes", strings.Join(routes, ",")}, extra...)
		c, u := spawnChild(t, args...)
		urls[i] = u
		nodes[i] = &clusterNode{child: c}
	}
	for i, node := range nodes {
		select {
		case node.URL = <-urls[i]:
		case <-time.After(90 * time.Second):
			t.Fatalf("node %d did not start within 90s", i+1)
		}
		node.srv = &testServer{t: t, URL: node.URL}
	}
	for i, node := range nodes {
		eventually(t, 30*time.Second, fmt.Sprintf("node %d ready", i+1), func() bool {
			code, _, _ := node.srv.do(t, http.MethodGet, "/readyz", nil, "")
			return code == http.StatusOK
		})
	}
	return nodes
}

// TestClusterThreeNodes runs three real nodes (separate processes, embedded
// NATS servers clustered by routes, R3 streams) and checks that the
// cluster behaves as one service, including the loss of a node by SIGKILL
// and a minority that refuses publishes.
func TestClusterThreeNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: not in -short")
	}
	nodes := startCluster(t, 3, "--recovery-window", "60s")
	n1, n2, n3 := nodes[0].srv, nodes[1].srv, nodes[2].srv

	// GET /status on any node names the three nodes (itself first).
	eventually(t, 30*time.Second, "n1's status listing the three nodes", func() bool {
		_, st, _ := n1.do(t, http.MethodGet, "/status", nil, "")
		b, _ := json.Marshal(st["nodes"])
		return st["cluster"] == "rc" && string(b) == `[{"name":"n1","self":true},{"name":"n2","self":false},{"name":"n3","self":false}]`
	})

	// Connections on n2 and n3; the REST calls go to n1.
	a := n2.subscribe(t, "/ns/default/events?rooms=lobby", "")
	aID, aTok, _ := a.connected()
	b := n3.subscribe(t, "/ns/default/events?rooms=lobby", "")
	bID, bTok, _ := b.connected()
	expectOnly := func(want map[*sseStream]bool, marker string) {
		t.Helper()
		for st, gets := range map[*sseStream]bool{a: want[a], b: want[b]} {
			if gets {
				if ev := st.Expect("e"); ev.envelope(t)["data"] != marker {
					t.Fatalf("got %v, want %s", ev.envelope(t)["data"], marker)
				}
			}
		}
		// A sentinel to everyone proves who did not get it.
		n1.publish(t, "/ns/default/messages", `{"event":"sentinel"}`, "")
		a.Expect("sentinel")
		b.Expect("sentinel")
	}

	t.Run("emit across nodes", func(t *testing.T) {
		n1.publish(t, "/ns/default/rooms/lobby/messages", `{"event":"e","data":"to lobby"}`, "")
		expectOnly(map[*sseStream]bool{a: true, b: true}, "to lobby")
		n1.publish(t, "/ns/default/connections/"+bID+"/messages", `{"event":"e","data":"direct"}`, "")
		expectOnly(map[*sseStream]bool{b: true}, "direct")
	})
	t.Run("except for a sender on another node", func(t *testing.T) {
		// n1 authenticates a's token (a lives on n2) and sets from.
		id := n1.publish(t, "/ns/default/rooms/lobby/messages", fmt.Sprintf(`{"event":"e","data":"not to a","except":[%q]}`, aID), aTok)
		ev := b.Expect("e")
		if env := ev.envelope(t); env["from"] != aID || env["id"] != id {
			t.Fatalf("envelope %v, want from %s and id %s", env, aID, id)
		}
		n1.publish(t, "/ns/default/messages", `{"event":"sentinel"}`, "")
		a.Expect("sentinel")
		b.Expect("sentinel")
	})
	t.Run("join and leave a connection of another node", func(t *testing.T) {
		code, body, _ := n1.do(t, http.MethodPut, "/ns/default/rooms/news/members/"+aID, nil, aTok)
		if code != 200 || body["changed"] != true {
			t.Fatalf("remote join: %d %v", code, body)
		}
		if code, _, _ := n1.do(t, http.MethodPut, "/ns/default/rooms/news/members/"+aID, nil, bTok); code != 403 {
			t.Fatalf("remote join with another connection's token: %d", code)
		}
		n3.publish(t, "/ns/default/rooms/news/messages", `{"event":"e","data":"news"}`, "")
		expectOnly(map[*sseStream]bool{a: true}, "news")
		code, body, _ = n1.do(t, http.MethodGet, "/ns/default/connections/"+aID, nil, "")
		if code != 200 || len(body["rooms"].([]any)) != 2 {
			t.Fatalf("remote connection info: %d %v", code, body)
		}
		if code, _, _ := n3.do(t, http.MethodDelete, "/ns/default/rooms/news/members/"+aID, nil, aTok); code != 200 {
			t.Fatalf("remote leave: %d", code)
		}
		n1.publish(t, "/ns/default/rooms/news/messages", `{"event":"e","data":"news 2"}`, "")
		expectOnly(map[*sseStream]bool{}, "")
	})
	t.Run("presence is cluster-wide", func(t *testing.T) {
		_, body, _ := n1.do(t, http.MethodGet, "/ns/default/rooms/lobby/members", nil, "")
		ids := map[string]bool{}
		for _, m := range body["members"].([]any) {
			ids[m.(map[string]any)["id"].(string)] = true
		}
		if !ids[aID] || !ids[bID] || len(ids) != 2 {
			t.Fatalf("members of lobby seen from n1: %v", body)
		}
		_, body, _ = n1.do(t, http.MethodGet, "/ns/default/rooms", nil, "")
		if rooms := body["rooms"].([]any); len(rooms) != 1 || rooms[0].(map[string]any)["members"] != float64(2) {
			t.Fatalf("rooms seen from n1: %v", body)
		}
	})
	t.Run("a group shares work across nodes, acks from any node", func(t *testing.T) {
		code, _, _ := n1.do(t, http.MethodPut, "/ns/default/rooms/jobs/groups/w", `{"max_in_flight":100}`, "")
		if code != 200 {
			t.Fatalf("create group: %d", code)
		}
		m2 := n2.subscribe(t, "/ns/default/rooms/jobs/events?group=w", "")
		_, m2Tok, _ := m2.connected()
		m3 := n3.subscribe(t, "/ns/default/rooms/jobs/events?group=w", "")
		_, m3Tok, _ := m3.connected()
		for i := 0; i < 40; i++ {
			n1.publish(t, "/ns/default/rooms/jobs/messages", fmt.Sprintf(`{"event":"job","data":%d}`, i), "")
		}
		got := map[string]int{}
		per := map[*sseStream]int{}
		acks := map[string][]string{}
		deadline := time.Now().Add(30 * time.Second)
		for len(got) < 40 && time.Now().Before(deadline) {
			for st, tok := range map[*sseStream]string{m2: m2Tok, m3: m3Tok} {
				select {
				case ev := <-st.events:
					var d struct {
						AckID string `json:"ack_id"`
						Data  int
					}
					json.Unmarshal([]byte(ev.Data), &d)
					got[fmt.Sprint(d.Data)]++
					per[st]++
					acks[tok] = append(acks[tok], d.AckID)
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
		if len(got) != 40 {
			t.Fatalf("group delivered %d of 40", len(got))
		}
		for k, n := range got {
			if n != 1 {
				t.Errorf("job %s delivered %d times", k, n)
			}
		}
		if per[m2] == 0 || per[m3] == 0 {
			t.Errorf("work not shared across nodes: %v", per)
		}
		for tok, ids := range acks {
			if code, body, _ := n1.do(t, http.MethodPost, "/ns/default/rooms/jobs/groups/w/acks", map[string]any{"ids": ids}, tok); code != 204 {
				t.Fatalf("acks on n1 for a member of another node: %d %v", code, body)
			}
		}
		eventually(t, 10*time.Second, "the group drained", func() bool {
			_, st, _ := n2.do(t, http.MethodGet, "/ns/default/rooms/jobs/groups/w", nil, "")
			return st["pending"] == float64(0) && st["in_flight"] == float64(0)
		})
		m2.Close()
		m3.Close()
	})

	// A connection on n3 with a REST-joined room, then n3 dies (SIGKILL)
	// while publishers hammer n1 and n2.
	c := n3.subscribe(t, "/ns/default/events", "")
	cID, cTok, _ := c.connected()
	if code, _, _ := n1.do(t, http.MethodPut, "/ns/default/rooms/extra/members/"+cID, nil, cTok); code != 200 {
		t.Fatalf("join extra: %d", code)
	}
	first := n1.publish(t, "/ns/default/rooms/extra/messages", `{"event":"x","data":"before"}`, "")
	ev := c.Expect("x")
	if ev.envelope(t)["id"] != first {
		t.Fatalf("first extra message: got %v, want id %s", ev.envelope(t), first)
	}
	lastID := ev.ID

	t.Run("SIGKILL a node while publishing", func(t *testing.T) {
		var mu sync.Mutex
		acked := map[string]bool{}
		var afterKill int
		killed := make(chan struct{})
		var wg sync.WaitGroup
		client := &http.Client{Timeout: 15 * time.Second}
		for p, node := range []*testServer{n1, n2} {
			wg.Add(1)
			go func(p int, node *testServer) {
				defer wg.Done()
				for i := 0; i < 150; i++ {
					key := fmt.Sprintf("p%d-%d", p, i)
					resp, err := client.Post(node.URL+"/ns/default/rooms/extra/messages", "application/json",
						strings.NewReader(fmt.Sprintf(`{"event":"x","data":%q}`, key)))
					if err != nil {
						continue
					}
					resp.Body.Close()
					if resp.StatusCode == 202 {
						mu.Lock()
						acked[key] = true
						select {
						case <-killed:
							afterKill++
						default:
						}
						mu.Unlock()
					}
				}
			}(p, node)
		}
		eventually(t, 20*time.Second, "publishes under way", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(acked) >= 30
		})
		nodes[2].kill()
		close(killed)
		wg.Wait()
		if afterKill == 0 {
			t.Fatal("no publish succeeded after the node died")
		}
		// Every 202 is in history, read from each surviving node.
		for i, node := range []*testServer{n1, n2} {
			seen := map[string]bool{}
			after := first
			for pages := 0; pages < 100; pages++ {
				// A read makes a consumer, which needs the cluster's
				// JetStream meta leader; if the killed node held it, a new
				// one is elected in ~6.5 s (longer on a loaded machine) and a
				// read that could not wait for it within its own 10 s
				// answers 503. A client retries; so does this one, for
				// 45 s (plus the attempt under way, at most a minute).
				var code int
				var body map[string]any
				eventually(t, 45*time.Second, fmt.Sprintf("history on node %d (not 503)", i+1), func() bool {
					code, body, _ = node.do(t, http.MethodGet, "/ns/default/rooms/extra/messages?limit=1000&after="+after, nil, "")
					return code != http.StatusServiceUnavailable
				})
				if code != 200 {
					t.Fatalf("history on node %d: %d %v", i+1, code, body)
				}
				msgs := body["messages"].([]any)
				if len(msgs) == 0 {
					break
				}
				for _, m := range msgs {
					seen[fmt.Sprint(m.(map[string]any)["data"])] = true
				}
				after = body["last"].(string)
			}
			for key := range acked {
				if !seen[key] {
					t.Errorf("node %d: publish %s answered 202 is missing from history", i+1, key)
				}
			}
		}
		t.Logf("%d publishes answered 202, %d after the kill; all in history on both survivors", len(acked), afterKill)

		// The dead node's client resumes on n1: same id, its REST-joined
		// room restored, every message it missed, no gap.
		back := n1.subscribe(t, "/ns/default/events", lastID)
		con := back.Expect("connected").envelope(t)
		if con["restored"] != true || con["id"] != cID {
			t.Fatalf("resume on another node: %v, want restored %s", con, cID)
		}
		seen := map[string]bool{}
		for len(seen) < len(acked) {
			ev := back.Next(20 * time.Second)
			if ev.Event != "x" {
				t.Fatalf("unexpected %s: %s", ev.Event, ev.Data)
			}
			seen[fmt.Sprint(ev.envelope(t)["data"])] = true
		}
		back.Close()
	})

	t.Run("a minority refuses publishes, and histories agree after healing", func(t *testing.T) {
		// With n3 dead, stopping n2 leaves n1 alone: no quorum.
		if err := nodes[1].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		// Until n1 notices that it hears no peer (--peer-timeout, 3 s), a
		// publish may reach its stream leader and get no answer: 504,
		// outcome unknown. Then it is refused at once: 503, not stored.
		// Never a 2xx.
		began := time.Now()
		eventually(t, 20*time.Second, "a publish on the minority refused with 503", func() bool {
			code, body, hdr := n1.do(t, http.MethodPost, "/ns/default/rooms/extra/messages", `{"event":"x","data":"minority"}`, "")
			if code != 503 && code != 504 || hdr.Get("Retry-After") == "" {
				t.Fatalf("publish on a minority: %d %v, want 503 or 504 with Retry-After", code, body)
			}
			return code == 503
		})
		t.Logf("the minority refused publishes after %s", time.Since(began).Round(time.Millisecond))
		eventually(t, 20*time.Second, "n1 not ready", func() bool {
			code, _, _ := n1.do(t, http.MethodGet, "/readyz", nil, "")
			return code == 503
		})
		if err := nodes[1].cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "n1 ready again", func() bool {
			code, _, _ := n1.do(t, http.MethodGet, "/readyz", nil, "")
			return code == 200
		})
		var healed string
		eventually(t, 30*time.Second, "publishes again", func() bool {
			code, body, _ := n1.do(t, http.MethodPost, "/ns/default/rooms/extra/messages", `{"event":"x","data":"healed"}`, "")
			if code == 202 {
				healed = body["id"].(string)
			}
			return code == 202
		})
		history := func(node *testServer) []string {
			var ids []string
			after := first
			for pages := 0; pages < 100; pages++ {
				_, body, _ := node.do(t, http.MethodGet, "/ns/default/rooms/extra/messages?limit=1000&after="+after, nil, "")
				msgs, _ := body["messages"].([]any)
				if len(msgs) == 0 {
					break
				}
				for _, m := range msgs {
					ids = append(ids, m.(map[string]any)["id"].(string))
				}
				after = body["last"].(string)
			}
			return ids
		}
		var h1, h2 []string
		eventually(t, 30*time.Second, "histories to agree", func() bool {
			h1, h2 = history(n1), history(n2)
			return len(h1) > 0 && strings.Join(h1, ",") == strings.Join(h2, ",") && h1[len(h1)-1] == healed
		})
	})
}
