package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/auth"
	"github.com/roomcast/roomcast/internal/hub"
)

// Handlers other than the groups', over the API rig.

type historyPage struct {
	Room      string            `json:"room"`
	Messages  []json.RawMessage `json:"messages"`
	Truncated bool              `json:"truncated"`
	Last      *string           `json:"last"`
}

func idsOf(t *testing.T, msgs []json.RawMessage) []string {
	t.Helper()
	out := []string{}
	for _, m := range msgs {
		var env struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(m, &env); err != nil {
			t.Fatalf("message %s: %v", m, err)
		}
		out = append(out, env.ID)
	}
	return out
}

// TestHistoryPaging: latest messages by default, limit bounded by the
// namespace's history limit, `after` continuing from a message id (the
// answer's last), 410 for an id of another epoch, truncated when retention
// removed part of what follows `after`.
func TestHistoryPaging(t *testing.T) {
	rig := newAPIRig(t, rigOptions{ns: hub.NamespaceConfig{HistoryLimit: 3, Retention: hub.Retention{MaxMsgsPerRoom: 4}}})
	path := "/ns/default/rooms/lobby/messages"
	var page historyPage
	decodeJSON(t, rig.do("GET", path, ""), 200, &page)
	if page.Room != "lobby" || page.Messages == nil || len(page.Messages) != 0 || page.Last != nil || page.Truncated {
		t.Fatalf("history of an empty room: %s", rig.do("GET", path, "").Body)
	}
	rig.publish(t, "e", "other")
	var ids []string
	for range 5 {
		ids = append(ids, rig.publish(t, "e", "lobby").Pos.String())
	}
	// e1-1 is the other room's; lobby has e1-2…e1-6, of which retention
	// (4 per room) kept e1-3…e1-6.
	for _, c := range []struct {
		query     string
		want      []string
		truncated bool
	}{
		{"", ids[2:5], false},
		{"?limit=1", ids[4:5], false},
		{"?limit=3", ids[2:5], false},
		{"?after=" + ids[2], ids[3:5], false},
		{"?after=" + ids[2] + "&limit=1", ids[3:4], false},
		{"?after=" + ids[4], nil, false},
		{"?after=e1-0", ids[1:4], true},
		{"?after=" + ids[2] + ".AAAAAAAAAAAAAAAAAAAAAA", ids[3:5], false}, // a Last-Event-ID works too
	} {
		page = historyPage{}
		decodeJSON(t, rig.do("GET", path+c.query, ""), 200, &page)
		got := idsOf(t, page.Messages)
		if !slices.Equal(got, append([]string{}, c.want...)) || page.Truncated != c.truncated {
			t.Errorf("history%s: %v truncated %v, want %v truncated %v", c.query, got, page.Truncated, c.want, c.truncated)
			continue
		}
		if n := len(c.want); n > 0 && (page.Last == nil || *page.Last != c.want[n-1]) {
			t.Errorf("history%s: last %v, want %s", c.query, page.Last, c.want[n-1])
		} else if n == 0 && page.Last != nil {
			t.Errorf("history%s: last %q on an empty page", c.query, *page.Last)
		}
	}
	for _, q := range []string{"0", "4", "x"} {
		wantField(t, rig.do("GET", path+"?limit="+q, ""), "limit", "from 1 to 3")
	}
	for _, a := range []string{"x", "e1", "e1-x", "e1-1.bad"} {
		wantField(t, rig.do("GET", path+"?after="+a, ""), "after", "message id")
	}
	p := wantProblem(t, rig.do("GET", path+"?after=ab-1", ""), 410, "after from another epoch")
	if !strings.Contains(p.Detail, "another epoch") {
		t.Errorf("410: %q", p.Detail)
	}
	wantField(t, rig.do("GET", "/ns/default/rooms/a..b/messages", ""), "room", "1–128")
}

type memberList struct {
	Room    string `json:"room"`
	Members []struct {
		ID          string    `json:"id"`
		User        string    `json:"user"`
		ConnectedAt time.Time `json:"connected_at"`
	} `json:"members"`
}

