package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// params are a scenario's settings (each scenario uses some of them).
type params struct {
	Subs     int     `json:"subs,omitempty"`
	Rooms    int     `json:"rooms,omitempty"`
	Rate     float64 `json:"rate,omitempty"` // messages/s; 0: as fast as answered (with a window)
	DurS     float64 `json:"dur_s,omitempty"`
	Pubs     int     `json:"pubs,omitempty"`
	Window   int     `json:"window,omitempty"`
	Conns    int     `json:"conns,omitempty"`
	Conc     int     `json:"conc,omitempty"`
	Missed   int     `json:"missed,omitempty"`
	Members  int     `json:"members,omitempty"`
	Msgs     int     `json:"msgs,omitempty"`
	InFlight int     `json:"in_flight,omitempty"`
	Batch    int     `json:"batch,omitempty"`
	Settle   float64 `json:"settle_s,omitempty"`
	// Queue overrides --queue-size for this scenario's servers (both).
	Queue int `json:"queue,omitempty"`
}

func (p params) dur() time.Duration { return time.Duration(p.DurS * float64(time.Second)) }

// set applies "key=value".
func (p *params) set(kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok {
		return fmt.Errorf("%q: want key=value", kv)
	}
	if k == "rate" && v == "max" {
		p.Rate = 0
		return nil
	}
	if k == "dur" || k == "settle" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		if k == "dur" {
			p.DurS = d.Seconds()
		} else {
			p.Settle = d.Seconds()
		}
		return nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return fmt.Errorf("%s: want a number, got %q", k, v)
	}
	n := int(f)
	switch k {
	case "subs":
		p.Subs = n
	case "rooms":
		p.Rooms = n
	case "rate":
		p.Rate = f
	case "pubs":
		p.Pubs = n
	case "window":
		p.Window = n
	case "conns":
		p.Conns = n
	case "conc":
		p.Conc = n
	case "missed":
		p.Missed = n
	case "members":
		p.Members = n
	case "msgs":
		p.Msgs = n
	case "inflight", "in_flight":
		p.InFlight = n
	case "batch":
		p.Batch = n
	case "queue":
		p.Queue = n
	default:
		return fmt.Errorf("unknown parameter %q", k)
	}
	return nil
}

// scenario is a named kind with its defaults (full and short mode).
type scenario struct {
	name       string
	hasRef     bool
	full, shrt params
	run        func(ctx context.Context, e *env, t *target, p params) *result
	// roomcastArgs are added to the roomcast servers of this scenario.
	roomcastArgs []string
}

var scenarios = map[string]*scenario{
	"fanout": {name: "fanout", hasRef: true,
		full: params{Subs: 1000, Rooms: 1, DurS: 10, Pubs: 4, Window: 64, Conc: 64},
		shrt: params{Subs: 50, Rooms: 1, DurS: 1, Pubs: 2, Window: 32, Conc: 16},
		run:  runRooms},
	"rooms": {name: "rooms", hasRef: true,
		full: params{Subs: 10000, Rooms: 100, Rate: 1000, DurS: 10, Pubs: 64, Window: 64, Conc: 64},
		shrt: params{Subs: 200, Rooms: 10, Rate: 200, DurS: 1, Pubs: 4, Window: 32, Conc: 32},
		run:  runRooms},
	"idle": {name: "idle", hasRef: true,
		full: params{Conns: 19000, Conc: 64, Settle: 3},
		shrt: params{Conns: 200, Conc: 32, Settle: 0.5},
		run:  runIdle},
	"connect": {name: "connect", hasRef: true,
		full: params{Conns: 5000, Conc: 64},
		shrt: params{Conns: 200, Conc: 16},
		run:  runConnect},
	"publish": {name: "publish", hasRef: true,
		full: params{Pubs: 64, DurS: 10},
		shrt: params{Pubs: 8, DurS: 1},
		run:  runPublish},
	"batch": {name: "batch", hasRef: false,
		full: params{Pubs: 8, Batch: 100, DurS: 10},
		shrt: params{Pubs: 2, Batch: 20, DurS: 1},
		run:  runBatchPublish},
	"resume": {name: "resume", hasRef: false,
		full: params{Subs: 1000, Missed: 100, Pubs: 4, Conc: 64},
		shrt: params{Subs: 20, Missed: 20, Pubs: 2, Conc: 16},
		run:  runResume},
	"group": {name: "group", hasRef: false,
		full: params{Members: 4, Msgs: 50000, Pubs: 32, Batch: 100},
		shrt: params{Members: 2, Msgs: 500, Pubs: 4, Batch: 50},
		run:  runGroup,
		// The backlog is published before the members connect: retention
		// (10,000 messages per room by default) would drop most of it.
		roomcastArgs: []string{"--max-msgs-per-room", "-1"}},
}

