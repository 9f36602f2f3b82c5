// Package hubtest provides in-memory implementations of the hub's seams for
// other packages' tests, and the conformance suite that holds every Log —
// these fakes and internal/engine alike — to the contract documented on
// hub.Log, so that a fake cannot drift from the real engine.
//
// It imports only the hub and the standard library.
package hubtest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/roomcast/roomcast/internal/hub"
)

// MemLog is a hub.Log in memory: one slice of messages per namespace,
// per-room retention (MaxMsgsPerRoom), idempotency keys, and a live feed
// that calls the follower synchronously, in order, from Publish.
type MemLog struct {
	// Epoch names every namespace's log (default "e1").
	Epoch string

	mu  sync.Mutex
	nss map[string]*memNS

	// The volatile feeds (capabilities.go), by namespace; vmu also makes
	// them one message at a time, as a subscription's goroutine does.
	vmu       sync.Mutex
	volatiles map[string]func(*hub.Message)
}

type memNS struct {
	r       hub.Retention
	msgs    []*hub.Message    // seq n is msgs[n-1]; nil once removed by retention
	removed map[uint64]string // seq → subject of what retention removed
	first   uint64
	keys    map[string]hub.Position
	follow  func(*hub.Message)
	after   uint64
}

var _ hub.Log = (*MemLog)(nil)

func (l *MemLog) ns(name string) (*memNS, error) {
	n := l.nss[name]
	if n == nil {
		return nil, fmt.Errorf("namespace %q: %w", name, hub.ErrNotFound)
	}
	return n, nil
}

func (l *MemLog) epoch() string {
	if l.Epoch == "" {
		return "e1"
	}
	return l.Epoch
}

