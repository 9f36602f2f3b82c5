// Package config turns defaults, an optional YAML file, ROOMCAST_*
// environment variables and command-line flags (in that order of
// precedence, last wins) into a typed Config. It is pure: no global state,
// no I/O but reading the named file; table-tested.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/roomcast/roomcast/internal/engine"
	"github.com/roomcast/roomcast/internal/hub"
	"github.com/roomcast/roomcast/internal/webhook"
	"github.com/roomcast/roomcast/sse"
)

// Config is the whole server configuration.
type Config struct {
	Addr       string
	Data       string
	ConfigFile string
	LogLevel   string
	LogFormat  string
	PprofAddr  string

	NATSURL       string
	NodeName      string
	ClusterName   string
	ClusterListen string
	Routes        []string
	Replicas      int
	SyncInterval  time.Duration
	SyncAlways    bool
	DiskReserve   int64
	// Cluster health (internal/engine/health.go, follow.go) and resume on a
	// node that is behind (internal/hub/catchup.go).
	PeerTimeout     time.Duration
	StallTimeout    time.Duration
	FollowHeartbeat time.Duration
	CatchUpWait     time.Duration

	Heartbeat         time.Duration
	Retry             time.Duration
	WriteTimeout      time.Duration
	ReadHeaderTimeout time.Duration
	BodyTimeout       time.Duration
	MaxRequestsPerIP  int
	MaxHeaderBytes    int64
	ShutdownTimeout   time.Duration
	GroupIdle         time.Duration
	MaxConnections    int
	QueueSize         int
	ResumeBuffer      int

	// The HTTP edge (cmd/roomcast/listen.go): TLS from files or ACME,
	// HTTP/2, h2c, connection bounds.
	TLSCert              string
	TLSKey               string
	TLSReloadInterval    time.Duration
	ACMEDomains          []string
	ACMEEmail            string
	ACMEHTTPAddr         string
	ACMEDirectory        string
	H2C                  bool
	MaxConcurrentStreams int
	IdleTimeout          time.Duration

	// Webhooks (internal/webhook): how they are delivered, on every node.
	WebhookTimeout     time.Duration
	WebhookMaxAttempts int
	WebhookBackoff     time.Duration
	WebhookMaxBackoff  time.Duration
	WebhookWorkers     int
	WebhookQueueSize   int
	WebhookMaxPending  int
	WebhookMaxAge      time.Duration
	WebhookNodeTTL     time.Duration

	// Defaults are the namespace settings of namespaces that do not set
	// their own (flags and env set these).
	Defaults Namespace
	// DefaultNamespace keeps the namespace "default" (with the Defaults)
	// when the file declares namespaces but not one named default.
	DefaultNamespace bool
	// Namespaces are the declared namespaces (from the file), plus "default"
	// unless DefaultNamespace is false or the file declares it; with none
	// declared, "default" alone.
	Namespaces []Namespace
}

// Namespace is one namespace's settings.
type Namespace struct {
	Name            string
	MaxBody         int64
	MaxBatch        int
	MaxBatchBody    int64
	RecoveryWindow  time.Duration
	MaxRoomsPerConn int
	HistoryLimit    int
	MaxAge          time.Duration
	MaxBytes        int64
	MaxMsgsPerRoom  int64
	DedupeWindow    time.Duration
	// Consumer group defaults.
	GroupAckWait     time.Duration
	GroupMaxDeliver  int
	GroupMaxInFlight int

	// Security.
	Auth                  string // "open" or "jwt"
	JWTIssuer             string
	JWTAudience           string
	JWTLeeway             time.Duration
	JWTHS256SecretEnv     string   // convenience: one HS256 key from this env variable
	JWTKeys               []JWTKey // file only
	APIKeys               []string // file only (prefer APIKeysEnv)
	APIKeysEnv            string   // env variable holding comma-separated API keys
	CORSOrigins           []string // file, or comma-separated flag/env
	RateConnect           string   // "N/period" per IP and per credential, "" off
	RatePublish           string
	RateJoin              string
	MaxConnectionsPerIP   int
	MaxConnectionsPerUser int

	// Webhooks.
	WebhookDebounce time.Duration
	Webhooks        []Webhook // file only
}

// Webhook is an endpoint receiving a namespace's events (webhook.Endpoint;
// the secret is read from the environment variable SecretEnv at start).
type Webhook struct {
	URL       string   `yaml:"url"`
	Events    []string `yaml:"events"`
	SecretEnv string   `yaml:"secret_env"`
}

// JWTKey is a verification key of a namespace (see internal/auth.KeyConfig).
type JWTKey struct {
	ID        string `yaml:"id"`
	Alg       string `yaml:"alg"`
	Secret    string `yaml:"secret"`
	SecretEnv string `yaml:"secret_env"`
	PEMFile   string `yaml:"pem_file"`
	JWKSFile  string `yaml:"jwks_file"`
}

