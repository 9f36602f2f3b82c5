package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomcast/roomcast/api/client"
)

// The CLI tests run the client commands as the real program does: the test
// binary re-executes itself with ROOMCAST_TEST_CHILD=cli (see TestMain),
// which runs run() with the command line, and the tests check its output
// and exit code against a live server.

const cliTimeout = 30 * time.Second

var messageIDRe = regexp.MustCompile(`^[0-9a-f]{1,16}-[0-9]+$`)

// cliProc is a client command running as a child process.
type cliProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	lines  chan string // stdout, line by line
	stderr *syncBuffer
	done   chan struct{}
	code   int
}

// cliStart starts `roomcast args…` with env added to a clean client
// environment and stdin as its input.
func cliStart(t *testing.T, env []string, stdin string, args ...string) *cliProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "ROOMCAST_TEST_CHILD=cli", "ROOMCAST_SERVER=", "ROOMCAST_TOKEN="), env...)
	cmd.Stdin = strings.NewReader(stdin)
	p := &cliProc{t: t, cmd: cmd, lines: make(chan string, 1024), stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer cancel()
		defer close(p.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		err := cmd.Wait()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			p.code = ee.ExitCode()
		case err != nil:
			p.code = -1
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
		<-p.done
	})
	return p
}

// line returns the next line of stdout.
func (p *cliProc) line() string {
	p.t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			p.t.Fatalf("%v: stdout ended; stderr:\n%s", p.cmd.Args[1:], p.stderr.String())
		}
		return l
	case <-time.After(specTimeout):
		p.t.Fatalf("%v: no output line within %s; stderr:\n%s", p.cmd.Args[1:], specTimeout, p.stderr.String())
	}
	return ""
}

// wait waits for the exit and returns the rest of stdout, stderr and the
// exit code.
func (p *cliProc) wait() (string, string, int) {
	p.t.Helper()
	var out []string
	for l := range p.lines {
		out = append(out, l)
	}
	<-p.done
	s := strings.Join(out, "\n")
	if len(out) > 0 {
		s += "\n"
	}
	return s, p.stderr.String(), p.code
}

// cli runs `roomcast args…` to its end.
func cli(t *testing.T, env []string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return cliStart(t, env, stdin, args...).wait()
}

