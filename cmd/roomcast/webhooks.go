package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/roomcast/roomcast/internal/config"
	"github.com/roomcast/roomcast/internal/engine"
	"github.com/roomcast/roomcast/internal/hub"
	"github.com/roomcast/roomcast/internal/metrics"
	"github.com/roomcast/roomcast/internal/webhook"
)

// hooks is a run's webhook service; its zero value (no namespace has
// webhooks) does nothing.
type hooks struct {
	svc     *webhook.Service
	metrics *metrics.Webhooks
	stop    context.CancelFunc
	done    chan struct{}
}

// startWebhooks reads the namespaces' endpoints and their secrets (refusing
// to start when one is unset or short), opens the outbox and occupancy in
// the engine and runs the service until Stop.
func startWebhooks(ctx context.Context, cfg config.Config, eng *engine.Engine, getenv func(string) string, logger *slog.Logger) (*hooks, error) {
	wc := webhook.Config{Namespaces: map[string]webhook.Namespace{}, Timeout: cfg.WebhookTimeout, MaxAttempts: cfg.WebhookMaxAttempts,
		Backoff: cfg.WebhookBackoff, MaxBackoff: cfg.WebhookMaxBackoff, Workers: cfg.WebhookWorkers, QueueSize: cfg.WebhookQueueSize,
		UserAgent: "roomcast-webhooks/" + version}
	occupancy := false
	for _, n := range cfg.Namespaces {
		if len(n.Webhooks) == 0 {
			continue
		}
		wn := webhook.Namespace{Debounce: n.WebhookDebounce}
		for _, w := range n.Webhooks {
			secret := getenv(w.SecretEnv)
			switch {
			case secret == "":
				return nil, fmt.Errorf("namespace %s: webhook %s: the environment variable %s (its signing secret) is not set", n.Name, w.URL, w.SecretEnv)
			case len(secret) < webhook.MinSecret:
				return nil, fmt.Errorf("namespace %s: webhook %s: the environment variable %s holds %d bytes; a signing secret needs at least %d (e.g. openssl rand -hex 32)",
					n.Name, w.URL, w.SecretEnv, len(secret), webhook.MinSecret)
			}
			wn.Endpoints = append(wn.Endpoints, webhook.Endpoint{URL: w.URL, Events: w.Events, Secret: []byte(secret)})
			occupancy = occupancy || slices.Contains(w.Events, webhook.RoomOccupied) || slices.Contains(w.Events, webhook.RoomVacated)
		}
		wc.Namespaces[n.Name] = wn
	}
	if len(wc.Namespaces) == 0 {
		return &hooks{}, nil
	}
	out, err := eng.OpenOutbox(ctx, engine.OutboxConfig{MaxPending: cfg.WebhookMaxPending, MaxAge: cfg.WebhookMaxAge})
	if err != nil {
		return nil, err
	}
	h := &hooks{metrics: metrics.NewWebhooks(), done: make(chan struct{})}
	d := webhook.Deps{Outbox: out, Metrics: h.metrics, Logger: logger}
	if occupancy {
		occ, err := eng.OpenOccupancy(ctx, engine.OccupancyConfig{NodeTTL: cfg.WebhookNodeTTL, MaxPending: cfg.WebhookMaxPending})
		if err != nil {
			return nil, err
		}
		d.Occupancy = occ
	}
	if h.svc, err = webhook.New(wc, d); err != nil {
		return nil, err
	}
	runCtx, stop := context.WithCancel(context.Background())
	h.stop = stop
	go func() { defer close(h.done); h.svc.Run(runCtx) }()
	return h, nil
}

// observer is the hub's Observer (nil without webhooks).
func (h *hooks) observer() hub.Observer {
	if h.svc == nil {
		return nil
	}
	return h.svc
}

// backlog reads the outbox for metrics (nil without webhooks).
func (h *hooks) backlog() func(context.Context) []webhook.Backlog {
	if h.svc == nil {
		return nil
	}
	return h.svc.Backlog
}

// rooms reads the rooms waiting for their evaluation (nil without webhooks).
func (h *hooks) rooms() func(context.Context) (uint64, bool) {
	if h.svc == nil {
		return nil
	}
	return h.svc.RoomsWaiting
}

// Stop ends the service once the connections are gone (their leaves are
// stored first) and waits for it.
func (h *hooks) Stop() {
	if h.svc != nil {
		h.stop()
		<-h.done
	}
}