// Default returns the built-in defaults.
func Default() Config {
	// Each component declares its own defaults; the configuration's are
	// derived from them, so that a default is written once.
	eng, str, hc := engine.DefaultConfig, sse.DefaultConfig, hub.DefaultConfig
	ns, ret, grp := hub.DefaultNamespaceConfig, hub.DefaultRetention, hub.DefaultGroupConfig
	wh, out, occ := webhook.DefaultConfig, engine.DefaultOutboxConfig, engine.DefaultOccupancyConfig
	return Config{
		Addr: "127.0.0.1:8080", Data: "./data", LogLevel: "info", LogFormat: "auto", DefaultNamespace: true,
		NodeName: eng.NodeName, SyncInterval: eng.SyncInterval, GroupIdle: eng.GroupIdle,
		Heartbeat: str.Heartbeat, Retry: str.Retry, WriteTimeout: str.WriteTimeout, QueueSize: str.QueueSize,
		ReadHeaderTimeout: 10 * time.Second, ShutdownTimeout: 10 * time.Second,
		ResumeBuffer: hc.ResumeBuffer, MaxConnections: 100000,
		PeerTimeout: eng.PeerTimeout, StallTimeout: eng.StallTimeout, FollowHeartbeat: eng.FollowHeartbeat, CatchUpWait: hc.CatchUpWait,
		TLSReloadInterval: 10 * time.Second, MaxConcurrentStreams: 250, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 32 << 10,
		DiskReserve: 32 << 20, BodyTimeout: 10 * time.Second, MaxRequestsPerIP: 256,
		WebhookTimeout: wh.Timeout, WebhookMaxAttempts: wh.MaxAttempts, WebhookBackoff: wh.Backoff, WebhookMaxBackoff: wh.MaxBackoff,
		WebhookWorkers: wh.Workers, WebhookQueueSize: wh.QueueSize, WebhookMaxPending: out.MaxPending, WebhookMaxAge: out.MaxAge,
		WebhookNodeTTL: occ.NodeTTL,
		Defaults: Namespace{
			MaxBody: 64 << 10, MaxBatch: 1000, MaxBatchBody: 1 << 20, RecoveryWindow: ns.RecoveryWindow, MaxRoomsPerConn: ns.MaxRoomsPerConn, HistoryLimit: ns.HistoryLimit,
			MaxAge: ret.MaxAge, MaxBytes: ret.MaxBytes, MaxMsgsPerRoom: ret.MaxMsgsPerRoom, DedupeWindow: ret.Dedupe,
			GroupAckWait: grp.AckWait, GroupMaxDeliver: grp.MaxDeliver, GroupMaxInFlight: grp.MaxInFlight,
			Auth: "open", JWTLeeway: 30 * time.Second, WebhookDebounce: webhook.DefaultDebounce,
		},
	}
}

type setting struct {
	name  string // flag name; env is ROOMCAST_ + upper snake; YAML key is snake
	usage string
	// exactly one of global / ns is set
	global func(c *Config) any
	ns     func(n *Namespace) any
}