// TestRoomsMembersAndConnections: presence in an open namespace — rooms
// with their member counts, a room's members oldest first, a connection's
// rooms — and 404/400 for unknown or malformed ids.
func TestRoomsMembersAndConnections(t *testing.T) {
	rig := newAPIRig(t, rigOptions{})
	a := rig.open(t, "alice", nil, "lobby", "news")
	b := rig.open(t, "", nil, "lobby")
	var rooms struct {
		Rooms []roomInfo `json:"rooms"`
	}
	decodeJSON(t, rig.do("GET", "/ns/default/rooms", ""), 200, &rooms)
	if !slices.Equal(rooms.Rooms, []roomInfo{{"lobby", 2}, {"news", 1}}) {
		t.Fatalf("rooms: %+v", rooms.Rooms)
	}
	var ri roomInfo
	decodeJSON(t, rig.do("GET", "/ns/default/rooms/lobby", ""), 200, &ri)
	if ri != (roomInfo{"lobby", 2}) {
		t.Fatalf("room lobby: %+v", ri)
	}
	decodeJSON(t, rig.do("GET", "/ns/default/rooms/empty", ""), 200, &ri)
	if ri != (roomInfo{"empty", 0}) {
		t.Fatalf("an empty room: %+v, want 0 members, not 404", ri)
	}
	var ml memberList
	decodeJSON(t, rig.do("GET", "/ns/default/rooms/lobby/members", ""), 200, &ml)
	if ml.Room != "lobby" || len(ml.Members) != 2 || ml.Members[0].ID != string(a.ID) || ml.Members[1].ID != string(b.ID) ||
		ml.Members[0].User != "alice" || ml.Members[1].User != "" || ml.Members[0].ConnectedAt.After(ml.Members[1].ConnectedAt) ||
		ml.Members[0].ConnectedAt.Location() != time.UTC {
		t.Fatalf("members of lobby: %+v, want alice's connection then the other, oldest first", ml)
	}
	decodeJSON(t, rig.do("GET", "/ns/default/rooms/empty/members", ""), 200, &ml)
	if ml.Members == nil || len(ml.Members) != 0 {
		t.Fatalf("members of an empty room: %+v", ml)
	}
	var ci connectionInfo
	decodeJSON(t, rig.do("GET", "/ns/default/connections/"+string(a.ID), ""), 200, &ci)
	if ci.ID != a.ID || ci.NS != "default" || ci.User != "alice" || !slices.Equal(ci.Rooms, []string{"lobby", "news"}) || ci.ConnectedAt.IsZero() {
		t.Fatalf("connection: %+v", ci)
	}
	wantProblem(t, rig.do("GET", "/ns/default/connections/"+strings.Repeat("A", 22), ""), 404, "an unknown connection")
	for _, id := range []string{"short", strings.Repeat("A", 23), strings.Repeat("A", 21) + "."} {
		wantField(t, rig.do("GET", "/ns/default/connections/"+id, ""), "id", "22 characters")
	}
	// A credential, if sent, must be valid, also in an open namespace.
	wantProblem(t, rig.do("GET", "/ns/default/connections/"+string(a.ID), "", bearer("AAAAAAAAAAAAAAAAAAAAAA")), 401, "an unknown connection token")
	for _, path := range []string{"/ns/default/rooms", "/ns/default/rooms/lobby", "/ns/default/rooms/lobby/members"} {
		wantProblem(t, rig.do("GET", path, "", "Authorization: Bearer eyJ.eyJ.x"), 401, path+" with a bad JWT")
	}
	wantField(t, rig.do("GET", "/ns/default/rooms/a..b/members", ""), "room", "1–128")
}

