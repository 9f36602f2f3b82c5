package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/roomcast/roomcast/internal/auth"
	"github.com/roomcast/roomcast/internal/hub"
)

// The consumer-group routes over a hub whose engine side is fakeGroups.

var jobsG1 = hub.GroupKey{Room: "jobs", Name: "g1"}

// member opens a live member of group k, as the SSE server would, and
// detaches it when the test ends.
func (rig *apiRig) member(t *testing.T, k hub.GroupKey) (*hub.Conn, *recSink) {
	t.Helper()
	sink := &recSink{}
	c, err := rig.ns.Open(context.Background(), hub.OpenRequest{Group: &k, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Detach() })
	return c, sink
}

// job publishes a message to k's room and offers it to the group.
func (rig *apiRig) job(t *testing.T, k hub.GroupKey) *hub.Message {
	t.Helper()
	m := rig.publish(t, "job", k.Room)
	rig.groups.offer(k, m)
	return m
}

type delivery struct {
	ID       string `json:"id"`
	AckID    string `json:"ack_id"`
	Delivery uint64 `json:"delivery"`
}

func deliveriesOf(t *testing.T, s *recSink) []delivery {
	t.Helper()
	var out []delivery
	for _, ev := range s.named("job") {
		var d delivery
		if err := json.Unmarshal(ev.Data, &d); err != nil || d.AckID == "" {
			t.Fatalf("delivery %s: %v", ev.Data, err)
		}
		out = append(out, d)
	}
	return out
}

func ids(ackIDs ...string) string {
	b, _ := json.Marshal(map[string][]string{"ids": ackIDs})
	return string(b)
}

const g1Path = "/ns/default/rooms/jobs/groups/g1"

// TestGroupSettleRoutes: acks, nacks and progress take the receiving
// connection's token and its ack ids, validate their bodies field by field,
// and reach the engine with the right operation and delay.
func TestGroupSettleRoutes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newAPIRig(t, rigOptions{groups: true, config: func(c *Config) { c.Namespaces[0].MaxBody = 64 << 10 }})
		c, sink := rig.member(t, jobsG1)
		other := rig.open(t, "", nil)
		ms := []*hub.Message{rig.job(t, jobsG1), rig.job(t, jobsG1), rig.job(t, jobsG1)}
		synctest.Wait()
		ds := deliveriesOf(t, sink)
		if len(ds) != 3 {
			t.Fatalf("the member got %+v, want the 3 jobs", ds)
		}
		for i, d := range ds {
			if d.ID != ms[i].Pos.String() || d.Delivery != 1 {
				t.Fatalf("delivery %d: %+v, want message %s, delivery 1", i, d, ms[i].Pos)
			}
		}
		tok := bearer(c.Token)
		acks, nacks, progress := g1Path+"/acks", g1Path+"/nacks", g1Path+"/progress"

		// Bodies, field by field.
		wantField(t, rig.do("POST", acks, `{}`, tok), "ids", "is required")
		wantField(t, rig.do("POST", acks, `{"ids":[]}`, tok), "ids", "at least 1")
		many := make([]string, 1001)
		for i := range many {
			many[i] = "x"
		}
		wantField(t, rig.do("POST", acks, ids(many...), tok), "ids", "at most 1000")
		wantField(t, rig.do("POST", acks, ids(ds[0].AckID, ""), tok), "ids[1]", "is required")
		wantField(t, rig.do("POST", progress, ids(strings.Repeat("a", 1025)), tok), "ids[0]", "at most 1024")
		wantField(t, rig.do("POST", nacks, `{"ids":["`+ds[1].AckID+`"],"delay":"50ms"}`, tok), "delay", "from 100ms to 24h")
		p := wantProblem(t, rig.do("POST", acks, `{"ids":["`+ds[0].AckID+`"],"delay":"1s"}`, tok), 400, "an ack with a delay")
		if !strings.Contains(p.Detail, `unknown field "delay"`) {
			t.Errorf("an ack with a delay: %q, want the unknown field named", p.Detail)
		}
		p = wantProblem(t, rig.do("POST", acks, ids("not-an-ack-id"), tok), 400, "a malformed ack id")
		if !strings.Contains(p.Detail, "ids[0] is not an ack id") {
			t.Errorf("a malformed ack id: %q", p.Detail)
		}

		// Only the receiving connection's token settles.
		for name, hdr := range map[string][]string{"anonymous": nil, "an API key": {bearer(rigAPIKey)}} {
			p := wantProblem(t, rig.do("POST", acks, ids(ds[0].AckID), hdr...), 401, name)
			if !strings.Contains(p.Detail, "needs the token of the connection that received it") {
				t.Errorf("%s: %q", name, p.Detail)
			}
		}
		wantProblem(t, rig.do("POST", acks, ids(ds[0].AckID), bearer(other.Token)), 403, "another connection's token")
		if s := rig.groups.settled(); len(s) != 0 {
			t.Fatalf("refused settles reached the engine: %v", s)
		}

		// Ack, and an ack repeated (a retry after a lost answer) is a no-op.
		for range 2 {
			if rec := rig.do("POST", acks, ids(ds[0].AckID), tok); rec.Code != 204 || rec.Body.Len() != 0 {
				t.Fatalf("ack: %d %s, want 204", rec.Code, rec.Body)
			}
		}
		// Nack with a delay: the engine redelivers after it; the delivery is
		// no longer the connection's.
		if rec := rig.do("POST", nacks, `{"ids":["`+ds[1].AckID+`"],"delay":"5s"}`, tok); rec.Code != 204 {
			t.Fatalf("nack: %d %s", rec.Code, rec.Body)
		}
		p = wantProblem(t, rig.do("POST", acks, ids(ds[1].AckID), tok), 409, "ack after nack")
		if p.Title != "delivery superseded" {
			t.Errorf("ack after nack: title %q", p.Title)
		}
		// Progress keeps it; an ack then settles it.
		if rec := rig.do("POST", progress, ids(ds[2].AckID), tok); rec.Code != 204 {
			t.Fatalf("progress: %d %s", rec.Code, rec.Body)
		}
		if rec := rig.do("POST", acks, ids(ds[2].AckID), tok); rec.Code != 204 {
			t.Fatalf("ack after progress: %d %s", rec.Code, rec.Body)
		}
		want := []string{"ack g1/1 0s", "nack g1/2 5s", "progress g1/3 0s", "ack g1/3 0s"}
		if got := rig.groups.settled(); !slices.Equal(got, want) {
			t.Fatalf("the engine got %v, want %v", got, want)
		}
	})
}

