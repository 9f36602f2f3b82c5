package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomcast/roomcast/internal/hub"
)

// Config is the webhooks of every namespace and how they are delivered.
// Zero fields take DefaultConfig's.
type Config struct {
	// Namespaces maps a namespace to its webhooks.
	Namespaces map[string]Namespace
	// Timeout bounds one attempt (connect, send, answer).
	Timeout time.Duration
	// MaxAttempts is how many attempts a webhook gets before it is parked.
	MaxAttempts int
	// Backoff is the wait after the first failed attempt; it doubles after
	// each failure up to MaxBackoff (plus up to 20% jitter, and at least a
	// 429's or 503's Retry-After, within MaxBackoff).
	Backoff, MaxBackoff time.Duration
	// Workers bounds the attempts in progress per endpoint on this node.
	Workers int
	// QueueSize bounds the joins, leaves and dead letters of this node
	// waiting to be stored in the outbox (past it they are dropped and
	// counted: roomcast_webhook_events_dropped_total).
	QueueSize int
	// UserAgent of the POSTs.
	UserAgent string
}

// DefaultConfig is the delivery policy of a Config that sets none.
var DefaultConfig = Config{Timeout: 10 * time.Second, MaxAttempts: 20, Backoff: time.Second, MaxBackoff: 15 * time.Minute,
	Workers: 4, QueueSize: 10000, UserAgent: "roomcast-webhooks"}

// DefaultDebounce is the debounce of room.occupied and room.vacated.
const DefaultDebounce = 5 * time.Second

// Namespace is one namespace's webhooks.
type Namespace struct {
	// Debounce: a room is announced occupied (vacated) once it has been
	// so, on every node, for this long since its last change.
	Debounce  time.Duration
	Endpoints []Endpoint
}

// Endpoint is one receiver of a namespace's webhooks.
type Endpoint struct {
	URL    string
	Events []string
	// Secret signs the POSTs (at least MinSecret bytes).
	Secret []byte
}

// Outbox is the durable queue of webhooks to send (internal/engine's
// Outbox implements it). Contract: safe for concurrent use.
type Outbox interface {
	// Enqueue stores body for endpoint (a key of [A-Za-z0-9_-]) before it
	// returns; a second Enqueue of id within the outbox's dedupe window is
	// a no-op.
	Enqueue(ctx context.Context, endpoint, id string, body []byte) error
	// Deliver hands endpoint's webhooks to try, up to workers at a time on
	// this node, shared with the other nodes, until ctx ends. try says
	// what became of one: delivered (0, ""), to retry after retryIn, or
	// parked with a reason.
	Deliver(ctx context.Context, endpoint string, workers int,
		try func(ctx context.Context, id string, body []byte, attempt int, stored time.Time) (retryIn time.Duration, park string)) error
	// Backlog reads endpoint's undelivered webhooks: how many, how many
	// of them were tried twice or more, and when the oldest was stored.
	Backlog(ctx context.Context, endpoint string) (pending, retrying uint64, oldest time.Time, err error)
}

// Occupancy tracks rooms with members on any node and announces their
// changes once per cluster (internal/engine's Occupancy implements it).
type Occupancy interface {
	// Set records this node's member count of a room; it does not block.
	Set(ns, room string, n int)
	// Run announces each change of a room's occupancy once its debounce
	// has passed, through announce, which must store it durably (id is its
	// idempotency key) before returning nil; until ctx ends.
	Run(ctx context.Context, debounce func(ns string) time.Duration,
		announce func(ctx context.Context, ns, room string, occupied bool, id string, at time.Time) error) error
	// Waiting returns the rooms waiting for their evaluation, cluster-wide.
	Waiting(ctx context.Context) (uint64, error)
}

// Metrics receives the webhook counts (internal/metrics implements it).
// Implementations must be cheap, non-blocking and safe for concurrent use.
type Metrics interface {
	Sent(ns, event string)
	// Failed counts a failed attempt (it is retried or parked).
	Failed(ns, event string)
	Parked(ns, event string)
	// Dropped counts an event that could not be queued for the outbox.
	Dropped(ns string)
}

// Deps are a Service's collaborators.
type Deps struct {
	Outbox Outbox
	// Occupancy is required when an endpoint wants room.occupied or
	// room.vacated.
	Occupancy Occupancy
	Metrics   Metrics // nil: none
	Logger    *slog.Logger
}

