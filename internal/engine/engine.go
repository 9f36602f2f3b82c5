package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomcast/roomcast/internal/hub"
)

// Config configures the engine. Zero values take the documented defaults.
type Config struct {
	// DataDir is the JetStream store of the embedded server.
	DataDir string
	// URL, when set, connects to an external NATS cluster instead of
	// starting an embedded server.
	URL string
	// NodeName names this node's embedded server (default "roomcast").
	NodeName string
	// SyncInterval is how often the store is fsynced (default 1s). A publish
	// is acknowledged once written to the kernel, so kill -9 loses nothing;
	// this bounds what an OS crash or power loss can lose.
	SyncInterval time.Duration
	// SyncAlways fsyncs every message before acknowledging it (survives
	// power loss; 25–45× slower publishes).
	SyncAlways bool
	// SessionTTL is how long sessions are kept (main: twice the longest
	// recovery window, so that a resume a little past its window is told so
	// rather than that its session is unknown; default 2m).
	SessionTTL time.Duration
	// MaxConsumers bounds consumers per stream (default 10000): replays and
	// history reads each hold one briefly.
	MaxConsumers int
	// GroupIdle removes a consumer group nobody consumed for this long
	// (default 7 days); its pending messages are then no longer kept for it.
	GroupIdle time.Duration

	// Clustering of embedded servers (NATS routes; no home-made protocol).
	// ClusterName and ClusterListen ("host:port") turn it on; Routes lists
	// every node's cluster URL (nats://h:p, may include this node's own).
	ClusterName   string
	ClusterListen string
	Routes        []string
	// ClientListen is where the embedded server accepts NATS clients when
	// clustered (default 127.0.0.1 on a random port).
	ClientListen string
	// Replicas of every stream, bucket and group (default: 3 when the
	// cluster has at least 3 nodes, else its size; 1 on a single node).
	Replicas int

	// DiskReserve is the free space the data volume must keep: below it
	// the store refuses writes (publishes answer hub.ErrStorageFull) until
	// it is back (disk.go). 0: only when a write fails for lack of space.
	DiskReserve int64
	// DiskCheckInterval is how often the volume's free space is read
	// (default 250ms): the delay to trip on low space, and to recover once
	// space is freed.
	DiskCheckInterval time.Duration

	// PeerTimeout: in an embedded cluster, a node not heard from for this
	// long counts as gone; a node that hears fewer than a majority is not
	// ready and refuses writes at once (default 3s; health.go).
	PeerTimeout time.Duration
	// StallTimeout: a namespace's stream whose leader has not answered for
	// this long (longer than a leader election) makes the node not ready
	// (default 10s; health.go).
	StallTimeout time.Duration
	// FollowHeartbeat is the live consumer's heartbeat: two missed and it
	// is replaced (default 1s; follow.go).
	FollowHeartbeat time.Duration
}

// DefaultConfig is the engine's defaults (Open fills a Config's zero fields
// from it; internal/config derives its defaults from it).
var DefaultConfig = Config{NodeName: "roomcast", SyncInterval: time.Second, SessionTTL: 2 * time.Minute,
	MaxConsumers: 10000, GroupIdle: 7 * 24 * time.Hour, PeerTimeout: 3 * time.Second, StallTimeout: 10 * time.Second,
	FollowHeartbeat: time.Second}

// Engine is the storage and bus. It implements hub.Log and hub.Sessions.
type Engine struct {
	cfg    Config
	logger *slog.Logger
	srv    *server.Server // nil with an external URL
	sopts  *server.Options
	disk   *diskGuard // nil with an external URL
	health *health
	nc     *nats.Conn
	js     jetstream.JetStream
	kv     jetstream.KeyValue

	mu        sync.Mutex
	streams   map[string]*nsStream
	follows   []*follow
	consumers map[string]jetstream.Consumer // group consumers by ns/name
	dead      jetstream.Stream
	tickets   jetstream.KeyValue
	control   *nats.Subscription
	replies   *replyMux // the answers of SettleAll and of reads, made on first use
	nodes     int       // nodes of the configured cluster (0: unknown)
	// restarted is closed when JetStream restarts inside the embedded
	// server (disk.go), then replaced: pulls in flight end at once instead
	// of waiting for a heartbeat that will never come.
	restarted chan struct{}

	batch batchPublisher // PublishBatch's JetStream context (batch.go)

	// want is the replicas configured; replicas those assets are created
	// with now: fewer while a new cluster has too few nodes to place them
	// (bootstrap.go), want again once raiseReplicas raised them.
	want      int
	replicas  atomic.Int32
	raising   chan struct{} // closed when raiseReplicas returns (nil: not started)
	stopRaise context.CancelFunc
}

