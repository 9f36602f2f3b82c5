package main

import (
	"bufio"
	"context"
	"maps"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/cmd/roomcast-bench/ref"
)

func TestHistQuantiles(t *testing.T) {
	h := new(hist)
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, time.Millisecond}} {
		got := h.quantile(c.q)
		if d := got - c.want; d < -c.want/25 || d > c.want/25 {
			t.Errorf("q%.2f = %v, want %v ±4%%", c.q, got, c.want)
		}
	}
	if h.quantile(1) != time.Millisecond {
		t.Errorf("max %v, want exactly 1ms", h.quantile(1))
	}
}

func TestBodyHasThePayloadSize(t *testing.T) {
	b := body(nil, 42, 100)
	s := string(b)
	data := s[strings.Index(s, `"data":`)+len(`"data":`) : len(s)-1]
	if len(data) != 100 {
		t.Errorf("data %q is %d bytes, want 100", data, len(data))
	}
	if n, ok := numAfter(b, keyBN); !ok || n != 42 {
		t.Errorf("bn %d %v, want 42", n, ok)
	}
}

func TestSSEReaderParsesChunkedEvents(t *testing.T) {
	raw := "id: e1-1.T\ndata: {\"bt\":5}\nevent: b\n\n: heartbeat\n\nid: e1-2.T\nevent: b\ndata: x\n\n"
	s := &subscriber{lr: bufio.NewReader(strings.NewReader(raw))}
	var got []string
	_ = s.read(func(ev *sseEvent) bool {
		got = append(got, string(ev.id)+"|"+string(ev.event)+"|"+string(ev.data))
		return true
	})
	want := []string{"e1-1.T|b|{\"bt\":5}", "e1-2.T|b|x"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("events %q, want %q", got, want)
	}
	if seqOf([]byte("e1-2.T")) != 2 || s.lastID != "e1-2.T" {
		t.Errorf("seq %d last %q", seqOf([]byte("e1-2.T")), s.lastID)
	}
}

// The scenarios that have a reference run against it in-process, small:
// the bench's own plumbing (connect, publish, flow control, drain, loss
// accounting) works and finds nothing lost.
func TestScenariosAgainstTheReference(t *testing.T) {
	if _, err := raiseNoFile(); err != nil {
		t.Fatal(err)
	}
	srv := ref.New(ref.Config{})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	host := strings.TrimPrefix(ts.URL, "http://")
	tg := &target{kind: "ref", base: ts.URL, host: host, metrics: ts.URL + "/metrics"}
	e := &env{sources: 2, payload: 100}
	for _, c := range []struct {
		name string
		p    params
	}{
		{"fanout", params{Subs: 20, Rooms: 1, DurS: 0.3, Pubs: 2, Window: 16, Conc: 8}},
		{"rooms", params{Subs: 40, Rooms: 4, Rate: 200, DurS: 0.3, Pubs: 2, Window: 16, Conc: 8}},
		{"idle", params{Conns: 30, Conc: 8, Settle: 0.05}},
		{"connect", params{Conns: 30, Conc: 8}},
		{"publish", params{Pubs: 4, DurS: 0.3}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			r := scenarios[c.name].run(ctx, e, tg, c.p)
			if err := r.clean(); err != nil {
				t.Fatalf("%s: %v (%+v)", c.name, err, r)
			}
			switch c.name {
			case "fanout", "rooms":
				if r.Published == 0 || r.Deliveries != r.Expected || r.Expected != r.Published*int64(c.p.Subs/c.p.Rooms) {
					t.Errorf("published %d, deliveries %d of %d", r.Published, r.Deliveries, r.Expected)
				}
				if r.E2E == nil || r.E2E.N != uint64(r.Deliveries) {
					t.Errorf("latency samples %+v, want one per delivery (%d)", r.E2E, r.Deliveries)
				}
			case "idle", "connect":
				if r.Connected != c.p.Conns || r.GoroutinesPerConn <= 0 && c.name == "idle" {
					t.Errorf("connected %d, goroutines/conn %v", r.Connected, r.GoroutinesPerConn)
				}
			case "publish":
				if r.Published == 0 || r.PublishLatency == nil {
					t.Errorf("published %d", r.Published)
				}
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.Active() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := srv.Active(); n != 0 {
		t.Errorf("%d streams left open: the scenarios must close what they open", n)
	}
}

func TestSpreadIsMedianAndRange(t *testing.T) {
	got := spread([]map[string]float64{
		{"a": 1.2, "b": 4},
		{"a": 0.7, "b": 2},
		nil, // a failed run has no ratios
		{"a": 1.0},
	})
	if a := got["a"]; a.median != 1.0 || a.lo != 0.7 || a.hi != 1.2 || a.n != 3 {
		t.Errorf("a = %+v, want median 1.0 [0.7–1.2] of 3", a)
	}
	if b := got["b"]; b.median != 3 || b.lo != 2 || b.hi != 4 || b.n != 2 {
		t.Errorf("b = %+v, want median 3 (even count: mean of the middle two) [2–4] of 2", b)
	}
	var w strings.Builder
	printSpread(&w, "ratio: ", got)
	if want := "   ratio: a 1.00 [0.70–1.20], b 3.00 [2.00–4.00]\n"; w.String() != want {
		t.Errorf("printed %q, want %q", w.String(), want)
	}
}

// TestRatiosOfStoreScenarios: resume and group have no reference, so their
// only ratios are against --baseline-bin; they must exist for --repeat's
// summary to have anything to say about them.
func TestRatiosOfStoreScenarios(t *testing.T) {
	rc := &result{CatchUpS: 1.5, AckedPerSec: 15000, ServerCPUPerDeliveryUS: 80, AckLatency: &latency{P50: 0.8}}
	base := &result{CatchUpS: 2, AckedPerSec: 10000, ServerCPUPerDeliveryUS: 100, AckLatency: &latency{P50: 1.6}}
	if got, want := ratios("group", rc, base), map[string]float64{"acked_per_s": 1.5, "server_cpu_per_ack": 0.8, "ack_p50": 0.5}; !maps.Equal(got, want) {
		t.Errorf("group ratios %v, want %v", got, want)
	}
	if got, want := ratios("resume", rc, base), map[string]float64{"catch_up_s": 0.75, "server_cpu_per_delivery": 0.8}; !maps.Equal(got, want) {
		t.Errorf("resume ratios %v, want %v", got, want)
	}
}