type groupState struct {
	Room   string `json:"room"`
	Group  string `json:"group"`
	Config struct {
		AckWait     string   `json:"ack_wait"`
		MaxDeliver  int      `json:"max_deliver"`
		MaxInFlight int      `json:"max_in_flight"`
		Backoff     []string `json:"backoff"`
	} `json:"config"`
	Pending     uint64 `json:"pending"`
	InFlight    int    `json:"in_flight"`
	Redelivered int    `json:"redelivered"`
	AckFloor    string `json:"ack_floor"`
	DeadLetters uint64 `json:"dead_letters"`
	Members     []struct {
		ID          string    `json:"id"`
		ConnectedAt time.Time `json:"connected_at"`
	} `json:"members"`
}

// TestGroupPutAndGet: PUT creates a group (defaults for what the body does
// not set) and changes only the fields a later body sets; GET answers the
// same state, with the members, what they hold and what waits.
func TestGroupPutAndGet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newAPIRig(t, rigOptions{groups: true, hub: hub.Config{MaxInFlight: 50}})
		var st groupState
		decodeJSON(t, rig.do("PUT", g1Path, ""), 200, &st)
		if st.Room != "jobs" || st.Group != "g1" || st.Config.AckWait != "30s" || st.Config.MaxDeliver != 5 || st.Config.MaxInFlight != 10 ||
			st.Config.Backoff == nil || len(st.Config.Backoff) != 0 || st.AckFloor != "e1-0" || st.Members == nil || len(st.Members) != 0 {
			t.Fatalf("a group created without a body: %+v", st)
		}
		decodeJSON(t, rig.do("PUT", g1Path, `{"ack_wait":"45s","max_deliver":7,"max_in_flight":3,"backoff":["1s","2m"]}`), 200, &st)
		if st.Config.AckWait != "45s" || st.Config.MaxDeliver != 7 || st.Config.MaxInFlight != 3 || !slices.Equal(st.Config.Backoff, []string{"1s", "2m0s"}) {
			t.Fatalf("after a full update: %+v", st.Config)
		}
		decodeJSON(t, rig.do("PUT", g1Path, `{"max_deliver":2}`), 200, &st)
		if st.Config.AckWait != "45s" || st.Config.MaxDeliver != 2 || st.Config.MaxInFlight != 3 || !slices.Equal(st.Config.Backoff, []string{"1s", "2m0s"}) {
			t.Fatalf("an update of max_deliver changed other fields: %+v", st.Config)
		}

		// Two members, four jobs: two held by each (fewest first), none
		// waiting.
		c1, _ := rig.member(t, jobsG1)
		c2, _ := rig.member(t, jobsG1)
		for range 4 {
			rig.job(t, jobsG1)
		}
		synctest.Wait()
		var got groupState
		decodeJSON(t, rig.do("GET", g1Path, ""), 200, &got)
		memberIDs := []string{}
		for _, m := range got.Members {
			memberIDs = append(memberIDs, m.ID)
			if m.ConnectedAt.IsZero() || m.ConnectedAt.Location() != time.UTC {
				t.Errorf("member %s connected_at %v, want a UTC time", m.ID, m.ConnectedAt)
			}
		}
		wantIDs := []string{string(c1.ID), string(c2.ID)}
		slices.Sort(wantIDs)
		if got.InFlight != 4 || got.Pending != 0 || !slices.Equal(memberIDs, wantIDs) || got.Config.MaxDeliver != 2 {
			t.Fatalf("state with two members holding four: %+v, want in_flight 4, pending 0, members %v", got, wantIDs)
		}
		// Past what the members can hold, the rest waits.
		for range 3 {
			rig.job(t, jobsG1)
		}
		synctest.Wait()
		decodeJSON(t, rig.do("GET", g1Path, ""), 200, &got)
		if got.InFlight != 6 || got.Pending != 1 {
			t.Fatalf("state with both members full: in_flight %d pending %d, want 6 and 1", got.InFlight, got.Pending)
		}
	})
}

