package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches /metrics and returns the value of each sample keyed by
// name{label="value",…} in the exposition's label order.
func scrape(t *testing.T, s *testServer) map[string]float64 {
	t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse exposition: %v", err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			key := name
			if len(m.GetLabel()) > 0 {
				var parts []string
				for _, l := range m.GetLabel() {
					parts = append(parts, l.GetName()+"="+l.GetValue())
				}
				key += "{" + strings.Join(parts, ",") + "}"
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// TestMetricsFollowAKnownSequence: after a known sequence of actions the
// metrics moved by exactly what happened.
func TestMetricsFollowAKnownSequence(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	before := scrape(t, s)
	if before["roomcast_engine_ready"] != 1 {
		t.Fatalf("engine_ready %v, want 1", before["roomcast_engine_ready"])
	}
	a := s.subscribe(t, "/ns/default/rooms/m/events", "")
	_, _, _ = a.connected()
	b := s.subscribe(t, "/ns/default/events", "")
	bid, btok, _ := b.connected()
	if code, _, _ := s.do(t, http.MethodPut, "/ns/default/rooms/m/members/"+bid, nil, btok); code != http.StatusOK {
		t.Fatalf("join: %d", code)
	}
	for i := 0; i < 3; i++ {
		s.publish(t, "/ns/default/rooms/m/messages", `{"event":"e","data":1}`, "")
		a.Expect("e")
		b.Expect("e")
	}
	reset := s.subscribe(t, "/ns/default/rooms/m/events", "deadbeef-1")
	reset.Expect("connected")
	reset.Expect("reset")
	if code, _, _ := s.do(t, http.MethodPost, "/ns/default/messages", `{"event":`, ""); code != http.StatusBadRequest {
		t.Fatalf("bad publish: %d", code)
	}
	g := s.subscribe(t, "/ns/default/rooms/jobs/events?group=w", "")
	g.connected()
	s.publish(t, "/ns/default/rooms/jobs/messages", `{"event":"job"}`, "")
	g.Expect("job")

	var after map[string]float64
	eventually(t, 10*time.Second, "metrics to settle", func() bool {
		after = scrape(t, s)
		return after[`roomcast_group_in_flight{ns=default}`] == 1
	})
	delta := func(k string) float64 { return after[k] - before[k] }
	for _, c := range []struct {
		key  string
		want float64
	}{
		{`roomcast_messages_published_total{ns=default}`, 4},
		{`roomcast_messages_delivered_total{ns=default}`, 6}, // 3 messages × 2 connections; the group's goes through the group
		{`roomcast_publish_seconds{ns=default}_count`, 4},
		{`roomcast_resumes_total{ns=default}`, 1},
		{`roomcast_resets_total{ns=default}`, 1},
		{`roomcast_group_deliveries_total{ns=default}`, 1},
		{`roomcast_joins_total{ns=default}`, 3}, // a's URL room, b's REST join, the reset stream's URL room
		{`roomcast_http_requests_total{code=400,method=POST,route=/ns/default/messages}`, 1},
		{`roomcast_http_requests_total{code=202,method=POST,route=/ns/default/rooms/{room}/messages}`, 4},
	} {
		if got := delta(c.key); got != c.want {
			t.Errorf("%s moved by %v, want %v", c.key, got, c.want)
		}
	}
	if got := after[`roomcast_connections{ns=default}`]; got != 4 {
		t.Errorf("connections %v, want 4", got)
	}
	if got := after[`roomcast_sse_streams`]; got != 4 {
		t.Errorf("sse_streams %v, want 4", got)
	}
	if got := after[`roomcast_rooms{ns=default}`]; got != 1 {
		t.Errorf("rooms %v, want 1 (m)", got)
	}
	for k := range after {
		if strings.Contains(k, bid) || strings.Contains(k, "room=m") {
			t.Errorf("unbounded label value in %s", k)
		}
	}
}

// TestLogsRedactSecrets: tokens never reach the log, and each request and
// connection lifecycle has one line with a request id.
func TestLogsRedactSecrets(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--log-format", "json", "--log-level", "info")
	a := s.subscribe(t, "/ns/default/events?rooms=x", "")
	id, token, last := a.connected()
	s.publish(t, "/ns/default/rooms/x/messages", `{"event":"e"}`, token)
	a.Expect("e")
	a.Close()
	back := s.subscribe(t, "/ns/default/events?last_event_id="+last, "")
	back.Expect("connected")
	back.Close()
	eventually(t, 10*time.Second, "disconnect lines", func() bool {
		return strings.Count(s.logs.String(), `"msg":"disconnect"`) == 2
	})
	logs := s.logs.String()
	if strings.Contains(logs, token) {
		t.Fatal("a connection token appears in the log")
	}
	var requests, connects int
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		switch line["msg"] {
		case "request":
			requests++
			if line["request_id"] == "" || line["status"] == nil {
				t.Errorf("request line without request_id or status: %v", line)
			}
		case "connect":
			connects++
			if line["conn_id"] != id || line["ns"] != "default" || line["remote"] == nil {
				t.Errorf("connect line %v", line)
			}
		}
	}
	if requests < 3 || connects != 2 {
		t.Fatalf("%d request lines, %d connect lines", requests, connects)
	}
}

// TestPprofOnItsOwnListener: profiling is off by default and served on a
// separate address when asked.
func TestPprofOnItsOwnListener(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	resp, err := http.Get(s.URL + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("pprof on the API listener: %d", resp.StatusCode)
	}
	p := startServer(t, "--pprof-addr", "127.0.0.1:0", "--log-format", "json")
	var addr string
	eventually(t, 5*time.Second, "pprof address in the log", func() bool {
		for _, l := range strings.Split(p.logs.String(), "\n") {
			var line map[string]any
			if json.Unmarshal([]byte(l), &line) == nil && line["msg"] == "pprof" {
				addr, _ = line["addr"].(string)
			}
		}
		return addr != ""
	})
	resp, err = http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("pprof: %d %.100s", resp.StatusCode, body)
	}
}

// TestHealthAndReadiness: both answer 200 on a healthy server.
func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		code, body, _ := s.do(t, http.MethodGet, p, nil, "")
		if code != http.StatusOK || body["status"] == nil {
			t.Errorf("%s: %d %v", p, code, body)
		}
	}
}