// defaultPlan is the run `roomcast-bench` does with no scenario named: the
// targets of BENCHMARKS.md in order.
var defaultPlan = []string{
	"fanout:subs=1000,rate=max,pubs=64,window=512,queue=1024",
	"rooms:subs=10000,rooms=100,rate=1000",
	"fanout:subs=1000,rate=100",
	"idle:conns=19000",
	"connect",
	"publish:pubs=64",
	"batch:pubs=8,batch=100",
	"resume:subs=1000,missed=100",
	"group:members=4",
	"group:members=4,rate=100,dur=10s",
}

// result is one target's figures for one scenario run.
type result struct {
	Target string `json:"target"`
	Error  string `json:"error,omitempty"`

	ElapsedS       float64  `json:"elapsed_s,omitempty"`
	Published      int64    `json:"published,omitempty"`
	PublishErrors  int64    `json:"publish_errors,omitempty"`
	PublishPerSec  float64  `json:"publish_per_s,omitempty"`
	PublishLatency *latency `json:"publish_latency,omitempty"`

	Expected         int64    `json:"expected,omitempty"`
	Deliveries       int64    `json:"deliveries,omitempty"`
	Lost             int64    `json:"lost"`
	Disorder         int64    `json:"disorder"`
	Disconnects      int64    `json:"disconnects"`
	DeliveriesPerSec float64  `json:"deliveries_per_s,omitempty"`
	E2E              *latency `json:"publish_to_receive,omitempty"`

	Connected      int      `json:"connected,omitempty"`
	ConnectPerSec  float64  `json:"connect_per_s,omitempty"`
	ConnectLatency *latency `json:"connect_latency,omitempty"`

	ServerCPUS             float64 `json:"server_cpu_s"`
	ServerCPUPct           float64 `json:"server_cpu_pct"`
	ServerCPUPerDeliveryUS float64 `json:"server_cpu_per_delivery_us,omitempty"`
	ServerCPUPerOpUS       float64 `json:"server_cpu_per_op_us,omitempty"`
	WritesPerDelivery      float64 `json:"server_writes_per_delivery,omitempty"`
	ServerRSSMiB           float64 `json:"server_rss_mib"`
	RSSPerConnKiB          float64 `json:"rss_per_conn_kib,omitempty"`
	HeapPerConnKiB         float64 `json:"heap_per_conn_kib,omitempty"`
	StackPerConnKiB        float64 `json:"stack_per_conn_kib,omitempty"`
	GCBeforeSample         bool    `json:"gc_before_sample,omitempty"`
	GoroutinesPerConn      float64 `json:"goroutines_per_conn,omitempty"`
	ServerGoroutines       int     `json:"server_goroutines,omitempty"`
	ClientCPUS             float64 `json:"client_cpu_s"`
	ClientCPUPct           float64 `json:"client_cpu_pct"`

	CaughtUp    int      `json:"caught_up,omitempty"`
	Gaps        int64    `json:"gaps,omitempty"`
	Dups        int64    `json:"dups,omitempty"`
	CatchUpS    float64  `json:"catch_up_s,omitempty"`
	ClientCatch *latency `json:"client_catch_up,omitempty"`
	LiveAfter   int      `json:"live_after,omitempty"`
	Acked       int64    `json:"acked,omitempty"`
	Redelivered int64    `json:"redelivered,omitempty"`
	AckedPerSec float64  `json:"acked_per_s,omitempty"`
	AckRequests int64    `json:"ack_requests,omitempty"`
	AckLatency  *latency `json:"ack_latency,omitempty"`
	// RoomE2E is a plain room subscriber's publish→receive latency, beside a
	// group's (E2E) in the group scenario's latency mode.
	RoomE2E     *latency `json:"room_publish_to_receive,omitempty"`
	ProfilePath string   `json:"profile,omitempty"`
}

