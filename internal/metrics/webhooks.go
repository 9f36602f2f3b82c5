package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/roomcast/roomcast/internal/webhook"
)

// Webhooks counts webhook attempts by namespace and event type (both
// bounded: declared namespaces, five event types). It implements
// webhook.Metrics and is registered by New through Source.Webhooks.
type Webhooks struct {
	sent, failed, parked *prometheus.CounterVec
	dropped              *prometheus.CounterVec
}

var _ webhook.Metrics = (*Webhooks)(nil)

// NewWebhooks returns the webhook counters (created before the webhook
// service, which the hub needs before New can read it).
func NewWebhooks() *Webhooks {
	c := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "roomcast", Name: name, Help: help}, labels)
	}
	return &Webhooks{
		sent:    c("webhooks_sent_total", "Webhooks delivered (answered 2xx), by namespace and event type.", "ns", "event"),
		failed:  c("webhooks_failed_total", "Webhook attempts that failed (an error or a non-2xx answer); each is retried or parked.", "ns", "event"),
		parked:  c("webhooks_parked_total", "Webhooks given up on after their last attempt (kept in the engine's parked stream).", "ns", "event"),
		dropped: c("webhook_events_dropped_total", "Joins, leaves and dead letters never stored in the outbox (its queue full, or the engine down at shutdown).", "ns"),
	}
}

func (w *Webhooks) Sent(ns, event string)   { w.sent.WithLabelValues(ns, event).Inc() }
func (w *Webhooks) Failed(ns, event string) { w.failed.WithLabelValues(ns, event).Inc() }
func (w *Webhooks) Parked(ns, event string) { w.parked.WithLabelValues(ns, event).Inc() }
func (w *Webhooks) Dropped(ns string)       { w.dropped.WithLabelValues(ns).Inc() }

// Describe implements prometheus.Collector.
func (w *Webhooks) Describe(ch chan<- *prometheus.Desc) {
	for _, v := range []*prometheus.CounterVec{w.sent, w.failed, w.parked, w.dropped} {
		v.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (w *Webhooks) Collect(ch chan<- prometheus.Metric) {
	for _, v := range []*prometheus.CounterVec{w.sent, w.failed, w.parked, w.dropped} {
		v.Collect(ch)
	}
}

var (
	descWHPending  = prometheus.NewDesc("roomcast_webhooks_pending", "Webhooks in the outbox not yet delivered nor parked (cluster-wide).", []string{"ns"}, nil)
	descWHRetrying = prometheus.NewDesc("roomcast_webhooks_retrying", "Pending webhooks already tried twice or more (cluster-wide).", []string{"ns"}, nil)
	descWHOldest   = prometheus.NewDesc("roomcast_webhooks_oldest_pending_seconds", "Age of the oldest pending webhook (0: none).", []string{"ns"}, nil)
	descWHRooms    = prometheus.NewDesc("roomcast_webhook_rooms_waiting", "Rooms whose occupancy change waits for its debounce or evaluation (cluster-wide).", nil, nil)
)

// backlogCollector reads the outbox at scrape time.
type backlogCollector struct {
	read  func(ctx context.Context) []webhook.Backlog
	rooms func(ctx context.Context) (uint64, bool)
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descWHPending
	ch <- descWHRetrying
	ch <- descWHOldest
	ch <- descWHRooms
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if c.rooms != nil {
		if n, ok := c.rooms(ctx); ok {
			ch <- prometheus.MustNewConstMetric(descWHRooms, prometheus.GaugeValue, float64(n))
		}
	}
	if c.read == nil {
		return
	}
	for _, b := range c.read(ctx) {
		age := 0.0
		if !b.Oldest.IsZero() {
			age = time.Since(b.Oldest).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(descWHPending, prometheus.GaugeValue, float64(b.Pending), b.NS)
		ch <- prometheus.MustNewConstMetric(descWHRetrying, prometheus.GaugeValue, float64(b.Retrying), b.NS)
		ch <- prometheus.MustNewConstMetric(descWHOldest, prometheus.GaugeValue, age, b.NS)
	}
}
