// Command roomcast serves the roomcast API: SSE subscriptions, a REST API for
// publish, join and leave, stored and resumable messages on an embedded NATS
// JetStream engine. main is wiring only: config → logger → engine → hub →
// HTTP server, and signals.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/roomcast/roomcast"
	"github.com/roomcast/roomcast/api"
	"github.com/roomcast/roomcast/internal/auth"
	"github.com/roomcast/roomcast/internal/config"
	"github.com/roomcast/roomcast/internal/datadir"
	"github.com/roomcast/roomcast/internal/engine"
	"github.com/roomcast/roomcast/internal/hub"
	"github.com/roomcast/roomcast/internal/metrics"
	"github.com/roomcast/roomcast/sse"
	"github.com/roomcast/roomcast/web"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitStatus(err, os.Stderr))
}

// exitStatus is the process status run's error ends with (printed to
// stderr unless it is a status or --help).
func exitStatus(err error, stderr io.Writer) int {
	var code exitCode
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &code):
		return int(code)
	default:
		fmt.Fprintln(stderr, "roomcast:", err)
		return 1
	}
}

// exitCode is the status a client command ends with (cli.go documents
// them); main is the only place that exits.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

// run is the whole program; it returns when ctx ends (after a graceful
// shutdown) or on a start-up error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "serve":
			args = args[1:]
		case "version":
			fmt.Fprintln(stdout, "roomcast", version)
			return nil
		case "publish", "subscribe", "rooms":
			// Client commands (cli.go) end with codes of their own (usage
			// 2, refused 3), carried to main as an exitCode.
			if code := cliMain(ctx, args, getenv, os.Stdin, stdout, stderr); code != 0 {
				return exitCode(code)
			}
			return nil
		case "help", "-h", "-help", "--help":
			// The commands and exit codes, then the server's flags.
			fmt.Fprint(stdout, cliOverview+"\n")
			args = []string{"--help"}
		}
	}
	started := time.Now()
	cfg, err := config.Load(args, getenv, stdout)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	if cfg.NATSURL == "" {
		// One server per data directory, for the life of the process
		// (released last: after the engine closed its store).
		lock, err := datadir.Acquire(cfg.Data)
		if err != nil {
			return err
		}
		defer lock.Release()
		if err := checkVolume(cfg, logger); err != nil {
			return err
		}
	}

	maxWindow, minWindow := time.Duration(0), time.Duration(1<<62)
	for _, n := range cfg.Namespaces {
		maxWindow = max(maxWindow, n.RecoveryWindow)
		minWindow = min(minWindow, n.RecoveryWindow)
	}
	eng, err := engine.Open(ctx, engine.Config{
		DataDir: cfg.Data, URL: cfg.NATSURL, NodeName: cfg.NodeName,
		SyncInterval: cfg.SyncInterval, SyncAlways: cfg.SyncAlways, SessionTTL: 2 * maxWindow, GroupIdle: cfg.GroupIdle,
		ClusterName: cfg.ClusterName, ClusterListen: cfg.ClusterListen, Routes: cfg.Routes, Replicas: cfg.Replicas,
		DiskReserve: cfg.DiskReserve, PeerTimeout: cfg.PeerTimeout, StallTimeout: cfg.StallTimeout, FollowHeartbeat: cfg.FollowHeartbeat,
	}, logger)
	if err != nil {
		return err
	}
	defer eng.Close()

	streams := sse.New(sse.Config{
		QueueSize: cfg.QueueSize, Heartbeat: cfg.Heartbeat, Retry: cfg.Retry, WriteTimeout: cfg.WriteTimeout,
	}, logger)
	hbCtx, hbCancel := context.WithCancel(context.Background())
	go streams.Run(hbCtx)
	defer func() { hbCancel(); streams.Close() }()

	// Creating a replicated stream or bucket waits for its first leader
	// election, about 5 s in a new cluster: the ack key's bucket, the
	// namespaces' streams and the webhooks' are created at once, not one
	// after the other (AddNamespace below then finds its stream made).
	var ackKey []byte
	var hooks *hooks
	var wg sync.WaitGroup
	errs := make([]error, 2+len(cfg.Namespaces))
	wg.Go(func() { ackKey, errs[0] = eng.AckKey(ctx) })
	wg.Go(func() { hooks, errs[1] = startWebhooks(ctx, cfg, eng, getenv, logger) }) // webhooks.go
	for i, n := range cfg.Namespaces {
		wg.Go(func() {
			_, errs[2+i] = eng.OpenNamespace(ctx, n.Name, hub.Retention{MaxAge: n.MaxAge, MaxBytes: n.MaxBytes, MaxMsgsPerRoom: n.MaxMsgsPerRoom, Dedupe: n.DedupeWindow})
		})
	}
	wg.Wait()
	if hooks != nil {
		defer hooks.Stop() // after the handlers: their connections' leaves are stored
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	deps := hub.Deps{Log: eng, Sessions: eng, Groups: eng, AckKey: ackKey, Logger: logger, Observer: hooks.observer(),
		DecodePerms: func(b []byte) (hub.Perms, error) {
			var g auth.Grants
			err := json.Unmarshal(b, &g)
			return g, err
		}}
	if eng.Clustered() {
		// Joins, leaves, disconnects, settles and presence reach other
		// nodes' connections over NATS request/reply.
		deps.Bus = eng
	}
	h, err := hub.New(deps, hub.Config{ResumeBuffer: cfg.ResumeBuffer, MaxInFlight: cfg.QueueSize, CatchUpWait: cfg.CatchUpWait})
	if err != nil {
		return err
	}
	reg := metrics.New(metrics.Source{Hub: h, Ready: eng.Ready, Groups: eng.GroupTotals, Streams: streams.Active,
		Webhooks: hooks.metrics, WebhookBacklog: hooks.backlog(), WebhookRooms: hooks.rooms()})
	defer h.Stop() // group loops, after the handlers (deferred before eng.Close runs)
	var nsAPI []api.Namespace
	for _, n := range cfg.Namespaces {
		_, err := h.AddNamespace(ctx, n.Name, hub.NamespaceConfig{
			RecoveryWindow: n.RecoveryWindow, MaxRoomsPerConn: n.MaxRoomsPerConn, HistoryLimit: n.HistoryLimit,
			Retention: hub.Retention{MaxAge: n.MaxAge, MaxBytes: n.MaxBytes, MaxMsgsPerRoom: n.MaxMsgsPerRoom, Dedupe: n.DedupeWindow},
			Group:     hub.GroupConfig{AckWait: n.GroupAckWait, MaxDeliver: n.GroupMaxDeliver, MaxInFlight: n.GroupMaxInFlight},
			Metrics:   reg.Namespace(n.Name),
		})
		if err != nil {
			return err
		}
		sec, err := security(n, getenv)
		if err != nil {
			return fmt.Errorf("namespace %s: %w", n.Name, err)
		}
		nsAPI = append(nsAPI, api.Namespace{Name: n.Name, MaxBody: n.MaxBody, MaxBatch: n.MaxBatch, MaxBatchBody: n.MaxBatchBody, Security: sec})
	}
	// Live sessions are saved as connections open, join and leave, and
	// refreshed, so that their clients resume after a crash or elsewhere.
	runCtx, stopRun := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); h.Run(runCtx) }()
	defer func() { stopRun(); <-ran }()

	handler, err := api.New(api.Config{
		Hub: h, Streams: streams, Namespaces: nsAPI, Ready: eng.Ready,
		Spec: roomcast.OpenAPI, Web: web.Handler, Logger: logger,
		Metrics: reg.Handler(), ObserveRequest: reg.ObserveRequest,
		Tickets: eng, MaxConnections: cfg.MaxConnections,
		Status: &api.Status{Version: version, Node: eng.NodeName(), Cluster: cfg.ClusterName, Started: started, Nodes: eng.Nodes},
		Limits: api.Limits{BodyTimeout: cfg.BodyTimeout, MaxRequestsPerIP: cfg.MaxRequestsPerIP, MaxHeaderBytes: int(cfg.MaxHeaderBytes)},
	})
	if err != nil {
		return err
	}
	fr, err := listen(cfg, handler, logger) // listen.go: TLS, HTTP/2, h2c
	if err != nil {
		return err
	}
	defer fr.Close()
	srv := fr.srv
	url, reach := listenerURL(fr.scheme, fr.ln.Addr())
	fmt.Fprintf(stdout, "roomcast listening on %s (%s)\n", url, reach)
	var names []string
	for _, n := range nsAPI {
		names = append(names, n.Name)
	}
	logger.Info("serving", "addr", fr.ln.Addr().String(), "tls", fr.scheme == "https", "data", cfg.Data, "namespaces", strings.Join(names, ","), "version", version,
		"node", cfg.NodeName, "cluster", cfg.ClusterName, "replicas", eng.Replicas())
	if open := exposedOpen(fr.ln.Addr(), nsAPI); len(open) > 0 {
		// An open namespace lets anyone who reaches the port subscribe,
		// publish and read history: fine on loopback, worth saying beyond.
		logger.Warn("open namespaces are served beyond loopback: anyone who can reach this address may subscribe, publish and read their history; lock them (auth: jwt) or listen on 127.0.0.1",
			"addr", fr.ln.Addr().String(), "open", strings.Join(open, ","))
	}

	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.PprofAddr, logger)
		if err != nil {
			return err
		}
		defer stopPprof()
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- fr.Serve() }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}

	// Graceful shutdown: stop accepting, end every stream (clients
	// reconnect after the retry delay and resume from Last-Event-ID; their
	// sessions are saved), wait for handlers, then flush and stop the engine
	// (deferred).
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(sctx) }()
	h.Close()        // ends the streams (Shutdown waits for them) and refuses new ones
	fr.fresh.close() // connections that never sent a request (Shutdown waits 5 s for them)
	err = <-done
	<-serveErr
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// checkVolume refuses to start on a data volume smaller than the store may
// grow to (every namespace's --max-bytes plus --disk-reserve): it would
// fill before retention removes anything, and refuse publishes for good.
// It warns when the volume is big enough but has not that much free.
func checkVolume(cfg config.Config, logger *slog.Logger) error {
	v, err := engine.VolumeOf(cfg.Data)
	if err != nil {
		logger.Warn("cannot check the data volume's size", "err", err)
		return nil
	}
	var retention int64
	for _, n := range cfg.Namespaces {
		retention += n.MaxBytes
	}
	need := retention + cfg.DiskReserve
	if need > v.Size {
		return fmt.Errorf("the data volume of %s holds %s, less than the store may grow to: %s of retention (--max-bytes, per namespace, for %d namespace(s)) plus %s of --disk-reserve; "+
			"lower --max-bytes (or max_bytes of the namespaces in the config file) or --disk-reserve, or give --data a larger volume",
			cfg.Data, engine.FormatBytes(v.Size), engine.FormatBytes(retention), len(cfg.Namespaces), engine.FormatBytes(cfg.DiskReserve))
	}
	var held int64 // what the store holds already counts in what it may grow to
	_ = filepath.WalkDir(filepath.Join(cfg.Data, "jetstream"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				held += info.Size()
			}
		}
		return nil
	})
	if need > v.Free+held {
		logger.Warn("the data volume has less free space than the store may grow to: publishes will be refused (507) if it fills; lower --max-bytes or free space",
			"data", cfg.Data, "free", engine.FormatBytes(v.Free), "store", engine.FormatBytes(held), "may_grow_to", engine.FormatBytes(need))
	}
	return nil
}

