package main

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// readmeBlock returns the first ```sh block after heading in README.md.
func readmeBlock(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README.md has no %q section", heading)
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatalf("README.md's %q section has no sh block", heading)
	}
	return block
}

// curlCommands joins a block's curl commands (continuation lines
// included), leaving out comments.
func curlCommands(block string) []string {
	var cmds []string
	var cur strings.Builder
	for _, line := range strings.Split(block, "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && !strings.HasPrefix(trimmed, "curl ") {
			continue
		}
		if i := strings.Index(trimmed, "   #"); i >= 0 { // a trailing comment
			trimmed = strings.TrimSpace(trimmed[:i])
		}
		if s, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmds = append(cmds, cur.String())
		cur.Reset()
	}
	return cmds
}

// TestReadmeCurlSession runs the README's curl commands that send or read
// something (not the -N streams, not the lines with … placeholders) with
// the real curl against the real server, with $ID, $TOKEN and
// $DRIVER_TOKEN from streams opened as the README says: each must be
// answered 2xx. It holds the README to the 415 rule: a bare `curl -d`
// would be refused.
func TestReadmeCurlSession(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is not installed: the README test needs it (`make deps` installs it)")
	}
	out, err := exec.Command(curl, "--version").Output()
	if m := regexp.MustCompile(`^curl (\d+)\.(\d+)`).FindSubmatch(out); err != nil || m == nil {
		t.Fatalf("curl --version: %v %q", err, out)
	} else if maj, _ := strconv.Atoi(string(m[1])); maj < 7 || maj == 7 && atoi(m[2]) < 82 {
		t.Fatalf("curl %s.%s has no --json (7.82+), which the README uses", m[1], m[2])
	}
	s := startServer(t)
	host := strings.TrimPrefix(s.URL, "http://")
	conn := s.subscribe(t, "/ns/default/events?rooms=lobby", "")
	id, token, _ := conn.connected()
	driver := s.subscribe(t, "/ns/default/rooms/pickups/events?group=drivers", "")
	_, driverToken, _ := driver.connected()

	cmds := curlCommands(readmeBlock(t, "## A curl session"))
	sent := 0
	for _, c := range curlCommands(readmeBlock(t, "## Queues: consumer groups")) {
		if strings.Contains(c, "--json") || strings.Contains(c, "-d ") {
			cmds = append(cmds, c)
			sent++
		}
	}
	if sent < 5 {
		t.Fatalf("found %d commands with a body in the Queues section, want the README's 6", sent)
	}
	ran := 0
	for _, c := range cmds {
		if strings.Contains(c, " -N ") || strings.Contains(c, "…") {
			continue
		}
		cmd := strings.Replace(c, "curl ", "curl -sS -o /dev/stderr -w '%{http_code}' ", 1)
		cmd = strings.ReplaceAll(cmd, "localhost:8080", host)
		sh := exec.Command("sh", "-c", cmd)
		sh.Env = append(os.Environ(), "ID="+id, "TOKEN="+token, "DRIVER_TOKEN="+driverToken, "PATH="+os.Getenv("PATH"))
		var stdout, stderr bytes.Buffer
		sh.Stdout, sh.Stderr = &stdout, &stderr
		if err := sh.Run(); err != nil {
			t.Errorf("%s: %v: %s", c, err, stderr.String())
			continue
		}
		code, _ := strconv.Atoi(strings.TrimSpace(stdout.String()))
		if code < 200 || code >= 300 {
			t.Errorf("%s: HTTP %d: %s", c, code, stderr.String())
		}
		ran++
	}
	// The curl session's 6 (publish, history, rooms, members, join,
	// publish except) and the Queues section's 3 without a placeholder
	// (create the group, publish a pickup, publish in-transit).
	if ran < 9 {
		t.Fatalf("ran %d README commands, want at least 9", ran)
	}
	// The room publish reached the stream, as the README shows.
	if ev := conn.Expect("chat message"); !strings.Contains(ev.Data, `"text":"hi"`) {
		t.Fatalf("the stream got %s, want the README's message", ev.Data)
	}
}

func atoi(b []byte) int {
	n, _ := strconv.Atoi(string(b))
	return n
}
