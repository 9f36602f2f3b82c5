package fault

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Node is one roomcast server process: it keeps its address and data
// directory across restarts, as a supervisor restarting it would.
type Node struct {
	Bin  string
	Args []string // besides --addr and --data
	Data string
	Addr string    // host:port, fixed at creation
	Log  io.Writer // the server's stderr (nil: discarded)

	cmd  *exec.Cmd
	done chan error
}

// NewNode prepares a node on a free loopback port.
func NewNode(bin, data string, args ...string) (*Node, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	return &Node{Bin: bin, Args: args, Data: data, Addr: addr}, nil
}

// URL is the node's base URL.
func (n *Node) URL() string { return "http://" + n.Addr }

// Start runs the server and waits until /readyz answers 200 (within
// timeout); it fails if the process exits first.
func (n *Node) Start(timeout time.Duration) error {
	if n.cmd != nil {
		return fmt.Errorf("node %s is running", n.Addr)
	}
	cmd := exec.Command(n.Bin, append([]string{"--addr", n.Addr, "--data", n.Data}, n.Args...)...)
	cmd.Stdout = io.Discard
	cmd.Stderr = n.Log
	if err := cmd.Start(); err != nil {
		return err
	}
	n.cmd, n.done = cmd, make(chan error, 1)
	go func() { n.done <- cmd.Wait() }()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		select {
		case err := <-n.done:
			n.cmd = nil
			return fmt.Errorf("node %s exited while starting: %v", n.Addr, err)
		default:
		}
		if resp, err := client.Get(n.URL() + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			n.Kill()
			return fmt.Errorf("node %s not ready within %s", n.Addr, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Running reports whether the process is up.
func (n *Node) Running() bool { return n.cmd != nil }

// Pid is the running process's id (0: none).
func (n *Node) Pid() int {
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// Kill sends SIGKILL and reaps the process.
func (n *Node) Kill() {
	n.signal(syscall.SIGKILL, time.Minute)
}

// Stop sends SIGTERM (a graceful shutdown) and waits for the exit; past
// timeout it kills.
func (n *Node) Stop(timeout time.Duration) {
	if !n.signal(syscall.SIGTERM, timeout) {
		n.Kill()
	}
}

func (n *Node) signal(sig os.Signal, wait time.Duration) bool {
	if n.cmd == nil {
		return true
	}
	_ = n.cmd.Process.Signal(sig)
	select {
	case <-n.done:
		n.cmd = nil
		return true
	case <-time.After(wait):
		return false
	}
}

// Cluster is the set of nodes a scenario runs. Today a single node; the
// cluster issue adds several (routes between them) and their nemeses.
type Cluster struct {
	Nodes []*Node
}

// URLs are the nodes' base URLs, which clients use in turn.
func (c *Cluster) URLs() []string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL()
	}
	return urls
}

// Ready waits until every node answers /readyz 200.
func (c *Cluster) Ready(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second}
	for _, n := range c.Nodes {
		for {
			resp, err := client.Get(n.URL() + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("node %s not ready: %w", n.Addr, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// Close kills every node still running.
func (c *Cluster) Close() {
	for _, n := range c.Nodes {
		n.Kill()
	}
}
