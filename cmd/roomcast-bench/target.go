package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// target is the server under test: roomcast (started by the bench, or given
// with --server) or the reference (always started by the bench).
type target struct {
	kind    string // "roomcast" or "ref"
	base    string // http://host:port
	host    string // host:port
	pid     int    // 0: unknown (no server-side figures)
	metrics string // URL of a Prometheus text page with go_goroutines
	pprof   string // base URL of net/http/pprof, if any

	cmd     *exec.Cmd
	exited  chan struct{}
	dataDir string
	logPath string
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// launchers start a fresh server per scenario run.
type launcher struct {
	roomcastBin  string
	baselineBin  string
	roomcastArgs []string
	selfBin      string
	queueSize    int
	workDir      string
	external     *target // --server
}

func (l *launcher) start(ctx context.Context, kind string, queueSize int, extra []string) (*target, error) {
	if queueSize <= 0 {
		queueSize = l.queueSize
	}
	bin := l.roomcastBin
	if kind == "baseline" {
		bin = l.baselineBin
	}
	if kind == "roomcast" && l.external != nil {
		return l.external, nil
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	pport, err := freePort()
	if err != nil {
		return nil, err
	}
	host := "127.0.0.1:" + strconv.Itoa(port)
	t := &target{kind: kind, base: "http://" + host, host: host, exited: make(chan struct{}),
		pprof: "http://127.0.0.1:" + strconv.Itoa(pport)}
	logf, err := os.CreateTemp(l.workDir, kind+"-*.log")
	if err != nil {
		return nil, err
	}
	t.logPath = logf.Name()
	switch kind {
	case "roomcast", "baseline":
		t.dataDir, err = os.MkdirTemp(l.workDir, "data-*")
		if err != nil {
			return nil, err
		}
		args := []string{"--data", t.dataDir, "--addr", host, "--log-level", "warn",
			"--queue-size", strconv.Itoa(queueSize), "--pprof-addr", "127.0.0.1:" + strconv.Itoa(pport)}
		args = append(args, l.roomcastArgs...)
		args = append(args, extra...)
		t.cmd = exec.Command(bin, args...)
		t.metrics = t.base + "/metrics"
	case "ref":
		t.cmd = exec.Command(l.selfBin, "serve-ref", "--addr", host, "--queue-size", strconv.Itoa(queueSize),
			"--pprof-addr", "127.0.0.1:"+strconv.Itoa(pport))
		t.metrics = t.base + "/metrics"
	default:
		return nil, fmt.Errorf("unknown target %q", kind)
	}
	t.cmd.Stdout, t.cmd.Stderr = logf, logf
	if err := t.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	logf.Close()
	t.pid = t.cmd.Process.Pid
	go func() { _ = t.cmd.Wait(); close(t.exited) }()
	ready := t.base + "/healthz"
	if kind != "ref" {
		ready = t.base + "/readyz"
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-t.exited:
			return nil, fmt.Errorf("%s exited during start-up; see %s", kind, t.logPath)
		case <-ctx.Done():
			t.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.stop()
			return nil, fmt.Errorf("%s not ready after 30s; see %s", kind, t.logPath)
		}
	}
	return t, nil
}

// stop ends a server the bench started (SIGTERM, then SIGKILL after 15 s)
// and removes its data; an external server is left alone.
func (t *target) stop() {
	if t.cmd == nil {
		return
	}
	_ = t.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-t.exited:
	case <-time.After(15 * time.Second):
		_ = t.cmd.Process.Kill()
		<-t.exited
	}
	if t.dataDir != "" {
		_ = os.RemoveAll(t.dataDir)
	}
}

// sample is the server's process figures at one instant.
type sample struct {
	at         time.Time
	cpu        time.Duration
	rss        int64
	goroutines int
	heapInuse  int64
	stackInuse int64
	writes     int64 // write syscalls so far (-1: unknown)
	selfCPU    time.Duration
}

func (t *target) sample() sample {
	s := sample{at: time.Now(), selfCPU: selfCPU(), goroutines: -1, writes: -1}
	if t.pid > 0 {
		s.cpu, _ = procCPU(t.pid)
		s.rss, _, _ = procStatus(t.pid)
		if w, err := procWrites(t.pid); err == nil {
			s.writes = w
		}
	}
	if g, h, st, err := t.scrape(); err == nil {
		s.goroutines, s.heapInuse, s.stackInuse = g, h, st
	}
	return s
}

// scrape reads go_goroutines, go_memstats_heap_inuse_bytes and
// go_memstats_stack_inuse_bytes.
func (t *target) scrape() (int, int64, int64, error) {
	if t.metrics == "" {
		return 0, 0, 0, errors.New("no metrics URL")
	}
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(t.metrics)
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	g, h, st := -1, int64(-1), int64(-1)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			g = int(f)
		}
		if v, ok := strings.CutPrefix(line, "go_memstats_heap_inuse_bytes "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			h = int64(f)
		}
		if v, ok := strings.CutPrefix(line, "go_memstats_stack_inuse_bytes "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			st = int64(f)
		}
	}
	if g < 0 {
		return 0, 0, 0, errors.New("no go_goroutines in metrics")
	}
	return g, h, st, nil
}

// profile fetches a CPU profile of d from the server's pprof into path.
func (t *target) profile(ctx context.Context, d time.Duration, path string) error {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	return t.fetchProfile(ctx, "profile?seconds="+strconv.Itoa(secs), path)
}

// gc makes the server collect garbage (net/http/pprof runs a GC before a
// heap profile with gc=1), so that idle memory is measured as a long-lived
// server holds it: the runtime forces a GC at least every two minutes,
// which also shrinks the stacks that grew while connections were set up.
func (t *target) gc(ctx context.Context) error {
	if t.pprof == "" {
		return errors.New("no pprof address")
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", t.pprof+"/debug/pprof/heap?gc=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// fetchProfile saves /debug/pprof/<what> of the server into path.
func (t *target) fetchProfile(ctx context.Context, what, path string) error {
	if t.pprof == "" {
		return errors.New("no pprof address")
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", t.pprof+"/debug/pprof/"+what, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("pprof: %s", resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// externalTarget describes a roomcast started by someone else.
func externalTarget(server string, pid int, pprof string) (*target, error) {
	u, err := url.Parse(server)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want a URL like http://127.0.0.1:8080", server)
	}
	host := u.Host
	h, p, err := net.SplitHostPort(host)
	if err != nil {
		return nil, fmt.Errorf("--server %q: want an explicit port", server)
	}
	if ip := net.ParseIP(h); h != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("--server %q: the bench only targets loopback", server)
	}
	if pid == 0 {
		port, _ := strconv.Atoi(p)
		pid, _ = pidListening(port) // best effort: no server figures without it
	}
	return &target{kind: "roomcast", base: "http://" + host, host: host, pid: pid, metrics: "http://" + host + "/metrics", pprof: pprof}, nil
}
