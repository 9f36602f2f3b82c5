package fault

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// ProbeKind is what a probe asked a node.
type ProbeKind int

const (
	// Ready: GET /readyz.
	Ready ProbeKind = iota + 1
	// Read: a read of stored state on a node: the latest messages of a
	// room, a page after a position, or a consumer group's state (its
	// unacknowledged messages).
	Read
)

func (k ProbeKind) String() string {
	if k == Ready {
		return "readyz"
	}
	return "read"
}

// Probe is one request of a prober.
type Probe struct {
	Kind   ProbeKind
	Node   int
	At     time.Time // when it was sent
	Took   time.Duration
	URL    string
	Status int    // 0: no answer (a paused node, a timeout)
	Detail string // the problem's detail of an error answer
}

// Prober asks every node /readyz every ReadyEvery and reads on every node
// every ReadEvery, in turn, a room's latest messages, a page of its
// history after a position, and the state and backlog of a consumer group
// of the room (made by Run, no member: its backlog is the room's
// history), recording each answer: the checker compares readiness with
// what publishes met, and flags every 500.
type Prober struct {
	URLs       []string
	NS, Room   string
	ReadyEvery time.Duration
	ReadEvery  time.Duration
	// Epoch, once known, lets reads page from a position (after=) too.
	Epoch func() string

	mu     sync.Mutex
	probes []Probe
}

// Run probes until ctx ends.
func (p *Prober) Run(ctx context.Context) {
	client := NewClient("", 5*time.Second)
	group := fmt.Sprintf("%s/ns/%s/rooms/%s/groups/probe", p.URLs[0], p.NS, url.PathEscape(p.Room))
	if req, err := http.NewRequestWithContext(ctx, http.MethodPut, group, strings.NewReader(`{}`)); err == nil {
		req.Header.Set("Content-Type", "application/json")
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	var wg sync.WaitGroup
	for i, base := range p.URLs {
		wg.Add(2)
		go func() {
			defer wg.Done()
			p.loop(ctx, p.ReadyEvery, func(n int) Probe { return p.probe(ctx, client, Ready, i, base+"/readyz") })
		}()
		go func() {
			defer wg.Done()
			p.loop(ctx, p.ReadEvery, func(n int) Probe {
				room := fmt.Sprintf("%s/ns/%s/rooms/%s", base, p.NS, url.PathEscape(p.Room))
				u := room + "/messages?limit=20"
				switch epoch := p.Epoch(); n % 4 {
				case 1:
					if epoch != "" {
						// The 500s were most frequent with after=.
						u = room + "/messages?limit=50&after=" + url.QueryEscape(epoch+"-0")
					}
				case 2:
					u = room + "/groups/probe"
				case 3:
					u = room + "/groups/probe/messages?limit=20"
				}
				return p.probe(ctx, client, Read, i, u)
			})
		}()
	}
	wg.Wait()
}

func (p *Prober) loop(ctx context.Context, every time.Duration, once func(n int) Probe) {
	t := time.NewTicker(every)
	defer t.Stop()
	for n := 0; ; n++ {
		pr := once(n)
		if ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		p.probes = append(p.probes, pr)
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *Prober) probe(ctx context.Context, client *http.Client, kind ProbeKind, node int, u string) Probe {
	pr := Probe{Kind: kind, Node: node, At: time.Now(), URL: u}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		panic(err)
	}
	resp, err := client.Do(req)
	pr.Took = time.Since(pr.At)
	if err != nil {
		pr.Detail = err.Error()
		return pr
	}
	defer resp.Body.Close()
	pr.Status = resp.StatusCode
	if resp.StatusCode/100 != 2 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var prob struct{ Detail string }
		if json.Unmarshal(raw, &prob) == nil && prob.Detail != "" {
			pr.Detail = prob.Detail
		} else {
			pr.Detail = strings.TrimSpace(string(raw))
		}
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	return pr
}

// Probes returns what was recorded, in time order.
func (p *Prober) Probes() []Probe {
	p.mu.Lock()
	out := append([]Probe(nil), p.probes...)
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}
