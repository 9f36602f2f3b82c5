package fault

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Scenario is one run: servers, a workload and a nemesis.
type Scenario struct {
	Name string
	// Args are the servers' flags (besides --addr and --data); Run adds
	// --retry 200ms, --max-msgs-per-room -1 and --log-level warn first.
	Args []string
	// Data is the directory the nodes keep their data in (default a temp
	// dir); e.g. a SmallVolume.
	Data string

	Rooms, SubscribersPerRoom, Publishers int
	// PublishEvery paces each publisher (0: as fast as answered).
	PublishEvery time.Duration
	// PublishFrom and SubscribeFrom are the clients' source addresses
	// ("": any).
	PublishFrom, SubscribeFrom string

	// Duration is how long the nemesis runs with the workload; Warmup the
	// workload before it.
	Warmup, Duration time.Duration
	Nemesis          Nemesis
	// Drain bounds how long subscribers may take to catch up after the
	// run (default 30s).
	Drain time.Duration

	// Nodes is the cluster's size (default 1): several embedded engines
	// clustered by routes (cluster.go). Isolated puts each in a network
	// namespace of its own, so that links can be cut (root only).
	// ExternalNATS runs the nodes on a nats-server process instead.
	Nodes        int
	Isolated     bool
	ExternalNATS bool
	// StartNodes is how many nodes start at first (default all); the
	// nemesis starts the others.
	StartNodes int
	// Idle drops a subscriber's stream that was silent this long (0:
	// never); pass --heartbeat well under it.
	Idle time.Duration
	// Probe runs a Prober: /readyz every 0.5 s and a history read every
	// second on every node (on in cluster runs).
	Probe bool
	// ReadyTolerance: how long /readyz may disagree with publishes (see
	// History).
	ReadyTolerance time.Duration
}

// Nemesis injects faults.
type Nemesis interface {
	Name() string
	// Run injects faults until ctx ends (or its own plan is done). When it
	// returns, every node must serve again.
	Run(ctx context.Context, env *Env) error
}

// Env is what a nemesis works on.
type Env struct {
	T       testing.TB
	Cluster *Cluster
	Rec     *Recorder

	mu      sync.Mutex
	figures []string
	marks   map[string]time.Time
	faults  []Fault
}

// Fault is one fault a nemesis injected: on Node (-1: not a node: the
// external NATS server), from Start until End (the heal, zero if it
// never healed within the run).
type Fault struct {
	Kind       string
	Node       int
	Start, End time.Time
}

// AddFault records a fault.
func (e *Env) AddFault(f Fault) {
	e.mu.Lock()
	e.faults = append(e.faults, f)
	e.mu.Unlock()
}

// Figure records a measurement for the run's report.
func (e *Env) Figure(format string, args ...any) {
	e.mu.Lock()
	e.figures = append(e.figures, fmt.Sprintf(format, args...))
	e.mu.Unlock()
}

// Mark records when something happened (e.g. "full", "freed").
func (e *Env) Mark(name string, at time.Time) {
	e.mu.Lock()
	if e.marks == nil {
		e.marks = map[string]time.Time{}
	}
	e.marks[name] = at
	e.mu.Unlock()
}

// Result is a run's history, the checker's report and the figures.
type Result struct {
	History History
	Report  *Report
	Figures []string
	Marks   map[string]time.Time
	Faults  []Fault
}

