package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/auth"
	"github.com/roomcast/roomcast/internal/hub"
	"github.com/roomcast/roomcast/internal/hub/hubtest"
)

// The API rig: the locked rig's idea (the real router and middleware over
// an in-memory hub, requests through httptest) with the knobs the other
// handlers need — a namespace config, a hub config, consumer groups on an
// in-memory engine (fakeGroups) and the API's own Config.

type rigOptions struct {
	sec    Security
	ns     hub.NamespaceConfig
	hub    hub.Config
	groups bool          // consumer groups on a fakeGroups
	config func(*Config) // changes the API's Config before New
	logger *slog.Logger  // nil: discard
}

type apiRig struct {
	*lockedRig
	ns      *hub.Namespace
	groups  *fakeGroups
	tickets *memTickets
}

const rigAckKey = "0123456789abcdef0123456789abcdef"

func newAPIRig(t *testing.T, o rigOptions) *apiRig {
	t.Helper()
	if o.sec.Verifier == nil {
		v, err := auth.New(auth.Config{
			Audience: "roomcast",
			Keys:     []auth.KeyConfig{{Alg: "HS256", Secret: rigSecret}},
			APIKeys:  []string{rigAPIKey},
		}, func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		o.sec.Verifier = v
	}
	logger := o.logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	rig := &apiRig{lockedRig: &lockedRig{streams: &recStreams{}, log: &hubtest.MemLog{}}, tickets: &memTickets{}}
	deps := hub.Deps{Log: rig.log, Sessions: &hubtest.MemSessions{}, Logger: logger}
	if o.groups {
		rig.groups = newFakeGroups()
		deps.Groups, deps.AckKey = rig.groups, []byte(rigAckKey)
	}
	h, err := hub.New(deps, o.hub)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := h.AddNamespace(context.Background(), "default", o.ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	rig.hub, rig.ns = h, ns
	cfg := Config{
		Hub: h, Streams: rig.streams, Logger: logger, Tickets: rig.tickets,
		Namespaces: []Namespace{{Name: "default", MaxBody: 4 << 10, Security: o.sec}},
	}
	if o.config != nil {
		o.config(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rig.router = r
	return rig
}

// publish stores a message to rooms (none: the whole namespace) and returns
// it as stored.
func (rig *apiRig) publish(t *testing.T, event string, rooms ...string) *hub.Message {
	t.Helper()
	pos, _, err := rig.ns.Publish(context.Background(), &hub.Outgoing{Event: event, Data: json.RawMessage(`{"n":1}`), Rooms: rooms})
	if err != nil {
		t.Fatal(err)
	}
	var got *hub.Message
	err = rig.log.Read(context.Background(), "default", pos.Seq, pos.Seq, hub.Filter{Rooms: rooms}, func(m *hub.Message) bool {
		got = m
		return false
	})
	if err != nil || got == nil {
		t.Fatalf("read back %s: %v", pos, err)
	}
	return got
}

// decodeJSON decodes a JSON answer with code into v.
func decodeJSON(t *testing.T, rec *httptest.ResponseRecorder, code int, v any) {
	t.Helper()
	if rec.Code != code {
		t.Fatalf("status %d, want %d (%s)", rec.Code, code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json (%s)", ct, rec.Body)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control %q, want no-store", cc)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		t.Fatalf("body %s: %v", rec.Body, err)
	}
}

// wantField checks that rec is a 400 naming field among its errors, with a
// message containing msg.
func wantField(t *testing.T, rec *httptest.ResponseRecorder, field, msg string) {
	t.Helper()
	p := wantProblem(t, rec, http.StatusBadRequest, "field "+field)
	for _, fe := range p.Errors {
		if fe.Field == field && strings.Contains(fe.Message, msg) {
			if !strings.Contains(p.Detail, field+" "+fe.Message) {
				t.Fatalf("detail %q does not say %q", p.Detail, field+" "+fe.Message)
			}
			return
		}
	}
	t.Fatalf("errors %+v (detail %q), want field %q with %q", p.Errors, p.Detail, field, msg)
}

// recSink records what a connection is sent.
type recSink struct {
	mu     sync.Mutex
	events []hub.Event
	closed []error
}

func (s *recSink) Hello(ev hub.Event) error { s.add(ev); return nil }
func (s *recSink) Send(ev hub.Event) bool   { s.add(ev); return true }
func (s *recSink) SendWait(_ context.Context, ev hub.Event) error {
	s.add(ev)
	return nil
}

func (s *recSink) add(ev hub.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, ev)
}

func (s *recSink) Close(err error, _ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = append(s.closed, err)
}

// named returns the events called name.
func (s *recSink) named(name string) []hub.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []hub.Event
	for _, ev := range s.events {
		if ev.Name == name {
			out = append(out, ev)
		}
	}
	return out
}

// fakeGroups is the engine side of consumer groups in memory, built on the
// hub's exported Queue and GroupAdmin: a queue of deliveries per group, what
// was settled (in order), an ack floor, dead letters.
type fakeGroups struct {
	mu       sync.Mutex
	cfg      map[hub.GroupKey]hub.GroupConfig
	ready    map[hub.GroupKey][]hub.Delivery
	out      map[string]outDelivery // delivered and not settled, by handle
	settles  []string               // "op handle delay"
	floor    map[hub.GroupKey]uint64
	dead     map[hub.GroupKey][]hub.DeadLetter
	replayed []uint64
	dropped  []uint64
	wake     chan struct{}
}

var _ hub.Groups = (*fakeGroups)(nil)

type outDelivery struct {
	k hub.GroupKey
	d hub.Delivery
}

func newFakeGroups() *fakeGroups {
	return &fakeGroups{cfg: map[hub.GroupKey]hub.GroupConfig{}, ready: map[hub.GroupKey][]hub.Delivery{},
		out: map[string]outDelivery{}, floor: map[hub.GroupKey]uint64{}, dead: map[hub.GroupKey][]hub.DeadLetter{},
		wake: make(chan struct{}, 1)}
}

func (q *fakeGroups) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// offer makes m ready for group k.
func (q *fakeGroups) offer(k hub.GroupKey, m *hub.Message) {
	q.mu.Lock()
	q.ready[k] = append(q.ready[k], hub.Delivery{Msg: m, Count: 1, Handle: fmt.Sprintf("%s/%d", k.Name, m.Pos.Seq)})
	q.mu.Unlock()
	q.poke()
}

func (q *fakeGroups) settled() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.settles)
}