// displayAddr names a wildcard listener by localhost, so that the printed
// URL can be opened as is.
func displayAddr(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok && t.IP.IsUnspecified() {
		return net.JoinHostPort("localhost", strconv.Itoa(t.Port))
	}
	return a.String()
}

// security builds a namespace's access policy from its settings.
func security(n config.Namespace, getenv func(string) string) (api.Security, error) {
	sec := api.Security{Locked: n.Auth == "jwt", CORSOrigins: n.CORSOrigins,
		MaxConnsPerIP: n.MaxConnectionsPerIP, MaxConnsPerUser: n.MaxConnectionsPerUser}
	for _, r := range []struct {
		spec string
		dst  *api.Rate
	}{{n.RateConnect, &sec.Connect}, {n.RatePublish, &sec.Publish}, {n.RateJoin, &sec.Join}} {
		num, per, err := config.ParseRate(r.spec)
		if err != nil {
			return api.Security{}, err
		}
		*r.dst = api.Rate{N: num, Per: per}
	}
	ac := auth.Config{Issuer: n.JWTIssuer, Audience: n.JWTAudience, Leeway: n.JWTLeeway, APIKeys: n.APIKeys}
	if n.APIKeysEnv != "" {
		fromEnv := 0
		for _, k := range strings.Split(getenv(n.APIKeysEnv), ",") {
			if k = strings.TrimSpace(k); k != "" {
				ac.APIKeys = append(ac.APIKeys, k)
				fromEnv++
			}
		}
		if fromEnv == 0 { // else the namespace would start silently without the keys meant for it
			return api.Security{}, fmt.Errorf("api_keys_env: the environment variable %s is unset or empty; set it to comma-separated API keys of at least 16 characters each", n.APIKeysEnv)
		}
	}
	if n.JWTHS256SecretEnv != "" {
		ac.Keys = append(ac.Keys, auth.KeyConfig{Alg: "HS256", SecretEnv: n.JWTHS256SecretEnv})
	}
	for _, k := range n.JWTKeys {
		ac.Keys = append(ac.Keys, auth.KeyConfig{ID: k.ID, Alg: k.Alg, Secret: k.Secret, SecretEnv: k.SecretEnv, PEMFile: k.PEMFile, JWKSFile: k.JWKSFile})
	}
	if len(ac.Keys) > 0 || len(ac.APIKeys) > 0 {
		v, err := auth.New(ac, getenv)
		if err != nil {
			return api.Security{}, err
		}
		sec.Verifier = v
	}
	return sec, nil
}

// newLogger logs text to a terminal and JSON otherwise (--log-format auto).
func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.LogFormat
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// servePprof serves net/http/pprof on its own listener (never on the API's),
// with its own mux (never http.DefaultServeMux).
func servePprof(addr string, logger *slog.Logger) (func(), error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof listener: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	logger.Info("pprof", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}
