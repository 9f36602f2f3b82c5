package fault

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// NewClient is an HTTP client whose connections come from source address
// from ("": any), so that scenarios can tell clients apart by address
// (the whole 127.0.0.0/8 is loopback). Requests time out after timeout
// (0: never, for streams).
func NewClient(from string, timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext: d.DialContext, MaxIdleConnsPerHost: 64, ResponseHeaderTimeout: timeout,
	}}
}

// Publisher publishes messages with unique keys to rooms of a namespace,
// one at a time, and records each outcome.
type Publisher struct {
	Name   string // prefix of its keys
	Client *http.Client
	URLs   []string // a publish goes to each node in turn
	// Node pins the publisher to URLs[Node] (-1: each node in turn): a
	// paused node then holds up only its own publishers.
	Node  int
	NS    string
	Rooms []string      // a publish goes to each room in turn
	Every time.Duration // pause between publishes (0: none)
	Rec   *Recorder

	n int
}

// Run publishes until ctx ends.
func (p *Publisher) Run(ctx context.Context) {
	for ctx.Err() == nil {
		p.Rec.Add(p.Once(ctx))
		if p.Every > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(p.Every):
			}
		}
	}
}

// Once publishes the next message and returns what happened.
func (p *Publisher) Once(ctx context.Context) Publish {
	p.n++
	room := p.Rooms[p.n%len(p.Rooms)]
	node := p.n % len(p.URLs)
	if p.Node >= 0 {
		node = p.Node
	}
	key := fmt.Sprintf("%s-%d", p.Name, p.n)
	out := send(ctx, p.Client, p.URLs[node], p.NS, room, key)
	out.Node = node
	return out
}

// send publishes key's message to room on base, with key as its
// idempotency id (a retry with the same id stores it once), and returns
// what the answer says of it:
//   - 2xx: OK, stored;
//   - 4xx, 503 and 507: Failed, certainly not stored — the server's
//     publish contract (README, openapi.yaml) promises that a 503 means
//     nothing was stored; the checker holds it to that ("refused but
//     stored");
//   - no answer after the request was sent, 504 (outcome unknown) and any
//     other 5xx: Unknown.
func send(ctx context.Context, client *http.Client, base, ns, room, key string) Publish {
	out := Publish{Key: key, Room: room, Start: time.Now()}
	body := fmt.Sprintf(`{"event":"fault","id":%q,"data":{"key":%q}}`, key, key)
	// Not ctx: a publish under way when the run ends is seen to its answer.
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, base+"/ns/"+ns+"/rooms/"+room+"/messages", strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		out.Outcome, out.Err = Unknown, err.Error()
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			out.Outcome = Failed // never sent
		}
		out.End = time.Now()
		return out
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	out.Status = resp.StatusCode
	var ans struct{ ID, Type string }
	jerr := json.Unmarshal(raw, &ans)
	out.Type = ans.Type
	switch {
	case resp.StatusCode/100 == 2:
		if jerr != nil || ans.ID == "" || err != nil {
			out.Outcome, out.Err = Unknown, fmt.Sprintf("2xx with an unreadable answer %q", raw)
		} else {
			out.Outcome, out.ID = OK, ans.ID
		}
	case resp.StatusCode/100 == 4, resp.StatusCode == http.StatusServiceUnavailable, resp.StatusCode == http.StatusInsufficientStorage:
		out.Outcome, out.Err = Failed, string(raw)
	default:
		out.Outcome, out.Err = Unknown, string(raw)
	}
	out.End = time.Now()
	return out
}

// Subscriber follows a room's stream as a browser's EventSource does: on
// any drop it waits the server's retry: delay and reconnects with
// Last-Event-ID set to the last SSE id it received; it logs what it sees.
type Subscriber struct {
	Name   string
	Room   string
	NS     string
	Client *http.Client // without a timeout
	URLs   []string     // each reconnection goes to the next node
	// Idle drops a stream on which nothing (not even a heartbeat comment)
	// came for this long, as a client with a read timeout would: a paused
	// node keeps its connections open and silent (0: never).
	Idle time.Duration

	mu     sync.Mutex
	events []Event
	keys   map[string]bool
	lastID string
	retry  time.Duration
	conns  int
}

// Run subscribes until ctx ends.
func (s *Subscriber) Run(ctx context.Context) {
	s.mu.Lock()
	if s.retry == 0 {
		s.retry = 100 * time.Millisecond // until the server says
	}
	if s.keys == nil {
		s.keys = map[string]bool{}
	}
	s.mu.Unlock()
	for attempt := 0; ctx.Err() == nil; attempt++ {
		err := s.stream(ctx, s.URLs[attempt%len(s.URLs)])
		if ctx.Err() != nil {
			return
		}
		s.add(Event{Kind: Dropped, At: time.Now(), Reason: errString(err)})
		s.mu.Lock()
		wait := s.retry
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "the stream ended"
	}
	return err.Error()
}