// settings lists every setting once: flags, env, file and --help come from it.
var settings = []setting{
	{name: "addr", usage: "HTTP listen address (loopback by default: :8080 listens on every interface, e.g. in a container)", global: func(c *Config) any { return &c.Addr }},
	{name: "data", usage: "data directory of the embedded engine (locked: one server per directory)", global: func(c *Config) any { return &c.Data }},
	{name: "config", usage: "optional YAML file declaring namespaces and settings", global: func(c *Config) any { return &c.ConfigFile }},
	{name: "default-namespace", usage: "serve the namespace default (with these settings) also when the config file declares other namespaces; false serves only those declared", global: func(c *Config) any { return &c.DefaultNamespace }},
	{name: "log-level", usage: "debug, info, warn or error", global: func(c *Config) any { return &c.LogLevel }},
	{name: "log-format", usage: "auto (text on a terminal, JSON otherwise), text or json", global: func(c *Config) any { return &c.LogFormat }},
	{name: "pprof-addr", usage: "serve net/http/pprof on this separate address (off when empty; keep it private)", global: func(c *Config) any { return &c.PprofAddr }},
	{name: "nats-url", usage: "external NATS cluster URL (no embedded server starts)", global: func(c *Config) any { return &c.NATSURL }},
	{name: "node-name", usage: "this node's name in the engine (unique per node of a cluster)", global: func(c *Config) any { return &c.NodeName }},
	{name: "cluster-name", usage: "cluster of embedded engines to join (with --cluster-listen and --routes; empty: a single node)", global: func(c *Config) any { return &c.ClusterName }},
	{name: "cluster-listen", usage: "host:port this node's engine listens on for routes from the other nodes", global: func(c *Config) any { return &c.ClusterListen }},
	{name: "routes", usage: "comma-separated nats://host:port cluster addresses of the nodes (may include this one)", global: func(c *Config) any { return &c.Routes }},
	{name: "replicas", usage: "JetStream replicas of streams, buckets and groups (0: 3 when the cluster has ≥ 3 nodes, else its size)", global: func(c *Config) any { return &c.Replicas }},
	{name: "peer-timeout", usage: "cluster: a node not heard from for this long counts as gone; a node that hears fewer than a majority of the cluster is not ready (/readyz 503) and refuses publishes at once (503, nothing stored)", global: func(c *Config) any { return &c.PeerTimeout }},
	{name: "stall-timeout", usage: "a namespace whose stream has had no leader answering for this long (more than a leader election takes) makes /readyz 503", global: func(c *Config) any { return &c.StallTimeout }},
	{name: "follow-heartbeat", usage: "heartbeat of each namespace's live consumer: after two missed (its node died, a leader changed) it is replaced", global: func(c *Config) any { return &c.FollowHeartbeat }},
	{name: "catch-up-wait", usage: "how long a resume on a node that has not yet applied the client's position (it is behind the cluster) waits for it before answering 503", global: func(c *Config) any { return &c.CatchUpWait }},
	{name: "sync-interval", usage: "how often the store is fsynced (a 2xx publish survives kill -9 at any value; this bounds OS-crash loss)", global: func(c *Config) any { return &c.SyncInterval }},
	{name: "sync-always", usage: "fsync every message before answering (survives power loss, much slower)", global: func(c *Config) any { return &c.SyncAlways }},
	{name: "disk-reserve", usage: "free space the data volume must keep: below it publishes answer 507 (and /readyz 503) until space is freed; 0: only once a write fails for lack of space", global: func(c *Config) any { return &c.DiskReserve }},
	{name: "heartbeat", usage: "interval of SSE keep-alive comments", global: func(c *Config) any { return &c.Heartbeat }},
	{name: "retry", usage: "reconnection delay advised to SSE clients", global: func(c *Config) any { return &c.Retry }},
	{name: "write-timeout", usage: "deadline of each write to an SSE client", global: func(c *Config) any { return &c.WriteTimeout }},
	{name: "read-header-timeout", usage: "time allowed to read request headers", global: func(c *Config) any { return &c.ReadHeaderTimeout }},
	{name: "body-timeout", usage: "time allowed to receive a request body once its headers arrived (408 and the connection closed beyond)", global: func(c *Config) any { return &c.BodyTimeout }},
	{name: "max-requests-per-ip", usage: "requests one client address may have in progress at once, SSE streams excepted (429 beyond; 0: unlimited)", global: func(c *Config) any { return &c.MaxRequestsPerIP }},
	{name: "shutdown-timeout", usage: "grace period on SIGINT/SIGTERM", global: func(c *Config) any { return &c.ShutdownTimeout }},
	{name: "queue-size", usage: "events queued per connection before it is closed as a slow consumer", global: func(c *Config) any { return &c.QueueSize }},
	{name: "resume-buffer", usage: "live messages held per connection while its replay runs", global: func(c *Config) any { return &c.ResumeBuffer }},
	{name: "tls-cert", usage: "PEM certificate chain: serve HTTPS (with --tls-key; HTTP/2 on); reloaded on SIGHUP and when the files change", global: func(c *Config) any { return &c.TLSCert }},
	{name: "tls-key", usage: "PEM private key of --tls-cert", global: func(c *Config) any { return &c.TLSKey }},
	{name: "tls-reload-interval", usage: "how often --tls-cert and --tls-key are checked for changes (0: only on SIGHUP)", global: func(c *Config) any { return &c.TLSReloadInterval }},
	{name: "acme-domain", usage: "comma-separated domains to serve HTTPS for with certificates from an ACME CA (Let's Encrypt), cached in <data>/acme; the CA validates by TLS-ALPN-01 on --addr (reachable on port 443), and by HTTP-01 too with --acme-http-addr", global: func(c *Config) any { return &c.ACMEDomains }},
	{name: "acme-email", usage: "contact address given to the ACME CA (optional)", global: func(c *Config) any { return &c.ACMEEmail }},
	{name: "acme-http-addr", usage: "also answer ACME HTTP-01 challenges on this address, e.g. :80 (reachable on port 80); other requests there are redirected to https", global: func(c *Config) any { return &c.ACMEHTTPAddr }},
	{name: "acme-directory", usage: "ACME directory URL (empty: Let's Encrypt production; its staging directory to try things out)", global: func(c *Config) any { return &c.ACMEDirectory }},
	{name: "h2c", usage: "also serve cleartext HTTP/2 (prior knowledge) for a proxy in front that speaks it; not with TLS, where HTTP/2 is on already", global: func(c *Config) any { return &c.H2C }},
	{name: "max-concurrent-streams", usage: "HTTP/2 streams (SSE connections and requests) one client connection may have open at once", global: func(c *Config) any { return &c.MaxConcurrentStreams }},
	{name: "idle-timeout", usage: "an idle keep-alive connection (HTTP/1.1 or HTTP/2) is closed after this", global: func(c *Config) any { return &c.IdleTimeout }},
	{name: "max-header-bytes", usage: "largest request line and headers (431 problem+json beyond; HTTP/2 advertises it as SETTINGS_MAX_HEADER_LIST_SIZE)", global: func(c *Config) any { return &c.MaxHeaderBytes }},
	{name: "max-body", usage: "largest request body in bytes (413 beyond)", ns: func(n *Namespace) any { return &n.MaxBody }},
	{name: "max-batch", usage: "most messages one batch publish (POST /ns/{ns}/messages/batch) carries (400 beyond)", ns: func(n *Namespace) any { return &n.MaxBatch }},
	{name: "max-batch-body", usage: "largest body of a batch publish in bytes (413 beyond; each message is also held to max-body)", ns: func(n *Namespace) any { return &n.MaxBatchBody }},
	{name: "recovery-window", usage: "how long a disconnected connection's id and rooms are kept for resume", ns: func(n *Namespace) any { return &n.RecoveryWindow }},
	{name: "max-rooms-per-conn", usage: "rooms one connection may be in", ns: func(n *Namespace) any { return &n.MaxRoomsPerConn }},
	{name: "history-limit", usage: "most messages one history page returns", ns: func(n *Namespace) any { return &n.HistoryLimit }},
	{name: "max-age", usage: "retention: age after which messages are removed", ns: func(n *Namespace) any { return &n.MaxAge }},
	{name: "max-bytes", usage: "retention: bytes stored per namespace", ns: func(n *Namespace) any { return &n.MaxBytes }},
	{name: "max-msgs-per-room", usage: "retention: messages kept per room (also per direct, multi-room and namespace-wide subject); -1 unlimited", ns: func(n *Namespace) any { return &n.MaxMsgsPerRoom }},
	{name: "dedupe-window", usage: "idempotency window of publish ids", ns: func(n *Namespace) any { return &n.DedupeWindow }},
	{name: "group-ack-wait", usage: "consumer groups: redeliver a delivery not acknowledged within this", ns: func(n *Namespace) any { return &n.GroupAckWait }},
	{name: "group-max-deliver", usage: "consumer groups: deliveries before a message is parked as a dead letter", ns: func(n *Namespace) any { return &n.GroupMaxDeliver }},
	{name: "group-max-in-flight", usage: "consumer groups: unacknowledged deliveries one member may hold", ns: func(n *Namespace) any { return &n.GroupMaxInFlight }},
	{name: "group-idle", usage: "consumer groups nobody consumed for this long are removed", global: func(c *Config) any { return &c.GroupIdle }},
	{name: "max-connections", usage: "open SSE connections on this node, all namespaces (503 beyond)", global: func(c *Config) any { return &c.MaxConnections }},
	{name: "auth", usage: "open (anyone may do anything) or jwt (a JWT, ticket or API key is required; claims grant actions per room)", ns: func(n *Namespace) any { return &n.Auth }},
	{name: "jwt-issuer", usage: "required iss of JWTs (empty: not checked)", ns: func(n *Namespace) any { return &n.JWTIssuer }},
	{name: "jwt-audience", usage: "required aud of JWTs (required with auth jwt)", ns: func(n *Namespace) any { return &n.JWTAudience }},
	{name: "jwt-leeway", usage: "clock skew allowed on exp, nbf and iat", ns: func(n *Namespace) any { return &n.JWTLeeway }},
	{name: "jwt-hs256-secret-env", usage: "name of an environment variable holding an HS256 secret (≥ 32 bytes; start-up fails when the variable is unset, empty or shorter); other keys go in the file's jwt_keys", ns: func(n *Namespace) any { return &n.JWTHS256SecretEnv }},
	{name: "api-keys-env", usage: "name of an environment variable holding comma-separated admin API keys (≥ 16 characters each); start-up fails when the variable it names is unset or empty", ns: func(n *Namespace) any { return &n.APIKeysEnv }},
	{name: "cors-origins", usage: "comma-separated origins allowed to call cross-origin with credentials (never reflected; empty: same-origin only)", ns: func(n *Namespace) any { return &n.CORSOrigins }},
	{name: "rate-connect", usage: "stream opens allowed per IP and per credential, as N/period like 20/1s (empty: unlimited)", ns: func(n *Namespace) any { return &n.RateConnect }},
	{name: "rate-publish", usage: "publishes allowed per IP and per credential, N/period", ns: func(n *Namespace) any { return &n.RatePublish }},
	{name: "rate-join", usage: "joins and leaves allowed per IP and per credential, N/period", ns: func(n *Namespace) any { return &n.RateJoin }},
	{name: "max-connections-per-ip", usage: "open connections per client IP in a namespace (0: unlimited)", ns: func(n *Namespace) any { return &n.MaxConnectionsPerIP }},
	{name: "max-connections-per-user", usage: "open connections per JWT sub in a namespace (0: unlimited)", ns: func(n *Namespace) any { return &n.MaxConnectionsPerUser }},
	{name: "webhook-debounce", usage: "webhooks: a room is announced room.occupied (room.vacated) once it stayed so, on every node, this long after its last change; a room that empties and refills within it sends nothing (the endpoints are listed per namespace in the file's webhooks)", ns: func(n *Namespace) any { return &n.WebhookDebounce }},
	{name: "webhook-timeout", usage: "webhooks: time allowed for one POST (connect, send, answer)", global: func(c *Config) any { return &c.WebhookTimeout }},
	{name: "webhook-max-attempts", usage: "webhooks: attempts before a webhook is parked (kept --webhook-max-age, logged and counted, not sent again)", global: func(c *Config) any { return &c.WebhookMaxAttempts }},
	{name: "webhook-backoff", usage: "webhooks: wait after a first failed attempt; doubles after each failure (plus up to 20% jitter, at least a Retry-After)", global: func(c *Config) any { return &c.WebhookBackoff }},
	{name: "webhook-max-backoff", usage: "webhooks: longest wait between two attempts (before up to 20% jitter)", global: func(c *Config) any { return &c.WebhookMaxBackoff }},
	{name: "webhook-workers", usage: "webhooks: POSTs in progress per endpoint on this node", global: func(c *Config) any { return &c.WebhookWorkers }},
	{name: "webhook-queue-size", usage: "webhooks: joins, leaves and dead letters of this node waiting to enter the durable outbox (beyond: dropped and counted)", global: func(c *Config) any { return &c.WebhookQueueSize }},
	{name: "webhook-max-pending", usage: "webhooks: per endpoint, webhooks being sent or waiting for a retry, cluster-wide, and rooms waiting for their debounce (beyond: they wait in the store, never dropped)", global: func(c *Config) any { return &c.WebhookMaxPending }},
	{name: "webhook-max-age", usage: "webhooks: a webhook neither sent nor parked is removed after this; parked ones are kept this long", global: func(c *Config) any { return &c.WebhookMaxAge }},
	{name: "webhook-node-ttl", usage: "webhooks: how long the members of a node that died without a word still count for room.vacated", global: func(c *Config) any { return &c.WebhookNodeTTL }},
}