type nsStream struct {
	name      string
	stream    jetstream.Stream
	epoch     string
	retention hub.Retention
	// pubOpts is what a publish without an idempotency key passes: built
	// once, not per publish.
	pubOpts []jetstream.PublishOpt
}

var (
	_ hub.Log      = (*Engine)(nil)
	_ hub.Sessions = (*Engine)(nil)
)

// Open starts the embedded server (or connects to cfg.URL) and readies
// JetStream.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*Engine, error) {
	d := DefaultConfig
	if cfg.NodeName == "" {
		cfg.NodeName = d.NodeName
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = d.SyncInterval
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = d.SessionTTL
	}
	if cfg.MaxConsumers <= 0 {
		cfg.MaxConsumers = d.MaxConsumers
	}
	if cfg.GroupIdle <= 0 {
		cfg.GroupIdle = d.GroupIdle
	}
	if cfg.DiskCheckInterval <= 0 {
		cfg.DiskCheckInterval = 250 * time.Millisecond
	}
	if cfg.PeerTimeout <= 0 {
		cfg.PeerTimeout = d.PeerTimeout
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = d.StallTimeout
	}
	if cfg.FollowHeartbeat <= 0 {
		cfg.FollowHeartbeat = d.FollowHeartbeat
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{cfg: cfg, logger: logger, streams: map[string]*nsStream{}, consumers: map[string]jetstream.Consumer{},
		restarted: make(chan struct{})}
	var opts []nats.Option
	// No reconnect buffer: a request made while the connection is down
	// fails at once instead of being sent on reconnect, possibly long after
	// its caller was told it failed (outcome.go).
	opts = append(opts, nats.Name("roomcast "+cfg.NodeName), nats.MaxReconnects(-1), nats.ReconnectBufSize(-1))
	url := cfg.URL
	if url == "" {
		if cfg.DataDir == "" {
			return nil, errors.New("engine: a data directory is required for the embedded server")
		}
		sopts := &server.Options{
			ServerName:         cfg.NodeName,
			DontListen:         cfg.ClusterName == "", // in-process only, unless clustered: routing needs the client accept loop (notes pitfall 1)
			JetStream:          true,
			StoreDir:           cfg.DataDir,
			SyncInterval:       cfg.SyncInterval,
			SyncAlways:         cfg.SyncAlways,
			NoSigs:             true,
			NoLog:              true,
			JetStreamLimits:    server.JSLimitOpts{DefaultMaxConsumers: cfg.MaxConsumers},
			JetStreamMaxMemory: 512 << 20,
			// A route to a node that is down is retried every second; log
			// the first failure and then one a minute, not each (the
			// server's defaults: every reconnect failure, and an hour
			// apart for a node not seen since start-up).
			ReconnectErrorReports: 60,
			ConnectErrorReports:   60,
		}
		if cfg.ClusterName != "" {
			if err := clusterOptions(sopts, cfg); err != nil {
				return nil, err
			}
		}
		e.disk = newDiskGuard(e, cfg.DataDir, cfg.DiskReserve, cfg.DiskCheckInterval, logger)
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("engine: data directory: %w", err)
		}
		if v, err := VolumeOf(cfg.DataDir); err == nil {
			// The server's own store limit defaults to 75% of the space
			// free at start-up; retention is per namespace (MaxBytes) and
			// a full volume is the guard's business: let the store use the
			// volume.
			sopts.JetStreamMaxStore = v.Size
		}
		e.sopts = sopts
		srv, err := server.NewServer(sopts)
		if err != nil {
			return nil, fmt.Errorf("engine: new server: %w", err)
		}
		nlog := &natsLog{l: logger, onError: e.disk.storeError}
		srv.SetLoggerV2(nlog, false, false, false)
		srv.Start()
		// Ready, or failed for good (a listener's port in use): the server
		// does not stop on its fatal errors when embedded.
		for deadline := time.Now().Add(30 * time.Second); !srv.ReadyForConnections(100 * time.Millisecond); {
			err := nlog.fatalError()
			switch {
			case err != nil:
			case ctx.Err() != nil:
				err = ctx.Err()
			case time.Now().After(deadline):
				err = errors.New("not ready after 30s")
			}
			if err != nil {
				srv.Shutdown()
				return nil, fmt.Errorf("engine: embedded server: %w: %w", hub.ErrUnavailable, err)
			}
		}
		e.srv = srv
		opts = append(opts, nats.InProcessServer(srv))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		e.shutdownServer()
		return nil, fmt.Errorf("engine: connect: %w", err)
	}
	e.nc = nc
	if e.js, err = jetstream.New(nc); err != nil {
		e.Close()
		return nil, fmt.Errorf("engine: jetstream: %w", err)
	}
	if cfg.ClusterName != "" {
		seen := map[string]bool{cfg.ClusterListen: true} // this node, whether or not routes name it
		for _, r := range server.RoutesFromStr(strings.Join(cfg.Routes, ",")) {
			seen[r.Host] = true
		}
		e.nodes = len(seen)
	}
	if e.cfg.Replicas <= 0 {
		e.cfg.Replicas = 1
		if n := len(cfg.Routes); cfg.ClusterName != "" && n > 1 {
			e.cfg.Replicas = min(3, n)
		} else if cfg.URL != "" {
			e.cfg.Replicas = min(3, max(1, len(nc.Servers())))
		}
	}
	e.want = e.cfg.Replicas
	e.replicas.Store(int32(e.want))
	e.health = newHealth(e)
	if err := e.health.start(); err != nil {
		e.Close()
		return nil, err
	}
	began := time.Now()
	// A cluster elects its JetStream meta leader after the routes form:
	// creating assets waits for it (bounded).
	err = retry(ctx, 60*time.Second, func() error {
		var err error
		e.kv, err = e.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      sessionsBucket,
			Description: "roomcast: disconnected connections within their recovery window",
			TTL:         cfg.SessionTTL,
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    e.Replicas(),
		})
		if err != nil {
			e.settleReplicas(err, began)
		}
		return err
	})
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("engine: sessions bucket: %w", err)
	}
	e.health.watch(ctx, sessionsStream)
	if e.Replicas() < e.want {
		rctx, cancel := context.WithCancel(context.Background())
		e.stopRaise, e.raising = cancel, make(chan struct{})
		go func() { defer close(e.raising); e.raiseReplicas(rctx, 2*time.Second) }()
	}
	if e.disk != nil {
		e.disk.start()
	}
	return e, nil
}