// Service turns what the hub observes into webhooks, stores them in the
// outbox and sends them. It is the hub's Observer.
type Service struct {
	cfg    Config
	out    Outbox
	occ    Occupancy // nil when no namespace wants occupancy
	m      Metrics
	logger *slog.Logger
	client *http.Client
	nss    map[string]*nsHooks
	eps    []*endpoint
	queue  chan queued
	// lastDrop rate-limits the log of dropped events (unix nanoseconds).
	lastDrop atomic.Int64
}

var _ hub.Observer = (*Service)(nil)

type nsHooks struct {
	debounce  time.Duration
	wants     map[string][]*endpoint // event → endpoints
	occupancy bool
}

type endpoint struct {
	key, ns, url string
	secret       []byte
}

// queued is a join, leave or dead letter waiting to be stored (encoded by
// the goroutine that stores it, not on the hub's path).
type queued struct {
	ns, event, id string
	at            time.Time
	data          any
}

// EndpointKey names an endpoint in the outbox: the same URL in the same
// namespace keeps its key (and its pending webhooks) across restarts.
func EndpointKey(ns, rawURL string) string {
	h := sha256.Sum256([]byte(ns + "\n" + rawURL))
	return hex.EncodeToString(h[:10])
}

// New checks cfg and builds the service. It sends nothing before Run.
func New(cfg Config, d Deps) (*Service, error) {
	def := DefaultConfig
	if cfg.Timeout <= 0 {
		cfg.Timeout = def.Timeout
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = def.MaxAttempts
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = def.Backoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = def.MaxBackoff
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.Backoff)
	if cfg.Workers <= 0 {
		cfg.Workers = def.Workers
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = def.QueueSize
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = def.UserAgent
	}
	if d.Outbox == nil {
		return nil, errors.New("webhook: an outbox is required")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = noMetrics{}
	}
	s := &Service{cfg: cfg, out: d.Outbox, m: d.Metrics, logger: d.Logger, nss: map[string]*nsHooks{},
		queue: make(chan queued, cfg.QueueSize)}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = max(cfg.Workers, 2)
	s.client = &http.Client{Transport: tr,
		// A redirect is an answer, not a delivery: the receiver's URL is
		// what the configuration says.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	occupancy := false
	for ns, n := range cfg.Namespaces {
		h := &nsHooks{debounce: n.Debounce, wants: map[string][]*endpoint{}}
		seen := map[string]bool{}
		for i, e := range n.Endpoints {
			if err := checkEndpoint(e); err != nil {
				return nil, fmt.Errorf("webhook: namespace %s: endpoint %d: %w", ns, i+1, err)
			}
			if seen[e.URL] {
				return nil, fmt.Errorf("webhook: namespace %s: endpoint %s is listed twice (list its events once)", ns, e.URL)
			}
			seen[e.URL] = true
			ep := &endpoint{key: EndpointKey(ns, e.URL), ns: ns, url: e.URL, secret: e.Secret}
			s.eps = append(s.eps, ep)
			for _, ev := range e.Events {
				h.wants[ev] = append(h.wants[ev], ep)
			}
		}
		h.occupancy = len(h.wants[RoomOccupied]) > 0 || len(h.wants[RoomVacated]) > 0
		occupancy = occupancy || h.occupancy
		if len(h.wants) > 0 {
			s.nss[ns] = h
		}
	}
	if occupancy {
		if d.Occupancy == nil {
			return nil, errors.New("webhook: room.occupied and room.vacated need an occupancy tracker")
		}
		s.occ = d.Occupancy
	}
	return s, nil
}

func checkEndpoint(e Endpoint) error {
	u, err := url.Parse(e.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("url %q: want an http(s) URL", e.URL)
	}
	if len(e.Events) == 0 {
		return fmt.Errorf("%s: no events: list some of %v", e.URL, Events)
	}
	for _, ev := range e.Events {
		if !ValidEvent(ev) {
			return fmt.Errorf("%s: unknown event %q: want some of %v", e.URL, ev, Events)
		}
	}
	if len(e.Secret) < MinSecret {
		return fmt.Errorf("%s: the signing secret has %d bytes, at least %d are required", e.URL, len(e.Secret), MinSecret)
	}
	return nil
}

// Enabled reports whether any namespace has webhooks.
func (s *Service) Enabled() bool { return len(s.eps) > 0 }

// Member implements hub.Observer: it never blocks.
func (s *Service) Member(ch hub.MemberChange) {
	h := s.nss[ch.NS]
	if h == nil {
		return
	}
	if h.occupancy {
		s.occ.Set(ch.NS, ch.Room, ch.Size)
	}
	ev := MemberLeft
	if ch.Joined {
		ev = MemberJoined
	}
	if len(h.wants[ev]) == 0 {
		return
	}
	s.push(ch.NS, ev, "", ch.At, MemberData{Room: ch.Room, Connection: string(ch.Conn), User: ch.User}) // id: random, when stored
}

// DeadLettered implements hub.Observer: it never blocks.
func (s *Service) DeadLettered(d hub.DeadLettered) {
	h := s.nss[d.NS]
	if h == nil || len(h.wants[MessageDeadLettered]) == 0 {
		return
	}
	// A message parked again (its park was retried) is one event.
	id := derivedID("dead\n" + d.NS + "\n" + d.Group.Room + "\n" + d.Group.Name + "\n" + d.ID)
	s.push(d.NS, MessageDeadLettered, id, d.At, DeadLetterData{Room: d.Group.Room, Group: d.Group.Name, MessageID: d.ID,
		Event: d.Event, Deliveries: d.Deliveries, Reason: d.Reason})
}

func (s *Service) push(ns, event, id string, at time.Time, data any) {
	select {
	case s.queue <- queued{ns: ns, event: event, id: id, at: at, data: data}:
	default:
		s.m.Dropped(ns)
		now := time.Now().UnixNano()
		if last := s.lastDrop.Load(); now-last > int64(10*time.Second) && s.lastDrop.CompareAndSwap(last, now) {
			s.logger.Warn("webhook events dropped: the queue to the outbox is full (the engine is slow or down)",
				"ns", ns, "event", event, "queue_size", s.cfg.QueueSize)
		}
	}
}

// Run stores queued events in the outbox, sends the outbox's webhooks and
// runs occupancy, until ctx ends; then it stores what is still queued
// (within a few seconds) and returns once everything it started has.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, ep := range s.eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := s.out.Deliver(ctx, ep.key, s.cfg.Workers, s.try(ep)); err != nil && ctx.Err() == nil {
					s.logger.Warn("webhook sender", "ns", ep.ns, "url", ep.url, "err", err)
					select {
					case <-ctx.Done():
					case <-time.After(time.Second):
					}
				}
			}
		}()
	}
	if s.occ != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := s.occ.Run(ctx, s.debounce, s.announce); err != nil && ctx.Err() == nil {
					s.logger.Warn("webhook occupancy", "err", err)
					select {
					case <-ctx.Done():
					case <-time.After(time.Second):
					}
				}
			}
		}()
	}
	s.store(ctx)
	wg.Wait()
}

