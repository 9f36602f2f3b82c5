package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as the server in a child process (the
// crash tests kill it with SIGKILL), so that no separate build is needed.
func TestMain(m *testing.M) {
	if mode := os.Getenv("ROOMCAST_TEST_CHILD"); mode == "1" || mode == "cli" {
		// "cli" runs any command as main does, with its stderr (the CLI
		// tests read it); "1" is a server whose log is not wanted.
		stderr := io.Discard
		// ROOMCAST_TEST_LOG=1 keeps a server child's log too (debugging).
		if mode == "cli" || os.Getenv("ROOMCAST_TEST_LOG") != "" {
			stderr = os.Stderr
		}
		// As main does.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, stderr)
		stop()
		os.Exit(exitStatus(err, os.Stderr))
	}
	os.Exit(m.Run())
}

// child is the server running as a separate process.
type child struct {
	cmd *exec.Cmd
	URL string
}

// startChild runs the server in a child process on data with extra args.
func startChild(t testing.TB, data string, args ...string) *child {
	t.Helper()
	c, urls := spawnChild(t, append([]string{"--addr", "127.0.0.1:0", "--data", data}, args...)...)
	select {
	case c.URL = <-urls:
	case <-time.After(60 * time.Second):
		t.Fatal("child server did not start within 60s")
	}
	return c
}

// spawnChild starts the server in a child process with args; the channel
// gets its URL once it listens (a cluster's nodes must all be spawned
// before any of them can serve).
func spawnChild(t testing.TB, args ...string) (*child, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "ROOMCAST_TEST_CHILD=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd}
	t.Cleanup(func() {
		_ = c.cmd.Process.Signal(syscall.SIGCONT) // a stopped child cannot die
		c.kill()
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if i := strings.Index(sc.Text(), "http://"); i >= 0 {
				urls <- strings.Fields(sc.Text()[i:])[0] // the URL, without what follows it
			}
		}
	}()
	return c, urls
}

// kill sends SIGKILL and reaps the process.
func (c *child) kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
}
