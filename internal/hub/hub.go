package hub

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// Deps are the hub's collaborators, built by main. Log and Sessions are
// required; the others are optional: nil turns the feature off.
type Deps struct {
	Log      Log
	Sessions Sessions
	// Groups is the engine side of consumer groups (nil: no groups).
	Groups Groups
	// AckKey is a key shared by every node: it binds a group delivery's
	// ack id to its group and connection (required with Groups).
	AckKey []byte
	// Bus reaches the other nodes of a cluster (nil: a single node).
	Bus Bus
	// DecodePerms turns a connection's Perms, JSON-encoded by the node
	// that holds it, back into Perms (required with Bus when namespaces
	// have permissions; nil decodes every remote connection as open).
	DecodePerms func([]byte) (Perms, error)
	Logger      *slog.Logger
	// Observer is told of joins, leaves and dead letters on this node
	// (observe.go; nil: nobody).
	Observer Observer
}

// Config holds the hub's node-wide bounds. Zero fields take DefaultConfig's.
type Config struct {
	// ResumeBuffer bounds the live messages held for a connection while its
	// replay runs; past it the connection is closed and resumes again.
	ResumeBuffer int
	// MaxInFlight bounds a consumer group's max_in_flight (0: no bound): a
	// member's deliveries must fit its connection's outbound queue, or a
	// member that takes its time to read is cut as a slow consumer (main
	// sets it to the SSE queue size).
	MaxInFlight int
	// CatchUpWait bounds how long a resume waits for this node's live feed
	// to reach its position (a node that is behind the cluster: catchup.go)
	// before it is answered 503.
	CatchUpWait time.Duration
}

// DefaultConfig is the hub's default bounds.
var DefaultConfig = Config{ResumeBuffer: 1024, CatchUpWait: 5 * time.Second}

// NamespaceConfig holds one namespace's settings. Zero fields take
// DefaultNamespaceConfig's.
type NamespaceConfig struct {
	// RecoveryWindow is how long a disconnected connection's id and rooms
	// are kept for resume.
	RecoveryWindow time.Duration
	// MaxRoomsPerConn bounds the rooms one connection may be in.
	MaxRoomsPerConn int
	// HistoryLimit is the most messages one history page returns.
	HistoryLimit int
	// Retention is the namespace log's storage limits.
	Retention Retention
	// Group is the delivery policy of consumer groups created in this
	// namespace without their own.
	Group GroupConfig
	// Metrics receives the namespace's counts (nil: none).
	Metrics Metrics
}

// DefaultNamespaceConfig is the settings of a namespace that sets none.
var DefaultNamespaceConfig = NamespaceConfig{
	RecoveryWindow: 2 * time.Minute, MaxRoomsPerConn: 100, HistoryLimit: 1000,
	Retention: DefaultRetention, Group: DefaultGroupConfig,
}

// Or returns c with its unset fields taken from d.
func (c NamespaceConfig) Or(d NamespaceConfig) NamespaceConfig {
	if c.RecoveryWindow <= 0 {
		c.RecoveryWindow = d.RecoveryWindow
	}
	if c.MaxRoomsPerConn <= 0 {
		c.MaxRoomsPerConn = d.MaxRoomsPerConn
	}
	if c.HistoryLimit <= 0 {
		c.HistoryLimit = d.HistoryLimit
	}
	c.Retention = c.Retention.Or(d.Retention)
	c.Group = c.Group.Or(d.Group)
	if c.Metrics == nil {
		c.Metrics = d.Metrics
	}
	return c
}

// Hub is the registry of namespaces on this node.
type Hub struct {
	log         Log
	sess        Sessions
	groups      Groups // nil: consumer groups unavailable
	ackKey      []byte
	bus         Bus // nil: a single node
	decodePerms func([]byte) (Perms, error)
	observer    Observer // nil: none
	logger      *slog.Logger
	cfg         Config
	saver       *saver

	mu         sync.RWMutex
	namespaces map[string]*Namespace
}

