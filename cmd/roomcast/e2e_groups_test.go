package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// member is a consumer group member: its stream and token.
type member struct {
	st      *sseStream
	id      string
	token   string
	ns      string     // path prefix, "/ns/default" when empty
	notices []sseEvent // revoked and dead_letter events seen by next
}

func joinGroup(t *testing.T, s *testServer, room, group string) *member {
	t.Helper()
	st := s.subscribe(t, "/ns/default/rooms/"+room+"/events?group="+group, "")
	id, token, _ := st.connected()
	return &member{st: st, id: id, token: token}
}

// delivery is a group delivery as a member sees it.
type delivery struct {
	ID       string          `json:"id"`
	AckID    string          `json:"ack_id"`
	Delivery int             `json:"delivery"`
	Room     string          `json:"room"`
	Data     json.RawMessage `json:"data"`
}

// next returns the member's next delivery; the server's notices on the
// way (revoked, dead_letter) are kept in m.notices.
func (m *member) next(t *testing.T, timeout time.Duration) delivery {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ev := m.st.Next(time.Until(deadline))
		if ev.Event == "revoked" || ev.Event == "dead_letter" {
			m.notices = append(m.notices, ev)
			continue
		}
		var d delivery
		if err := json.Unmarshal([]byte(ev.Data), &d); err != nil || d.AckID == "" || d.Delivery < 1 {
			t.Fatalf("event %q is not a group delivery: %s (%v)", ev.Event, ev.Data, err)
		}
		return d
	}
}

func (m *member) settle(t *testing.T, s *testServer, room, group, op string, ids ...string) int {
	t.Helper()
	prefix := m.ns
	if prefix == "" {
		prefix = "/ns/default"
	}
	code, body, _ := s.do(t, http.MethodPost, prefix+"/rooms/"+room+"/groups/"+group+"/"+op, map[string]any{"ids": ids}, m.token)
	if code != http.StatusNoContent && code >= 500 {
		t.Fatalf("%s: %d %v", op, code, body)
	}
	return code
}

func groupState(t *testing.T, s *testServer, room, group string) map[string]any {
	t.Helper()
	code, body, _ := s.do(t, http.MethodGet, "/ns/default/rooms/"+room+"/groups/"+group, nil, "")
	if code != http.StatusOK {
		t.Fatalf("group state: %d %v", code, body)
	}
	return body
}

func putGroup(t *testing.T, s *testServer, room, group string, cfg map[string]any) {
	t.Helper()
	code, body, _ := s.do(t, http.MethodPut, "/ns/default/rooms/"+room+"/groups/"+group, cfg, "")
	if code != http.StatusOK {
		t.Fatalf("PUT group: %d %v", code, body)
	}
}

