package ref

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type event struct{ id, name, data string }

func readEvent(t *testing.T, br *bufio.Reader) event {
	t.Helper()
	var ev event
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			return ev
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.name = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[6:]
		}
	}
}

func subscribe(t *testing.T, ts *httptest.Server, room string) (*bufio.Reader, string, func()) {
	t.Helper()
	resp, err := http.Get(ts.URL + "/ns/default/rooms/" + room + "/events")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("subscribe: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	ev := readEvent(t, br)
	var c struct{ Token string }
	if ev.name != "connected" || json.Unmarshal([]byte(ev.data), &c) != nil || c.Token == "" {
		t.Fatalf("first event %+v, want connected with a token", ev)
	}
	return br, c.Token, func() { resp.Body.Close() }
}

func publish(t *testing.T, ts *httptest.Server, room, body string) string {
	t.Helper()
	resp, err := http.Post(ts.URL+"/ns/default/rooms/"+room+"/messages", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ ID string }
	if resp.StatusCode != http.StatusAccepted || json.NewDecoder(resp.Body).Decode(&out) != nil {
		t.Fatalf("publish %s: %s", body, resp.Status)
	}
	return out.ID
}

func TestRoomFanOutInOrder(t *testing.T) {
	ts := httptest.NewServer(New(Config{}))
	defer ts.Close()
	a, tokA, closeA := subscribe(t, ts, "lobby")
	defer closeA()
	b, tokB, closeB := subscribe(t, ts, "lobby")
	defer closeB()
	other, _, closeO := subscribe(t, ts, "other")
	defer closeO()
	var ids []string
	for i := range 50 {
		ids = append(ids, publish(t, ts, "lobby", `{"event":"chat","data":{"n":`+string(rune('0'+i%10))+`}}`))
	}
	publish(t, ts, "other", `{"event":"x","data":null}`)
	for _, c := range []struct {
		br    *bufio.Reader
		token string
	}{{a, tokA}, {b, tokB}} {
		for _, id := range ids {
			ev := readEvent(t, c.br)
			if ev.id != id+"."+c.token || ev.name != "chat" {
				t.Fatalf("event %+v, want id %s.%s named chat", ev, id, c.token)
			}
			var env struct{ ID, Room, Event string }
			if err := json.Unmarshal([]byte(ev.data), &env); err != nil || env.ID != id || env.Room != "lobby" {
				t.Fatalf("envelope %s: %v", ev.data, err)
			}
		}
	}
	if ev := readEvent(t, other); ev.name != "x" {
		t.Fatalf("room other got %+v, want only its own message", ev)
	}
}

func TestPublishValidates(t *testing.T) {
	ts := httptest.NewServer(New(Config{}))
	defer ts.Close()
	for body, want := range map[string]int{`{"event":"","data":1}`: 422, `{"event":"a\u0001"}`: 422, `{`: 400, `{"event":"ok"}`: 202} {
		resp, err := http.Post(ts.URL+"/ns/default/rooms/r/messages", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("publish %s: %d, want %d", body, resp.StatusCode, want)
		}
	}
}

// A connection whose queue overflows is closed; the others are unaffected.
func TestOverflowClosesTheSlowConnection(t *testing.T) {
	s := New(Config{QueueSize: 4})
	ts := httptest.NewServer(s)
	defer ts.Close()
	// A client that reads nothing, with a small receive buffer.
	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := io.WriteString(c, "GET /ns/default/rooms/r/events HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	fast, _, closeFast := subscribe(t, ts, "r")
	defer closeFast()
	big := `{"event":"e","data":"` + strings.Repeat("x", 60000) + `"}`
	deadline := time.Now().Add(20 * time.Second)
	for s.Active() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams open, want the slow one closed", s.Active())
		}
		publish(t, ts, "r", big)
		if ev := readEvent(t, fast); ev.name != "e" {
			t.Fatalf("fast subscriber got %+v", ev)
		}
	}
}
