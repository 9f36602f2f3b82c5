package engine

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// A first start with two nodes of three (issue 19: they gave up after 60 s
// with "JetStream system temporarily unavailable").
//
// NATS v2.15 forms a brand-new cluster's JetStream meta group only when as
// many servers as it expects have voted: max(2, the routes configured),
// because every log is empty and an empty server's vote otherwise counts
// only when all have voted (server/raft.go, runAsCandidate; server
// jetstream_cluster.go, setupMetaGroup). Its own address among the routes
// counts too. So the engine gives NATS the routes to the other nodes only:
// a new cluster of three forms with two (of five, with four). Later starts
// read the meta group's peers from disk and never bootstrap again, so the
// protection against electing over empty logs holds wherever there is data
// (a server with data still needs every empty server's vote, or its peers').
//
// With two nodes of three, a stream of three replicas cannot be placed.
// Open waits placementWait for the third, then creates what it must with as
// many replicas as nodes it hears (a quorum of the cluster at least), and
// raises every roomcast stream and bucket to the configured replicas once
// enough nodes are heard (raiseReplicas).

// placementWait: how long Open waits for enough nodes to place the
// configured replicas before it settles for the nodes it hears.
const placementWait = 10 * time.Second

// otherRoutes are cfg's routes without this node's own address.
func otherRoutes(cfg Config) []*url.URL {
	var out []*url.URL
	for _, r := range server.RoutesFromStr(strings.Join(cfg.Routes, ",")) {
		if r.Host != cfg.ClusterListen {
			out = append(out, r)
		}
	}
	return out
}

// placementFailed reports whether err says that the replicas of a stream
// cannot be placed (too few servers).
func placementFailed(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case 10005, // JSClusterNoPeersErrF: no suitable peers for placement
		10023: // JSInsufficientResourcesErr
		return true
	}
	return false
}

// settleReplicas lowers the replicas Open creates assets with to the nodes
// it hears, when the configured ones cannot be placed after placementWait
// of trying (began) and those nodes are a quorum. It reports whether it
// did.
func (e *Engine) settleReplicas(err error, began time.Time) bool {
	if !placementFailed(err) || time.Since(began) < placementWait || e.health == nil || e.health.nodes == 0 {
		return false
	}
	heard := e.health.heard()
	if heard < e.health.nodes/2+1 || heard >= e.Replicas() {
		return false
	}
	e.logger.Warn("too few nodes to place the configured replicas: streams and buckets get as many as there are nodes, and are raised once the others join",
		"nodes", heard, "replicas", e.want)
	e.replicas.Store(int32(heard))
	return true
}

// raiseReplicas raises, every interval until ctx ends, every roomcast stream
// and bucket with fewer replicas than configured, once this node hears
// enough nodes to place them; once none is left, new ones get the
// configured replicas again and it returns.
func (e *Engine) raiseReplicas(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if e.health.heard() < e.want {
			continue
		}
		// From now on, what is created gets the configured replicas; what
		// was created before is raised below, and the next turn checks
		// that nothing was left (one created while this turn read).
		e.replicas.Store(int32(e.want))
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		low, raised := 0, 0
		names := e.js.StreamNames(lctx)
		for name := range names.Name() {
			if !strings.HasPrefix(name, streamPrefix) && !strings.HasPrefix(name, "KV_"+streamPrefix) {
				continue
			}
			s, err := e.js.Stream(lctx, name)
			if err != nil {
				continue
			}
			cfg := s.CachedInfo().Config
			if cfg.Replicas >= e.want {
				continue
			}
			from := cfg.Replicas
			cfg.Replicas = e.want
			if _, err := e.js.UpdateStream(lctx, cfg); err != nil {
				low++
				e.logger.Warn("raise replicas", "stream", name, "err", fmt.Sprint(err))
				continue
			}
			raised++
			e.logger.Info("replicas raised", "stream", name, "from", from, "to", e.want)
		}
		err := names.Err()
		cancel()
		if err == nil && low == 0 && raised == 0 {
			return
		}
	}
}
