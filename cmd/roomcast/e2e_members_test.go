package main

import (
	"net/http"
	"strings"
	"testing"
)

// e2eMembership calls PUT (join) or DELETE (leave) /rooms/{room}/members/{id} and
// checks the answer.
func e2eMembership(t *testing.T, s *testServer, method, room, id, token string, wantChanged bool, wantRooms []string) {
	t.Helper()
	path := "/ns/default/rooms/" + room + "/members/" + id
	code, out, _ := s.do(t, method, path, nil, token)
	if code != http.StatusOK {
		t.Fatalf("%s %s: status %d, want 200: %v", method, path, code, out)
	}
	if out["room"] != room || out["id"] != id || out["member"] != (method == http.MethodPut) || out["changed"] != wantChanged {
		t.Fatalf("%s %s: %v, want room %s id %s member %v changed %v", method, path, out, room, id, method == http.MethodPut, wantChanged)
	}
	if !e2eEqualJSON(t, out["rooms"], wantRooms) {
		t.Fatalf("%s %s: rooms %v, want %v", method, path, out["rooms"], wantRooms)
	}
}

func TestE2EJoinLeave(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a := e2eOpen(t, s, "/ns/default/events", "")
	b := e2eOpen(t, s, "/ns/default/events?rooms=lobby", "")

	// Before joining, A does not get room messages.
	e2ePub(t, s, "/ns/default/rooms/games/messages", "move", 1, "")
	sentinel := e2eSentinel(t, s)
	a.expect(t, sentinel)
	b.expect(t, sentinel)

	e2eMembership(t, s, http.MethodPut, "games", a.ID, a.Token, true, []string{"games"})
	e2eMembership(t, s, http.MethodPut, "games", a.ID, a.Token, false, []string{"games"}) // idempotent
	e2eMembership(t, s, http.MethodPut, "lobby", a.ID, a.Token, true, []string{"games", "lobby"})
	if n := e2eMembers(t, s, "games"); n != 1 {
		t.Fatalf("games has %d members after one join, want 1", n)
	}
	conn := e2eGet(t, s, "/ns/default/connections/"+a.ID)
	if !e2eEqualJSON(t, conn["rooms"], []string{"games", "lobby"}) {
		t.Fatalf("connection rooms %v, want [games lobby]", conn["rooms"])
	}

	id := e2ePub(t, s, "/ns/default/rooms/games/messages", "move", 2, "")
	a.expect(t, id)
	id2 := e2ePub(t, s, "/ns/default/rooms/lobby/messages", "chat", 3, "")
	a.expect(t, id2)
	b.expect(t, id2)

	e2eMembership(t, s, http.MethodDelete, "games", a.ID, a.Token, true, []string{"lobby"})
	e2eMembership(t, s, http.MethodDelete, "games", a.ID, a.Token, false, []string{"lobby"}) // idempotent
	e2eMembership(t, s, http.MethodDelete, "never", a.ID, a.Token, false, []string{"lobby"})
	if n := e2eMembers(t, s, "games"); n != 0 {
		t.Fatalf("games has %d members after the leave, want 0", n)
	}

	// After leaving, nothing more from games; lobby still arrives.
	e2ePub(t, s, "/ns/default/rooms/games/messages", "move", 4, "")
	id = e2ePub(t, s, "/ns/default/rooms/lobby/messages", "chat", 5, "")
	a.expect(t, id)
	b.expect(t, id)
}

