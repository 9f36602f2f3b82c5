package engine

import (
	"context"
	"slices"

	"github.com/nats-io/nats-server/v2/server"
)

// Nodes names the nodes of the cluster this node is routed to right now,
// itself first: with embedded clustering, the roomcast nodes that are up
// and reachable. With an external NATS (URL) or on a single node it is this
// node alone (the NATS servers of an external cluster are not roomcast
// nodes). ctx is unused: the embedded server answers from memory.
func (e *Engine) Nodes(_ context.Context) []string {
	out := []string{e.cfg.NodeName}
	if e.srv == nil {
		return out
	}
	rz, err := e.srv.Routez(&server.RoutezOptions{})
	if err != nil {
		return out
	}
	var peers []string
	for _, r := range rz.Routes {
		if r.RemoteName != "" && r.RemoteName != e.cfg.NodeName {
			peers = append(peers, r.RemoteName)
		}
	}
	slices.Sort(peers)
	return append(out, slices.Compact(peers)...)
}