// TestJoinLeaveAndDisconnect: a connection acts for itself with its token
// (its membership answered with its rooms), an API key for any, an
// anonymous caller for none; a disconnected connection is gone.
func TestJoinLeaveAndDisconnect(t *testing.T) {
	rig := newAPIRig(t, rigOptions{})
	a := rig.open(t, "", nil, "lobby")
	b := rig.open(t, "", nil)
	apath := "/ns/default/rooms/news/members/" + string(a.ID)
	for i, want := range []bool{true, false} {
		var m membership
		decodeJSON(t, rig.do("PUT", apath, "", bearer(a.Token)), 200, &m)
		if m.Room != "news" || m.ID != a.ID || !m.Member || m.Changed != want || !slices.Equal(m.Rooms, []string{"lobby", "news"}) {
			t.Fatalf("join %d: %+v, want changed %v, rooms lobby and news", i, m, want)
		}
	}
	var m membership
	decodeJSON(t, rig.do("DELETE", "/ns/default/rooms/lobby/members/"+string(a.ID), "", bearer(rigAPIKey)), 200, &m)
	if m.Member || !m.Changed || !slices.Equal(m.Rooms, []string{"news"}) {
		t.Fatalf("leave by an API key: %+v", m)
	}
	decodeJSON(t, rig.do("DELETE", "/ns/default/rooms/lobby/members/"+string(a.ID), "", bearer(a.Token)), 200, &m)
	if m.Changed || m.Member {
		t.Fatalf("a second leave: %+v, want unchanged", m)
	}
	// Nobody else acts for a: not b's token, not an anonymous caller.
	p := wantProblem(t, rig.do("PUT", apath, "", bearer(b.Token)), 403, "b's token for a")
	if !strings.Contains(p.Detail, "is not connection "+string(a.ID)+"'s") {
		t.Errorf("b's token for a: %q", p.Detail)
	}
	p = wantProblem(t, rig.do("PUT", apath, ""), 401, "anonymous join")
	if !strings.Contains(p.Detail, "needs the connection's token") {
		t.Errorf("anonymous join: %q", p.Detail)
	}
	wantProblem(t, rig.do("DELETE", "/ns/default/connections/"+string(a.ID), ""), 401, "anonymous disconnect")
	wantField(t, rig.do("PUT", "/ns/default/rooms/a..b/members/"+string(a.ID), "", bearer(a.Token)), "room", "1–128")
	wantField(t, rig.do("PUT", "/ns/default/rooms/news/members/x", "", bearer(a.Token)), "id", "22 characters")
	wantProblem(t, rig.do("PUT", "/ns/default/rooms/news/members/"+strings.Repeat("B", 22), "", bearer(rigAPIKey)), 404, "join of an unknown connection")
	// Disconnected with its own token: gone, its token no longer valid.
	if rec := rig.do("DELETE", "/ns/default/connections/"+string(a.ID), "", bearer(a.Token)); rec.Code != 204 {
		t.Fatalf("disconnect: %d %s", rec.Code, rec.Body)
	}
	if err := a.Err(); err == nil || !strings.Contains(err.Error(), "disconnected") {
		t.Fatalf("the connection closed with %v, want disconnected on request", err)
	}
	_ = a.Detach()
	wantProblem(t, rig.do("GET", "/ns/default/connections/"+string(a.ID), ""), 404, "a disconnected connection")
	wantProblem(t, rig.do("DELETE", "/ns/default/connections/"+string(a.ID), "", bearer(a.Token)), 401, "the token of a disconnected connection")
}

// TestLockedJoinByUserAndAdmin: a user's JWT joins that user's connection
// to rooms its own join right allows; an admin's JWT joins any.
func TestLockedJoinByUserAndAdmin(t *testing.T) {
	rig := newAPIRig(t, rigOptions{sec: Security{Locked: true}})
	c := rig.open(t, "alice", auth.Grants{Subscribe: []string{">"}})
	path := func(room string) string { return "/ns/default/rooms/" + room + "/members/" + string(c.ID) }
	alice := bearer(rigToken(t, "alice", auth.Grants{Join: []string{"chat.*"}}, time.Hour))
	var m membership
	decodeJSON(t, rig.do("PUT", path("chat.fr"), "", alice), 200, &m)
	if !m.Changed || !slices.Equal(m.Rooms, []string{"chat.fr"}) {
		t.Fatalf("alice joins her connection: %+v", m)
	}
	p := wantProblem(t, rig.do("PUT", path("orders"), "", alice), 403, "a room alice may not join")
	if !strings.Contains(p.Detail, `does not grant join on room "orders"`) {
		t.Errorf("a room alice may not join: %q", p.Detail)
	}
	// Leaving needs no join right.
	decodeJSON(t, rig.do("DELETE", path("chat.fr"), "", alice), 200, &m)
	if !m.Changed || len(m.Rooms) != 0 {
		t.Fatalf("alice leaves: %+v", m)
	}
	// A JWT without a subject acts for nobody's connection.
	p = wantProblem(t, rig.do("PUT", path("chat.fr"), "", bearer(rigToken(t, "", auth.Grants{Join: []string{">"}}, time.Hour))), 403, "a JWT without sub")
	if !strings.Contains(p.Detail, "belongs to another user") {
		t.Errorf("a JWT without sub: %q", p.Detail)
	}
	decodeJSON(t, rig.do("PUT", path("orders"), "", bearer(rigToken(t, "ops", auth.Grants{Admin: true}, time.Hour))), 200, &m)
	if !m.Changed || !slices.Equal(m.Rooms, []string{"orders"}) {
		t.Fatalf("an admin joins alice's connection: %+v", m)
	}
	// Reading a connection in a locked namespace: its owner or admin.
	var ci connectionInfo
	decodeJSON(t, rig.do("GET", "/ns/default/connections/"+string(c.ID), "", alice), 200, &ci)
	if ci.User != "alice" || !slices.Equal(ci.Rooms, []string{"orders"}) {
		t.Fatalf("alice reads her connection: %+v", ci)
	}
	wantProblem(t, rig.do("GET", "/ns/default/connections/"+string(c.ID), ""), 401, "anonymous read in a locked namespace")
	wantProblem(t, rig.do("GET", "/ns/default/connections/"+strings.Repeat("C", 22), "", alice), 404, "an unknown connection")
}

