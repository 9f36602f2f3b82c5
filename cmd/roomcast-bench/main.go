// Command roomcast-bench is roomcast's load generator. It runs named
// scenarios against a roomcast server — one it starts itself for each run
// (a separate process: the roomcast binary built beside this one, or given
// with --roomcast-bin), or a running one given with --server — and against
// a reference fan-out server (package ref, started the same way by
// re-executing this binary as `roomcast-bench serve-ref`) in the same run, so
// that every figure comes with the reference's and their ratio.
//
// Each scenario is bounded in time and in count, runs on loopback only, and
// prints one JSON line (stdout) and a human summary (stderr). Client
// connections are spread over several loopback source addresses (127.0.0.2,
// 127.0.0.3, …) and the open-file limit is raised, so tens of thousands of
// connections work.
//
//	roomcast-bench                                  # the BENCHMARKS.md targets
//	roomcast-bench fanout:subs=1000,rate=max idle:conns=5000
//	roomcast-bench --short                          # CI: small, checks completion and loss only
//	roomcast-bench --server http://127.0.0.1:8080 publish:pubs=64
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	pprofrt "runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/roomcast/roomcast/cmd/roomcast-bench/ref"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "serve-ref" {
		err = serveRef(ctx, os.Args[2:])
	} else {
		err = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "roomcast-bench:", err)
		os.Exit(1)
	}
}

// serveRef runs the reference server until ctx ends.
func serveRef(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve-ref", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:18200", "listen address (loopback)")
	queue := fs.Int("queue-size", 256, "events queued per connection")
	pprofAddr := fs.String("pprof-addr", "", "serve net/http/pprof here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := raiseNoFile(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: ref.New(ref.Config{QueueSize: *queue}), ReadHeaderTimeout: 10 * time.Second}
	if *pprofAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		pln, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			return err
		}
		psrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = psrv.Serve(pln) }()
		defer psrv.Close()
	}
	fmt.Println("ref listening on http://" + ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	return srv.Close() // streams have nothing to resume: close them
}

type planned struct {
	label string
	sc    *scenario
	p     params
}