// OpenNamespace implements hub.Log.
func (l *MemLog) OpenNamespace(_ context.Context, name string, r hub.Retention) (hub.LogState, error) {
	if !hub.ValidNamespace(name) {
		return hub.LogState{}, fmt.Errorf("namespace %q: %w", name, hub.ErrInvalid)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.nss == nil {
		l.nss = map[string]*memNS{}
	}
	n := l.nss[name]
	if n == nil {
		n = &memNS{first: 1, keys: map[string]hub.Position{}, removed: map[uint64]string{}}
		l.nss[name] = n
	}
	n.r = r.Or(hub.DefaultRetention)
	return hub.LogState{Epoch: l.epoch(), First: n.first, Last: uint64(len(n.msgs))}, nil
}

// Follow implements hub.Log: fn is called by Publish, under the log's lock,
// so one message at a time and in sequence order. Messages stored between
// after and the call are handed over at once.
func (l *MemLog) Follow(_ context.Context, name string, after uint64, fn func(*hub.Message)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.ns(name)
	if err != nil {
		return err
	}
	n.follow, n.after = fn, after
	for seq := after + 1; seq <= uint64(len(n.msgs)); seq++ {
		if m := n.msgs[seq-1]; m != nil {
			fn(m)
		}
	}
	return nil
}

// subjectOf keys a message for per-room retention, as the engine's
// subjects do.
func subjectOf(m *hub.Message) string {
	switch {
	case m.To != "":
		return "c." + string(m.To)
	case m.GroupOnly:
		return "g." + m.Rooms[0]
	case len(m.Rooms) == 1:
		return "r." + m.Rooms[0]
	case len(m.Rooms) > 1:
		return "m"
	}
	return "a"
}

// Publish implements hub.Log.
func (l *MemLog) Publish(_ context.Context, name string, o *hub.Outgoing) (hub.Position, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.ns(name)
	if err != nil {
		return hub.Position{}, false, err
	}
	if len(o.Body) < 2 || o.Body[0] != '{' || !json.Valid(o.Body) {
		return hub.Position{}, false, fmt.Errorf("body is not a JSON object: %w", hub.ErrInvalid)
	}
	if o.Key != "" {
		if p, ok := n.keys[o.Key]; ok {
			return p, true, nil
		}
	}
	pos := hub.Position{Epoch: l.epoch(), Seq: uint64(len(n.msgs)) + 1}
	m := &hub.Message{Pos: pos, Event: o.Event, Rooms: slices.Clone(o.Rooms), To: o.To, From: o.From,
		Except: slices.Clone(o.Except), Notice: o.Notice, Time: time.Now(), Body: hub.WithID(o.Body, pos.String())}
	n.msgs = append(n.msgs, m)
	if o.Key != "" {
		n.keys[o.Key] = pos
	}
	n.retain(subjectOf(m))
	if n.follow != nil && pos.Seq > n.after {
		n.follow(m)
	}
	return pos, false, nil
}

// retain removes the oldest messages of subject past MaxMsgsPerRoom.
func (n *memNS) retain(subject string) {
	if n.r.MaxMsgsPerRoom <= 0 {
		return
	}
	var seqs []int
	for i, m := range n.msgs {
		if m != nil && subjectOf(m) == subject {
			seqs = append(seqs, i)
		}
	}
	for len(seqs) > int(n.r.MaxMsgsPerRoom) {
		n.msgs[seqs[0]] = nil
		n.removed[uint64(seqs[0])+1] = subject
		seqs = seqs[1:]
	}
	for n.first <= uint64(len(n.msgs)) && n.msgs[n.first-1] == nil {
		n.first++
	}
}

// Read implements hub.Log.
func (l *MemLog) Read(ctx context.Context, name string, from, to uint64, f hub.Filter, fn func(*hub.Message) bool) error {
	l.mu.Lock()
	n, err := l.ns(name)
	if err != nil {
		l.mu.Unlock()
		return err
	}
	last := uint64(len(n.msgs))
	if to == 0 || to > last {
		to = last
	}
	var batch []*hub.Message
	for seq := max(from, 1); seq <= to; seq++ {
		if m := n.msgs[seq-1]; m != nil && filterMatch(f, m) {
			batch = append(batch, m)
		}
	}
	l.mu.Unlock()
	for _, m := range batch {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !fn(m) {
			return nil
		}
	}
	return nil
}

// filterMatch is what an engine does with a Filter: subjects, not joins.
func filterMatch(f hub.Filter, m *hub.Message) bool {
	switch {
	case m.GroupOnly:
		return false
	case m.To != "":
		return m.To == f.Conn
	case len(m.Rooms) == 1:
		return slices.Contains(f.Rooms, m.Rooms[0])
	}
	return true // namespace-wide and multi-room: every reader gets them
}

// State implements hub.Log.
func (l *MemLog) State(_ context.Context, name string) (hub.LogState, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.ns(name)
	if err != nil {
		return hub.LogState{}, err
	}
	return hub.LogState{Epoch: l.epoch(), First: n.first, Last: uint64(len(n.msgs))}, nil
}

// Gap implements hub.Log: whether retention removed a message stored after
// `after` that a reader with filter f would have read.
func (l *MemLog) Gap(_ context.Context, name string, after uint64, f hub.Filter) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.ns(name)
	if err != nil {
		return false, err
	}
	for seq, subject := range n.removed {
		if seq > after && subjectMatches(f, subject) {
			return true, nil
		}
	}
	return false, nil
}

func subjectMatches(f hub.Filter, subject string) bool {
	switch {
	case subject == "a", subject == "m":
		return true
	case strings.HasPrefix(subject, "r."):
		return slices.Contains(f.Rooms, subject[2:])
	case strings.HasPrefix(subject, "c."):
		return f.Conn != "" && subject[2:] == string(f.Conn)
	}
	return false
}

// MemSessions is a hub.Sessions in memory.
type MemSessions struct {
	mu sync.Mutex
	m  map[string]hub.Session
}

var _ hub.Sessions = (*MemSessions)(nil)

// Save implements hub.Sessions.
func (s *MemSessions) Save(_ context.Context, key string, sess hub.Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]hub.Session{}
	}
	s.m[key] = sess
	return nil
}

// Take implements hub.Sessions.
func (s *MemSessions) Take(_ context.Context, key string) (hub.Session, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[key]
	delete(s.m, key)
	return sess, ok, nil
}

// Len returns the number of sessions kept.
func (s *MemSessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// Keys returns the session keys, for tests that check what they reveal.
func (s *MemSessions) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