// TestGroupPutBodies: every field of a group's body is checked, and the
// problem names it.
func TestGroupPutBodies(t *testing.T) {
	rig := newAPIRig(t, rigOptions{groups: true, hub: hub.Config{MaxInFlight: 50}})
	for _, c := range []struct{ body, field, msg string }{
		{`{"ack_wait":"50ms"}`, "ack_wait", "from 100ms to 24h"},
		{`{"ack_wait":"25h"}`, "ack_wait", "from 100ms to 24h"},
		{`{"ack_wait":"soon"}`, "ack_wait", "from 100ms to 24h"},
		{`{"max_deliver":1001}`, "max_deliver", "at most 1000"},
		{`{"max_deliver":-1}`, "max_deliver", "at least 1"},
		{`{"max_in_flight":10001}`, "max_in_flight", "at most 10000"},
		{`{"backoff":["1s","x"]}`, "backoff[1]", "from 100ms to 24h"},
		{`{"backoff":[` + strings.Repeat(`"1s",`, 20) + `"1s"]}`, "backoff", "at most 20"},
	} {
		wantField(t, rig.do("PUT", g1Path, c.body), c.field, c.msg)
	}
	for _, c := range []struct{ body, detail string }{
		{`{"max_deliver":"3"}`, `field "max_deliver" must be int`},
		{`{"room":"x"}`, `unknown field "room"`},
		{`{} {}`, "data after its JSON object"},
		{`{"max_in_flight":51}`, "max_in_flight 51 is more than a connection's queue holds (50"},
	} {
		p := wantProblem(t, rig.do("PUT", g1Path, c.body), 400, c.body)
		if !strings.Contains(p.Detail, c.detail) {
			t.Errorf("%s: %q, want %q", c.body, p.Detail, c.detail)
		}
	}
	// Bodies are JSON, at most 16 KiB.
	req := httptest.NewRequest("PUT", g1Path, strings.NewReader(`{"max_deliver":3}`))
	req.Header.Set("Content-Type", "text/plain")
	rec := httptest.NewRecorder()
	rig.router.ServeHTTP(rec, req)
	wantProblem(t, rec, 415, "a text/plain body")
	p := wantProblem(t, rig.do("PUT", g1Path, `{"ack_wait":"`+strings.Repeat(" ", 16<<10)+`"}`), 413, "a 16 KiB body")
	if !strings.Contains(p.Detail, "larger than 16 KiB") {
		t.Errorf("a body over 16 KiB: %q", p.Detail)
	}
	// Nothing of that created the group.
	wantProblem(t, rig.do("GET", g1Path, ""), 404, "the group after refused bodies")
	// The largest values allowed pass.
	var st groupState
	decodeJSON(t, rig.do("PUT", g1Path, `{"ack_wait":"24h","max_deliver":1000,"max_in_flight":50,"backoff":["100ms"]}`), 200, &st)
	if st.Config.AckWait != "24h0m0s" || st.Config.MaxDeliver != 1000 || st.Config.MaxInFlight != 50 || !slices.Equal(st.Config.Backoff, []string{"100ms"}) {
		t.Fatalf("the largest values: %+v", st.Config)
	}
}