// TestPublishFromAConnectionCarriesItsID: a connection's token publishing to
// a room stamps the message with its id (from); a direct message goes to
// the connection named in the path.
func TestPublishFromAConnectionCarriesItsID(t *testing.T) {
	rig := newAPIRig(t, rigOptions{})
	a := rig.open(t, "", nil, "lobby")
	rec := rig.do("POST", "/ns/default/messages", `{"event":"e","rooms":["lobby"]}`, bearer(a.Token))
	var pr publishResponse
	decodeJSON(t, rec, 202, &pr)
	var stored *hub.Message
	_ = rig.log.Read(context.Background(), "default", 1, 0, hub.Filter{Rooms: []string{"lobby"}}, func(m *hub.Message) bool { stored = m; return false })
	if stored == nil || pr.ID != stored.Pos.String() || stored.From != a.ID || !slices.Equal(stored.Rooms, []string{"lobby"}) {
		t.Fatalf("stored %+v for answer %+v, want from %s", stored, pr, a.ID)
	}
	decodeJSON(t, rig.do("POST", "/ns/default/connections/"+string(a.ID)+"/messages", `{"event":"dm","data":{"x":1}}`), 202, &pr)
	var dm *hub.Message
	_ = rig.log.Read(context.Background(), "default", 2, 0, hub.Filter{Conn: a.ID}, func(m *hub.Message) bool { dm = m; return false })
	if dm == nil || dm.To != a.ID || dm.Event != "dm" || dm.From != "" || pr.ID != "e1-2" {
		t.Fatalf("direct message %+v (answer %+v), want to %s", dm, pr, a.ID)
	}
	wantField(t, rig.do("POST", "/ns/default/connections/x/messages", `{"event":"dm"}`), "id", "22 characters")
	wantField(t, rig.do("POST", "/ns/default/connections/"+string(a.ID)+"/messages", `{"data":1}`), "event", "is required")
	wantField(t, rig.do("POST", "/ns/default/messages", `{"event":"e","rooms":["a b"]}`), "rooms[0]", "1–128")
	wantField(t, rig.do("POST", "/ns/default/rooms/a..b/messages", `{"event":"e"}`), "room", "1–128")
}