// cliWant runs a command and fails unless it exits with code.
func cliWant(t *testing.T, code int, env []string, stdin string, args ...string) (string, string) {
	t.Helper()
	out, errOut, got := cli(t, env, stdin, args...)
	if got != code {
		t.Fatalf("roomcast %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), got, code, out, errOut)
	}
	return out, errOut
}

// TestCLI runs the client commands against a live server: output, flags,
// environment and exit codes.
func TestCLI(t *testing.T) {
	s := startClientServer(t, "")
	cl, _, _ := newClient(t, s)
	ctx := context.Background()
	srv := "--server=" + s.URL
	history := func(room string) []client.Envelope {
		t.Helper()
		h, err := cl.RoomHistoryWithResponse(ctx, "default", room, nil)
		clientStatus(t, "history", h.StatusCode(), h.Body, err, 200)
		return h.JSON200.Messages
	}

	t.Run("help and version", func(t *testing.T) {
		out, _ := cliWant(t, 0, nil, "", "help")
		for _, want := range []string{"publish NS ROOM EVENT", "subscribe NS ROOM", "rooms NS", "Exit codes", "  3  refused by the server", "--addr"} {
			if !strings.Contains(out, want) {
				t.Errorf("help does not mention %q:\n%s", want, out)
			}
		}
		out, _ = cliWant(t, 0, nil, "", "--help")
		if !strings.Contains(out, "Exit codes") || !strings.Contains(out, "--data") {
			t.Errorf("--help: %s", out)
		}
		for cmd, own := range map[string]string{"publish": "\n  --id string\n", "subscribe": "\n  --group string\n", "rooms": ""} {
			_, errOut := cliWant(t, 0, nil, "", cmd, "--help")
			if !strings.Contains(errOut, "Exit codes") || !strings.Contains(errOut, "--server URL") || !strings.Contains(errOut, "roomcast "+cmd) ||
				!strings.Contains(errOut, own) {
				t.Errorf("%s --help: %s", cmd, errOut)
			}
			// Flags are spelled --flag, as in the server's --help and the README.
			for _, line := range strings.Split(errOut, "\n") {
				if strings.HasPrefix(line, "  -") && !strings.HasPrefix(line, "  --") {
					t.Errorf("%s --help: a single-dash flag: %q", cmd, line)
				}
			}
		}
		if out, _ := cliWant(t, 0, nil, "", "version"); out != "roomcast dev\n" {
			t.Errorf("version: %q", out)
		}
	})

	t.Run("publish", func(t *testing.T) {
		out, _ := cliWant(t, 0, nil, "", "publish", "default", "lobby", "chat message", `{"text":"hi"}`, srv)
		id := strings.TrimSpace(out)
		if !messageIDRe.MatchString(id) {
			t.Fatalf("publish printed %q, want a message id", out)
		}
		// Flags anywhere, data from stdin, --json, the server from the
		// environment.
		out, _ = cliWant(t, 0, []string{"ROOMCAST_SERVER=" + s.URL}, " \"from stdin\"\n", "publish", "--json", "default", "lobby", "note", "-")
		var res client.PublishResult
		if err := json.Unmarshal([]byte(out), &res); err != nil || !messageIDRe.MatchString(res.Id) || strings.Count(out, "\n") != 1 {
			t.Fatalf("publish --json printed %q, want one {\"id\"} line", out)
		}
		// Without DATA: null.
		out, _ = cliWant(t, 0, nil, "", "publish", "default", "lobby", "ping", srv)
		msgs := history("lobby")
		if len(msgs) != 3 {
			t.Fatalf("lobby history: %d messages, want 3", len(msgs))
		}
		got := []string{msgs[0].Id, msgs[1].Id, msgs[2].Id}
		if want := []string{id, res.Id, strings.TrimSpace(out)}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("history ids %v, want %v", got, want)
		}
		if b, _ := json.Marshal(msgs[0].Data); string(b) != `{"text":"hi"}` || msgs[0].Event != "chat message" {
			t.Errorf("first message %s %s", msgs[0].Event, b)
		}
		if msgs[1].Data != "from stdin" || msgs[2].Data != nil {
			t.Errorf("stdin message %v, no-data message %v", msgs[1].Data, msgs[2].Data)
		}
		// An idempotency key: the retry prints the first id.
		first, _ := cliWant(t, 0, nil, "", "publish", "default", "lobby", "x", "1", "--id", "k-1", srv)
		again, errOut := cliWant(t, 0, nil, "", "publish", "default", "lobby", "x", "1", "--id", "k-1", srv)
		if first != again || !strings.Contains(errOut, "duplicate") {
			t.Errorf("retry with a key: %q then %q (%s)", first, again, errOut)
		}
	})

	t.Run("exit codes", func(t *testing.T) {
		// 2: usage, nothing sent.
		for _, args := range [][]string{
			{"publish", "default", "lobby"},
			{"publish", "default", "lobby", "x", "{bad", srv},
			{"publish", "default", "lobby", "x", "1", "2", srv},
			{"publish", "--nope", "default", "lobby", "x"},
			{"rooms"},
			{"subscribe", "default"},
			{"subscribe", "default", "lobby", "--ack", srv},
			{"subscribe", "default", "lobby", "--limit", "-1", srv},
			{"rooms", "default", "--server", "::bad"},
		} {
			cliWant(t, 2, nil, "", args...)
		}
		if n := len(history("lobby")); n != 4 {
			t.Errorf("usage errors published something: lobby has %d messages, want 4", n)
		}
		// 3: refused, with the problem on stderr: its detail, and the invalid
		// fields the server listed, one per line.
		_, errOut := cliWant(t, 3, nil, "", "publish", "default", "lobby", "connected", srv)
		if want := "roomcast: publish: 400 invalid request: event must be 1–128 bytes of UTF-8 without control or invisible formatting characters (bidi controls, zero-width spaces), and not a name the server sends (connected, reset, error, revoked, dead_letter, end)\n" +
			"  event: must be 1–128 bytes of UTF-8 without control or invisible formatting characters (bidi controls, zero-width spaces), and not a name the server sends (connected, reset, error, revoked, dead_letter, end)\n"; errOut != want {
			t.Errorf("a refused publish prints\n%s\nwant\n%s", errOut, want)
		}
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"publish", "nope", "lobby", "x", srv}, "404"},
			{[]string{"publish", "default", "lobby", "connected", srv}, "400"},
			{[]string{"publish", "default", "a..b", "x", srv}, "400"},
			{[]string{"publish", "secure", "chat", "x", srv}, "401"},
			{[]string{"publish", "secure", "chat", "x", srv, "--token", specJWT(t, jwt.SigningMethodHS256, specSecret, "eve", map[string]any{"publish": []string{"other"}}, map[string]any{"iss": nil})}, "403"},
			{[]string{"rooms", "nope", srv}, "404"},
			{[]string{"subscribe", "secure", "chat", srv}, "401"},
		} {
			_, errOut := cliWant(t, 3, nil, "", tc.args...)
			if !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "roomcast:") {
				t.Errorf("%v: stderr %q, want the %s problem", tc.args, errOut, tc.want)
			}
		}
		// 1: no server.
		dead := "--server=http://" + freeAddr(t)
		for _, args := range [][]string{
			{"publish", "default", "lobby", "x", dead},
			{"rooms", "default", dead},
			{"subscribe", "default", "lobby", dead},
		} {
			cliWant(t, 1, nil, "", args...)
		}
	})

	t.Run("tokens", func(t *testing.T) {
		tok := specJWT(t, jwt.SigningMethodHS256, specSecret, "frank", map[string]any{"publish": []string{"chat"}, "presence": []string{"chat"}}, map[string]any{"iss": nil})
		out, _ := cliWant(t, 0, nil, "", "publish", "secure", "chat", "hello", `"hi"`, srv, "--token", tok)
		if !messageIDRe.MatchString(strings.TrimSpace(out)) {
			t.Errorf("publish with --token: %q", out)
		}
		cliWant(t, 0, []string{"ROOMCAST_TOKEN=" + tok, "ROOMCAST_SERVER=" + s.URL}, "", "rooms", "secure")
	})

	t.Run("rooms", func(t *testing.T) {
		st := s.subscribe(t, "/ns/default/events?rooms=r1,r2", "")
		st.Expect("connected")
		s.subscribe(t, "/ns/default/rooms/r2/events", "").Expect("connected")
		out, _ := cliWant(t, 0, nil, "", "rooms", "default", srv)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		sort.Strings(lines)
		if fmt.Sprint(lines) != "[r1\t1 r2\t2]" {
			t.Errorf("rooms: %q", out)
		}
		out, _ = cliWant(t, 0, nil, "", "rooms", "default", srv, "--json")
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var r client.Room
			if err := json.Unmarshal([]byte(l), &r); err != nil || r.Members < 1 {
				t.Errorf("rooms --json line %q", l)
			}
		}
	})

	t.Run("subscribe", func(t *testing.T) {
		p := cliStart(t, nil, "", "subscribe", "default", "feed", "--limit", "3", "--json", srv)
		var first struct {
			Event string
			ID    string
			Data  client.Connected
		}
		if err := json.Unmarshal([]byte(p.line()), &first); err != nil || first.Event != "connected" || first.Data.Id == "" {
			t.Fatalf("first line: %+v, %v", first, err)
		}
		var ids []string
		for i := range 3 {
			ids = append(ids, tickPublish(t, cl, "feed", i))
		}
		out, errOut, code := p.wait()
		if code != 0 {
			t.Fatalf("subscribe --limit 3: exit %d; %s", code, errOut)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var ev struct {
				Event string
				ID    string
				Data  client.Envelope
			}
			if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Event != "tick" || !strings.HasPrefix(ev.ID, ev.Data.Id+".") {
				t.Fatalf("line %q: %v", l, err)
			}
			got = append(got, ev.Data.Id)
		}
		if fmt.Sprint(got) != fmt.Sprint(ids) {
			t.Errorf("subscribe printed %v, want %v", got, ids)
		}

		// Ctrl-C ends a subscription normally.
		p = cliStart(t, nil, "", "subscribe", "default", "feed", "--json", srv)
		if l := p.line(); !strings.Contains(l, `"event":"connected"`) {
			t.Fatalf("first line %q", l)
		}
		if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if _, errOut, code := p.wait(); code != 0 {
			t.Errorf("subscribe interrupted: exit %d, want 0; %s", code, errOut)
		}

		// Human lines; --from replays what follows a message id.
		out, errOut = cliWant(t, 0, nil, "", "subscribe", "default", "feed", "--from", ids[0], "--limit", "2", srv)
		want := fmt.Sprintf("%s #feed tick {\"n\":1}\n%s #feed tick {\"n\":2}\n", ids[1], ids[2])
		if out != want || !strings.Contains(errOut, "connected: connection ") {
			t.Errorf("human subscribe:\n%s\nwant:\n%s\nstderr: %s", out, want, errOut)
		}
	})

	t.Run("group and ack", func(t *testing.T) {
		pg, err := cl.PutGroupWithResponse(ctx, "default", "jobs", "workers", client.GroupSettings{AckWait: ptr("1m")})
		clientStatus(t, "putGroup", pg.StatusCode(), pg.Body, err, 200)
		p := cliStart(t, nil, "", "subscribe", "default", "jobs", "--group", "workers", "--ack", "--limit", "2", srv)
		ids := []string{tickPublish(t, cl, "jobs", 1), tickPublish(t, cl, "jobs", 2)}
		out, errOut, code := p.wait()
		if code != 0 {
			t.Fatalf("group subscribe: exit %d; %s", code, errOut)
		}
		want := fmt.Sprintf("%s #jobs tick delivery 1 {\"n\":1}\n%s #jobs tick delivery 1 {\"n\":2}\n", ids[0], ids[1])
		if out != want {
			t.Errorf("group subscribe:\n%s\nwant:\n%s", out, want)
		}
		// Both acknowledged: nothing left for the group.
		eventually(t, specTimeout, "the acks to reach the group", func() bool {
			g, err := cl.GroupMessagesWithResponse(ctx, "default", "jobs", "workers", nil)
			clientStatus(t, "groupMessages", g.StatusCode(), g.Body, err, 200)
			return len(g.JSON200.Messages) == 0
		})
	})
}