// TestGroupSharesWork: N members share 1,000 messages; no message is held
// by two members at once and every message is acknowledged.
func TestGroupSharesWork(t *testing.T) {
	for _, n := range []int{2, 5} {
		t.Run(fmt.Sprintf("%d members", n), func(t *testing.T) {
			t.Parallel()
			s := startServer(t)
			putGroup(t, s, "work", "workers", map[string]any{"max_in_flight": 8, "ack_wait": "30s"})
			members := make([]*member, n)
			for i := range members {
				members[i] = joinGroup(t, s, "work", "workers")
			}
			eventually(t, 10*time.Second, "members registered", func() bool {
				ms, _ := groupState(t, s, "work", "workers")["members"].([]any)
				return len(ms) == n
			})
			const total = 1000
			var mu sync.Mutex
			holder := map[string]int{} // message id → member index holding it
			acked := map[string]bool{}
			perMember := make([]int, n)
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i, m := range members {
				wg.Add(1)
				go func(i int, m *member) {
					defer wg.Done()
					for {
						mu.Lock()
						done := len(acked) == total
						mu.Unlock()
						if done {
							return
						}
						var ev sseEvent
						select {
						case e, ok := <-m.st.events:
							if !ok {
								errs <- fmt.Errorf("member %d: stream ended", i)
								return
							}
							ev = e
						case <-time.After(200 * time.Millisecond):
							continue
						}
						var d delivery
						if err := json.Unmarshal([]byte(ev.Data), &d); err != nil || d.AckID == "" {
							errs <- fmt.Errorf("member %d: not a delivery: %s", i, ev.Data)
							return
						}
						mu.Lock()
						if h, ok := holder[d.ID]; ok && h != i {
							mu.Unlock()
							errs <- fmt.Errorf("message %s delivered to member %d while member %d holds it", d.ID, i, h)
							return
						}
						holder[d.ID] = i
						perMember[i]++
						mu.Unlock()
						req, _ := json.Marshal(map[string]any{"ids": []string{d.AckID}})
						hreq, _ := http.NewRequest(http.MethodPost, s.URL+"/ns/default/rooms/work/groups/workers/acks", bytesReader(req))
						hreq.Header.Set("Authorization", "Bearer "+m.token)
						resp, err := http.DefaultClient.Do(hreq)
						if err != nil {
							errs <- err
							return
						}
						resp.Body.Close()
						if resp.StatusCode != http.StatusNoContent {
							errs <- fmt.Errorf("ack: status %d", resp.StatusCode)
							return
						}
						mu.Lock()
						delete(holder, d.ID)
						acked[d.ID] = true
						mu.Unlock()
					}
				}(i, m)
			}
			for i := 0; i < total; i++ {
				s.publish(t, "/ns/default/rooms/work/messages", map[string]any{"event": "job", "data": i}, "")
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case err := <-errs:
				t.Fatal(err)
			case <-time.After(60 * time.Second):
				mu.Lock()
				t.Fatalf("only %d of %d acknowledged", len(acked), total)
			}
			select {
			case err := <-errs:
				t.Fatal(err)
			default:
			}
			for i, c := range perMember {
				if c == 0 {
					t.Errorf("member %d got no work (split %v)", i, perMember)
				}
			}
			t.Logf("split over %d members: %v", n, perMember)
			eventually(t, 10*time.Second, "ack floor at the last message", func() bool {
				st := groupState(t, s, "work", "workers")
				return st["pending"].(float64) == 0 && st["in_flight"].(float64) == 0
			})
		})
	}
}

// TestGroupRedeliversUnacked: a member that stops acknowledging has its
// deliveries redelivered to the others after ack_wait, with the count.
func TestGroupRedeliversUnacked(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	putGroup(t, s, "jobs", "g", map[string]any{"ack_wait": "500ms", "max_in_flight": 1, "max_deliver": 10})
	a := joinGroup(t, s, "jobs", "g")
	s.publish(t, "/ns/default/rooms/jobs/messages", `{"event":"job","data":1}`, "")
	first := a.next(t, 10*time.Second) // a holds it and never acks
	if first.Delivery != 1 {
		t.Fatalf("first delivery count %d", first.Delivery)
	}
	b := joinGroup(t, s, "jobs", "g")
	again := b.next(t, 10*time.Second)
	if again.ID != first.ID || again.Delivery < 2 {
		t.Fatalf("b got %s delivery %d, want %s redelivered", again.ID, again.Delivery, first.ID)
	}
	if code := b.settle(t, s, "jobs", "g", "acks", again.AckID); code != http.StatusNoContent {
		t.Fatalf("ack by b: %d", code)
	}
	// a's lease ran out and the job went to b: a's old ack id is dead (one
	// owner per delivery), and a was told so when it happened.
	if code := a.settle(t, s, "jobs", "g", "acks", first.AckID); code != http.StatusConflict {
		t.Fatalf("late ack by a: %d, want 409", code)
	}
	if ev := a.st.Next(10 * time.Second); ev.Event != "revoked" || !strings.Contains(ev.Data, first.AckID) {
		t.Fatalf("a's next event %s %s, want revoked for %s", ev.Event, ev.Data, first.AckID)
	}
	eventually(t, 10*time.Second, "group drained", func() bool {
		st := groupState(t, s, "jobs", "g")
		return st["pending"].(float64) == 0 && st["in_flight"].(float64) == 0 && st["redelivered"].(float64) == 0
	})
}