// TestStreamRequests: what a stream request opens — URL rooms in either
// form, a group member's key, the resume position from Last-Event-ID (the
// header first, else the query) — and what it refuses.
func TestStreamRequests(t *testing.T) {
	rig := newAPIRig(t, rigOptions{})
	tok := "AAAAAAAAAAAAAAAAAAAAAA"
	for _, c := range []struct {
		path  string
		hdr   []string
		rooms []string
		group *hub.GroupKey
		after *hub.Position
		token string
	}{
		{"/ns/default/events", nil, nil, nil, nil, ""},
		{"/ns/default/events?rooms=a,b&rooms=c&rooms=", nil, []string{"a", "b", "c"}, nil, nil, ""},
		{"/ns/default/rooms/jobs/events?group=g1", nil, nil, &jobsG1, nil, ""},
		{"/ns/default/rooms/jobs/events?last_event_id=e1-7", nil, []string{"jobs"}, nil, &hub.Position{Epoch: "e1", Seq: 7}, ""},
		{"/ns/default/events?last_event_id=e1-7." + tok, nil, nil, nil, &hub.Position{Epoch: "e1", Seq: 7}, tok},
		{"/ns/default/events?last_event_id=bad", []string{"Last-Event-ID: e1-9"}, nil, nil, &hub.Position{Epoch: "e1", Seq: 9}, ""},
	} {
		rec := rig.do("GET", c.path, "", c.hdr...)
		if rec.Code != 200 {
			t.Fatalf("%s: %d %s", c.path, rec.Code, rec.Body)
		}
		req := rig.streams.last(t)
		if !slices.Equal(req.Rooms, c.rooms) || (req.Group == nil) != (c.group == nil) || (c.group != nil && *req.Group != *c.group) ||
			(req.Resume == nil) != (c.after == nil) || (c.after != nil && *req.Resume != *c.after) || req.Token != c.token || req.Perms != nil {
			t.Errorf("%s: opened %+v", c.path, req)
		}
	}
	n := len(rig.streams.reqs)
	wantField(t, rig.do("GET", "/ns/default/events?rooms=a,b+c", ""), "rooms", "1–128")
	wantField(t, rig.do("GET", "/ns/default/events?rooms=a,,b", ""), "rooms", "1–128")
	wantField(t, rig.do("GET", "/ns/default/rooms/jobs/events?group=", ""), "group", "1–64")
	wantField(t, rig.do("GET", "/ns/default/rooms/jobs/events?group=a.b", ""), "group", "1–64")
	wantField(t, rig.do("GET", "/ns/default/rooms/a..b/events", ""), "room", "1–128")
	wantField(t, rig.do("GET", "/ns/default/events", "", "Last-Event-ID: e1-x"), "Last-Event-ID", "event id")
	wantField(t, rig.do("GET", "/ns/default/events?last_event_id=e1-1.short", ""), "last_event_id", "event id")
	if len(rig.streams.reqs) != n {
		t.Fatalf("refused requests opened %d streams", len(rig.streams.reqs)-n)
	}
}

// errStreams answers every stream with err, having written nothing.
type errStreams struct{ err error }

func (s errStreams) Serve(http.ResponseWriter, *http.Request, *hub.Namespace, hub.OpenRequest) error {
	return s.err
}

// TestStreamThatFailsBeforeWriting: a stream closed on request before it
// began is a 204 (an EventSource stops reconnecting); another failure is
// its problem.
func TestStreamThatFailsBeforeWriting(t *testing.T) {
	for _, c := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("connection x: %w", hub.ErrDisconnected), 204},
		{fmt.Errorf("replay: %w", hub.ErrResumeExpired), 410},
		{fmt.Errorf("engine: %w", hub.ErrUnavailable), 503},
	} {
		rig := newAPIRig(t, rigOptions{config: func(cfg *Config) { cfg.Streams = errStreams{c.err} }})
		rec := rig.do("GET", "/ns/default/events", "")
		if c.code == 204 {
			if rec.Code != 204 || rec.Body.Len() != 0 {
				t.Errorf("%v: %d %s, want an empty 204", c.err, rec.Code, rec.Body)
			}
			continue
		}
		wantProblem(t, rec, c.code, c.err.Error())
	}
}

// nestedStreams serves a stream by running inner while it is open.
type nestedStreams struct{ inner func() }