func (s setting) target(c *Config) any {
	if s.global != nil {
		return s.global(c)
	}
	return s.ns(&c.Defaults)
}

func (s setting) env() string {
	return "ROOMCAST_" + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

func (s setting) key() string { return strings.ReplaceAll(s.name, "-", "_") }

// set parses v into the field p points to.
func set(p any, v string) error {
	switch p := p.(type) {
	case *string:
		*p = v
	case *bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", v)
		}
		*p = b
	case *int:
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("want an integer, got %q", v)
		}
		*p = n
	case *int64:
		n, err := parseBytes(v)
		if err != nil {
			return err
		}
		*p = n
	case *time.Duration:
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("want a duration like 30s or 2m, got %q", v)
		}
		*p = d
	case *[]string:
		*p = nil
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				*p = append(*p, s)
			}
		}
	default:
		return fmt.Errorf("unsupported setting type %T", p)
	}
	return nil
}

// rawValue keeps a flag's text; the setting parses it after the file and
// the environment were applied. Boolean settings work as bare flags
// (--sync-always).
type rawValue struct {
	s      string
	isBool bool
}

func (v *rawValue) String() string     { return v.s }
func (v *rawValue) Set(s string) error { v.s = s; return nil }
func (v *rawValue) IsBoolFlag() bool   { return v.isBool }