// TestGroupDeadLetters: past max_deliver a message is parked; it can be
// listed, replayed to the group alone, or dropped.
func TestGroupDeadLetters(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	putGroup(t, s, "q", "g", map[string]any{"ack_wait": "300ms", "max_deliver": 2, "max_in_flight": 5})
	room := s.subscribe(t, "/ns/default/rooms/q/events", "") // a plain room subscriber
	roomID, _, _ := room.connected()
	m := joinGroup(t, s, "q", "g")
	id1 := s.publish(t, "/ns/default/rooms/q/messages", `{"event":"job","data":"poison"}`, "")
	id2 := s.publish(t, "/ns/default/rooms/q/messages", `{"event":"job","data":"other"}`, "")
	room.Expect("job")
	room.Expect("job")
	seen := map[string]int{}
	for len(seen) < 2 || seen[id1] < 2 || seen[id2] < 2 {
		d := m.next(t, 10*time.Second)
		seen[d.ID] = max(seen[d.ID], d.Delivery)
	}
	var dead []any
	eventually(t, 10*time.Second, "two dead letters", func() bool {
		code, body, _ := s.do(t, http.MethodGet, "/ns/default/rooms/q/groups/g/dead", nil, "")
		if code != http.StatusOK {
			t.Fatalf("dead: %d %v", code, body)
		}
		dead, _ = body["dead_letters"].([]any)
		return len(dead) == 2
	})
	byMsg := map[string]float64{}
	for _, d := range dead {
		dm := d.(map[string]any)
		msg := dm["message"].(map[string]any)
		if dm["deliveries"].(float64) != 2 {
			t.Errorf("dead letter %v: deliveries %v, want 2", msg["id"], dm["deliveries"])
		}
		byMsg[msg["id"].(string)] = dm["seq"].(float64)
	}
	if st := groupState(t, s, "q", "g"); st["dead_letters"].(float64) != 2 {
		t.Fatalf("group state dead_letters %v", st["dead_letters"])
	}
	// Each park is announced in the room (and so in its history, for those
	// offline) and to the group's members, never silently.
	announced := map[string]bool{}
	for range 2 {
		env := room.Expect("dead_letter").envelope(t)
		data, _ := env["data"].(map[string]any)
		if data["group"] != "g" || data["room"] != "q" || data["deliveries"] != float64(2) || data["reason"] == "" {
			t.Errorf("dead_letter notice %v", env)
		}
		announced[fmt.Sprint(data["id"])] = true
	}
	if !announced[id1] || !announced[id2] {
		t.Errorf("dead_letter notices for %v, want %s and %s", announced, id1, id2)
	}
	told := 0
	for _, ev := range m.notices {
		if ev.Event == "dead_letter" {
			told++
		}
	}
	for deadline := time.Now().Add(10 * time.Second); told < 2; {
		ev := m.st.Next(time.Until(deadline))
		switch ev.Event {
		case "dead_letter":
			told++
		case "revoked":
		default:
			t.Fatalf("member got %s %s, want the dead_letter notices", ev.Event, ev.Data)
		}
	}
	// Replay the first to the group: the member gets it once more as a
	// new delivery; the room subscriber does not see it again.
	code, _, _ := s.do(t, http.MethodPost, fmt.Sprintf("/ns/default/rooms/q/groups/g/dead/%d/replay", int(byMsg[id1])), nil, "")
	if code != http.StatusAccepted {
		t.Fatalf("replay: %d", code)
	}
	d := m.next(t, 10*time.Second)
	if string(d.Data) != `"poison"` || d.Delivery != 1 {
		t.Fatalf("replayed delivery %+v", d)
	}
	if c := m.settle(t, s, "q", "g", "acks", d.AckID); c != http.StatusNoContent {
		t.Fatalf("ack replayed: %d", c)
	}
	room.NothingBefore(s, "default", roomID, "")
	if code, _, _ := s.do(t, http.MethodDelete, fmt.Sprintf("/ns/default/rooms/q/groups/g/dead/%d", int(byMsg[id2])), nil, ""); code != http.StatusNoContent {
		t.Fatalf("drop: %d", code)
	}
	if code, _, _ := s.do(t, http.MethodDelete, fmt.Sprintf("/ns/default/rooms/q/groups/g/dead/%d", int(byMsg[id2])), nil, ""); code != http.StatusNotFound {
		t.Fatalf("drop twice: %d, want 404", code)
	}
	eventually(t, 5*time.Second, "no dead letters left", func() bool {
		return groupState(t, s, "q", "g")["dead_letters"].(float64) == 0
	})
}