// TestGroupListAndDelete: a room's groups are listed by name with their
// state; a deleted group is gone (404), and deleting it again is a 404.
func TestGroupListAndDelete(t *testing.T) {
	rig := newAPIRig(t, rigOptions{groups: true})
	for _, g := range []string{"b", "a", "c"} {
		if rec := rig.do("PUT", "/ns/default/rooms/jobs/groups/"+g, `{"max_deliver":3}`); rec.Code != 200 {
			t.Fatalf("put %s: %d %s", g, rec.Code, rec.Body)
		}
	}
	rig.do("PUT", "/ns/default/rooms/other/groups/z", "")
	var list struct {
		Room   string       `json:"room"`
		Groups []groupState `json:"groups"`
	}
	decodeJSON(t, rig.do("GET", "/ns/default/rooms/jobs/groups", ""), 200, &list)
	var names []string
	for _, g := range list.Groups {
		names = append(names, g.Group)
		if g.Room != "jobs" || g.Config.MaxDeliver != 3 {
			t.Errorf("listed %+v", g)
		}
	}
	if list.Room != "jobs" || !slices.Equal(names, []string{"a", "b", "c"}) {
		t.Fatalf("groups of jobs: %s %v, want a, b, c", list.Room, names)
	}
	if rec := rig.do("DELETE", "/ns/default/rooms/jobs/groups/b", ""); rec.Code != 204 {
		t.Fatalf("delete: %d %s", rec.Code, rec.Body)
	}
	wantProblem(t, rig.do("GET", "/ns/default/rooms/jobs/groups/b", ""), 404, "a deleted group")
	wantProblem(t, rig.do("DELETE", "/ns/default/rooms/jobs/groups/b", ""), 404, "a deleted group deleted again")
	decodeJSON(t, rig.do("GET", "/ns/default/rooms/jobs/groups", ""), 200, &list)
	if len(list.Groups) != 2 {
		t.Fatalf("after the delete: %+v", list.Groups)
	}
	decodeJSON(t, rig.do("GET", "/ns/default/rooms/empty/groups", ""), 200, &list)
	if list.Groups == nil || len(list.Groups) != 0 {
		t.Fatalf("a room without groups: %s", rig.do("GET", "/ns/default/rooms/empty/groups", "").Body)
	}
}

// TestGroupBacklogRoute: …/messages lists the room's messages after the
// group's ack floor (no other room's), at most limit of them.
func TestGroupBacklogRoute(t *testing.T) {
	rig := newAPIRig(t, rigOptions{groups: true, ns: hub.NamespaceConfig{HistoryLimit: 5}})
	rig.do("PUT", g1Path, "")
	m1 := rig.publish(t, "job", "jobs")
	m2 := rig.publish(t, "job", "jobs")
	rig.publish(t, "job", "other")
	m4 := rig.publish(t, "job", "jobs")
	rig.groups.mu.Lock()
	rig.groups.floor[jobsG1] = m1.Pos.Seq
	rig.groups.mu.Unlock()
	type backlog struct {
		Room     string            `json:"room"`
		Group    string            `json:"group"`
		AckFloor string            `json:"ack_floor"`
		Messages []json.RawMessage `json:"messages"`
	}
	for _, c := range []struct {
		query string
		want  []*hub.Message
	}{
		{"", []*hub.Message{m2, m4}},
		{"?limit=1", []*hub.Message{m2}},
		{"?limit=5", []*hub.Message{m2, m4}},
	} {
		var b backlog
		decodeJSON(t, rig.do("GET", g1Path+"/messages"+c.query, ""), 200, &b)
		if b.Room != "jobs" || b.Group != "g1" || b.AckFloor != m1.Pos.String() || len(b.Messages) != len(c.want) {
			t.Fatalf("backlog%s: %+v", c.query, b)
		}
		for i, m := range c.want {
			if !bytes.Equal(b.Messages[i], m.Body) {
				t.Errorf("backlog%s[%d] = %s, want %s", c.query, i, b.Messages[i], m.Body)
			}
		}
	}
	for _, q := range []string{"0", "6", "x", "-1", "1.5"} {
		wantField(t, rig.do("GET", g1Path+"/messages?limit="+q, ""), "limit", "from 1 to 5")
	}
	wantProblem(t, rig.do("GET", "/ns/default/rooms/jobs/groups/nope/messages", ""), 404, "the backlog of an unknown group")
}