// Run plays sc with the server binary bin.
func Run(t testing.TB, bin string, sc Scenario) *Result {
	t.Helper()
	if sc.Rooms == 0 {
		sc.Rooms = 2
	}
	if sc.SubscribersPerRoom == 0 {
		sc.SubscribersPerRoom = 2
	}
	if sc.Publishers == 0 {
		sc.Publishers = 4
	}
	if sc.Drain == 0 {
		sc.Drain = 30 * time.Second
	}
	data := sc.Data
	if data == "" {
		data = t.TempDir()
	}
	args := append([]string{"--retry", "200ms", "--max-msgs-per-room", "-1", "--log-level", "warn"}, sc.Args...)
	cluster := newCluster(t, bin, sc, data, args)
	env := &Env{T: t, Cluster: cluster, Rec: &Recorder{}}

	rooms := make([]string, sc.Rooms)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("%s-%d", strings.ReplaceAll(sc.Name, " ", "-"), i)
	}
	subCtx, stopSubs := context.WithCancel(context.Background())
	var subWG sync.WaitGroup
	var subs []*Subscriber
	for _, room := range rooms {
		for j := 0; j < sc.SubscribersPerRoom; j++ {
			// Subscribers start on different nodes.
			urls := cluster.URLs()
			k := len(subs) % len(urls)
			urls = append(urls[k:], urls[:k]...)
			s := &Subscriber{Name: fmt.Sprintf("%s/s%d", room, j), Room: room, NS: "default",
				Client: NewClient(sc.SubscribeFrom, 0), URLs: urls, Idle: sc.Idle}
			subs = append(subs, s)
			subWG.Add(1)
			go func() { defer subWG.Done(); s.Run(subCtx) }()
		}
	}
	defer func() { stopSubs(); subWG.Wait() }()
	waitUntil(t, 30*time.Second, "every subscriber connected", func() bool {
		for _, s := range subs {
			if !s.Subscribed() {
				return false
			}
		}
		return true
	})

	var prober *Prober
	probeCtx, stopProbes := context.WithCancel(context.Background())
	var probeWG sync.WaitGroup
	if sc.Probe {
		prober = &Prober{URLs: cluster.URLs(), NS: "default", Room: rooms[0], ReadyEvery: 500 * time.Millisecond, ReadEvery: time.Second,
			Epoch: func() string { return epochOf(env.Rec.Publishes()) }}
		probeWG.Add(1)
		go func() { defer probeWG.Done(); prober.Run(probeCtx) }()
	}
	defer func() { stopProbes(); probeWG.Wait() }()

	pubCtx, stopPubs := context.WithCancel(context.Background())
	var pubWG sync.WaitGroup
	for i := 0; i < sc.Publishers; i++ {
		// In a cluster each publisher keeps to one node (publishers are
		// spread over the nodes), so that one node that does not answer
		// holds up only its own.
		node := -1
		if len(cluster.Nodes) > 1 {
			node = i % len(cluster.Nodes)
		}
		p := &Publisher{Name: fmt.Sprintf("p%d", i), Client: NewClient(sc.PublishFrom, 20*time.Second), URLs: cluster.URLs(),
			NS: "default", Rooms: rooms, Every: sc.PublishEvery, Rec: env.Rec, n: i, Node: node}
		pubWG.Add(1)
		go func() { defer pubWG.Done(); p.Run(pubCtx) }()
	}
	select {
	case <-time.After(sc.Warmup):
	case <-t.Context().Done():
	}
	began := time.Now()
	nctx, cancel := context.WithTimeout(context.Background(), sc.Duration)
	nemErr := sc.Nemesis.Run(nctx, env)
	cancel()
	stopPubs()
	pubWG.Wait()
	if nemErr != nil {
		t.Errorf("nemesis %s: %v", sc.Nemesis.Name(), nemErr)
	}
	rctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cluster.Ready(rctx); err != nil {
		t.Fatalf("after the nemesis: %v", err)
	}

	// A publish whose outcome is unknown is retried with its id, as the
	// publish contract says to: it must then be stored exactly once.
	pubs := env.Rec.Publishes()
	retryClient := NewClient("", 20*time.Second)
	for i := range pubs {
		p := &pubs[i]
		if p.Outcome != Unknown {
			continue
		}
		for try := 0; try < 5; try++ {
			r := send(rctx, retryClient, cluster.URLs()[try%len(cluster.Nodes)], "default", p.Room, p.Key)
			p.Retried = &r
			if r.Outcome != Unknown {
				break
			}
		}
	}

	// Drain: every subscriber gets what it is owed, or the checker says what
	// it missed.
	drained := waitFor(sc.Drain, func() bool {
		for _, s := range subs {
			owed := s.Owed()
			for _, p := range pubs {
				stored := p.Outcome == OK || p.Retried != nil && p.Retried.Outcome == OK
				if stored && p.Room == s.Room && !p.Start.Before(owed) && !s.Has(p.Key) {
					return false
				}
			}
		}
		return true
	})
	stopSubs()
	subWG.Wait()
	stopProbes()
	probeWG.Wait()

	h := History{Publishes: pubs, Stored: map[string][]Stored{}, ReadyTolerance: sc.ReadyTolerance}
	if prober != nil {
		h.Probes = prober.Probes()
	}
	for _, s := range subs {
		h.Subscribers = append(h.Subscribers, s.Log())
	}
	if epoch := epochOf(pubs); epoch != "" {
		client := NewClient("", time.Minute)
		for i, base := range cluster.URLs() {
			if !cluster.Nodes[i].Running() {
				continue
			}
			stored := map[string][]Stored{}
			for _, room := range rooms {
				// A node just healed may still be catching up: its reads
				// answer 503 meanwhile; read again.
				var err error
				waitFor(30*time.Second, func() bool {
					stored[room], err = ReadHistory(rctx, client, base, "default", room, epoch)
					return err == nil
				})
				if err != nil {
					t.Fatalf("node %d: %v", i+1, err)
				}
			}
			if len(h.Stored) == 0 {
				h.Stored = stored // the first node running
			}
			if len(cluster.Nodes) > 1 {
				h.NodeStored = append(h.NodeStored, stored)
			}
		}
	}
	r := Check(h)
	if dir := os.Getenv("FAULT_HISTORY_DIR"); dir != "" {
		// The whole history, for reading a finding closely.
		if b, err := json.Marshal(struct {
			History History
			Faults  []Fault
		}{h, env.faults}); err == nil {
			path := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".json")
			if err := os.WriteFile(path, b, 0o644); err == nil {
				t.Logf("history written to %s", path)
			}
		}
	}
	if !drained {
		env.Figure("subscribers had not caught up %s after the run", sc.Drain)
	}
	env.Figure("%s: ran %s (nemesis %s)", sc.Name, time.Since(began).Round(time.Millisecond), sc.Nemesis.Name())
	res := &Result{History: h, Report: r, Figures: env.figures, Marks: env.marks, Faults: env.faults}
	t.Logf("%s\n%s\n  %s", sc.Name, r, strings.Join(res.Figures, "\n  "))
	return res
}

// epochOf is the store's epoch, from the first message id answered.
func epochOf(pubs []Publish) string {
	for _, p := range pubs {
		if p.Outcome == OK {
			epoch, _, _ := strings.Cut(p.ID, "-")
			return epoch
		}
	}
	return ""
}

// Latencies summarizes the durations of the publishes keep selects.
func Latencies(pubs []Publish, keep func(Publish) bool) (n int, p50, max time.Duration) {
	var ds []time.Duration
	for _, p := range pubs {
		if keep(p) {
			ds = append(ds, p.End.Sub(p.Start))
		}
	}
	if len(ds) == 0 {
		return 0, 0, 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return len(ds), ds[len(ds)/2], ds[len(ds)-1]
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// waitFor polls cond every 20 ms until it holds (true) or limit passes.
func waitFor(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

func waitUntil(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if !waitFor(limit, cond) {
		t.Fatalf("%s: not within %s", what, limit)
	}
}

// probe GETs url and returns the status (0: no answer).
func probe(client *http.Client, url string) int {
	resp, err := client.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