// clean reports whether the run completed with nothing lost, duplicated,
// reordered or dropped (the only check of the short mode).
func (r *result) clean() error {
	switch {
	case r.Error != "":
		return errors.New(r.Error)
	case r.Lost != 0:
		return fmt.Errorf("%d deliveries lost", r.Lost)
	case r.Disorder != 0:
		return fmt.Errorf("%d deliveries out of order or duplicated", r.Disorder)
	case r.Disconnects != 0:
		return fmt.Errorf("%d subscribers disconnected", r.Disconnects)
	case r.Gaps != 0 || r.Dups != 0:
		return fmt.Errorf("%d gaps, %d duplicates", r.Gaps, r.Dups)
	case r.PublishErrors != 0:
		return fmt.Errorf("%d publish errors", r.PublishErrors)
	}
	return nil
}

// env is what every scenario shares.
type env struct {
	sources    int
	payload    int
	profileDir string
	runLabel   string
}

func (e *env) dialer(t *target) *dialer { return newDialer(t.host, e.sources) }

// measure fills the server and client figures between two samples.
func measure(r *result, a, b sample, deliveries int64) {
	wall := b.at.Sub(a.at).Seconds()
	r.ServerCPUS = round3((b.cpu - a.cpu).Seconds())
	r.ClientCPUS = round3((b.selfCPU - a.selfCPU).Seconds())
	if wall > 0 {
		r.ServerCPUPct = round1(100 * r.ServerCPUS / wall)
		r.ClientCPUPct = round1(100 * r.ClientCPUS / wall)
	}
	if deliveries > 0 {
		r.ServerCPUPerDeliveryUS = round3(float64(b.cpu-a.cpu) / 1e3 / float64(deliveries))
		if a.writes >= 0 && b.writes >= 0 {
			r.WritesPerDelivery = round3(float64(b.writes-a.writes) / float64(deliveries))
		}
	}
	r.ServerRSSMiB = round1(float64(b.rss) / (1 << 20))
	if b.goroutines >= 0 {
		r.ServerGoroutines = b.goroutines
	}
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }
func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// profile captures a CPU profile of the server for d, when asked to.
func (e *env) profile(ctx context.Context, t *target, name string, d time.Duration, r *result) func() {
	if e.profileDir == "" || t.pprof == "" || d < time.Second {
		return func() {}
	}
	path := filepath.Join(e.profileDir, e.runLabel+"-"+name+"-"+t.kind+".pprof")
	secs := strconv.Itoa(max(1, int(d.Round(time.Second)/time.Second)))
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		if err := t.profile(ctx, d, path); err == nil {
			r.ProfilePath = path
		}
	}()
	// And what was allocated meanwhile (a delta profile of the same span):
	// `go tool pprof -sample_index=alloc_space` reads it.
	go func() {
		defer func() { done <- struct{}{} }()
		_ = t.fetchProfile(ctx, "allocs?seconds="+secs, strings.TrimSuffix(path, ".pprof")+"-allocs.pprof")
	}()
	return func() {
		deadline := time.After(d + 10*time.Second)
		for range 2 {
			select {
			case <-done:
			case <-deadline:
				return
			}
		}
	}
}