func TestE2EJoinLeaveAuth(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a := e2eOpen(t, s, "/ns/default/events", "")
	b := e2eOpen(t, s, "/ns/default/events", "")
	join := "/ns/default/rooms/secret/members/" + a.ID
	for _, method := range []string{http.MethodPut, http.MethodDelete} {
		// B's token cannot move A.
		e2eProblem(t, s, method, join, nil, map[string]string{"Authorization": "Bearer " + b.Token}, http.StatusForbidden)
		// No token, or not a live token.
		e2eProblem(t, s, method, join, nil, nil, http.StatusUnauthorized)
		for _, auth := range []string{"Bearer garbage", "Bearer", "Bearer ", "Basic " + a.Token, "Bearer AAAAAAAAAAAAAAAAAAAAAA", "Bearer " + a.ID, "Bearer " + a.Token + "x"} {
			p := e2eProblem(t, s, method, join, nil, map[string]string{"Authorization": auth}, http.StatusUnauthorized)
			if detail, _ := p["detail"].(string); strings.Contains(detail, a.Token) {
				t.Fatalf("problem detail leaks the token: %q", detail)
			}
		}
	}
	// Nothing above joined A.
	if n := e2eMembers(t, s, "secret"); n != 0 {
		t.Fatalf("secret has %d members after refused joins, want 0", n)
	}
	e2ePub(t, s, "/ns/default/rooms/secret/messages", "psst", 1, "")
	sentinel := e2eSentinel(t, s)
	a.expect(t, sentinel)

	// A bad room or connection id is a 400 before any token check.
	e2eProblem(t, s, http.MethodPut, "/ns/default/rooms/bad%20room/members/"+a.ID, nil, map[string]string{"Authorization": "Bearer " + a.Token}, http.StatusBadRequest)
	e2eProblem(t, s, http.MethodPut, "/ns/default/rooms/ok/members/short", nil, map[string]string{"Authorization": "Bearer " + a.Token}, http.StatusBadRequest)
	// A's token on someone else's id that does not exist: forbidden.
	e2eProblem(t, s, http.MethodPut, "/ns/default/rooms/ok/members/AAAAAAAAAAAAAAAAAAAAAA", nil, map[string]string{"Authorization": "Bearer " + a.Token}, http.StatusForbidden)

	// A 401 says how to authenticate.
	_, hdr, _ := e2eReq(t, s, http.MethodPut, join, nil, nil)
	if hdr.Get("WWW-Authenticate") == "" {
		t.Fatalf("401 without WWW-Authenticate")
	}
}

func TestE2EPresence(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a := e2eOpen(t, s, "/ns/default/events?rooms=x,y", "")
	b := e2eOpen(t, s, "/ns/default/rooms/x/events", "")

	rooms := e2eGet(t, s, "/ns/default/rooms")
	want := []map[string]any{{"name": "x", "members": 2}, {"name": "y", "members": 1}}
	if !e2eEqualJSON(t, rooms["rooms"], want) {
		t.Fatalf("GET /rooms: %v, want %v", rooms["rooms"], want)
	}
	if n := e2eMembers(t, s, "x"); n != 2 {
		t.Fatalf("x has %d members, want 2", n)
	}
	if n := e2eMembers(t, s, "nobody-here"); n != 0 {
		t.Fatalf("an empty room has %d members, want 0", n)
	}
	members := e2eGet(t, s, "/ns/default/rooms/x/members")
	list, _ := members["members"].([]any)
	if members["room"] != "x" || len(list) != 2 {
		t.Fatalf("GET /rooms/x/members: %v, want room x and 2 members", members)
	}
	for i, want := range []string{a.ID, b.ID} { // oldest first
		m, _ := list[i].(map[string]any)
		if m["id"] != want || m["connected_at"] == nil {
			t.Fatalf("member %d: %v, want id %s with connected_at", i, m, want)
		}
		if _, ok := m["token"]; ok {
			t.Fatalf("presence shows a token: %v", m)
		}
	}
	conn := e2eGet(t, s, "/ns/default/connections/"+a.ID)
	if conn["id"] != a.ID || conn["ns"] != "default" || !e2eEqualJSON(t, conn["rooms"], []string{"x", "y"}) || conn["connected_at"] == nil {
		t.Fatalf("GET /connections/A: %v", conn)
	}
	if _, ok := conn["token"]; ok {
		t.Fatalf("GET /connections shows the token: %v", conn)
	}
	e2eProblem(t, s, http.MethodGet, "/ns/default/connections/AAAAAAAAAAAAAAAAAAAAAA", nil, nil, http.StatusNotFound)
	e2eProblem(t, s, http.MethodGet, "/ns/default/connections/not-an-id", nil, nil, http.StatusBadRequest)

	// A client that goes away leaves the rooms.
	b.Close()
	eventually(t, e2eTimeout, "B to leave x", func() bool { return e2eMembers(t, s, "x") == 1 })
	code, _, _ := s.do(t, http.MethodGet, "/ns/default/connections/"+b.ID, nil, "")
	if code != http.StatusNotFound {
		t.Fatalf("GET /connections/B after it left: %d, want 404", code)
	}
	members = e2eGet(t, s, "/ns/default/rooms/x/members")
	if list, _ := members["members"].([]any); len(list) != 1 || list[0].(map[string]any)["id"] != a.ID {
		t.Fatalf("x members after B left: %v, want only A", members)
	}
}