// clusterOptions turns on routes between embedded servers.
func clusterOptions(o *server.Options, cfg Config) error {
	host, port, err := splitHostPort(cfg.ClusterListen)
	if err != nil {
		return fmt.Errorf("engine: cluster listen %q: %w", cfg.ClusterListen, err)
	}
	o.Cluster = server.ClusterOpts{Name: cfg.ClusterName, Host: host, Port: port}
	o.Routes = otherRoutes(cfg)
	o.Host, o.Port = "127.0.0.1", server.RANDOM_PORT
	if cfg.ClientListen != "" {
		if o.Host, o.Port, err = splitHostPort(cfg.ClientListen); err != nil {
			return fmt.Errorf("engine: client listen %q: %w", cfg.ClientListen, err)
		}
	}
	return nil
}

func splitHostPort(s string) (string, int, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	return h, n, nil
}

// retry calls f until it succeeds, ctx ends or within passes, with backoff.
func retry(ctx context.Context, within time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	wait := 50 * time.Millisecond
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// Clustered reports whether this node is one of several (embedded cluster
// or external NATS).
func (e *Engine) Clustered() bool { return e.cfg.ClusterName != "" || e.cfg.URL != "" }

// NodeName is this node's name.
func (e *Engine) NodeName() string { return e.cfg.NodeName }

// Replicas is the replication factor in use.
func (e *Engine) Replicas() int { return int(e.replicas.Load()) }

func (e *Engine) shutdownServer() {
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
	}
}

// Ready reports whether this node can publish and serve history now: its
// store takes writes, it is connected, it hears a quorum of its cluster,
// and every namespace's stream has had a leader answering within
// StallTimeout (health.go). It makes no request: /readyz may be probed
// often.
func (e *Engine) Ready(ctx context.Context) error {
	if why := e.disk.refusing(); why != "" {
		// Not ErrStorageFull: /readyz is 503, whatever the reason.
		return fmt.Errorf("engine: the store refuses writes: %s: %w", why, hub.ErrUnavailable)
	}
	if e.nc == nil || !e.nc.IsConnected() {
		return fmt.Errorf("engine: not connected: %w", hub.ErrUnavailable)
	}
	if err := e.health.ready(); err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	return nil
}