// line is the JSON line of one scenario run.
type line struct {
	Scenario string             `json:"scenario"`
	Label    string             `json:"label"`
	Run      int                `json:"run"`
	Params   params             `json:"params"`
	Settings map[string]string  `json:"settings"`
	Roomcast *result            `json:"roomcast"`
	Ref      *result            `json:"ref,omitempty"`
	Baseline *result            `json:"baseline,omitempty"`
	NoRef    string             `json:"no_ref,omitempty"`
	Ratios   map[string]float64 `json:"ratios,omitempty"`
	// VsBaseline is roomcast divided by --baseline-bin's roomcast.
	VsBaseline map[string]float64 `json:"vs_baseline,omitempty"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("roomcast-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "target this running roomcast (loopback URL) instead of starting one per run")
	serverPID := fs.Int("server-pid", 0, "PID of --server for CPU and RSS figures (default: found from its port)")
	serverPprof := fs.String("server-pprof", "", "pprof base URL of --server (for --profile-dir)")
	bin := fs.String("roomcast-bin", "", "roomcast binary to start (default: `roomcast` beside this binary, else built with go build)")
	baseline := fs.String("baseline-bin", "", "also run this other roomcast binary (e.g. a build before a change) and report roomcast/baseline ratios")
	rcArgs := fs.String("roomcast-args", "", "extra arguments for the roomcast servers the bench starts (space separated)")
	queue := fs.Int("queue-size", 256, "--queue-size of both servers (events per connection)")
	withRef := fs.Bool("ref", true, "run the reference server too and report ratios")
	short := fs.Bool("short", false, "CI mode: small scenarios of a few seconds; fail on any loss or error, assert nothing about speed")
	check := fs.Bool("check", false, "fail (exit 1) when a run loses, duplicates or reorders anything (implied by --short)")
	repeat := fs.Int("repeat", 1, "run each scenario this many times (servers alternate)")
	sources := fs.Int("sources", 8, "loopback source addresses to spread client connections over (127.0.0.2…)")
	payload := fs.Int("payload", 100, "bytes of each message's data")
	profileDir := fs.String("profile-dir", "", "save a CPU profile of each server during each measured phase here")
	out := fs.String("out", "", "also append the JSON lines to this file")
	selfProfile := fs.String("self-profile", "", "write this load generator's own CPU profile here")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: roomcast-bench [flags] [scenario[:key=value,…] …]\n\nscenarios: ")
		names := make([]string, 0, len(scenarios))
		for n := range scenarios {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(stderr, "%s\nkeys: subs rooms rate(=max) dur pubs window conns conc missed members msgs inflight batch settle queue\n"+
			"default plan: %s\n\nflags:\n", strings.Join(names, " "), strings.Join(defaultPlan, " "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *short {
		*check = true
	}
	specs := fs.Args()
	if len(specs) == 0 {
		specs = defaultPlan
	}
	var plan []planned
	seen := map[string]bool{}
	for _, spec := range specs {
		name, kvs, _ := strings.Cut(spec, ":")
		sc := scenarios[name]
		if sc == nil {
			return fmt.Errorf("unknown scenario %q", name)
		}
		if *short && seen[name] {
			continue // the short mode runs each scenario once, with its own small settings
		}
		seen[name] = true
		p := sc.full
		if *short {
			p = sc.shrt
		}
		if kvs != "" && !*short {
			for _, kv := range strings.Split(kvs, ",") {
				if err := p.set(kv); err != nil {
					return fmt.Errorf("%s: %w", spec, err)
				}
			}
		}
		label := spec
		if *short {
			label = name + " (short)"
		}
		plan = append(plan, planned{label: label, sc: sc, p: p})
	}

	if *selfProfile != "" {
		f, err := os.Create(*selfProfile)
		if err != nil {
			return err
		}
		if err := pprofrt.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprofrt.StopCPUProfile(); f.Close() }()
	}
	limit, err := raiseNoFile()
	if err != nil {
		return fmt.Errorf("raise open-file limit: %w", err)
	}
	work, err := os.MkdirTemp("", "roomcast-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	l := &launcher{selfBin: self, queueSize: *queue, workDir: work, baselineBin: *baseline}
	if *rcArgs != "" {
		l.roomcastArgs = strings.Fields(*rcArgs)
	}
	if *server != "" {
		if l.external, err = externalTarget(*server, *serverPID, *serverPprof); err != nil {
			return err
		}
	} else if l.roomcastBin, err = findRoomcast(ctx, *bin, self, work, stderr); err != nil {
		return err
	}
	var jsonOut io.Writer = stdout
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		jsonOut = io.MultiWriter(stdout, f)
	}
	settings := map[string]string{
		"queue_size": strconv.Itoa(*queue), "payload_bytes": strconv.Itoa(*payload),
		"sources": strconv.Itoa(*sources), "nofile": strconv.FormatUint(limit, 10),
		"roomcast_args": "--log-level warn --queue-size " + strconv.Itoa(*queue) + " " + *rcArgs,
	}
	if *server != "" {
		settings["server"] = *server
	}
	fmt.Fprintf(stderr, "roomcast-bench: %d scenario(s) × %d run(s); open-file limit %d; roomcast %s\n",
		len(plan), *repeat, limit, firstNonEmpty(*server, l.roomcastBin))

	failed := 0
	// The ratios of every run, per planned scenario, for the closing summary.
	toRef := make([][]map[string]float64, len(plan))
	toBase := make([][]map[string]float64, len(plan))
	for i, pl := range plan {
		for rep := 1; rep <= *repeat; rep++ {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			e := &env{sources: *sources, payload: *payload, profileDir: *profileDir,
				runLabel: fmt.Sprintf("%02d-%d", i+1, rep)}
			ln := line{Scenario: pl.sc.name, Label: pl.label, Run: rep, Params: pl.p, Settings: settings}
			if len(pl.sc.roomcastArgs) > 0 && *server == "" {
				ln.Settings = maps.Clone(settings)
				ln.Settings["roomcast_args"] += " " + strings.Join(pl.sc.roomcastArgs, " ")
			}
			if *baseline != "" {
				ln.Baseline = runOn(ctx, l, "baseline", pl, e)
			}
			ln.Roomcast = runOn(ctx, l, "roomcast", pl, e)
			if ln.Baseline != nil {
				ln.VsBaseline = ratios(pl.sc.name, ln.Roomcast, ln.Baseline)
			}
			if pl.sc.hasRef && *withRef {
				ln.Ref = runOn(ctx, l, "ref", pl, e)
				ln.Ratios = ratios(pl.sc.name, ln.Roomcast, ln.Ref)
			} else if !pl.sc.hasRef {
				ln.NoRef = "the reference keeps no store: it has no " + pl.sc.name
			}
			b, _ := json.Marshal(ln)
			fmt.Fprintln(jsonOut, string(b))
			summarize(stderr, &ln)
			toRef[i] = append(toRef[i], ln.Ratios)
			toBase[i] = append(toBase[i], ln.VsBaseline)
			if *check {
				for _, r := range []*result{ln.Roomcast, ln.Ref, ln.Baseline} {
					if r == nil {
						continue
					}
					if err := r.clean(); err != nil {
						fmt.Fprintf(stderr, "   FAIL %s %s: %v\n", pl.label, r.Target, err)
						failed++
					}
				}
			}
		}
	}
	if *repeat > 1 {
		for i, pl := range plan {
			fmt.Fprintf(stderr, "== %s: median [range] of %d runs\n", pl.label, *repeat)
			printSpread(stderr, "ratio:   ", spread(toRef[i]))
			printSpread(stderr, "vs base: ", spread(toBase[i]))
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d run(s) failed", failed)
	}
	return nil
}

// ratioSpread is one ratio over the runs of a scenario.
type ratioSpread struct {
	median, lo, hi float64
	n              int
}

// spread returns, per ratio, its median and range over runs (runs without
// a ratio, e.g. a failed one, are left out).
func spread(runs []map[string]float64) map[string]ratioSpread {
	vals := map[string][]float64{}
	for _, r := range runs {
		for k, v := range r {
			vals[k] = append(vals[k], v)
		}
	}
	out := make(map[string]ratioSpread, len(vals))
	for k, v := range vals {
		sort.Float64s(v)
		m := v[len(v)/2]
		if len(v)%2 == 0 {
			m = (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
		out[k] = ratioSpread{median: round3(m), lo: v[0], hi: v[len(v)-1], n: len(v)}
	}
	return out
}

func printSpread(w io.Writer, label string, m map[string]ratioSpread) {
	printKeyed(w, label, m, func(k string, r ratioSpread) string {
		return fmt.Sprintf("%s %.2f [%.2f–%.2f]", k, r.median, r.lo, r.hi)
	})
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// runOn starts a fresh server of kind, runs the scenario and stops it.
func runOn(ctx context.Context, l *launcher, kind string, pl planned, e *env) *result {
	t, err := l.start(ctx, kind, pl.p.Queue, pl.sc.roomcastArgs)
	if err != nil {
		return &result{Target: kind, Error: err.Error()}
	}
	defer t.stop()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	return pl.sc.run(sctx, e, t, pl.p)
}

// findRoomcast returns the roomcast binary: the flag, the one beside this
// binary, or one built now from the module in the working directory.
func findRoomcast(ctx context.Context, flagBin, self, work string, log io.Writer) (string, error) {
	if flagBin != "" {
		return flagBin, nil
	}
	beside := filepath.Join(filepath.Dir(self), "roomcast")
	if fi, err := os.Stat(beside); err == nil && !fi.IsDir() {
		return beside, nil
	}
	out := filepath.Join(work, "roomcast")
	fmt.Fprintln(log, "roomcast-bench: building roomcast (go build ./cmd/roomcast)")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/roomcast/roomcast/cmd/roomcast")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("no roomcast beside %s and go build failed: %w", self, err)
	}
	return out, nil
}

// ratios are roomcast's figure divided by the reference's, for the figures
// each scenario's targets are about.
func ratios(name string, rc, rf *result) map[string]float64 {
	if rc == nil || rf == nil || rc.Error != "" || rf.Error != "" {
		return nil
	}
	out := map[string]float64{}
	add := func(k string, a, b float64) {
		if a > 0 && b > 0 {
			out[k] = round3(a / b)
		}
	}
	switch name {
	case "fanout", "rooms":
		add("deliveries_per_s", rc.DeliveriesPerSec, rf.DeliveriesPerSec)
		add("server_cpu_per_delivery", rc.ServerCPUPerDeliveryUS, rf.ServerCPUPerDeliveryUS)
		add("writes_per_delivery", rc.WritesPerDelivery, rf.WritesPerDelivery)
		if rc.E2E != nil && rf.E2E != nil {
			add("p50", rc.E2E.P50, rf.E2E.P50)
			add("p99", rc.E2E.P99, rf.E2E.P99)
		}
	case "idle":
		add("rss_per_conn", rc.RSSPerConnKiB, rf.RSSPerConnKiB)
		add("heap_per_conn", rc.HeapPerConnKiB, rf.HeapPerConnKiB)
		add("stack_per_conn", rc.StackPerConnKiB, rf.StackPerConnKiB)
		add("goroutines_per_conn", rc.GoroutinesPerConn, rf.GoroutinesPerConn)
	case "connect":
		add("connect_per_s", rc.ConnectPerSec, rf.ConnectPerSec)
		add("server_cpu_per_connect", rc.ServerCPUPerOpUS, rf.ServerCPUPerOpUS)
	case "batch": // against --baseline-bin only: the reference has no batch publish
		add("publish_per_s", rc.PublishPerSec, rf.PublishPerSec)
		if rc.PublishLatency != nil && rf.PublishLatency != nil {
			add("request_p99", rc.PublishLatency.P99, rf.PublishLatency.P99)
		}
		add("server_cpu_per_message", rc.ServerCPUPerOpUS, rf.ServerCPUPerOpUS)
	case "publish":
		add("publish_per_s", rc.PublishPerSec, rf.PublishPerSec)
		if rc.PublishLatency != nil && rf.PublishLatency != nil {
			add("publish_p99", rc.PublishLatency.P99, rf.PublishLatency.P99)
		}
		add("server_cpu_per_publish", rc.ServerCPUPerOpUS, rf.ServerCPUPerOpUS)
	case "resume": // against --baseline-bin only: the reference keeps no store
		add("catch_up_s", rc.CatchUpS, rf.CatchUpS)
		add("server_cpu_per_delivery", rc.ServerCPUPerDeliveryUS, rf.ServerCPUPerDeliveryUS)
	case "group": // likewise
		if rc.E2E != nil && rf.E2E != nil {
			add("group_p50", rc.E2E.P50, rf.E2E.P50)
			add("group_p99", rc.E2E.P99, rf.E2E.P99)
		}
		add("acked_per_s", rc.AckedPerSec, rf.AckedPerSec)
		add("server_cpu_per_ack", rc.ServerCPUPerDeliveryUS, rf.ServerCPUPerDeliveryUS)
		if rc.AckLatency != nil && rf.AckLatency != nil {
			add("ack_p50", rc.AckLatency.P50, rf.AckLatency.P50)
		}
	}
	return out
}

func summarize(w io.Writer, ln *line) {
	fmt.Fprintf(w, "== %s (run %d)\n", ln.Label, ln.Run)
	for _, r := range []*result{ln.Baseline, ln.Roomcast, ln.Ref} {
		if r != nil {
			fmt.Fprintf(w, "   %-8s %s\n", r.Target+":", describe(ln.Scenario, r))
		}
	}
	if ln.NoRef != "" {
		fmt.Fprintf(w, "   ref:     none (%s)\n", ln.NoRef)
	}
	printRatios(w, "ratio:   ", ln.Ratios)
	printRatios(w, "vs base: ", ln.VsBaseline)
}

func printRatios(w io.Writer, label string, m map[string]float64) {
	printKeyed(w, label, m, func(k string, v float64) string { return fmt.Sprintf("%s %.2f", k, v) })
}

// printKeyed prints "label k v, k v, …" with the keys in order; nothing for
// an empty map.
func printKeyed[V any](w io.Writer, label string, m map[string]V, format func(string, V) string) {
	if len(m) == 0 {
		return
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, format(k, m[k]))
	}
	fmt.Fprintf(w, "   %s%s\n", label, strings.Join(parts, ", "))
}

func lat(l *latency) string {
	if l == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f/%.2f/%.2f/%.1f ms", l.P50, l.P90, l.P99, l.Max)
}

func describe(name string, r *result) string {
	if r.Error != "" && r.Deliveries == 0 && r.Connected == 0 && r.Published == 0 {
		return "ERROR " + r.Error
	}
	var s string
	switch name {
	case "fanout", "rooms":
		s = fmt.Sprintf("%.0f deliveries/s (%d of %d, lost %d, disorder %d, disconnects %d), %.0f publishes/s, publish→receive p50/p90/p99/max %s, publish %s, server %.3f µs CPU/delivery (%.0f%% CPU, %.3f writes/delivery), RSS %.0f MiB, client CPU %.0f%%",
			r.DeliveriesPerSec, r.Deliveries, r.Expected, r.Lost, r.Disorder, r.Disconnects, r.PublishPerSec, lat(r.E2E), lat(r.PublishLatency),
			r.ServerCPUPerDeliveryUS, r.ServerCPUPct, r.WritesPerDelivery, r.ServerRSSMiB, r.ClientCPUPct)
	case "idle":
		s = fmt.Sprintf("%d idle connections: %.1f KiB RSS/conn (heap %.1f KiB, stacks %.1f KiB), %.2f goroutines/conn, RSS %.0f MiB, %d goroutines; %.0f connects/s",
			r.Connected, r.RSSPerConnKiB, r.HeapPerConnKiB, r.StackPerConnKiB, r.GoroutinesPerConn, r.ServerRSSMiB, r.ServerGoroutines, r.ConnectPerSec)
	case "connect":
		s = fmt.Sprintf("%d connections in %.2f s: %.0f connects/s, latency %s, server %.1f µs CPU/connect (%.0f%% CPU), client CPU %.0f%%",
			r.Connected, r.ElapsedS, r.ConnectPerSec, lat(r.ConnectLatency), r.ServerCPUPerOpUS, r.ServerCPUPct, r.ClientCPUPct)
	case "publish":
		s = fmt.Sprintf("%.0f publishes/s 2xx (%d, errors %d), latency p50/p90/p99/max %s, server %.1f µs CPU/publish (%.0f%% CPU), client CPU %.0f%%",
			r.PublishPerSec, r.Published, r.PublishErrors, lat(r.PublishLatency), r.ServerCPUPerOpUS, r.ServerCPUPct, r.ClientCPUPct)
	case "batch":
		s = fmt.Sprintf("%.0f messages/s stored (%d, errors %d), request latency p50/p90/p99/max %s, server %.1f µs CPU/message (%.0f%% CPU), client CPU %.0f%%",
			r.PublishPerSec, r.Published, r.PublishErrors, lat(r.PublishLatency), r.ServerCPUPerOpUS, r.ServerCPUPct, r.ClientCPUPct)
	case "resume":
		s = fmt.Sprintf("%d clients caught up in %.3f s (per client %s), gaps %d, dups %d, live after %d, %.0f replayed deliveries/s, server %.1f µs CPU/delivery",
			r.CaughtUp, r.CatchUpS, lat(r.ClientCatch), r.Gaps, r.Dups, r.LiveAfter, r.DeliveriesPerSec, r.ServerCPUPerDeliveryUS)
	case "group":
		if r.RoomE2E != nil { // latency mode
			s = fmt.Sprintf("%d published at %.0f/s: group delivery latency p50/p90/p99/max %s beside a room subscriber's %s; %d acked, lost %d, server %.1f µs CPU/delivery",
				r.Published, r.PublishPerSec, lat(r.E2E), lat(r.RoomE2E), r.Acked, r.Lost, r.ServerCPUPerDeliveryUS)
			break
		}
		s = fmt.Sprintf("%.0f acked deliveries/s (%d acked, %d deliveries, %d redelivered, lost %d) in %.2f s, %d ack requests (latency %s), server %.1f µs CPU/ack (%.0f%% CPU), client CPU %.0f%%",
			r.AckedPerSec, r.Acked, r.Deliveries, r.Redelivered, r.Lost, r.ElapsedS, r.AckRequests, lat(r.AckLatency), r.ServerCPUPerDeliveryUS, r.ServerCPUPct, r.ClientCPUPct)
	}
	if r.Error != "" {
		s += " — ERROR " + r.Error
	}
	return s
}