// TestGroupDeadLetterRoutes: dead letters are listed oldest first (at most
// limit), replayed (202) or dropped (204) by seq, each once.
func TestGroupDeadLetterRoutes(t *testing.T) {
	rig := newAPIRig(t, rigOptions{groups: true})
	rig.do("PUT", g1Path, "")
	parked := time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600))
	var msgs []*hub.Message
	rig.groups.mu.Lock()
	for i := range 3 {
		m := &hub.Message{Pos: hub.Position{Epoch: "e1", Seq: uint64(10 + i)}, Body: []byte(`{"id":"e1-` + string(rune('0'+i)) + `","event":"job"}`)}
		msgs = append(msgs, m)
		rig.groups.dead[jobsG1] = append(rig.groups.dead[jobsG1], hub.DeadLetter{Seq: uint64(i + 1), Msg: m, Deliveries: 5, Parked: parked, Reason: "r" + string(rune('a'+i))})
	}
	rig.groups.mu.Unlock()
	type deadList struct {
		Room  string `json:"room"`
		Group string `json:"group"`
		Dead  []struct {
			Seq        uint64          `json:"seq"`
			Deliveries uint64          `json:"deliveries"`
			ParkedAt   string          `json:"parked_at"`
			Reason     string          `json:"reason"`
			Message    json.RawMessage `json:"message"`
		} `json:"dead_letters"`
	}
	var dl deadList
	decodeJSON(t, rig.do("GET", g1Path+"/dead?limit=2", ""), 200, &dl)
	if dl.Room != "jobs" || dl.Group != "g1" || len(dl.Dead) != 2 {
		t.Fatalf("dead letters, limit 2: %+v", dl)
	}
	for i, d := range dl.Dead {
		if d.Seq != uint64(i+1) || d.Deliveries != 5 || d.ParkedAt != "2030-01-02T02:04:05Z" || d.Reason != "r"+string(rune('a'+i)) || !bytes.Equal(d.Message, msgs[i].Body) {
			t.Errorf("dead letter %d: %+v", i, d)
		}
	}
	wantField(t, rig.do("GET", g1Path+"/dead?limit=0", ""), "limit", "from 1 to 1000")
	if rec := rig.do("POST", g1Path+"/dead/2/replay", ""); rec.Code != 202 || rec.Body.Len() != 0 {
		t.Fatalf("replay: %d %s, want 202", rec.Code, rec.Body)
	}
	wantProblem(t, rig.do("POST", g1Path+"/dead/2/replay", ""), 404, "a replayed dead letter replayed again")
	if rec := rig.do("DELETE", g1Path+"/dead/3", ""); rec.Code != 204 {
		t.Fatalf("drop: %d %s, want 204", rec.Code, rec.Body)
	}
	wantProblem(t, rig.do("DELETE", g1Path+"/dead/3", ""), 404, "a dropped dead letter dropped again")
	if !slices.Equal(rig.groups.replayed, []uint64{2}) || !slices.Equal(rig.groups.dropped, []uint64{3}) {
		t.Fatalf("replayed %v dropped %v, want [2] and [3]", rig.groups.replayed, rig.groups.dropped)
	}
	decodeJSON(t, rig.do("GET", g1Path+"/dead", ""), 200, &dl)
	if len(dl.Dead) != 1 || dl.Dead[0].Seq != 1 {
		t.Fatalf("left: %+v, want dead letter 1", dl.Dead)
	}
	for _, seq := range []string{"0", "x", "-1", "18446744073709551616"} {
		wantField(t, rig.do("POST", g1Path+"/dead/"+seq+"/replay", ""), "seq", "positive integer")
		wantField(t, rig.do("DELETE", g1Path+"/dead/"+seq, ""), "seq", "positive integer")
	}
	wantProblem(t, rig.do("GET", "/ns/default/rooms/jobs/groups/nope/dead", ""), 404, "dead letters of an unknown group")
}