// New returns a hub built on d. With a Bus, it starts answering the other
// nodes' control requests at once.
func New(d Deps, cfg Config) (*Hub, error) {
	if d.Log == nil || d.Sessions == nil {
		return nil, errors.New("hub: a Log and a Sessions are required")
	}
	if cfg.ResumeBuffer <= 0 {
		cfg.ResumeBuffer = DefaultConfig.ResumeBuffer
	}
	if cfg.CatchUpWait <= 0 {
		cfg.CatchUpWait = DefaultConfig.CatchUpWait
	}
	if d.Groups != nil && len(d.AckKey) < 16 {
		return nil, errors.New("hub: consumer groups need an ack key of at least 16 bytes")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Hub{log: d.Log, sess: d.Sessions, groups: d.Groups, ackKey: d.AckKey, bus: d.Bus, decodePerms: d.DecodePerms,
		observer: d.Observer, logger: d.Logger, cfg: cfg, saver: newSaver(d.Logger), namespaces: map[string]*Namespace{}}
	if h.bus != nil {
		if err := h.bus.Serve(h.control); err != nil {
			return nil, fmt.Errorf("hub: serve control requests: %w", err)
		}
	}
	return h, nil
}

// AddNamespace opens namespace name's log with cfg.Retention, registers the
// namespace and starts following its log: every message stored from now on
// reaches this node's connections.
func (h *Hub) AddNamespace(ctx context.Context, name string, cfg NamespaceConfig) (*Namespace, error) {
	if !ValidNamespace(name) {
		return nil, fmt.Errorf("namespace %q: %w", name, ErrInvalid)
	}
	cfg = cfg.Or(DefaultNamespaceConfig)
	if err := h.checkInFlight(cfg.Group.MaxInFlight); err != nil {
		return nil, fmt.Errorf("namespace %s: group defaults: %w", name, err)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	h.mu.RLock()
	_, dup := h.namespaces[name]
	h.mu.RUnlock()
	if dup {
		return nil, fmt.Errorf("namespace %q already exists: %w", name, ErrInvalid)
	}
	st, err := h.log.OpenNamespace(ctx, name, cfg.Retention)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", name, err)
	}
	ns := &Namespace{
		name: name, cfg: cfg, hub: h, epoch: st.Epoch,
		conns: map[ConnID]*Conn{}, tokens: map[[32]byte]*Conn{}, rooms: map[string]map[*Conn]struct{}{},
		groups: map[GroupKey]*group{},
	}
	// The last message already stored was never fanned out live: new
	// connections start after it.
	ns.applied.Store(st.Last)
	h.mu.Lock()
	if _, ok := h.namespaces[name]; ok {
		h.mu.Unlock()
		return nil, fmt.Errorf("namespace %q already exists: %w", name, ErrInvalid)
	}
	h.namespaces[name] = ns
	h.mu.Unlock()
	if err := h.log.Follow(ctx, name, st.Last, ns.apply); err != nil {
		h.mu.Lock()
		delete(h.namespaces, name)
		h.mu.Unlock()
		return nil, fmt.Errorf("namespace %s: follow: %w", name, err)
	}
	if err := ns.followVolatile(ctx); err != nil {
		h.mu.Lock()
		delete(h.namespaces, name)
		h.mu.Unlock()
		return nil, fmt.Errorf("namespace %s: follow volatile messages: %w", name, err)
	}
	return ns, nil
}

// checkInFlight refuses a max_in_flight that a member's queue cannot hold.
func (h *Hub) checkInFlight(n int) error {
	if h.cfg.MaxInFlight > 0 && n > h.cfg.MaxInFlight {
		return fmt.Errorf("max_in_flight %d is more than a connection's queue holds (%d, the server's queue size): %w", n, h.cfg.MaxInFlight, ErrInvalid)
	}
	return nil
}

// Namespace returns the namespace called name or ErrNotFound.
func (h *Hub) Namespace(name string) (*Namespace, error) {
	h.mu.RLock()
	ns := h.namespaces[name]
	h.mu.RUnlock()
	if ns == nil {
		return nil, fmt.Errorf("namespace %q: %w", name, ErrNotFound)
	}
	return ns, nil
}

// Namespaces lists the namespaces by name.
func (h *Hub) Namespaces() []*Namespace {
	h.mu.RLock()
	out := make([]*Namespace, 0, len(h.namespaces))
	for _, ns := range h.namespaces {
		out = append(out, ns)
	}
	h.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// Run refreshes the sessions of this node's live connections until ctx
// ends, every third of the shortest recovery window, so that their clients
// can resume within the window on any node — or on this one after a crash
// (Namespace.persist saves them as they change).
func (h *Hub) Run(ctx context.Context) {
	every := time.Duration(1<<63 - 1)
	for _, ns := range h.Namespaces() {
		every = min(every, ns.cfg.RecoveryWindow/3)
	}
	t := time.NewTicker(max(every, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.saver.wake:
		case <-t.C:
			for _, ns := range h.Namespaces() {
				for _, c := range ns.localConns() {
					h.saver.mark(c)
				}
			}
		}
		h.saver.flush(ctx)
	}
}

// Close ends every connection (they may resume elsewhere or after restart)
// and refuses new ones: a stream opening meanwhile gets ErrClosed. It does
// not wait for the connections' handlers to return.
func (h *Hub) Close() {
	for _, ns := range h.Namespaces() {
		ns.close()
	}
}

// Stop stops every consumer group loop on this node and waits for them.
// Call it after the connections' handlers have returned.
func (h *Hub) Stop() {
	for _, ns := range h.Namespaces() {
		ns.stopGroups()
	}
}

const idLen = 22 // 128 random bits, base64url without padding

func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // cannot happen on Linux ≥ 3.17
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func validToken(s string) bool { return ValidConnID(s) }

func tokenHash(token string) [32]byte { return sha256.Sum256([]byte("roomcast-token:" + token)) }

// sessionKey names a session in Sessions by its token's hash (tokenHash),
// without revealing the token.
func sessionKey(ns string, h [32]byte) string {
	return ns + "." + hex.EncodeToString(h[:16])
}