// TestGroupKeepsMessagesWhileOffline: a group created ahead, with no member,
// keeps what is published and delivers it all when a member connects.
func TestGroupKeepsMessagesWhileOffline(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	putGroup(t, s, "inbox", "vendor", nil)
	for i := 0; i < 20; i++ {
		s.publish(t, "/ns/default/rooms/inbox/messages", map[string]any{"event": "notice", "data": i}, "")
	}
	if st := groupState(t, s, "inbox", "vendor"); st["pending"].(float64) != 20 {
		t.Fatalf("pending %v, want 20", st["pending"])
	}
	code, body, _ := s.do(t, http.MethodGet, "/ns/default/rooms/inbox/groups/vendor/messages", nil, "")
	if msgs, _ := body["messages"].([]any); code != http.StatusOK || len(msgs) != 20 {
		t.Fatalf("unacknowledged messages: %d, %d of 20", code, len(msgs))
	}
	m := joinGroup(t, s, "inbox", "vendor")
	for i := 0; i < 20; i++ {
		d := m.next(t, 10*time.Second)
		if string(d.Data) != fmt.Sprint(i) {
			t.Fatalf("delivery %d has data %s", i, d.Data)
		}
		if c := m.settle(t, s, "inbox", "vendor", "acks", d.AckID); c != http.StatusNoContent {
			t.Fatalf("ack: %d", c)
		}
	}
	eventually(t, 10*time.Second, "nothing left", func() bool {
		code, body, _ := s.do(t, http.MethodGet, "/ns/default/rooms/inbox/groups/vendor/messages", nil, "")
		msgs, _ := body["messages"].([]any)
		return code == http.StatusOK && len(msgs) == 0
	})
}

// TestGroupAckAuthorization: only the connection that received a delivery
// may settle it.
func TestGroupAckAuthorization(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	m := joinGroup(t, s, "r", "g")
	other := joinGroup(t, s, "r2", "g")
	s.publish(t, "/ns/default/rooms/r/messages", `{"event":"job","data":1}`, "")
	d := m.next(t, 10*time.Second)
	path := "/ns/default/rooms/r/groups/g/acks"
	cases := []struct {
		name  string
		token string
		ids   []string
		path  string
		want  int
	}{
		{"no token", "", []string{d.AckID}, path, http.StatusUnauthorized},
		{"garbage token", "not-a-token", []string{d.AckID}, path, http.StatusUnauthorized},
		{"another connection's token", other.token, []string{d.AckID}, path, http.StatusForbidden},
		{"forged ack id", m.token, []string{forgeAckID(d.AckID)}, path, http.StatusForbidden},
		{"malformed ack id", m.token, []string{"not-an-ack-id"}, path, http.StatusBadRequest},
		{"truncated ack id", m.token, []string{d.AckID[:len(d.AckID)-3]}, path, http.StatusBadRequest},
		{"empty ids", m.token, []string{}, path, http.StatusBadRequest},
		{"another group's path", m.token, []string{d.AckID}, "/ns/default/rooms/r2/groups/g/acks", http.StatusForbidden},
		{"right token", m.token, []string{d.AckID}, path, http.StatusNoContent},
	}
	for _, c := range cases {
		code, body, _ := s.do(t, http.MethodPost, c.path, map[string]any{"ids": c.ids}, c.token)
		if code != c.want {
			t.Errorf("%s: status %d, want %d (%v)", c.name, code, c.want, body)
		}
	}
}