// Close stops the live consumers, flushes and closes the connection and
// shuts the embedded server down (which syncs the store).
func (e *Engine) Close() {
	e.disk.close()
	if e.stopRaise != nil {
		e.stopRaise()
		<-e.raising
	}
	e.health.stop()
	e.mu.Lock()
	follows := e.follows
	e.follows = nil
	control := e.control
	e.control = nil
	e.replies = nil // its subscription ends with the connection's Drain, answers in flight delivered
	e.mu.Unlock()
	if control != nil {
		_ = control.Unsubscribe()
	}
	for _, f := range follows {
		f.stop()
	}
	if e.nc != nil {
		_ = e.nc.Drain()
		for e.nc.IsDraining() {
			time.Sleep(5 * time.Millisecond)
		}
		e.nc.Close()
	}
	for _, f := range follows {
		f.wait() // a replacement under way fails with the connection
	}
	e.shutdownServer()
}

const epochKey = "roomcast_epoch"

// OpenNamespace implements hub.Log: it creates or updates namespace ns's
// stream and returns its state.
func (e *Engine) OpenNamespace(ctx context.Context, ns string, r hub.Retention) (hub.LogState, error) {
	if !hub.ValidNamespace(ns) {
		return hub.LogState{}, fmt.Errorf("namespace %q: %w", ns, hub.ErrInvalid)
	}
	r = r.Or(hub.DefaultRetention)
	name := streamName(ns)
	cfg := jetstream.StreamConfig{
		Name:              name,
		Description:       "roomcast namespace " + ns,
		Subjects:          []string{nsSubjects(ns)},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxAge:            r.MaxAge,
		MaxBytes:          r.MaxBytes,
		MaxMsgsPerSubject: r.MaxMsgsPerRoom,
		Duplicates:        r.Dedupe,
		Storage:           jetstream.FileStorage,
		Replicas:          e.Replicas(),
		AllowDirect:       true,
		MaxConsumers:      e.cfg.MaxConsumers,
	}
	var epoch string
	var s jetstream.Stream
	err := retry(ctx, 60*time.Second, func() error {
		var err error
		s, err = e.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return hub.LogState{}, fmt.Errorf("engine: stream %s: %w", name, err)
	}
	// The epoch is chosen once, by whoever creates the stream: nodes of a
	// cluster starting together race to create it, and the losers must
	// adopt the winner's epoch (else each node would name the same message
	// differently).
	err = retry(ctx, 30*time.Second, func() error {
		if s == nil {
			var b [4]byte
			_, _ = rand.Read(b[:])
			cfg.Metadata = map[string]string{epochKey: hex.EncodeToString(b[:])}
			created, err := e.js.CreateStream(ctx, cfg)
			if err == nil {
				s, epoch = created, cfg.Metadata[epochKey]
				return nil
			}
			if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				return err
			}
			if s, err = e.js.Stream(ctx, name); err != nil {
				s = nil
				return err
			}
		}
		epoch = s.CachedInfo().Config.Metadata[epochKey]
		if epoch == "" { // a stream made by something else: give it an epoch
			var b [4]byte
			_, _ = rand.Read(b[:])
			epoch = hex.EncodeToString(b[:])
		}
		cfg.Metadata = map[string]string{epochKey: epoch}
		updated, err := e.js.UpdateStream(ctx, cfg)
		if err != nil {
			return err
		}
		s = updated
		return nil
	})
	if err != nil {
		return hub.LogState{}, fmt.Errorf("engine: create stream %s: %w", name, err)
	}
	e.mu.Lock()
	e.streams[ns] = &nsStream{name: name, stream: s, epoch: epoch, retention: r,
		pubOpts: []jetstream.PublishOpt{jetstream.WithExpectStream(name)}}
	e.mu.Unlock()
	e.health.watch(ctx, name)
	return e.State(ctx, ns)
}

func (e *Engine) ns(ns string) (*nsStream, error) {
	e.mu.Lock()
	s := e.streams[ns]
	e.mu.Unlock()
	if s == nil {
		return nil, fmt.Errorf("engine: namespace %q: %w", ns, hub.ErrNotFound)
	}
	return s, nil
}

// State implements hub.Log.
func (e *Engine) State(ctx context.Context, ns string) (hub.LogState, error) {
	s, err := e.ns(ns)
	if err != nil {
		return hub.LogState{}, err
	}
	info, err := e.info(ctx, s)
	if err != nil {
		return hub.LogState{}, err
	}
	return hub.LogState{Epoch: s.epoch, First: info.State.FirstSeq, Last: info.State.LastSeq}, nil
}