// store moves queued events to the outbox until ctx ends, then what is
// left, for at most 5 seconds.
func (s *Service) store(ctx context.Context) {
	for {
		select {
		case q := <-s.queue:
			s.enqueue(ctx, q)
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			for {
				select {
				case q := <-s.queue:
					s.enqueue(fctx, q)
				default:
					return
				}
			}
		}
	}
}

func (s *Service) enqueue(ctx context.Context, q queued) {
	if q.id == "" {
		q.id = randomID()
	}
	b, err := json.Marshal(Payload{ID: q.id, Type: q.event, NS: q.ns, Time: q.at.UTC(), Data: q.data})
	if err != nil {
		return // cannot happen: the data are plain strings and numbers
	}
	for _, ep := range s.nss[q.ns].wants[q.event] {
		if err := s.out.Enqueue(ctx, ep.key, q.id+"."+ep.key, b); err != nil {
			s.m.Dropped(q.ns)
			s.logger.Warn("webhook not stored", "ns", q.ns, "event", q.event, "id", q.id, "err", err)
		}
	}
}

func (s *Service) debounce(ns string) time.Duration {
	if h := s.nss[ns]; h != nil {
		return h.debounce
	}
	return 0
}

// announce stores a room's change for the endpoints that want it.
func (s *Service) announce(ctx context.Context, ns, room string, occupied bool, id string, at time.Time) error {
	h := s.nss[ns]
	if h == nil {
		return nil
	}
	ev := RoomVacated
	if occupied {
		ev = RoomOccupied
	}
	eps := h.wants[ev]
	if len(eps) == 0 {
		return nil
	}
	wid := derivedID("room\n" + id)
	b, err := json.Marshal(Payload{ID: wid, Type: ev, NS: ns, Time: at.UTC(), Data: RoomData{Room: room}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, ep := range eps {
		if err := s.out.Enqueue(ctx, ep.key, wid+"."+ep.key, b); err != nil {
			return err
		}
	}
	return nil
}

// try makes one attempt at sending a webhook to ep.
func (s *Service) try(ep *endpoint) func(context.Context, string, []byte, int, time.Time) (time.Duration, string) {
	return func(ctx context.Context, _ string, body []byte, attempt int, _ time.Time) (time.Duration, string) {
		var head struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		}
		if json.Unmarshal(body, &head) != nil || head.ID == "" {
			return 0, "not a webhook payload"
		}
		if attempt > s.cfg.MaxAttempts { // its parking failed last time
			return 0, fmt.Sprintf("gave up after %d attempts", s.cfg.MaxAttempts)
		}
		retryAfter, err := s.post(ctx, ep, head.ID, head.Type, body, attempt)
		if err == nil {
			s.m.Sent(ep.ns, head.Type)
			return 0, ""
		}
		if ctx.Err() != nil { // shutting down: not the receiver's failure
			return time.Second, ""
		}
		s.m.Failed(ep.ns, head.Type)
		if attempt >= s.cfg.MaxAttempts {
			s.m.Parked(ep.ns, head.Type)
			s.logger.Warn("webhook parked after its last attempt", "ns", ep.ns, "url", ep.url, "id", head.ID,
				"event", head.Type, "attempts", attempt, "err", err)
			return 0, fmt.Sprintf("gave up after %d attempts; the last: %v", attempt, err)
		}
		wait := s.backoff(attempt, retryAfter)
		s.logger.Debug("webhook attempt failed; retrying", "ns", ep.ns, "url", ep.url, "id", head.ID,
			"attempt", attempt, "retry_in", wait, "err", err)
		return wait, ""
	}
}

// post sends one attempt; a non-2xx answer is an error, with the
// Retry-After it asked for, if any.
func (s *Service) post(ctx context.Context, ep *endpoint, id, event string, body []byte, attempt int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.cfg.UserAgent)
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderEvent, event)
	req.Header.Set(HeaderAttempt, strconv.Itoa(attempt))
	req.Header.Set(HeaderSignature, Sign(ep.secret, time.Now(), body))
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	// Read a little of the answer so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return 0, nil
	}
	return retryAfter(resp.Header.Get("Retry-After"), time.Now()), fmt.Errorf("answered %s", resp.Status)
}