// parseBytes accepts a plain integer or one with a KiB/MiB/GiB suffix.
func parseBytes(v string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSuffix(v, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("want an integer, optionally with KiB, MiB or GiB, got %q", v)
	}
	if n > math.MaxInt64/mult || n < math.MinInt64/mult {
		return 0, fmt.Errorf("%q is too large", v)
	}
	return n * mult, nil
}

func show(p any) string {
	switch p := p.(type) {
	case *string:
		return *p
	case *bool:
		return strconv.FormatBool(*p)
	case *int:
		return strconv.Itoa(*p)
	case *int64:
		return strconv.FormatInt(*p, 10)
	case *time.Duration:
		return p.String()
	case *[]string:
		return strings.Join(*p, ",")
	}
	return ""
}

// Load builds the configuration from args (without the program name),
// getenv and the optional file. With -h/--help it writes the usage to out
// and returns flag.ErrHelp.
func Load(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	cfg := Default()
	fs := flag.NewFlagSet("roomcast", flag.ContinueOnError)
	fs.SetOutput(out)
	values := map[string]*string{}
	for _, s := range settings {
		v := &rawValue{s: show(s.target(&cfg))}
		_, v.isBool = s.target(&cfg).(*bool)
		values[s.name] = &v.s
		fs.Var(v, s.name, s.usage+" (env "+s.env()+")")
	}
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: roomcast [serve] [flags]\n\nEvery flag has an environment twin (ROOMCAST_*) and a YAML key in --config (snake_case);\nflags win over the environment, which wins over the file. Namespace settings in the\nfile's namespaces list override these defaults per namespace.\n\nFlags:\n")
		def := Default()
		for _, s := range settings {
			typ := map[string]string{"*string": "string", "*bool": "", "*int": "int", "*int64": "bytes", "*time.Duration": "duration", "*[]string": "list"}[fmt.Sprintf("%T", s.target(&def))]
			fmt.Fprintf(out, "  --%s %s\n    \t%s (env %s)", s.name, typ, s.usage, s.env())
			if d := show(s.target(&def)); d != "" && d != "0" && d != "false" {
				fmt.Fprintf(out, " (default %q)", d)
			}
			fmt.Fprintln(out)
		}
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	visited := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { visited[f.Name] = true })

	// Which file: flag, then env.
	file := getenv("ROOMCAST_CONFIG")
	if visited["config"] {
		file = *values["config"]
	}
	var nsEntries []map[string]any
	if file != "" {
		var err error
		if nsEntries, err = loadFile(&cfg, file); err != nil {
			return Config{}, err
		}
		cfg.ConfigFile = file
	}
	for _, s := range settings {
		if v := getenv(s.env()); v != "" {
			if err := set(s.target(&cfg), v); err != nil {
				return Config{}, fmt.Errorf("%s: %w", s.env(), err)
			}
		}
	}
	for _, s := range settings {
		if visited[s.name] {
			if err := set(s.target(&cfg), *values[s.name]); err != nil {
				return Config{}, fmt.Errorf("--%s: %w", s.name, err)
			}
		}
	}
	ns, err := namespaces(cfg.Defaults, nsEntries, cfg.DefaultNamespace)
	if err != nil {
		return Config{}, err
	}
	cfg.Namespaces = ns
	return cfg, cfg.validate()
}