var settleNames = map[hub.Settle]string{hub.Ack: "ack", hub.Nack: "nack", hub.Term: "term", hub.Progress: "progress"}

func (q *fakeGroups) EnsureGroup(_ context.Context, _ string, g hub.GroupKey, cfg, defaults hub.GroupConfig, update bool) (hub.GroupConfig, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	cur, ok := q.cfg[g]
	if ok && !update {
		return cur, nil
	}
	if ok {
		defaults = cur
	}
	cfg = cfg.Or(defaults.Or(hub.DefaultGroupConfig))
	q.cfg[g] = cfg
	return cfg, nil
}

func (q *fakeGroups) Pull(ctx context.Context, _ string, g hub.GroupKey, n int, wait time.Duration, fn func(hub.Delivery)) error {
	timeout := time.After(wait)
	for got := 0; got < n; {
		q.mu.Lock()
		if r := q.ready[g]; len(r) > 0 {
			d := r[0]
			q.ready[g] = r[1:]
			q.out[d.Handle] = outDelivery{g, d}
			q.mu.Unlock()
			got++
			fn(d)
			continue
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-timeout:
			return nil
		case <-q.wake:
		}
	}
	return nil
}

func (q *fakeGroups) Settle(_ context.Context, handles []string, op hub.Settle, delay time.Duration) ([]bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	done := make([]bool, len(handles))
	for i, h := range handles {
		q.settles = append(q.settles, fmt.Sprintf("%s %s %v", settleNames[op], h, delay))
		o, ok := q.out[h]
		if op != hub.Progress {
			delete(q.out, h)
		}
		if ok && op == hub.Nack {
			// Delivered again after the delay, by the next pull.
			o.d.Count++
			time.AfterFunc(delay, func() {
				q.mu.Lock()
				q.ready[o.k] = append([]hub.Delivery{o.d}, q.ready[o.k]...)
				q.mu.Unlock()
				q.poke()
			})
		}
		done[i] = true
	}
	return done, nil
}

func (q *fakeGroups) Park(context.Context, string, hub.GroupKey, hub.Delivery, string) error {
	return nil
}

func (q *fakeGroups) ListGroups(_ context.Context, _ string, room string) ([]string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []string
	for k := range q.cfg {
		if k.Room == room {
			out = append(out, k.Name)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out))) // the hub orders them
	return out, nil
}

func (q *fakeGroups) GroupState(_ context.Context, _ string, g hub.GroupKey) (hub.GroupState, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	cfg, ok := q.cfg[g]
	if !ok {
		return hub.GroupState{}, fmt.Errorf("group %s: %w", g.Name, hub.ErrNotFound)
	}
	st := hub.GroupState{Key: g, Config: cfg, Waiting: uint64(len(q.ready[g])), AckFloor: q.floor[g], DeadLetters: uint64(len(q.dead[g]))}
	for h := range q.out {
		if strings.HasPrefix(h, g.Name+"/") {
			st.Unacked++
		}
	}
	return st, nil
}

func (q *fakeGroups) DeleteGroup(_ context.Context, _ string, g hub.GroupKey) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.cfg[g]; !ok {
		return fmt.Errorf("group %s: %w", g.Name, hub.ErrNotFound)
	}
	delete(q.cfg, g)
	return nil
}

func (q *fakeGroups) DeadLetters(_ context.Context, _ string, g hub.GroupKey, limit int) ([]hub.DeadLetter, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	d := q.dead[g]
	return slices.Clone(d[:min(limit, len(d))]), nil
}

// takeDead removes dead letter seq of g.
func (q *fakeGroups) takeDead(g hub.GroupKey, seq uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, d := range q.dead[g] {
		if d.Seq == seq {
			q.dead[g] = slices.Delete(q.dead[g], i, i+1)
			return nil
		}
	}
	return fmt.Errorf("dead letter %d: %w", seq, hub.ErrNotFound)
}

func (q *fakeGroups) ReplayDead(_ context.Context, _ string, g hub.GroupKey, seq uint64) error {
	if err := q.takeDead(g, seq); err != nil {
		return err
	}
	q.mu.Lock()
	q.replayed = append(q.replayed, seq)
	q.mu.Unlock()
	return nil
}

func (q *fakeGroups) DropDead(_ context.Context, _ string, g hub.GroupKey, seq uint64) error {
	if err := q.takeDead(g, seq); err != nil {
		return err
	}
	q.mu.Lock()
	q.dropped = append(q.dropped, seq)
	q.mu.Unlock()
	return nil
}