// forgeAckID returns id with the first character of its MAC changed: well
// formed, but issued to nobody.
func forgeAckID(id string) string {
	i := strings.LastIndexByte(id, '.') + 1
	c := byte('A')
	if id[i] == 'A' {
		c = 'B'
	}
	return id[:i] + string(c) + id[i+1:]
}

// TestGroupMemberLeavingReleasesDeliveries: a member that disconnects
// holding deliveries has them redelivered at once, not after ack_wait.
func TestGroupMemberLeavingReleasesDeliveries(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	putGroup(t, s, "rel", "g", map[string]any{"ack_wait": "1h", "max_in_flight": 3})
	a := joinGroup(t, s, "rel", "g")
	for i := 0; i < 3; i++ {
		s.publish(t, "/ns/default/rooms/rel/messages", map[string]any{"event": "job", "data": i}, "")
	}
	for i := 0; i < 3; i++ {
		a.next(t, 10*time.Second)
	}
	b := joinGroup(t, s, "rel", "g")
	b.st.NothingBefore(s, "default", b.id, "") // a holds all three
	a.st.Close()
	got := map[string]bool{}
	for i := 0; i < 3; i++ {
		d := b.next(t, 10*time.Second) // well before the 1h ack wait
		if d.Delivery != 2 {
			t.Errorf("delivery count %d, want 2", d.Delivery)
		}
		got[string(d.Data)] = true
	}
	if len(got) != 3 {
		t.Fatalf("b got %v", got)
	}
}

// TestGroupsEachGetEveryMessage: two groups of one room each get every
// message, and plain room subscribers keep getting every message live.
func TestGroupsEachGetEveryMessage(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	g1 := joinGroup(t, s, "news", "a")
	g2 := joinGroup(t, s, "news", "b")
	plain := s.subscribe(t, "/ns/default/rooms/news/events", "")
	plain.connected()
	// A multi-room message that includes the room reaches the groups; one
	// that does not is skipped.
	s.publish(t, "/ns/default/messages", `{"event":"e","data":"multi","rooms":["news","other"]}`, "")
	s.publish(t, "/ns/default/messages", `{"event":"e","data":"elsewhere","rooms":["x","y"]}`, "")
	s.publish(t, "/ns/default/rooms/news/messages", `{"event":"e","data":"single"}`, "")
	for _, m := range []*member{g1, g2} {
		for _, want := range []string{`"multi"`, `"single"`} {
			if d := m.next(t, 10*time.Second); string(d.Data) != want {
				t.Fatalf("group delivery %s, want %s", d.Data, want)
			}
		}
		m.st.NothingBefore(s, "default", m.id, "")
	}
	for _, want := range []string{"multi", "single"} {
		if env := plain.Expect("e").envelope(t); env["data"] != want {
			t.Fatalf("plain subscriber got %v, want %s", env["data"], want)
		}
	}
}

// TestIdempotentPublish: a retried publish with the same id is stored once.
func TestIdempotentPublish(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	body := `{"event":"order","data":{"n":1},"id":"order-1"}`
	code, first, _ := s.do(t, http.MethodPost, "/ns/default/rooms/orders/messages", body, "")
	if code != http.StatusAccepted || first["duplicate"] != nil {
		t.Fatalf("first publish: %d %v", code, first)
	}
	code, again, _ := s.do(t, http.MethodPost, "/ns/default/rooms/orders/messages", body, "")
	if code != http.StatusAccepted || again["id"] != first["id"] || again["duplicate"] != true {
		t.Fatalf("retry: %d %v, want id %v and duplicate", code, again, first["id"])
	}
	other := s.publish(t, "/ns/default/rooms/orders/messages", `{"event":"order","data":{"n":2},"id":"order-2"}`, "")
	if other == first["id"] {
		t.Fatal("a different key got the same id")
	}
	_, hist, _ := s.do(t, http.MethodGet, "/ns/default/rooms/orders/messages", nil, "")
	if msgs := hist["messages"].([]any); len(msgs) != 2 {
		t.Fatalf("history has %d messages, want 2", len(msgs))
	}
}