func loadFile(cfg *Config, path string) ([]map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var top map[string]any
	if err := yaml.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	byKey := map[string]setting{}
	for _, s := range settings {
		byKey[s.key()] = s
	}
	var entries []map[string]any
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := top[k]
		if k == "namespaces" {
			list, ok := v.([]any)
			if !ok {
				return nil, fmt.Errorf("config file %s: namespaces must be a list", path)
			}
			for i, item := range list {
				m, ok := item.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("config file %s: namespaces[%d] must be a mapping", path, i)
				}
				entries = append(entries, m)
			}
			continue
		}
		s, ok := byKey[k]
		if !ok || k == "config" {
			return nil, fmt.Errorf("config file %s: unknown key %q", path, k)
		}
		text := fmt.Sprint(v)
		if list, ok := v.([]any); ok {
			// A YAML list of a list setting (acme_domain: [a, b]), as the
			// comma-separated text of its flag.
			items := make([]string, len(list))
			for i, item := range list {
				items[i] = fmt.Sprint(item)
			}
			text = strings.Join(items, ",")
		}
		if err := set(s.target(cfg), text); err != nil {
			return nil, fmt.Errorf("config file %s: %s: %w", path, k, err)
		}
	}
	return entries, nil
}

// namespaces builds the namespaces declared in the file's entries. The
// namespace "default", which the README's curl session and the web app use,
// is kept (with the defaults) unless the file declares its own or
// keepDefault is false: declaring a namespace must not silently remove it.
func namespaces(defaults Namespace, entries []map[string]any, keepDefault bool) ([]Namespace, error) {
	def := defaults
	def.Name = "default"
	if len(entries) == 0 {
		if !keepDefault {
			return nil, errors.New("default-namespace is false but the config file declares no namespace: declare some under namespaces:")
		}
		return []Namespace{def}, nil
	}
	byKey := map[string]setting{}
	for _, s := range settings {
		if s.ns != nil {
			byKey[s.key()] = s
		}
	}
	seen := map[string]bool{}
	out := make([]Namespace, 0, len(entries))
	for i, e := range entries {
		n := defaults
		name, _ := e["name"].(string)
		if name == "" {
			return nil, fmt.Errorf("namespaces[%d]: name is required", i)
		}
		if seen[name] {
			return nil, fmt.Errorf("namespaces[%d]: %q declared twice", i, name)
		}
		seen[name] = true
		n.Name = name
		keys := make([]string, 0, len(e))
		for k := range e {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch k {
			case "name":
				continue
			case "jwt_keys", "api_keys", "cors_origins", "webhooks":
				if err := setList(&n, k, e[k]); err != nil {
					return nil, fmt.Errorf("namespace %q: %s: %w", name, k, err)
				}
				continue
			}
			s, ok := byKey[k]
			if !ok {
				return nil, fmt.Errorf("namespace %q: unknown key %q", name, k)
			}
			if err := set(s.ns(&n), fmt.Sprint(e[k])); err != nil {
				return nil, fmt.Errorf("namespace %q: %s: %w", name, k, err)
			}
		}
		out = append(out, n)
	}
	if keepDefault && !seen["default"] {
		out = append(out, def)
	}
	return out, nil
}

// setList decodes the namespace keys that hold lists.
func setList(n *Namespace, key string, v any) error {
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	switch key {
	case "jwt_keys":
		n.JWTKeys = nil
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		return dec.Decode(&n.JWTKeys)
	case "api_keys":
		n.APIKeys = nil
		return yaml.Unmarshal(b, &n.APIKeys)
	case "webhooks":
		n.Webhooks = nil
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		return dec.Decode(&n.Webhooks)
	default:
		n.CORSOrigins = nil
		return yaml.Unmarshal(b, &n.CORSOrigins)
	}
}