func (s nestedStreams) Serve(w http.ResponseWriter, _ *http.Request, _ *hub.Namespace, _ hub.OpenRequest) error {
	if f := s.inner; f != nil {
		f()
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// TestStreamLimitsHoldWhileAStreamIsOpen: while a stream is open, a second
// one over the node's, the address's or the user's limit is refused; once
// it ended, its slot is free again.
func TestStreamLimitsHoldWhileAStreamIsOpen(t *testing.T) {
	alice := bearer(rigToken(t, "alice", auth.Grants{Subscribe: []string{">"}}, time.Hour))
	bob := bearer(rigToken(t, "bob", auth.Grants{Subscribe: []string{">"}}, time.Hour))
	for _, c := range []struct {
		name         string
		max          int
		sec          Security
		second       []string
		code         int
		secondPasses bool
	}{
		{"node", 1, Security{}, []string{bob}, 503, false},
		{"address", 0, Security{MaxConnsPerIP: 1}, []string{bob}, 429, false},
		{"user", 0, Security{MaxConnsPerUser: 1}, []string{alice}, 429, false},
		{"another user", 0, Security{MaxConnsPerUser: 1}, []string{bob}, 200, true},
		{"anonymous users are counted by address only", 0, Security{MaxConnsPerUser: 1}, nil, 200, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var inner *httptest.ResponseRecorder
			var rig *apiRig
			streams := &nestedStreams{}
			rig = newAPIRig(t, rigOptions{sec: c.sec, config: func(cfg *Config) { cfg.MaxConnections = c.max; cfg.Streams = streams }})
			first := []string{alice}
			if c.second == nil {
				first = nil
			}
			streams.inner = func() {
				streams.inner = nil
				inner = rig.do("GET", "/ns/default/events", "", c.second...)
			}
			if rec := rig.do("GET", "/ns/default/events", "", first...); rec.Code != 200 {
				t.Fatalf("first stream: %d %s", rec.Code, rec.Body)
			}
			if c.secondPasses {
				if inner.Code != 200 {
					t.Fatalf("second stream: %d %s, want 200", inner.Code, inner.Body)
				}
			} else {
				wantProblem(t, inner, c.code, "second stream")
			}
			// Both ended: a stream is served again.
			if rec := rig.do("GET", "/ns/default/events", "", c.second...); rec.Code != 200 {
				t.Fatalf("a stream after the others ended: %d %s", rec.Code, rec.Body)
			}
		})
	}
}

// TestTicketsInAnOpenNamespace: tickets need a store (503 without) and a
// JWT or API key; a ticket is redeemed once, before it expires, and only
// tickets of at most 64 characters are looked up.
func TestTicketsInAnOpenNamespace(t *testing.T) {
	rig := newAPIRig(t, rigOptions{})
	wantProblem(t, rig.do("POST", "/ns/default/tickets", ""), 401, "an anonymous ticket")
	var tr ticketResponse
	decodeJSON(t, rig.do("POST", "/ns/default/tickets", "", bearer(rigAPIKey)), 201, &tr)
	if len(tr.Ticket) != 32 || tr.ExpiresAt.Location() != time.UTC {
		t.Fatalf("ticket %+v, want 32 characters and a UTC expiry", tr)
	}
	if rec := rig.do("GET", "/ns/default/events?ticket="+tr.Ticket, ""); rec.Code != 200 || rig.streams.last(t).User != "" {
		t.Fatalf("stream with an API key's ticket: %d %s", rec.Code, rec.Body)
	}
	// Expired, or not a stored ticket's value: refused.
	put := func(ticket string, st storedTicket) {
		b, _ := json.Marshal(st)
		_ = rig.tickets.PutTicket(context.Background(), ticketKey("default", ticket), b)
	}
	put("old", storedTicket{Identity: auth.Identity{User: "u"}, Expires: time.Now().Add(-time.Second)})
	wantProblem(t, rig.do("GET", "/ns/default/events?ticket=old", ""), 401, "an expired ticket")
	_ = rig.tickets.PutTicket(context.Background(), ticketKey("default", "junk"), []byte("{"))
	wantProblem(t, rig.do("GET", "/ns/default/events?ticket=junk", ""), 401, "a ticket with a broken value")
	t64 := strings.Repeat("t", 64)
	put(t64, storedTicket{Identity: auth.Identity{User: "u64"}, Expires: time.Now().Add(time.Minute)})
	if rec := rig.do("GET", "/ns/default/events?ticket="+t64, ""); rec.Code != 200 || rig.streams.last(t).User != "u64" {
		t.Fatalf("a 64-character ticket: %d %s", rec.Code, rec.Body)
	}
	put(t64+"t", storedTicket{Identity: auth.Identity{User: "u65"}, Expires: time.Now().Add(time.Minute)})
	p := wantProblem(t, rig.do("GET", "/ns/default/events?ticket="+t64+"t", ""), 401, "a 65-character ticket")
	if !strings.Contains(p.Detail, "malformed") {
		t.Errorf("a 65-character ticket: %q", p.Detail)
	}

	none := newAPIRig(t, rigOptions{config: func(cfg *Config) { cfg.Tickets = nil }})
	p = wantProblem(t, none.do("POST", "/ns/default/tickets", "", bearer(rigAPIKey)), 503, "a ticket without a store")
	if !strings.Contains(p.Detail, "tickets") || none.do("POST", "/ns/default/tickets", "", bearer(rigAPIKey)).Header().Get("Retry-After") != "1" {
		t.Errorf("a ticket without a store: %q", p.Detail)
	}
	p = wantProblem(t, none.do("GET", "/ns/default/events?ticket=x", ""), 401, "a ticket where tickets are off")
	if !strings.Contains(p.Detail, "tickets are not enabled") {
		t.Errorf("a ticket where tickets are off: %q", p.Detail)
	}
}
