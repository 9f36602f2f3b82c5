package fault

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// NATSServer is an external nats-server process with JetStream, for nodes
// started with --nats-url: it keeps its port and store across restarts.
type NATSServer struct {
	Bin  string
	Dir  string // its JetStream store
	Addr string // 127.0.0.1:port
	Log  io.Writer

	cmd  *exec.Cmd
	done chan error
}

// URL is what the nodes' --nats-url names.
func (s *NATSServer) URL() string { return "nats://" + s.Addr }

// Start runs the server and waits until it accepts connections.
func (s *NATSServer) Start(timeout time.Duration) error {
	if s.cmd != nil {
		return fmt.Errorf("nats-server %s is running", s.Addr)
	}
	host, port, _ := net.SplitHostPort(s.Addr)
	cmd := exec.Command(s.Bin, "--jetstream", "--store_dir", s.Dir, "--addr", host, "--port", port)
	cmd.Stdout, cmd.Stderr = s.Log, s.Log
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd, s.done = cmd, make(chan error, 1)
	go func() { s.done <- cmd.Wait() }()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case err := <-s.done:
			s.cmd = nil
			return fmt.Errorf("nats-server exited while starting: %v", err)
		default:
		}
		if c, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("nats-server %s not up within %s", s.Addr, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop sends sig (SIGTERM: a graceful stop; SIGKILL) and waits for the
// exit.
func (s *NATSServer) Stop(sig syscall.Signal) {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Kill stops it with SIGKILL.
func (s *NATSServer) Kill() { s.Stop(syscall.SIGKILL) }

// natsServerBin is a nats-server binary: NATS_SERVER_BIN, or built once
// per test binary from the module cache (the server is a dependency in
// go.mod, so nothing is downloaded; `make test`'s deps step fills the
// cache).
func natsServerBin(t testing.TB) string {
	t.Helper()
	natsOnce.Do(func() {
		if natsBin = os.Getenv("NATS_SERVER_BIN"); natsBin != "" {
			return
		}
		dir, err := os.MkdirTemp("", "roomcast-fault-nats-")
		if err != nil {
			natsErr = err
			return
		}
		natsDir = dir
		natsBin = filepath.Join(dir, "nats-server")
		build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", natsBin, "github.com/nats-io/nats-server/v2")
		if out, err := build.CombinedOutput(); err != nil {
			natsErr = fmt.Errorf("build nats-server from the module cache: %v: %s", err, out)
		}
	})
	if natsErr != nil {
		t.Fatal(natsErr)
	}
	return natsBin
}

var (
	natsOnce sync.Once
	natsBin  string
	natsDir  string // removed by TestMain
	natsErr  error
)
