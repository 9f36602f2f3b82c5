package fault

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Node is one roomcast server process: it keeps its address and data
// directory across restarts, as a supervisor restarting it would.
type Node struct {
	Name string // its --node-name in a cluster ("" on a single node)
	Bin  string
	Args []string // besides --addr and --data
	Data string
	Addr string    // host:port, fixed at creation
	Log  io.Writer // the server's stderr (nil: discarded)
	// Exec runs the server through a command (e.g. ip netns exec NS): the
	// process that is signalled is still the server (it execs).
	Exec []string

	cmd  *exec.Cmd
	done chan error
}

// NewNode prepares a node on a free loopback port (FreeAddr).
func NewNode(bin, data string, args ...string) (*Node, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	return &Node{Bin: bin, Args: args, Data: data, Addr: addr}, nil
}

// URL is the node's base URL.
func (n *Node) URL() string { return "http://" + n.Addr }

// Start runs the server and waits until /readyz answers 200 (within
// timeout); it fails if the process exits first.
func (n *Node) Start(timeout time.Duration) error {
	if err := n.Spawn(); err != nil {
		return err
	}
	return n.WaitReady(timeout)
}

// Spawn starts the server process without waiting for it (nodes of a new
// cluster wait for each other).
func (n *Node) Spawn() error {
	if n.cmd != nil {
		return fmt.Errorf("node %s is running", n.Addr)
	}
	args := append([]string{"--addr", n.Addr, "--data", n.Data}, n.Args...)
	name := n.Bin
	if len(n.Exec) > 0 {
		name, args = n.Exec[0], append(append(append([]string(nil), n.Exec[1:]...), n.Bin), args...)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout = io.Discard
	cmd.Stderr = n.Log
	if err := cmd.Start(); err != nil {
		return err
	}
	n.cmd, n.done = cmd, make(chan error, 1)
	go func() { n.done <- cmd.Wait() }()
	return nil
}

// WaitReady waits until /readyz answers 200 (within timeout); it fails if
// the process exits first.
func (n *Node) WaitReady(timeout time.Duration) error {
	if n.cmd == nil {
		return fmt.Errorf("node %s is not running", n.Addr)
	}
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

// Pause stops the process with SIGSTOP (it keeps its sockets: peers and
// clients see a node that does not answer); Resume continues it.
func (n *Node) Pause() error { return n.send(syscall.SIGSTOP) }

// Resume sends SIGCONT.
func (n *Node) Resume() error { return n.send(syscall.SIGCONT) }

func (n *Node) send(sig os.Signal) error {
	if n.cmd == nil {
		return fmt.Errorf("node %s is not running", n.Addr)
	}
	return n.cmd.Process.Signal(sig)
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

// Cluster is the set of nodes a scenario runs: one node, several embedded
// engines clustered by routes (cluster.go), in network namespaces of
// their own when Net is set, or nodes on an external NATS.
type Cluster struct {
	Nodes []*Node
	// Net is the network the nodes' routes go through (nil: loopback).
	Net *Net
	// NATS is the external NATS server the nodes use (nil: embedded).
	NATS *NATSServer
}

// URLs are the nodes' base URLs, which clients use in turn.
func (c *Cluster) URLs() []string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL()
	}
	return urls
}

// Ready waits until every running node answers /readyz 200.
func (c *Cluster) Ready(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second}
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
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

// Close kills every node still running (a paused one too), then the
// external NATS server, and removes the network.
func (c *Cluster) Close() {
	for _, n := range c.Nodes {
		_ = n.Resume()
		n.Kill()
	}
	if c.NATS != nil {
		c.NATS.Kill()
	}
	if c.Net != nil {
		c.Net.Close()
	}
}
