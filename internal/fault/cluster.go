package fault

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// newCluster makes and starts sc's servers (all but the nodes past
// sc.StartNodes), each logging to a file of its own whose tail is shown
// when the test fails:
//   - one node (sc.Nodes <= 1, no external NATS): the embedded engine;
//   - sc.Nodes embedded engines clustered by routes, on loopback or, with
//     sc.Isolated, each in a network namespace of its own (root only);
//   - sc.ExternalNATS: a nats-server process, and sc.Nodes nodes on it.
func newCluster(t testing.TB, bin string, sc Scenario, data string, args []string) *Cluster {
	t.Helper()
	n := max(sc.Nodes, 1)
	c := &Cluster{}
	logDir := t.TempDir()
	if dir := os.Getenv("FAULT_HISTORY_DIR"); dir != "" {
		// Kept, beside the history (scenario.go).
		logDir = filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var logs []*os.File
	openLog := func(name string) *os.File {
		f, err := os.Create(filepath.Join(logDir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, f)
		return f
	}
	t.Cleanup(func() {
		c.Close()
		for _, f := range logs {
			f.Close()
			if t.Failed() {
				if b, err := os.ReadFile(f.Name()); err == nil && len(b) > 0 {
					t.Logf("%s (last 3 KiB):\n%s", filepath.Base(f.Name()), tail(b, 3<<10))
				}
			}
		}
	})
	if sc.Isolated {
		c.Net = NewNet(t, n)
	}
	if sc.ExternalNATS {
		addr := freeAddr(t)
		c.NATS = &NATSServer{Bin: natsServerBin(t), Dir: filepath.Join(data, "nats"), Addr: addr, Log: openLog("nats-server")}
		if err := c.NATS.Start(30 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	var routes []string
	var listens []string
	if n > 1 && c.NATS == nil {
		for i := 1; i <= n; i++ {
			addr := freeAddr(t)
			if c.Net != nil {
				addr = c.Net.RouteAddr(i)
			}
			listens = append(listens, addr)
			routes = append(routes, "nats://"+addr)
		}
	}
	for i := 1; i <= n; i++ {
		nodeArgs := append([]string(nil), args...)
		name := ""
		switch {
		case c.NATS != nil:
			name = fmt.Sprintf("n%d", i)
			nodeArgs = append(nodeArgs, "--nats-url", c.NATS.URL(), "--node-name", name)
		case n > 1:
			name = fmt.Sprintf("n%d", i)
			nodeArgs = append(nodeArgs, "--node-name", name, "--cluster-name", "rc",
				"--cluster-listen", listens[i-1], "--routes", strings.Join(routes, ","))
		}
		node, err := NewNode(bin, filepath.Join(data, fmt.Sprintf("node%d", i)), nodeArgs...)
		if err != nil {
			t.Fatal(err)
		}
		node.Name = name
		if c.Net != nil {
			node.Addr, node.Exec = c.Net.HTTPAddr(i), c.Net.Exec(i)
		}
		node.Log = openLog(fmt.Sprintf("node%d", i))
		c.Nodes = append(c.Nodes, node)
	}
	start := n
	if sc.StartNodes > 0 {
		start = min(sc.StartNodes, n)
	}
	// The nodes of a new cluster wait for each other: start them all, then
	// wait.
	for _, node := range c.Nodes[:start] {
		if err := node.Spawn(); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, start)
	for i, node := range c.Nodes[:start] {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = node.WaitReady(90 * time.Second) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// freeAddr is a free loopback address (FreeAddr).
func freeAddr(t testing.TB) string {
	t.Helper()
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}