// TestGroupRoutesValidateRoomAndGroup: every group route names a bad room
// or group in its 400.
func TestGroupRoutesValidateRoomAndGroup(t *testing.T) {
	rig := newAPIRig(t, rigOptions{groups: true})
	routes := []struct{ method, path, body string }{
		{"GET", "/groups", ""},
		{"GET", "/groups/G", ""},
		{"PUT", "/groups/G", `{}`},
		{"DELETE", "/groups/G", ""},
		{"GET", "/groups/G/messages", ""},
		{"POST", "/groups/G/acks", `{"ids":["x"]}`},
		{"POST", "/groups/G/nacks", `{"ids":["x"]}`},
		{"POST", "/groups/G/progress", `{"ids":["x"]}`},
		{"GET", "/groups/G/dead", ""},
		{"POST", "/groups/G/dead/1/replay", ""},
		{"DELETE", "/groups/G/dead/1", ""},
	}
	for _, rt := range routes {
		wantField(t, rig.do(rt.method, "/ns/default/rooms/a..b"+strings.ReplaceAll(rt.path, "G", "g1"), rt.body), "room", "1–128 characters")
		if !strings.Contains(rt.path, "G") {
			continue
		}
		for _, bad := range []string{"g.1", strings.Repeat("g", 65)} {
			wantField(t, rig.do(rt.method, "/ns/default/rooms/jobs"+strings.ReplaceAll(rt.path, "G", bad), rt.body), "group", "1–64 characters")
		}
	}
	// Valid names of the greatest length pass the check.
	g64 := strings.Repeat("g", 64)
	if rec := rig.do("PUT", "/ns/default/rooms/jobs/groups/"+g64, ""); rec.Code != 200 {
		t.Fatalf("a 64-character group: %d %s", rec.Code, rec.Body)
	}
}

// TestLockedGroupRights: in a locked namespace, a member's right (ack on
// the room) reads the group's state and backlog; managing it needs admin.
func TestLockedGroupRights(t *testing.T) {
	rig := newAPIRig(t, rigOptions{groups: true, sec: Security{Locked: true}})
	if rec := rig.do("PUT", g1Path, "", bearer(rigAPIKey)); rec.Code != 200 {
		t.Fatalf("admin put: %d %s", rec.Code, rec.Body)
	}
	member := bearer(rigToken(t, "w1", auth.Grants{Ack: []string{"jobs"}}, time.Hour))
	for _, path := range []string{g1Path, g1Path + "/messages", "/ns/default/rooms/jobs/groups"} {
		if rec := rig.do("GET", path, "", member); rec.Code != 200 {
			t.Errorf("GET %s with ack on jobs: %d %s", path, rec.Code, rec.Body)
		}
	}
	p := wantProblem(t, rig.do("GET", "/ns/default/rooms/other/groups/g1", "", member), 403, "a group of a room without ack")
	if !strings.Contains(p.Detail, `does not grant ack on room "other"`) {
		t.Errorf("ack on another room: %q", p.Detail)
	}
	for _, rt := range []struct{ method, path, body string }{
		{"PUT", g1Path, `{}`}, {"DELETE", g1Path, ""}, {"GET", g1Path + "/dead", ""},
		{"POST", g1Path + "/dead/1/replay", ""}, {"DELETE", g1Path + "/dead/1", ""},
	} {
		p := wantProblem(t, rig.do(rt.method, rt.path, rt.body, member), 403, rt.method+" "+rt.path+" as a member")
		if !strings.Contains(p.Detail, "needs admin rights") {
			t.Errorf("%s %s as a member: %q", rt.method, rt.path, p.Detail)
		}
	}
	if rec := rig.do("GET", g1Path+"/dead", "", bearer(rigToken(t, "ops", auth.Grants{Admin: true}, time.Hour))); rec.Code != 200 {
		t.Fatalf("dead letters with an admin JWT: %d %s", rec.Code, rec.Body)
	}
}