// ParseRate parses "N/period" (e.g. "20/1s"); "" is no limit (0, 0).
func ParseRate(s string) (int, time.Duration, error) {
	if s == "" {
		return 0, 0, nil
	}
	ns, ps, ok := strings.Cut(s, "/")
	n, err := strconv.Atoi(ns)
	if !ok || err != nil || n < 1 {
		return 0, 0, fmt.Errorf("rate %q: want N/period like 20/1s", s)
	}
	d, err := time.ParseDuration(ps)
	if err != nil || d < time.Second {
		return 0, 0, fmt.Errorf("rate %q: the period must be a duration of at least 1s", s)
	}
	return n, d, nil
}

func (c Config) validate() error {
	var errs []error
	if c.Data == "" && c.NATSURL == "" {
		errs = append(errs, errors.New("data: a data directory is required for the embedded engine"))
	}
	switch c.LogFormat {
	case "auto", "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log-format: want auto, text or json, got %q", c.LogFormat))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log-level: want debug, info, warn or error, got %q", c.LogLevel))
	}
	for name, d := range map[string]time.Duration{
		"heartbeat": c.Heartbeat, "retry": c.Retry, "write-timeout": c.WriteTimeout,
		"read-header-timeout": c.ReadHeaderTimeout, "shutdown-timeout": c.ShutdownTimeout, "sync-interval": c.SyncInterval,
		"group-idle": c.GroupIdle, "idle-timeout": c.IdleTimeout, "body-timeout": c.BodyTimeout,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive, got %s", name, d))
		}
	}
	if (c.ClusterName == "") != (c.ClusterListen == "") || c.ClusterName != "" && len(c.Routes) == 0 {
		errs = append(errs, errors.New("cluster: --cluster-name, --cluster-listen and --routes go together"))
	}
	if c.ClusterName != "" && c.NATSURL != "" {
		errs = append(errs, errors.New("cluster: --nats-url uses an external cluster; do not combine it with --cluster-name"))
	}
	if c.DiskReserve < 0 {
		errs = append(errs, errors.New("disk-reserve: must be 0 or more"))
	}
	if c.MaxRequestsPerIP < 0 {
		errs = append(errs, errors.New("max-requests-per-ip: must be 0 (unlimited) or more"))
	}
	if c.MaxHeaderBytes < 4<<10 || c.MaxHeaderBytes > 1<<20 {
		errs = append(errs, fmt.Errorf("max-header-bytes: want 4KiB to 1MiB, got %d", c.MaxHeaderBytes))
	}
	if c.QueueSize < 1 || c.ResumeBuffer < 1 {
		errs = append(errs, errors.New("queue-size and resume-buffer must be at least 1"))
	}
	errs = append(errs, c.validateEdge()...)
	errs = append(errs, c.validateWebhooks()...)
	for _, n := range c.Namespaces {
		if !hub.ValidNamespace(n.Name) {
			errs = append(errs, fmt.Errorf("namespace %q: want 1–64 of A-Z a-z 0-9 _ -", n.Name))
		}
		switch n.Auth {
		case "open":
		case "jwt":
			if n.JWTAudience == "" {
				errs = append(errs, fmt.Errorf("namespace %q: auth jwt needs jwt_audience", n.Name))
			}
			if len(n.JWTKeys) == 0 && n.JWTHS256SecretEnv == "" && len(n.APIKeys) == 0 && n.APIKeysEnv == "" {
				errs = append(errs, fmt.Errorf("namespace %q: auth jwt needs jwt_keys, jwt_hs256_secret_env or API keys", n.Name))
			}
		default:
			errs = append(errs, fmt.Errorf("namespace %q: auth: want open or jwt, got %q", n.Name, n.Auth))
		}
		for _, r := range []string{n.RateConnect, n.RatePublish, n.RateJoin} {
			if _, _, err := ParseRate(r); err != nil {
				errs = append(errs, fmt.Errorf("namespace %q: %w", n.Name, err))
			}
		}
		if n.GroupAckWait < 100*time.Millisecond || n.GroupMaxDeliver < 1 || n.GroupMaxInFlight < 1 {
			errs = append(errs, fmt.Errorf("namespace %q: group-ack-wait must be at least 100ms, group-max-deliver and group-max-in-flight at least 1", n.Name))
		}
		if n.MaxBatch < 1 || n.MaxBatchBody < 64 {
			errs = append(errs, fmt.Errorf("namespace %q: max-batch must be at least 1, max-batch-body at least 64", n.Name))
		}
		if n.MaxBody < 64 || n.RecoveryWindow <= 0 || n.MaxRoomsPerConn < 1 || n.HistoryLimit < 1 || n.MaxAge <= 0 || n.MaxBytes <= 0 || n.DedupeWindow <= 0 || n.MaxMsgsPerRoom == 0 || n.MaxMsgsPerRoom < -1 {
			errs = append(errs, fmt.Errorf("namespace %q: limits must be positive (max-msgs-per-room may be -1), max-body at least 64", n.Name))
		}
	}
	return errors.Join(errs...)
}