// TestCLISubscribeResume: `roomcast subscribe` goes on across a restart of
// the server (same data dir and port) and prints every message once, in
// order.
func TestCLISubscribeResume(t *testing.T) {
	data, addr := t.TempDir(), freeAddr(t)
	s := startClientServer(t, data, "--addr", addr)
	cl, _, _ := newClient(t, s)
	p := cliStart(t, nil, "", "subscribe", "default", "feed", "--limit", "6", "--json", "--server", s.URL)
	if l := p.line(); !strings.Contains(l, `"event":"connected"`) {
		t.Fatalf("first line %q", l)
	}
	ids := []string{tickPublish(t, cl, "feed", 0), tickPublish(t, cl, "feed", 1)}
	s.Stop()
	s2 := startClientServer(t, data, "--addr", addr)
	cl2, _, _ := newClient(t, s2)
	for i := 2; i < 6; i++ {
		ids = append(ids, tickPublish(t, cl2, "feed", i))
	}
	out, errOut, code := p.wait()
	if code != 0 {
		t.Fatalf("subscribe: exit %d; %s", code, errOut)
	}
	var got []string
	resumed := false
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev struct {
			Event string
			Data  json.RawMessage
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		switch ev.Event {
		case "connected":
			var c client.Connected
			_ = json.Unmarshal(ev.Data, &c)
			resumed = resumed || c.Restored
		case "tick":
			var env client.Envelope
			_ = json.Unmarshal(ev.Data, &env)
			got = append(got, env.Id)
		case "end": // the restart: the server says so before it ends the stream
			if string(ev.Data) != `{"reason":"shutdown"}` {
				t.Errorf("end line %q, want reason shutdown", l)
			}
		default:
			t.Errorf("unexpected line %q", l)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) || !resumed {
		t.Errorf("across the restart: printed %v (resumed %v), want %v", got, resumed, ids)
	}
}

// tickPublish publishes {"n": n} as event tick to room of default.
func tickPublish(t *testing.T, cl *client.ClientWithResponses, room string, n int) string {
	t.Helper()
	p, err := cl.PublishToRoomWithResponse(context.Background(), "default", room, client.RoomPublishRequest{Event: "tick", Data: ptr[client.Payload](map[string]int{"n": n})})
	clientStatus(t, "publish", p.StatusCode(), p.Body, err, 202)
	return p.JSON202.Id
}