func TestE2EDisconnectByRequest(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a := e2eOpen(t, s, "/ns/default/events?rooms=x", "")
	b := e2eOpen(t, s, "/ns/default/events?rooms=x", "")
	path := "/ns/default/connections/" + a.ID

	e2eProblem(t, s, http.MethodDelete, path, nil, nil, http.StatusUnauthorized)
	e2eProblem(t, s, http.MethodDelete, path, nil, map[string]string{"Authorization": "Bearer garbage"}, http.StatusUnauthorized)
	e2eProblem(t, s, http.MethodDelete, path, nil, map[string]string{"Authorization": "Bearer " + b.Token}, http.StatusForbidden)
	// Still there.
	id := e2ePub(t, s, "/ns/default/rooms/x/messages", "m", 1, "")
	a.expect(t, id)
	b.expect(t, id)

	code, hdr, raw := e2eReq(t, s, http.MethodDelete, path, nil, map[string]string{"Authorization": "Bearer " + a.Token})
	if code != http.StatusNoContent || len(raw) != 0 {
		t.Fatalf("DELETE with token: %d %q (%v), want 204 and no body", code, raw, hdr)
	}
	a.Ended(e2eTimeout)
	eventually(t, e2eTimeout, "A to be gone", func() bool {
		code, _, _ := s.do(t, http.MethodGet, path, nil, "")
		return code == http.StatusNotFound
	})
	if n := e2eMembers(t, s, "x"); n != 1 {
		t.Fatalf("x has %d members after A's disconnect, want 1", n)
	}
	// B is unaffected.
	id = e2ePub(t, s, "/ns/default/rooms/x/messages", "m", 2, "")
	b.expect(t, id)
	// A disconnect on request is final: A's token no longer authorizes,
	// and a reconnect with it is not restored (socket.disconnect()).
	e2eProblem(t, s, http.MethodPut, "/ns/default/rooms/y/members/"+a.ID, nil, map[string]string{"Authorization": "Bearer " + a.Token}, http.StatusUnauthorized)
	e2eWaitDisconnects(t, s, a.ID, 1)
	st, code := s.trySubscribe(t, "/ns/default/events", a.LastID)
	switch code {
	case http.StatusNoContent:
		// 204 tells an EventSource to stop reconnecting: final.
	case http.StatusOK:
		// Or a new connection, told that it missed everything.
		ev := st.Expect("connected")
		id, _, _, restored := e2eConnected(t, ev)
		if restored || id == a.ID {
			t.Fatalf("reconnect after DELETE: restored %v id %s, want a new connection", restored, id)
		}
		st.Expect("reset")
	default:
		t.Fatalf("reconnect after DELETE: status %d, want 204 (stop) or 200 with a new connection and reset", code)
	}
}

// TestE2EDisconnectRightAfterConnected: a connection disconnected on request
// as soon as its client read `connected` (while its stream is still being
// set up) is told to stop all the same: its resume is answered 204, never
// turned into a new connection.
func TestE2EDisconnectRightAfterConnected(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	for i := range 50 {
		st := s.subscribe(t, "/ns/default/events?rooms=chat", "")
		id, token, evID := st.connected()
		if code, _, _ := s.do(t, http.MethodDelete, "/ns/default/connections/"+id, nil, token); code != http.StatusNoContent {
			t.Fatalf("round %d: DELETE %d", i, code)
		}
		st.Ended(e2eTimeout)
		if again, code := s.trySubscribe(t, "/ns/default/events?rooms=chat", evID); code != http.StatusNoContent {
			ev := again.Next(e2eTimeout)
			t.Fatalf("round %d: a resume after the disconnect answered %d (%s %s), want 204", i, code, ev.Event, ev.Data)
		}
	}
}
