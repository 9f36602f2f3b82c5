package fault

import (
	"context"
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
	node, err := NewNode(bin, filepath.Join(data, "node1"), args...)
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "node1.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	node.Log = logFile
	cluster := &Cluster{Nodes: []*Node{node}}
	t.Cleanup(func() {
		cluster.Close()
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("server log (last 4 KiB):\n%s", tail(b, 4<<10))
			}
		}
	})
	if err := node.Start(30 * time.Second); err != nil {
		t.Fatal(err)
	}
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
			s := &Subscriber{Name: fmt.Sprintf("%s/s%d", room, j), Room: room, NS: "default",
				Client: NewClient(sc.SubscribeFrom, 0), URLs: cluster.URLs()}
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

	pubCtx, stopPubs := context.WithCancel(context.Background())
	var pubWG sync.WaitGroup
	for i := 0; i < sc.Publishers; i++ {
		p := &Publisher{Name: fmt.Sprintf("p%d", i), Client: NewClient(sc.PublishFrom, 10*time.Second), URLs: cluster.URLs(),
			NS: "default", Rooms: rooms, Every: sc.PublishEvery, Rec: env.Rec, n: i}
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

	// Drain: every subscriber gets what it is owed, or the checker says what
	// it missed.
	pubs := env.Rec.Publishes()
	drained := waitFor(sc.Drain, func() bool {
		for _, s := range subs {
			owed := s.Owed()
			for _, p := range pubs {
				if p.Outcome == OK && p.Room == s.Room && !p.Start.Before(owed) && !s.Has(p.Key) {
					return false
				}
			}
		}
		return true
	})
	stopSubs()
	subWG.Wait()

	h := History{Publishes: pubs, Stored: map[string][]Stored{}}
	for _, s := range subs {
		h.Subscribers = append(h.Subscribers, s.Log())
	}
	epoch := ""
	for _, p := range pubs {
		if p.Outcome == OK {
			epoch, _, _ = strings.Cut(p.ID, "-")
			break
		}
	}
	if epoch != "" {
		client := NewClient("", time.Minute)
		for _, room := range rooms {
			stored, err := ReadHistory(rctx, client, cluster.URLs()[0], "default", room, epoch)
			if err != nil {
				t.Fatal(err)
			}
			h.Stored[room] = stored
		}
	}
	r := Check(h)
	if !drained {
		env.Figure("subscribers had not caught up %s after the run", sc.Drain)
	}
	env.Figure("%s: ran %s (nemesis %s)", sc.Name, time.Since(began).Round(time.Millisecond), sc.Nemesis.Name())
	res := &Result{History: h, Report: r, Figures: env.figures, Marks: env.marks}
	t.Logf("%s\n%s\n  %s", sc.Name, r, strings.Join(res.Figures, "\n  "))
	return res
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
