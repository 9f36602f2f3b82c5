// Package metrics exposes roomcast's Prometheus metrics on a registry of its
// own (never the global one). Labels are bounded: namespace names (declared
// in config), HTTP route patterns, methods and status codes — never room,
// group or connection ids.
//
// It implements hub.Metrics per namespace and observes HTTP requests for
// api. Gauges that describe state (connections, rooms, group backlogs,
// engine health) are read at scrape time by a collector, so the hot path
// pays only for counters and one histogram observation per message.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/roomcast/roomcast/internal/hub"
	"github.com/roomcast/roomcast/internal/webhook"
)

// Source is what the scrape-time collector reads.
type Source struct {
	Hub *hub.Hub
	// Ready reports the engine's health.
	Ready func(ctx context.Context) error
	// Groups sums a namespace's group backlogs: pending, in flight,
	// redelivered and dead letters.
	Groups func(ctx context.Context, ns string) (pending, inFlight, redelivered, dead uint64, err error)
	// Streams returns the number of open SSE streams.
	Streams func() int64
	// Webhooks are the webhook counters (NewWebhooks; nil: no webhooks),
	// WebhookBacklog reads the outbox per namespace and WebhookRooms the
	// rooms waiting for their occupancy evaluation, at scrape time.
	Webhooks       *Webhooks
	WebhookBacklog func(ctx context.Context) []webhook.Backlog
	WebhookRooms   func(ctx context.Context) (uint64, bool)
}

// Registry holds every roomcast metric.
type Registry struct {
	reg *prometheus.Registry

	published     *prometheus.CounterVec
	publishTime   *prometheus.HistogramVec
	delivered     *prometheus.CounterVec
	fanoutLatency *prometheus.HistogramVec
	joins, leaves *prometheus.CounterVec
	slow          *prometheus.CounterVec
	resumes       *prometheus.CounterVec
	resets        *prometheus.CounterVec
	groupDelivery *prometheus.CounterVec
	redeliveries  *prometheus.CounterVec
	parked        *prometheus.CounterVec
	httpRequests  *prometheus.CounterVec
	httpDuration  *prometheus.HistogramVec
}

// New returns a registry with roomcast's metrics and the Go and process
// collectors, reading state from src at scrape time.
func New(src Source) *Registry {
	r := &Registry{reg: prometheus.NewRegistry()}
	ns := []string{"ns"}
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "roomcast", Name: name, Help: help}, labels)
		r.reg.MustRegister(c)
		return c
	}
	latency := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	r.published = counter("messages_published_total", "Messages stored by publishes answered 2xx.", ns)
	r.delivered = counter("messages_delivered_total", "Messages handed to local connections' queues (one per connection).", ns)
	r.joins = counter("joins_total", "Room joins (from the stream URL, REST or a restored session).", ns)
	r.leaves = counter("leaves_total", "Room leaves (REST or disconnect).", ns)
	r.slow = counter("slow_consumer_disconnects_total", "Connections closed because their queue overflowed.", ns)
	r.resumes = counter("resumes_total", "Streams opened with Last-Event-ID.", ns)
	r.resets = counter("resets_total", "Resumes answered with reset (position gone).", ns)
	r.groupDelivery = counter("group_deliveries_total", "Consumer group deliveries, first and repeated.", ns)
	r.redeliveries = counter("group_redeliveries_total", "Consumer group deliveries of a message delivered before.", ns)
	r.parked = counter("group_dead_letters_total", "Messages parked as dead letters after max_deliver.", ns)
	r.httpRequests = counter("http_requests_total", "HTTP requests by route pattern, method and status.", []string{"route", "method", "code"})
	r.publishTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "roomcast", Name: "publish_seconds",
		Help: "Time to store a publish in the engine.", Buckets: latency}, ns)
	r.fanoutLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "roomcast", Name: "publish_to_enqueue_seconds",
		Help: "From a message's storage to its hand-off to every local connection's queue (the write follows at once unless the client is slow).", Buckets: latency}, ns)
	r.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "roomcast", Name: "http_request_seconds",
		Help: "Duration of non-streaming HTTP requests by route pattern.", Buckets: latency}, []string{"route", "method"})
	state := &stateCollector{src: src}
	r.reg.MustRegister(r.publishTime, r.fanoutLatency, r.httpDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), state)
	if src.Webhooks != nil {
		r.reg.MustRegister(src.Webhooks, &backlogCollector{read: src.WebhookBacklog, rooms: src.WebhookRooms})
	}
	return r
}

// Handler serves the exposition format.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{Registry: r.reg})
}

