package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestProblemWording holds the wording of the answers to the common
// mistakes: each problem's detail is one sentence a person can act on, and
// never ends in the sentinel that classified it (": not found", ": invalid",
// ": rate limited" …), which the status and title already say.
func TestProblemWording(t *testing.T) {
	t.Parallel()
	s := startSecure(t)
	st := s.subscribe(t, "/ns/default/events", "")
	id, token, _ := st.connected()
	other := s.subscribe(t, "/ns/default/events", "")
	otherID, _, _ := other.connected()
	limitedTok := func() string {
		l := s.subscribe(t, "/ns/limited/events", "")
		_, tok, _ := l.connected()
		return tok
	}()
	jwtNoRights := mint(t, "alice", grants{}, nil)
	cases := []struct {
		name         string
		method, path string
		body         any
		token        string
		want         int
		detail       string
	}{
		{"undeclared namespace", "GET", "/ns/chat/rooms", nil, "", 404,
			"namespace chat is not declared on this server, which serves default, limited, secure: declare it under namespaces: in the config file (--config)"},
		{"malformed namespace", "GET", "/ns/a.b/rooms", nil, "", 400, "ns must be 1–64 of A-Z a-z 0-9 _ -"},
		{"unknown field", "POST", "/ns/default/messages", `{"event":"x","room":"lobby"}`, "", 400,
			`the body is not the expected JSON object: unknown field "room"`},
		{"event missing", "POST", "/ns/default/messages", `{"data":1}`, "", 400, "event is required"},
		{"event not a string", "POST", "/ns/default/messages", `{"event":123}`, "", 400,
			`the body is not the expected JSON object: field "event" must be string`},
		{"bad room in body", "POST", "/ns/default/messages", `{"event":"x","rooms":["a b"]}`, "", 400,
			"rooms[0] must be 1–128 characters of A-Z a-z 0-9 _ - : @ =, optionally in dot-separated segments"},
		{"empty body", "POST", "/ns/default/messages", "", "", 400, "the body is empty; send a JSON object"},
		{"body too large", "POST", "/ns/default/messages", `{"event":"x","data":"` + strings.Repeat("x", 70<<10) + `"}`, "", 413,
			"the body is larger than 65536 bytes, the namespace's max_body"},
		{"bad room in path", "GET", "/ns/default/rooms/a..b/members", nil, "", 400,
			"room must be 1–128 characters of A-Z a-z 0-9 _ - : @ =, optionally in dot-separated segments"},
		{"join without a token", "PUT", "/ns/default/rooms/lobby/members/" + id, nil, "", 401,
			"this call needs the connection's token (Authorization: Bearer <token from the connected event>)"},
		{"join with an unknown token", "PUT", "/ns/default/rooms/lobby/members/" + id, nil, "AAAAAAAAAAAAAAAAAAAAAA", 401,
			"the connection token is unknown or its connection has closed; use the token of a connection's connected event"},
		{"join with a malformed token", "PUT", "/ns/default/rooms/lobby/members/" + id, nil, "not-a-token", 401,
			"the bearer credential is not a connection token (22 characters from a connected event)"},
		{"join with another connection's token", "PUT", "/ns/default/rooms/lobby/members/" + otherID, nil, token, 403,
			"the token is not connection " + otherID + "'s: use the token of that connection's connected event"},
		{"unknown connection", "GET", "/ns/default/connections/AAAAAAAAAAAAAAAAAAAAAA", nil, "", 404,
			`connection AAAAAAAAAAAAAAAAAAAAAA is not open`},
		{"history from another epoch", "GET", "/ns/default/rooms/lobby/messages?after=ffff-1", nil, "", 410,
			"position ffff-1 is from another epoch of the store (it was recreated): read the latest messages, without after"},
		{"JWT namespace without a credential", "GET", "/ns/secure/rooms", nil, "", 401,
			"this namespace needs credentials (a JWT, a ticket or an API key)"},
		{"JWT namespace, a bearer that is no JWT", "GET", "/ns/secure/rooms", nil, "not-a-jwt", 401,
			"the bearer credential is neither a JWT, nor an API key of this namespace, nor a connection token"},
		{"JWT namespace, a room not granted", "POST", "/ns/secure/rooms/lobby/messages", `{"event":"x"}`, jwtNoRights, 403,
			`the credential does not grant publish on room "lobby"`},
		{"JWT namespace, admin needed", "POST", "/ns/secure/messages", `{"event":"x"}`, jwtNoRights, 403,
			"this call needs admin rights (an API key, or a JWT whose roomcast claim has admin: true)"},
		{"malformed ack id", "POST", "/ns/default/rooms/r/groups/g/acks", `{"ids":["not-an-ack-id"]}`, token, 400,
			"ids[0] is not an ack id: send the ack_id of a delivery as received"},
	}
	for _, c := range cases {
		code, body, _ := s.do(t, c.method, c.path, c.body, c.token)
		detail, _ := body["detail"].(string)
		if code != c.want || detail != c.detail {
			t.Errorf("%s: %s %s:\n got %d %q\nwant %d %q", c.name, c.method, c.path, code, detail, c.want, c.detail)
		}
	}
	// Rate limits: the detail says the limit and when to retry.
	var code int
	var detail string
	for i := 0; i < 20 && code != http.StatusTooManyRequests; i++ {
		var body map[string]any
		code, body, _ = s.do(t, "POST", "/ns/limited/messages", `{"event":"x"}`, limitedTok)
		detail, _ = body["detail"].(string)
	}
	if want := "more than 5 requests per 1s from this address or credential: retry after Retry-After seconds"; code != 429 || detail != want {
		t.Errorf("rate limited: got %d %q, want 429 %q", code, detail, want)
	}
}