// TestGroupValidation: bad group names and configs are refused.
func TestGroupValidation(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	for _, c := range []struct {
		method, path string
		body         any
		want         int
	}{
		{http.MethodPut, "/ns/default/rooms/r/groups/bad.name", nil, http.StatusBadRequest},
		{http.MethodPut, "/ns/default/rooms/r/groups/g", `{"ack_wait":"forever"}`, http.StatusBadRequest},
		{http.MethodPut, "/ns/default/rooms/r/groups/g", `{"max_deliver":0,"max_in_flight":-1}`, http.StatusBadRequest},
		{http.MethodPut, "/ns/default/rooms/r/groups/g", `{"nope":1}`, http.StatusBadRequest},
		// More than a member's connection queue holds (--queue-size 256):
		// the member would be cut as a slow consumer.
		{http.MethodPut, "/ns/default/rooms/r/groups/g", `{"max_in_flight":1000}`, http.StatusBadRequest},
		{http.MethodGet, "/ns/default/rooms/r/groups/missing", nil, http.StatusNotFound},
		{http.MethodDelete, "/ns/default/rooms/r/groups/missing", nil, http.StatusNotFound},
		{http.MethodGet, "/ns/default/rooms/r/groups/missing/dead", nil, http.StatusNotFound},
		{http.MethodPost, "/ns/default/rooms/r/groups/g/dead/abc/replay", nil, http.StatusBadRequest},
		{http.MethodPut, "/ns/default/rooms/r/groups/g", `{"ack_wait":"2s","max_deliver":3,"max_in_flight":2}`, http.StatusOK},
		{http.MethodPost, "/ns/default/rooms/r/groups/g/dead/999/replay", nil, http.StatusNotFound},
		{http.MethodDelete, "/ns/default/rooms/r/groups/g", nil, http.StatusNoContent},
	} {
		code, body, _ := s.do(t, c.method, c.path, c.body, "")
		if code != c.want {
			t.Errorf("%s %s %v: %d, want %d (%v)", c.method, c.path, c.body, code, c.want, body)
		}
	}
	if st, code := s.trySubscribe(t, "/ns/default/rooms/r/events?group=no%20spaces", ""); code != http.StatusBadRequest {
		if st != nil {
			st.Close()
		}
		t.Fatalf("group stream with a bad name: %d", code)
	}
}

// TestGroupBehindRetentionGetsReset: a group whose unconsumed messages
// were removed by retention tells its member with a reset event before
// delivering what is left — never a silent loss.
func TestGroupBehindRetentionGetsReset(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--max-msgs-per-room", "5")
	putGroup(t, s, "jobs", "g", nil)
	for i := 0; i < 12; i++ {
		s.publish(t, "/ns/default/rooms/jobs/messages", map[string]any{"event": "job", "data": i}, "")
	}
	st := s.subscribe(t, "/ns/default/rooms/jobs/events?group=g", "")
	st.connected()
	// Its data names the group and its room, and matches Reset in openapi.yaml.
	reset := newSpecCheck(t, s).event(t, st.Expect("reset"), "Reset")
	if reset["group"] != "g" || reset["room"] != "jobs" || reset["reason"] == "" {
		t.Fatalf("reset %v", reset)
	}
	m := &member{st: st}
	for i := 7; i < 12; i++ { // the five the room kept
		if d := m.next(t, 10*time.Second); string(d.Data) != fmt.Sprint(i) {
			t.Fatalf("delivery %s, want %d", d.Data, i)
		}
	}
	// A group that kept up gets no reset.
	putGroup(t, s, "jobs", "fresh", nil)
	s.publish(t, "/ns/default/rooms/jobs/messages", `{"event":"job","data":12}`, "")
	f := s.subscribe(t, "/ns/default/rooms/jobs/events?group=fresh", "")
	f.connected()
	if ev := f.Next(10 * time.Second); ev.Event != "job" {
		t.Fatalf("fresh group got %s first: %s", ev.Event, ev.Data)
	}
}