// Namespace returns ns's hub.Metrics, with its label values bound once.
func (r *Registry) Namespace(ns string) hub.Metrics {
	return &nsMetrics{
		published: r.published.WithLabelValues(ns), publishTime: r.publishTime.WithLabelValues(ns),
		delivered: r.delivered.WithLabelValues(ns), fanout: r.fanoutLatency.WithLabelValues(ns),
		joins: r.joins.WithLabelValues(ns), leaves: r.leaves.WithLabelValues(ns), slow: r.slow.WithLabelValues(ns),
		resumes: r.resumes.WithLabelValues(ns), resets: r.resets.WithLabelValues(ns),
		groupDelivery: r.groupDelivery.WithLabelValues(ns), redeliveries: r.redeliveries.WithLabelValues(ns),
		parked: r.parked.WithLabelValues(ns),
	}
}

// ObserveRequest records one HTTP request (api calls it with the chi route
// pattern, a bounded label).
func (r *Registry) ObserveRequest(route, method string, code int, d time.Duration, streaming bool) {
	r.httpRequests.WithLabelValues(route, method, codeLabel(code)).Inc()
	if !streaming {
		r.httpDuration.WithLabelValues(route, method).Observe(d.Seconds())
	}
}

// codeLabels holds the status codes' label values, so that counting a
// request does not format (and allocate) one.
var codeLabels = func() (t [600]string) {
	for i := 100; i < len(t); i++ {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func codeLabel(code int) string {
	if code >= 100 && code < len(codeLabels) {
		return codeLabels[code]
	}
	return strconv.Itoa(code)
}

type nsMetrics struct {
	published, delivered, joins, leaves, slow, resumes, resets prometheus.Counter
	groupDelivery, redeliveries, parked                        prometheus.Counter
	publishTime, fanout                                        prometheus.Observer
}

var _ hub.Metrics = (*nsMetrics)(nil)

func (m *nsMetrics) Published(d time.Duration) {
	m.published.Inc()
	m.publishTime.Observe(d.Seconds())
}

func (m *nsMetrics) FannedOut(n int, latency time.Duration) {
	m.delivered.Add(float64(n))
	m.fanout.Observe(latency.Seconds())
}

func (m *nsMetrics) Joined()       { m.joins.Inc() }
func (m *nsMetrics) Left()         { m.leaves.Inc() }
func (m *nsMetrics) SlowConsumer() { m.slow.Inc() }
func (m *nsMetrics) Parked()       { m.parked.Inc() }

func (m *nsMetrics) Resumed(reset bool) {
	m.resumes.Inc()
	if reset {
		m.resets.Inc()
	}
}

func (m *nsMetrics) GroupDelivered(redelivery bool) {
	m.groupDelivery.Inc()
	if redelivery {
		m.redeliveries.Inc()
	}
}

// stateCollector reads state gauges at scrape time.
type stateCollector struct{ src Source }

var (
	descConns    = prometheus.NewDesc("roomcast_connections", "Open connections on this node.", []string{"ns"}, nil)
	descRooms    = prometheus.NewDesc("roomcast_rooms", "Rooms with at least one member on this node.", []string{"ns"}, nil)
	descStreams  = prometheus.NewDesc("roomcast_sse_streams", "Open SSE streams on this node.", nil, nil)
	descPending  = prometheus.NewDesc("roomcast_group_pending", "Messages waiting for a consumer group member, summed over the namespace's groups.", []string{"ns"}, nil)
	descInFlight = prometheus.NewDesc("roomcast_group_in_flight", "Group deliveries not yet acknowledged, summed over the namespace's groups.", []string{"ns"}, nil)
	descRedeliv  = prometheus.NewDesc("roomcast_group_redelivered", "Group messages delivered more than once and not yet acknowledged.", []string{"ns"}, nil)
	descDead     = prometheus.NewDesc("roomcast_group_dead_letters", "Dead letters kept for the namespace's groups.", []string{"ns"}, nil)
	descReady    = prometheus.NewDesc("roomcast_engine_ready", "1 when the engine (JetStream) answers, 0 otherwise.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConns, descRooms, descStreams, descPending, descInFlight, descRedeliv, descDead, descReady} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ready := 1.0
	if c.src.Ready != nil && c.src.Ready(ctx) != nil {
		ready = 0
	}
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, ready)
	if c.src.Streams != nil {
		ch <- prometheus.MustNewConstMetric(descStreams, prometheus.GaugeValue, float64(c.src.Streams()))
	}
	if c.src.Hub == nil {
		return
	}
	for _, ns := range c.src.Hub.Namespaces() {
		name := ns.Name()
		conns, rooms := ns.LocalCounts()
		ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(conns), name)
		ch <- prometheus.MustNewConstMetric(descRooms, prometheus.GaugeValue, float64(rooms), name)
		if c.src.Groups == nil || ready == 0 {
			continue
		}
		p, f, r, d, err := c.src.Groups(ctx, name)
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(p), name)
		ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(f), name)
		ch <- prometheus.MustNewConstMetric(descRedeliv, prometheus.GaugeValue, float64(r), name)
		ch <- prometheus.MustNewConstMetric(descDead, prometheus.GaugeValue, float64(d), name)
	}
}
