package hub

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// Log is the durable, ordered store behind the hub (internal/engine). Every
// method is safe for concurrent use.
type Log interface {
	// Publish stores o (its Body already encoded) in namespace ns and returns
	// its position once stored. dup is true when o.Key was seen within the
	// dedupe window: pos is then the first publish's position.
	Publish(ctx context.Context, ns string, o *Outgoing) (pos Position, dup bool, err error)
	// Read calls fn, in sequence order, for every stored message of ns with
	// from <= seq <= to that can match f. It stops early when fn returns
	// false. to == 0 means up to the last message at the time of the call.
	Read(ctx context.Context, ns string, from, to uint64, f Filter, fn func(*Message) bool) error
	// State returns the namespace log's epoch and first and last sequences.
	State(ctx context.Context, ns string) (LogState, error)
	// Gap reports whether retention may have removed a message matching f
	// with a sequence greater than after.
	Gap(ctx context.Context, ns string, after uint64, f Filter) (bool, error)
}

// LogState describes a namespace log.
type LogState struct {
	Epoch       string
	First, Last uint64
}

// Filter narrows a Read to what a connection can receive: messages to any
// of Rooms, to the connection Conn, to several rooms, and to the whole
// namespace. A nil Rooms and empty Conn still match namespace-wide messages.
type Filter struct {
	Rooms []string
	Conn  ConnID
}

// Sessions keeps what a disconnected connection needs to be restored — its
// id and rooms — for the recovery window, across restarts and nodes.
type Sessions interface {
	// Save keeps s under key; the recovery window is checked when it is
	// taken back (Namespace.reclaim), the store expires what is older than
	// the longest window.
	Save(ctx context.Context, key string, s Session) error
	// Take returns and removes the session; ok is false when there is none.
	Take(ctx context.Context, key string) (s Session, ok bool, err error)
}

// Session is a disconnected connection's restorable state.
type Session struct {
	NS    string            `json:"ns"`
	ID    ConnID            `json:"id"`
	User  string            `json:"user,omitempty"`
	Rooms map[string]uint64 `json:"rooms"`
	Saved time.Time         `json:"saved"`
	// Disconnected marks a connection closed on request: it is not
	// restored, and its client is told to stop reconnecting.
	Disconnected bool `json:"disconnected,omitempty"`
	// Live marks the record of a connection still open (kept in a
	// cluster, refreshed by KeepSessions).
	Live bool `json:"live,omitempty"`
}

// Sink is the outbound side of one connection (implemented by sse).
type Sink interface {
	// Send enqueues m without blocking; it returns false when the
	// connection's queue is full.
	Send(m *Message) bool
	// SendWait enqueues m, waiting while the queue is full (replay uses it:
	// a resuming client is paced by its own reading speed).
	SendWait(ctx context.Context, m *Message) error
	// Close ends the connection with err; it does not block and may be
	// called more than once.
	Close(err error)
}

// Config holds the hub's bounds. Zero values take the documented defaults.
type Config struct {
	// ResumeBuffer bounds the live messages held for a connection while its
	// replay runs (default 1024); past it the connection is closed and
	// resumes again.
	ResumeBuffer int
}

// NamespaceConfig holds one namespace's settings.
type NamespaceConfig struct {
	// RecoveryWindow is how long a disconnected connection's id and rooms
	// are kept for resume (default 2m).
	RecoveryWindow time.Duration
	// MaxRoomsPerConn bounds the rooms one connection may be in (default 100).
	MaxRoomsPerConn int
	// HistoryLimit is the most messages one history page returns (default 1000).
	HistoryLimit int
	// Group is the delivery policy of consumer groups created in this
	// namespace without their own (defaults: DefaultGroupConfig).
	Group GroupConfig
	// Metrics receives the namespace's counts (nil: none).
	Metrics Metrics
}

// Hub is the registry of namespaces on this node.
type Hub struct {
	log    Log
	sess   Sessions
	logger *slog.Logger
	cfg    Config

	groups Groups // nil: consumer groups unavailable
	ackKey []byte
	bus    Bus // nil: a single node

	mu         sync.RWMutex
	namespaces map[string]*Namespace
}

// EnableGroups turns consumer groups on, with the engine's groups and the
// cluster-wide key that binds ack ids to connections.
func (h *Hub) EnableGroups(g Groups, ackKey []byte) {
	h.groups = g
	h.ackKey = ackKey
}

// Stop stops every consumer group loop on this node and waits for them.
// Call it after the connections' handlers have returned.
func (h *Hub) Stop() {
	for _, ns := range h.Namespaces() {
		ns.stopGroups()
	}
}

// New returns a hub storing through log and keeping sessions in sess.
func New(log Log, sess Sessions, logger *slog.Logger, cfg Config) *Hub {
	if cfg.ResumeBuffer <= 0 {
		cfg.ResumeBuffer = 1024
	}
	return &Hub{log: log, sess: sess, logger: logger, cfg: cfg, namespaces: map[string]*Namespace{}}
}

// AddNamespace registers namespace name, whose log has epoch and whose last
// message already stored (and so never fanned out live) is applied.
func (h *Hub) AddNamespace(name string, cfg NamespaceConfig, epoch string, applied uint64) (*Namespace, error) {
	if !ValidNamespace(name) {
		return nil, fmt.Errorf("namespace %q: %w", name, ErrInvalid)
	}
	if cfg.RecoveryWindow <= 0 {
		cfg.RecoveryWindow = 2 * time.Minute
	}
	if cfg.MaxRoomsPerConn <= 0 {
		cfg.MaxRoomsPerConn = 100
	}
	if cfg.HistoryLimit <= 0 {
		cfg.HistoryLimit = 1000
	}
	cfg.Group.defaults(DefaultGroupConfig)
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	ns := &Namespace{
		name: name, cfg: cfg, hub: h, epoch: epoch,
		conns: map[ConnID]*Conn{}, tokens: map[[32]byte]*Conn{}, rooms: map[string]map[*Conn]struct{}{},
		groups: map[string]*group{},
	}
	ns.applied.Store(applied)
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.namespaces[name]; ok {
		return nil, fmt.Errorf("namespace %q already exists: %w", name, ErrInvalid)
	}
	h.namespaces[name] = ns
	return ns, nil
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

// Close ends every connection (they may resume elsewhere or after restart)
// and refuses new ones: a stream opening meanwhile gets ErrClosed. It does
// not wait for the connections' handlers to return.
func (h *Hub) Close() {
	for _, ns := range h.Namespaces() {
		ns.close()
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