func roomNames(prefix string, n int) []string {
	out := make([]string, max(n, 1))
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// waitDrain waits (bounded) until every live subscriber has received what
// was published to its room.
func waitDrain(subs []*subscriber, roomOf func(int) int, st *pubStats, limit time.Duration) time.Time {
	deadline := time.Now().Add(limit)
	for {
		done := true
		for i, s := range subs {
			if !s.ended.Load() && s.recv.Load() < st.perRoom[roomOf(i)].Load() {
				done = false
				break
			}
		}
		if done || time.Now().After(deadline) {
			return time.Now()
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// runRooms is `fanout` (one room) and `rooms`: S subscribers over R rooms,
// publishes spread over the rooms at a fixed rate or as fast as answered.
func runRooms(ctx context.Context, e *env, t *target, p params) *result {
	r := &result{Target: t.kind}
	d := e.dialer(t)
	rooms := roomNames("room", p.Rooms)
	roomOf := func(i int) int { return i % len(rooms) }
	subs, err := connectAll(ctx, d, p.Subs, p.Conc, func(i int) string {
		return "/ns/default/rooms/" + rooms[roomOf(i)] + "/events"
	}, nil, 4096, nil)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer closeAll(subs)
	lat := newShards(32)
	for i, s := range subs {
		s.start(lat.of(i), nil)
	}
	plan := pubPlan{rooms: rooms, pubs: p.Pubs, rate: p.Rate, dur: p.dur(), payload: e.payload}
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	if p.Rate == 0 {
		plan.window = newWindow(p.Window, len(rooms))
		go plan.window.control(pctx, subs, roomOf, time.Millisecond)
	}
	before := t.sample()
	wait := e.profile(ctx, t, "rooms", p.dur(), r)
	st := publish(ctx, d, plan)
	end := waitDrain(subs, roomOf, st, 30*time.Second)
	pcancel()
	after := t.sample()
	wait()

	for i, s := range subs {
		want := st.perRoom[roomOf(i)].Load()
		got := s.recv.Load()
		r.Expected += want
		r.Deliveries += got
		if got < want {
			r.Lost += want - got
		}
		r.Disorder += s.disorder.Load()
		if s.ended.Load() {
			r.Disconnects++
			if r.Error == "" && s.endErr != nil {
				r.Error = fmt.Sprintf("subscriber %d ended: %v", i, s.endErr)
			}
		}
	}
	fillPublish(r, st)
	r.ElapsedS = round3(end.Sub(st.began).Seconds())
	if r.ElapsedS > 0 {
		r.DeliveriesPerSec = math.Round(float64(r.Deliveries) / end.Sub(st.began).Seconds())
	}
	r.E2E = lat.merged().summary()
	measure(r, before, after, r.Deliveries)
	return r
}

func fillPublish(r *result, st *pubStats) {
	r.Published = st.ok.Load()
	r.PublishErrors = st.errs.Load()
	if el := st.ended.Sub(st.began).Seconds(); el > 0 {
		r.PublishPerSec = math.Round(float64(r.Published) / el)
	}
	r.PublishLatency = st.lat.summary()
	if p := st.firstErr.Load(); p != nil && r.Error == "" && r.PublishErrors > 0 {
		r.Error = fmt.Sprintf("%d publish errors, first: %s", r.PublishErrors, *p)
	}
}

// runIdle opens N idle connections and reports what each costs the server.
func runIdle(ctx context.Context, e *env, t *target, p params) *result {
	r := &result{Target: t.kind}
	time.Sleep(500 * time.Millisecond) // let start-up settle
	_ = t.gc(ctx)
	time.Sleep(200 * time.Millisecond)
	before := t.sample()
	d := e.dialer(t)
	lat := new(hist)
	began := time.Now()
	subs, err := connectAll(ctx, d, p.Conns, p.Conc, func(int) string { return "/ns/default/rooms/idle/events" }, nil, 1024, lat)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer closeAll(subs)
	r.Connected = len(subs)
	r.ConnectPerSec = math.Round(float64(len(subs)) / time.Since(began).Seconds())
	r.ConnectLatency = lat.summary()
	for _, s := range subs {
		s.start(nil, nil)
	}
	select {
	case <-ctx.Done():
	case <-time.After(time.Duration(p.Settle * float64(time.Second))):
	}
	r.GCBeforeSample = t.gc(ctx) == nil
	time.Sleep(500 * time.Millisecond)
	after := t.sample()
	for _, s := range subs {
		if s.ended.Load() {
			r.Disconnects++
		}
	}
	if e.profileDir != "" {
		// Where the per-connection memory is: heap and goroutines.
		base := filepath.Join(e.profileDir, e.runLabel+"-idle-"+t.kind)
		if t.fetchProfile(ctx, "heap", base+"-heap.pprof") == nil {
			r.ProfilePath = base + "-heap.pprof"
		}
		_ = t.fetchProfile(ctx, "goroutine?debug=1", base+"-goroutines.txt")
	}
	measure(r, before, after, 0)
	n := float64(len(subs))
	r.RSSPerConnKiB = round1(float64(after.rss-before.rss) / 1024 / n)
	if after.heapInuse > 0 && before.heapInuse > 0 {
		r.HeapPerConnKiB = round1(float64(after.heapInuse-before.heapInuse) / 1024 / n)
	}
	if after.stackInuse > 0 && before.stackInuse > 0 {
		r.StackPerConnKiB = round1(float64(after.stackInuse-before.stackInuse) / 1024 / n)
	}
	if after.goroutines >= 0 && before.goroutines >= 0 {
		r.GoroutinesPerConn = round3(float64(after.goroutines-before.goroutines) / n)
	}
	return r
}

// runConnect opens N connections as fast as the server accepts them.
func runConnect(ctx context.Context, e *env, t *target, p params) *result {
	r := &result{Target: t.kind}
	time.Sleep(200 * time.Millisecond)
	d := e.dialer(t)
	lat := new(hist)
	before := t.sample()
	wait := e.profile(ctx, t, "connect", time.Second, r)
	began := time.Now()
	subs, err := connectAll(ctx, d, p.Conns, p.Conc, func(i int) string {
		return "/ns/default/rooms/c" + strconv.Itoa(i%100) + "/events"
	}, nil, 1024, lat)
	el := time.Since(began)
	after := t.sample()
	wait()
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer closeAll(subs)
	for _, s := range subs {
		s.start(nil, nil)
	}
	r.Connected = len(subs)
	r.ElapsedS = round3(el.Seconds())
	r.ConnectPerSec = math.Round(float64(len(subs)) / el.Seconds())
	r.ConnectLatency = lat.summary()
	measure(r, before, after, 0)
	r.ServerCPUPerOpUS = round3(float64(after.cpu-before.cpu) / 1e3 / float64(len(subs)))
	return r
}

// runPublish measures REST publish throughput and latency with P
// concurrent publishers as fast as answered, no subscribers.
func runPublish(ctx context.Context, e *env, t *target, p params) *result {
	r := &result{Target: t.kind}
	d := e.dialer(t)
	before := t.sample()
	wait := e.profile(ctx, t, "publish", p.dur(), r)
	st := publish(ctx, d, pubPlan{rooms: []string{"pub"}, pubs: p.Pubs, dur: p.dur(), payload: e.payload})
	after := t.sample()
	wait()
	fillPublish(r, st)
	r.ElapsedS = round3(st.ended.Sub(st.began).Seconds())
	measure(r, before, after, 0)
	if r.Published > 0 {
		r.ServerCPUPerOpUS = round3(float64(after.cpu-before.cpu) / 1e3 / float64(r.Published))
	}
	return r
}

// runBatchPublish measures batch publish throughput (messages stored per
// second) and request latency: P concurrent publishers, each sending
// batches of B messages as fast as answered, no subscribers.
func runBatchPublish(ctx context.Context, e *env, t *target, p params) *result {
	r := &result{Target: t.kind}
	d := e.dialer(t)
	before := t.sample()
	wait := e.profile(ctx, t, "batch", p.dur(), r)
	st := publish(ctx, d, pubPlan{rooms: []string{"pub"}, pubs: p.Pubs, dur: p.dur(), payload: e.payload, batch: max(1, p.Batch)})
	after := t.sample()
	wait()
	fillPublish(r, st)
	r.ElapsedS = round3(st.ended.Sub(st.began).Seconds())
	measure(r, before, after, 0)
	if r.Published > 0 {
		r.ServerCPUPerOpUS = round3(float64(after.cpu-before.cpu) / 1e3 / float64(r.Published))
	}
	return r
}

// bitset tracks which message numbers 1..n arrived.
type bitset []uint64

func (b bitset) set(i int64) (dup bool) {
	w, m := i/64, uint64(1)<<(i%64)
	if w < 0 || int(w) >= len(b) {
		return false
	}
	dup = b[w]&m != 0
	b[w] |= m
	return dup
}

func (b bitset) has(i int64) bool { return b[i/64]&(uint64(1)<<(i%64)) != 0 }

// runResume: N clients in one room drop, M messages are published, and all
// reconnect at once with Last-Event-ID; each must get exactly the M missed
// messages in order (the server replays them from the store), then live ones.
func runResume(ctx context.Context, e *env, t *target, p params) *result {
	r := &result{Target: t.kind}
	d := e.dialer(t)
	const room = "resume"
	subs, err := connectAll(ctx, d, p.Subs, p.Conc, func(int) string { return "/ns/default/rooms/" + room + "/events" }, nil, 4096, nil)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	last := make([]string, len(subs))
	for i, s := range subs {
		last[i] = s.lastID
	}
	closeAll(subs)
	// Wait until the server has seen them go (their sessions are saved).
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var ri struct {
			Members int `json:"members"`
		}
		if getJSON(t.base+"/ns/default/rooms/"+room, &ri) == nil && ri.Members == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := publish(ctx, d, pubPlan{rooms: []string{room}, pubs: p.Pubs, dur: time.Minute, total: int64(p.Missed), payload: e.payload})
	fillPublish(r, st)
	if r.Published != int64(p.Missed) {
		if r.Error == "" {
			r.Error = fmt.Sprintf("published %d of %d", r.Published, p.Missed)
		}
		return r
	}

	// Everyone reconnects at once.
	before := t.sample()
	catch := new(hist)
	began := time.Now()
	var wg sync.WaitGroup
	var caught, gaps, dups, live atomic.Int64
	var firstErr atomic.Pointer[string]
	resumed := make([]*subscriber, len(subs))
	allCaught := make(chan struct{})
	var pending atomic.Int64
	pending.Store(int64(len(subs)))
	liveN := int64(p.Missed + 1)
	for i := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			s, err := connectSSE(cctx, d, i, "/ns/default/rooms/"+room+"/events", last[i], 4096)
			if err != nil {
				msg := err.Error()
				firstErr.CompareAndSwap(nil, &msg)
				if pending.Add(-1) == 0 {
					close(allCaught)
				}
				return
			}
			resumed[i] = s
			_ = s.conn.SetReadDeadline(time.Now().Add(60 * time.Second))
			seen := make(bitset, (p.Missed+2)/64+1)
			got, lastSeq := 0, uint64(0)
			done := false
			_ = s.read(func(ev *sseEvent) bool {
				if string(ev.event) != "b" {
					return true
				}
				seq := seqOf(ev.id)
				if seq <= lastSeq {
					dups.Add(1)
				}
				lastSeq = seq
				n, _ := numAfter(ev.data, keyBN)
				if n == liveN {
					live.Add(1)
					return false
				}
				if n < 1 || n > int64(p.Missed) || seen.set(n) {
					dups.Add(1)
					return true
				}
				got++
				if got == p.Missed && !done {
					done = true
					catch.record(time.Since(began))
					caught.Add(1)
					if pending.Add(-1) == 0 {
						close(allCaught)
					}
				}
				return true
			})
			if !done {
				for n := 1; n <= p.Missed; n++ {
					if !seen.has(int64(n)) {
						gaps.Add(1)
					}
				}
				if pending.Add(-1) == 0 {
					close(allCaught)
				}
			}
		}()
	}
	select {
	case <-allCaught:
	case <-time.After(90 * time.Second):
	}
	el := time.Since(began)
	after := t.sample()
	// Then live: one more message must reach every resumed client.
	publish(ctx, d, pubPlan{rooms: []string{room}, pubs: 1, dur: 10 * time.Second, total: 1, base: int64(p.Missed), payload: e.payload})
	waitLive := time.Now().Add(15 * time.Second)
	for live.Load() < caught.Load() && time.Now().Before(waitLive) {
		time.Sleep(5 * time.Millisecond)
	}
	for _, s := range resumed {
		if s != nil {
			s.close()
		}
	}
	wg.Wait()
	r.CaughtUp = int(caught.Load())
	r.Gaps, r.Dups = gaps.Load(), dups.Load()
	r.LiveAfter = int(live.Load())
	r.CatchUpS = round3(el.Seconds())
	r.ClientCatch = catch.summary()
	r.Expected = int64(len(subs)) * int64(p.Missed)
	r.Deliveries = caught.Load() * int64(p.Missed)
	r.Lost = r.Expected - r.Deliveries
	if r.Lost < 0 {
		r.Lost = 0
	}
	if r.CatchUpS > 0 {
		r.DeliveriesPerSec = math.Round(float64(r.Deliveries) / el.Seconds())
	}
	measure(r, before, after, r.Deliveries)
	if p := firstErr.Load(); p != nil && r.Error == "" {
		r.Error = "reconnect: " + *p
	}
	if r.LiveAfter != r.CaughtUp && r.Error == "" {
		r.Error = fmt.Sprintf("%d of %d resumed clients got the next live message", r.LiveAfter, r.CaughtUp)
	}
	return r
}

func getJSON(url string, v any) error {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// runGroup: a backlog of msgs messages in a room is drained by one consumer
// group of K members that acknowledge in batches; it reports acknowledged
// deliveries per second. With a rate, it measures latency instead
// (runGroupLatency).
func runGroup(ctx context.Context, e *env, t *target, p params) *result {
	if p.Rate > 0 {
		return runGroupLatency(ctx, e, t, p)
	}
	r := &result{Target: t.kind}
	d := e.dialer(t)
	const room, group = "work", "workers"
	gpath := "/ns/default/rooms/" + room + "/groups/" + group
	hc := &httpConn{d: d}
	defer hc.close()
	var cfg []byte
	if p.InFlight > 0 {
		cfg = []byte(`{"max_in_flight":` + strconv.Itoa(p.InFlight) + `}`)
	}
	if status, body, err := hc.do(ctx, "PUT", gpath, "", cfg); err != nil || status != 200 {
		r.Error = fmt.Sprintf("create group: status %d %s %v", status, body, err)
		return r
	}
	st := publish(ctx, d, pubPlan{rooms: []string{room}, pubs: p.Pubs, dur: 2 * time.Minute, total: int64(p.Msgs), payload: e.payload})
	fillPublish(r, st)
	if r.Published != int64(p.Msgs) {
		if r.Error == "" {
			r.Error = fmt.Sprintf("published %d of %d", r.Published, p.Msgs)
		}
		return r
	}

	seen := make(bitset, p.Msgs/64+2)
	var seenMu sync.Mutex
	var unique, deliveries, redelivered, acked, ackReqs, dups atomic.Int64
	var ackErr atomic.Pointer[string]
	ackLat := new(hist)
	before := t.sample()
	began := time.Now()
	wait := e.profile(ctx, t, "group", 5*time.Second, r)
	gctx, gcancel := context.WithCancel(ctx)
	defer gcancel()
	var wg sync.WaitGroup
	members, err := connectAll(ctx, d, p.Members, p.Members, func(int) string {
		return "/ns/default/rooms/" + room + "/events?group=" + group
	}, nil, 8192, nil)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer closeAll(members)
	for _, m := range members {
		ids := make(chan string, 100000)
		m.start(nil, func(s *subscriber, ev *sseEvent) {
			if string(ev.event) != "b" {
				return
			}
			deliveries.Add(1)
			if n, ok := numAfter(ev.data, []byte(`"delivery":`)); ok && n > 1 {
				redelivered.Add(1)
			}
			if n, ok := numAfter(ev.data, keyBN); ok {
				seenMu.Lock()
				dup := seen.set(n)
				seenMu.Unlock()
				if dup {
					dups.Add(1)
				} else {
					unique.Add(1)
				}
			}
			if id, ok := strAfter(ev.data, keyAckID); ok {
				ids <- string(id)
			}
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			ac := &httpConn{d: d}
			defer ac.close()
			path := gpath + "/acks"
			var batch []string
			var buf []byte
			for {
				batch = batch[:0]
				select {
				case <-gctx.Done():
					return
				case id := <-ids:
					batch = append(batch, id)
				}
			drain:
				for len(batch) < p.Batch {
					select {
					case id := <-ids:
						batch = append(batch, id)
					default:
						break drain
					}
				}
				buf = append(buf[:0], `{"ids":[`...)
				for i, id := range batch {
					if i > 0 {
						buf = append(buf, ',')
					}
					buf = append(buf, '"')
					buf = append(buf, id...)
					buf = append(buf, '"')
				}
				buf = append(buf, "]}"...)
				t0 := time.Now()
				status, body, err := ac.do(gctx, "POST", path, m.token, buf)
				if gctx.Err() != nil {
					return
				}
				ackReqs.Add(1)
				if err != nil || status != 204 {
					msg := fmt.Sprintf("ack: status %d %s %v", status, body, err)
					ackErr.CompareAndSwap(nil, &msg)
					continue
				}
				ackLat.record(time.Since(t0))
				acked.Add(int64(len(batch)))
			}
		}()
	}
	// Until everything is acknowledged, or nothing moved for 15 s.
	deadline := time.Now().Add(120 * time.Second)
	end := time.Now()
	lastProgress, lastAcked := time.Now(), int64(0)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		a := acked.Load()
		if unique.Load() >= int64(p.Msgs) && a >= deliveries.Load() {
			end = time.Now()
			break
		}
		if a != lastAcked {
			lastProgress, lastAcked = time.Now(), a
			end = lastProgress
		} else if time.Since(lastProgress) > 15*time.Second {
			r.Error = fmt.Sprintf("stalled: %d of %d messages delivered, nothing acknowledged for 15 s", unique.Load(), p.Msgs)
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	after := t.sample()
	gcancel()
	wait()
	for _, m := range members {
		if m.ended.Load() {
			r.Disconnects++
		}
	}
	wg.Wait()
	el := end.Sub(began)
	r.ElapsedS = round3(el.Seconds())
	r.Expected = int64(p.Msgs)
	r.Deliveries = deliveries.Load()
	r.Acked = acked.Load()
	r.Redelivered = redelivered.Load()
	r.AckRequests = ackReqs.Load()
	r.AckLatency = ackLat.summary()
	r.Lost = int64(p.Msgs) - unique.Load()
	r.AckedPerSec = math.Round(float64(r.Acked) / el.Seconds())
	r.DeliveriesPerSec = math.Round(float64(r.Deliveries) / el.Seconds())
	measure(r, before, after, r.Acked)
	if p := ackErr.Load(); p != nil && r.Error == "" {
		r.Error = *p
	}
	// Redeliveries after a slow ack are allowed (at-least-once); they are
	// reported, not counted as errors.
	_ = dups.Load()
	return r
}

// runGroupLatency: K members of a consumer group and one plain subscriber
// of the same room are connected; messages are published at rate for dur;
// every delivery is acknowledged at once. It reports publish→delivery
// latency for the group (E2E) beside the room subscriber's (RoomE2E): a
// group delivery must leave as soon as the message is stored, as a room's
// does.
func runGroupLatency(ctx context.Context, e *env, t *target, p params) *result {
	r := &result{Target: t.kind}
	d := e.dialer(t)
	const room, group = "lat", "workers"
	gpath := "/ns/default/rooms/" + room + "/groups/" + group
	hc := &httpConn{d: d}
	defer hc.close()
	if status, body, err := hc.do(ctx, "PUT", gpath, "", nil); err != nil || status != 200 {
		r.Error = fmt.Sprintf("create group: status %d %s %v", status, body, err)
		return r
	}
	members, err := connectAll(ctx, d, p.Members, p.Members, func(int) string {
		return "/ns/default/rooms/" + room + "/events?group=" + group
	}, nil, 8192, nil)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer closeAll(members)
	plain, err := connectAll(ctx, d, 1, 1, func(int) string { return "/ns/default/rooms/" + room + "/events" }, nil, 8192, nil)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer closeAll(plain)
	groupLat, roomLat := newShards(len(members)), new(hist)
	var delivered, acked atomic.Int64
	var ackErr atomic.Pointer[string]
	gctx, gcancel := context.WithCancel(ctx)
	defer gcancel()
	var wg sync.WaitGroup
	for i, m := range members {
		ids := make(chan string, 100000)
		m.start(groupLat.of(i), func(s *subscriber, ev *sseEvent) {
			if string(ev.event) != "b" {
				return
			}
			delivered.Add(1)
			if id, ok := strAfter(ev.data, keyAckID); ok {
				ids <- string(id)
			}
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			ac := &httpConn{d: d}
			defer ac.close()
			for {
				select {
				case <-gctx.Done():
					return
				case id := <-ids:
					status, body, err := ac.do(gctx, "POST", gpath+"/acks", m.token, []byte(`{"ids":["`+id+`"]}`))
					if gctx.Err() != nil {
						return
					}
					if err != nil || status != 204 {
						msg := fmt.Sprintf("ack: status %d %s %v", status, body, err)
						ackErr.CompareAndSwap(nil, &msg)
						continue
					}
					acked.Add(1)
				}
			}
		}()
	}
	plain[0].start(roomLat, nil)
	before := t.sample()
	st := publish(ctx, d, pubPlan{rooms: []string{room}, pubs: max(1, p.Pubs), rate: p.Rate, dur: p.dur(), payload: e.payload})
	fillPublish(r, st)
	// Until every published message was delivered and acknowledged (bounded).
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(5 * time.Millisecond) {
		if acked.Load() >= r.Published && plain[0].recv.Load() >= r.Published {
			break
		}
	}
	after := t.sample()
	gcancel()
	wg.Wait()
	r.Expected = r.Published
	r.Deliveries = delivered.Load()
	r.Acked = acked.Load()
	r.Lost = r.Published - min(r.Published, r.Acked)
	r.E2E = groupLat.merged().summary()
	r.RoomE2E = roomLat.summary()
	measure(r, before, after, r.Deliveries)
	if p := ackErr.Load(); p != nil && r.Error == "" {
		r.Error = *p
	}
	return r
}