func (s *Subscriber) add(ev Event) {
	s.mu.Lock()
	s.events = append(s.events, ev)
	if ev.Kind == Message {
		s.keys[ev.Key] = true
	}
	if ev.EventID != "" {
		s.lastID = ev.EventID
	}
	s.mu.Unlock()
}

// stream runs one connection until it drops.
func (s *Subscriber) stream(ctx context.Context, base string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	alive := func() {}
	if s.Idle > 0 {
		// A stream that opened and went silent is dropped after Idle; one
		// being opened gets longer (a resume may wait for an election).
		idle := time.AfterFunc(max(s.Idle, connectTimeout), func() { cancel(fmt.Errorf("nothing received for %s", s.Idle)) })
		defer idle.Stop()
		alive = func() { idle.Reset(s.Idle) }
	}
	err := s.read(ctx, base, alive)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// read reads one connection's events, calling alive on each line.
func (s *Subscriber) read(ctx context.Context, base string, alive func()) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/ns/"+s.NS+"/rooms/"+url.PathEscape(s.Room)+"/events", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	s.mu.Lock()
	if s.lastID != "" {
		req.Header.Set("Last-Event-ID", s.lastID)
	}
	s.mu.Unlock()
	resp, err := s.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("status %d: %s", resp.StatusCode, raw)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var id, event, data string
	for sc.Scan() {
		alive()
		line := sc.Text()
		if line == "" {
			if data != "" || event != "" {
				if err := s.dispatch(id, event, data); err != nil {
					return err
				}
			}
			id, event, data = "", "", ""
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			id = value
		case "event":
			event = value
		case "data":
			data += value
		case "retry":
			if ms, err := strconv.Atoi(value); err == nil {
				s.mu.Lock()
				s.retry = time.Duration(ms) * time.Millisecond
				s.mu.Unlock()
			}
		}
	}
	return sc.Err()
}

func (s *Subscriber) dispatch(id, event, data string) error {
	now := time.Now()
	switch event {
	case "connected":
		var d struct{ Restored bool }
		_ = json.Unmarshal([]byte(data), &d)
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		s.add(Event{Kind: Connected, At: now, EventID: id, Restored: d.Restored})
	case "reset":
		var d struct{ Reason string }
		_ = json.Unmarshal([]byte(data), &d)
		s.add(Event{Kind: Reset, At: now, EventID: id, Reason: d.Reason})
	case "end":
		// The server ends the stream on purpose (e.g. "replaced": the same
		// connection resumed elsewhere); the client reconnects.
		var d struct{ Reason string }
		_ = json.Unmarshal([]byte(data), &d)
		return fmt.Errorf("end: %s", d.Reason)
	default:
		var env struct {
			ID   string
			Data struct{ Key string }
		}
		if err := json.Unmarshal([]byte(data), &env); err != nil || env.ID == "" {
			return fmt.Errorf("event %q: data is not an envelope: %q", event, data)
		}
		s.add(Event{Kind: Message, At: now, EventID: id, ID: env.ID, Key: env.Data.Key})
	}
	return nil
}

// connectTimeout bounds how long a Subscriber with Idle waits for a
// stream to open.
const connectTimeout = 15 * time.Second

// Subscribed reports whether the subscriber has had a stream open.
func (s *Subscriber) Subscribed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns > 0
}

// Owed is when the subscriber started being owed every message of its
// room: its first connection, or its last reset (what came before a reset
// may be missed, the reset said so). Zero: never connected.
func (s *Subscriber) Owed() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var since time.Time
	for _, ev := range s.events {
		if ev.Kind == Connected && since.IsZero() || ev.Kind == Reset {
			since = ev.At
		}
	}
	return since
}

// Has reports whether the subscriber received key.
func (s *Subscriber) Has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[key]
}

// Log is what the subscriber saw so far.
func (s *Subscriber) Log() SubscriberLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	return SubscriberLog{Name: s.Name, Room: s.Room, Events: append([]Event(nil), s.events...)}
}

// ReadHistory pages through a room's whole history on base, from the
// first message of epoch.
func ReadHistory(ctx context.Context, client *http.Client, base, ns, room, epoch string) ([]Stored, error) {
	var out []Stored
	after := epoch + "-0"
	for page := 0; page < 100000; page++ {
		u := fmt.Sprintf("%s/ns/%s/rooms/%s/messages?limit=1000&after=%s", base, ns, url.PathEscape(room), url.QueryEscape(after))
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		var body struct {
			Messages []struct {
				ID   string
				Data struct{ Key string }
			}
			Last string
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			return nil, fmt.Errorf("history of %s: status %d: %v", room, resp.StatusCode, err)
		}
		if len(body.Messages) == 0 {
			return out, nil
		}
		for _, m := range body.Messages {
			out = append(out, Stored{Key: m.Data.Key, ID: m.ID})
		}
		after = body.Last
	}
	return nil, fmt.Errorf("history of %s: more than 100,000 pages", room)
}