// validateEdge checks the TLS, ACME and HTTP/2 settings.
func (c Config) validateEdge() []error {
	var errs []error
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls: --tls-cert and --tls-key go together"))
	}
	if c.TLSCert != "" && len(c.ACMEDomains) > 0 {
		errs = append(errs, errors.New("tls: --tls-cert or --acme-domain, not both"))
	}
	if c.TLSReloadInterval < 0 {
		errs = append(errs, fmt.Errorf("tls-reload-interval: must be 0 or positive, got %s", c.TLSReloadInterval))
	}
	if c.H2C && (c.TLSCert != "" || len(c.ACMEDomains) > 0) {
		errs = append(errs, errors.New("h2c: cleartext HTTP/2 is for a server without TLS (with TLS, HTTP/2 is on already)"))
	}
	if len(c.ACMEDomains) == 0 && (c.ACMEEmail != "" || c.ACMEHTTPAddr != "" || c.ACMEDirectory != "") {
		errs = append(errs, errors.New("acme: --acme-email, --acme-http-addr and --acme-directory need --acme-domain"))
	}
	if len(c.ACMEDomains) > 0 && c.Data == "" {
		errs = append(errs, errors.New("acme: certificates are cached under --data, which is empty"))
	}
	for _, d := range c.ACMEDomains {
		if err := checkDomain(d); err != nil {
			errs = append(errs, fmt.Errorf("acme-domain %q: %w", d, err))
		}
	}
	if c.ACMEDirectory != "" {
		if u, err := url.Parse(c.ACMEDirectory); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("acme-directory: want an http(s) URL, got %q", c.ACMEDirectory))
		}
	}
	if c.MaxConcurrentStreams < 1 {
		errs = append(errs, fmt.Errorf("max-concurrent-streams: must be at least 1, got %d", c.MaxConcurrentStreams))
	}
	return errs
}

// checkDomain accepts a DNS name an ACME CA can issue a certificate for by
// HTTP-01 or TLS-ALPN-01: ASCII labels (IDNs in their xn-- form), at least
// two of them, no wildcard (that needs DNS-01, which autocert does not do),
// no IP address.
func checkDomain(d string) error {
	if net.ParseIP(d) != nil {
		return errors.New("an IP address cannot get an ACME certificate here; want a domain name")
	}
	if strings.Contains(d, "*") {
		return errors.New("wildcards need the DNS-01 challenge, which is not supported; list each name")
	}
	if len(d) > 253 || !strings.Contains(d, ".") {
		return errors.New("want a fully qualified domain name like chat.example.com")
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("bad label %q", label)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("label %q: want lower-case a-z, 0-9 and -", label)
			}
		}
	}
	return nil
}

// validateWebhooks checks the delivery settings and each namespace's
// endpoints (their secrets are read, and checked, at start).
func (c Config) validateWebhooks() []error {
	var errs []error
	for name, d := range map[string]time.Duration{"webhook-timeout": c.WebhookTimeout, "webhook-backoff": c.WebhookBackoff,
		"webhook-max-backoff": c.WebhookMaxBackoff, "webhook-max-age": c.WebhookMaxAge} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive, got %s", name, d))
		}
	}
	if c.WebhookMaxBackoff < c.WebhookBackoff {
		errs = append(errs, fmt.Errorf("webhook-max-backoff (%s) is shorter than webhook-backoff (%s)", c.WebhookMaxBackoff, c.WebhookBackoff))
	}
	if c.WebhookNodeTTL < 3*time.Second {
		errs = append(errs, fmt.Errorf("webhook-node-ttl: at least 3s (a lease is refreshed every third of it), got %s", c.WebhookNodeTTL))
	}
	if c.WebhookMaxAttempts < 1 || c.WebhookWorkers < 1 || c.WebhookQueueSize < 1 || c.WebhookMaxPending < 1 {
		errs = append(errs, errors.New("webhook-max-attempts, webhook-workers, webhook-queue-size and webhook-max-pending must be at least 1"))
	}
	for _, n := range c.Namespaces {
		if n.WebhookDebounce < 0 {
			errs = append(errs, fmt.Errorf("namespace %q: webhook-debounce: must be 0 or positive, got %s", n.Name, n.WebhookDebounce))
		}
		seen := map[string]bool{}
		for i, w := range n.Webhooks {
			where := fmt.Sprintf("namespace %q: webhooks[%d]", n.Name, i)
			if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				errs = append(errs, fmt.Errorf("%s: url: want an http(s) URL, got %q", where, w.URL))
			}
			if seen[w.URL] {
				errs = append(errs, fmt.Errorf("%s: %s is listed twice (list its events once)", where, w.URL))
			}
			seen[w.URL] = true
			if len(w.Events) == 0 {
				errs = append(errs, fmt.Errorf("%s: events: list some of %s", where, strings.Join(webhook.Events, ", ")))
			}
			for _, e := range w.Events {
				if !webhook.ValidEvent(e) {
					errs = append(errs, fmt.Errorf("%s: events: unknown %q, want some of %s", where, e, strings.Join(webhook.Events, ", ")))
				}
			}
			if w.SecretEnv == "" {
				errs = append(errs, fmt.Errorf("%s: secret_env: name the environment variable holding the signing secret (at least %d bytes)", where, webhook.MinSecret))
			}
		}
	}
	return errs
}