// retryAfter parses a Retry-After header (seconds or an HTTP date).
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// backoff is the wait after failed attempt n (1-based): Backoff doubled
// n-1 times, at most MaxBackoff, plus up to 20% jitter, and at least the
// receiver's Retry-After (within MaxBackoff).
func (s *Service) backoff(n int, retryAfter time.Duration) time.Duration {
	d := s.cfg.Backoff
	for i := 1; i < n && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.cfg.MaxBackoff)
	d += time.Duration(rand.Int64N(int64(d)/5 + 1))
	return min(max(d, retryAfter), s.cfg.MaxBackoff+s.cfg.MaxBackoff/5)
}

// Backlog is a namespace's undelivered webhooks (summed over its
// endpoints).
type Backlog struct {
	NS                string
	Pending, Retrying uint64
	// Oldest is when the oldest was stored (zero: none).
	Oldest time.Time
}

// Backlog reads every namespace's undelivered webhooks (for metrics);
// endpoints that cannot be read now are left out.
func (s *Service) Backlog(ctx context.Context) []Backlog {
	by := map[string]*Backlog{}
	var out []Backlog
	for _, ep := range s.eps {
		p, r, o, err := s.out.Backlog(ctx, ep.key)
		if err != nil {
			continue
		}
		b := by[ep.ns]
		if b == nil {
			b = &Backlog{NS: ep.ns}
			by[ep.ns] = b
		}
		b.Pending += p
		b.Retrying += r
		if !o.IsZero() && (b.Oldest.IsZero() || o.Before(b.Oldest)) {
			b.Oldest = o
		}
	}
	for _, b := range by {
		out = append(out, *b)
	}
	return out
}

// RoomsWaiting returns the rooms whose occupancy change waits for its
// debounce or evaluation, cluster-wide (for metrics; ok is false without
// room.occupied and room.vacated webhooks, or when it cannot be read).
func (s *Service) RoomsWaiting(ctx context.Context) (n uint64, ok bool) {
	if s.occ == nil {
		return 0, false
	}
	n, err := s.occ.Waiting(ctx)
	return n, err == nil
}

type noMetrics struct{}

func (noMetrics) Sent(string, string)   {}
func (noMetrics) Failed(string, string) {}
func (noMetrics) Parked(string, string) {}
func (noMetrics) Dropped(string)        {}
