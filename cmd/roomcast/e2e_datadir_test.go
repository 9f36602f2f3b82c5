package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/datadir"
)

// TestSecondServerOnADataDirExits: with a server running on a data
// directory, a second one on the same directory (another process) exits at
// once, non-zero, saying "data directory … is in use by pid N" with the
// first one's pid, and the first keeps serving. After kill -9 of the
// holder a new server starts on the directory (the kernel released the
// lock: it is never stale) and finds what was published.
func TestSecondServerOnADataDirExits(t *testing.T) {
	data := t.TempDir()
	first := startChild(t, data)
	srv := &testServer{t: t, URL: first.URL}
	id := srv.publish(t, "/ns/default/rooms/lobby/messages", `{"event":"e","data":"before"}`, "")

	second := exec.Command(os.Args[0], "--addr", "127.0.0.1:0", "--data", data)
	second.Env = append(os.Environ(), "ROOMCAST_TEST_CHILD=1")
	var stderr bytes.Buffer
	second.Stderr = &stderr
	start := time.Now()
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- second.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		_ = second.Process.Kill()
		<-done
		t.Fatalf("a second server on the same data directory still runs after 30s; stderr: %s", stderr.String())
	}
	took := time.Since(start)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("second server ended with %v, want a non-zero exit; stderr: %s", err, stderr.String())
	}
	want := "is in use by pid " + strconv.Itoa(first.cmd.Process.Pid)
	if msg := stderr.String(); !strings.Contains(msg, "data directory ") || !strings.Contains(msg, want) {
		t.Fatalf("second server said %q, want \"data directory … %s\"", msg, want)
	}
	t.Logf("second server exited with status %d after %s: %s", exit.ExitCode(), took.Round(time.Millisecond), strings.TrimSpace(stderr.String()))

	// The first one still serves, publishes included.
	srv.publish(t, "/ns/default/rooms/lobby/messages", `{"event":"e","data":"during"}`, "")
	if code, body, _ := srv.do(t, http.MethodGet, "/readyz", nil, ""); code != http.StatusOK {
		t.Fatalf("first server's /readyz: %d %v", code, body)
	}

	first.kill()
	third := startChild(t, data)
	srv.URL = third.URL
	code, body, _ := srv.do(t, http.MethodGet, "/ns/default/rooms/lobby/messages", nil, "")
	if code != http.StatusOK {
		t.Fatalf("history after kill -9 and restart: %d %v", code, body)
	}
	msgs, _ := body["messages"].([]any)
	if len(msgs) != 2 || msgs[0].(map[string]any)["id"] != id {
		t.Fatalf("history after restart has %d messages (%v), want the 2 published, first %s", len(msgs), msgs, id)
	}
}

// TestExternalNATSTakesNoDataDirLock: with --nats-url there is no embedded
// store, so the data directory is not locked: a held lock does not stop
// start-up (which fails here for another reason: nothing listens).
func TestExternalNATSTakesNoDataDirLock(t *testing.T) {
	data := t.TempDir()
	held, err := datadir.Acquire(data)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = run(ctx, []string{"--addr", "127.0.0.1:0", "--data", data, "--nats-url", "nats://" + closed},
		func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || errors.Is(err, datadir.ErrInUse) {
		t.Fatalf("start with --nats-url on a locked data dir: %v, want a connection error, not the lock's", err)
	}
}
