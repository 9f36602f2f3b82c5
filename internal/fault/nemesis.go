package fault

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// Kill9Loop kills every node with SIGKILL after Up, and restarts it on
// the same address and data after Down, until the run ends.
type Kill9Loop struct {
	Up, Down time.Duration
}

func (k Kill9Loop) Name() string { return fmt.Sprintf("kill -9 every %s, down %s", k.Up, k.Down) }

func (k Kill9Loop) Run(ctx context.Context, env *Env) error {
	cycles := 0
	var ready time.Duration
	defer func() {
		if cycles > 0 {
			env.Figure("%d kill -9 cycles; a restart was ready in %s on average", cycles, (ready / time.Duration(cycles)).Round(time.Millisecond))
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(k.Up):
		}
		for _, n := range env.Cluster.Nodes {
			n.Kill()
		}
		time.Sleep(k.Down)
		for _, n := range env.Cluster.Nodes {
			start := time.Now()
			// The lock of the killed process must not be stale: a restart
			// that says "in use" fails the run.
			if err := n.Start(30 * time.Second); err != nil {
				return fmt.Errorf("restart after kill -9: %w", err)
			}
			ready += time.Since(start)
		}
		cycles++
	}
}

// DiskFull fills the nodes' data volume (a SmallVolume) until Leave bytes
// are free, holds it full for Hold while probing /readyz, frees it and
// measures how long the server takes to be ready again; Rounds times.
type DiskFull struct {
	Volume      string
	Leave       int64
	Hold        time.Duration
	Rounds      int
	NotReady    int           // /readyz probes that answered 503 while full (out)
	ReadyProbes int           // /readyz probes while full (out)
	Recovery    time.Duration // the slowest round's time from freed to ready (out)
	mu          sync.Mutex
}

func (d *DiskFull) Name() string {
	return fmt.Sprintf("disk full (%d rounds, %s each)", max(1, d.Rounds), d.Hold)
}

func (d *DiskFull) Run(ctx context.Context, env *Env) error {
	client := NewClient("", 2*time.Second)
	url := env.Cluster.Nodes[0].URL() + "/readyz"
	for round := 0; round < max(1, d.Rounds); round++ {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
		path, err := Fill(d.Volume, d.Leave)
		if err != nil {
			return err
		}
		full := time.Now()
		env.Mark(fmt.Sprintf("full %d", round), full)
		for end := full.Add(d.Hold); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			code := probe(client, url)
			d.mu.Lock()
			// The guard notices within its check interval: count from
			// then.
			if time.Since(full) > 500*time.Millisecond {
				d.ReadyProbes++
				if code == http.StatusServiceUnavailable {
					d.NotReady++
				}
			}
			d.mu.Unlock()
		}
		if err := os.Remove(path); err != nil {
			return err
		}
		freed := time.Now()
		env.Mark(fmt.Sprintf("freed %d", round), freed)
		if !waitFor(30*time.Second, func() bool { return probe(client, url) == http.StatusOK }) {
			return fmt.Errorf("not ready 30s after space was freed")
		}
		d.mu.Lock()
		d.Recovery = max(d.Recovery, time.Since(freed))
		d.mu.Unlock()
	}
	env.Figure("disk full: /readyz answered 503 to %d of %d probes while full; ready again at most %s after space was freed",
		d.NotReady, d.ReadyProbes, d.Recovery.Round(time.Millisecond))
	return nil
}

// SlowBodies opens N publishes from source address From that announce
// 65,000 bytes of body and send one, as a slowloris does, and reads how
// each is answered.
type SlowBodies struct {
	N    int
	From string
	// Answers counts the statuses (0: none) (out).
	Answers map[int]int
	// Slowest is the longest any waited for its answer (out).
	Slowest time.Duration
}

func (s *SlowBodies) Name() string { return fmt.Sprintf("%d slow bodies from %s", s.N, s.From) }

func (s *SlowBodies) Run(ctx context.Context, env *Env) error {
	addr := env.Cluster.Nodes[0].Addr
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(s.From)}}
	var mu sync.Mutex
	s.Answers = map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < s.N && ctx.Err() == nil; i++ {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("slow body %d: %w", i, err)
		}
		start := time.Now()
		fmt.Fprintf(c, "POST /ns/default/rooms/slow/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 65000\r\n\r\n{")
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Minute))
			code := 0
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				code = resp.StatusCode
			}
			mu.Lock()
			s.Answers[code]++
			s.Slowest = max(s.Slowest, time.Since(start))
			mu.Unlock()
		}()
	}
	wg.Wait()
	env.Figure("slow bodies: %d from %s answered %v, the last after %s", s.N, s.From, s.Answers, s.Slowest.Round(time.Millisecond))
	return nil
}
