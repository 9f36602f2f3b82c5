package api

import (
	"context"
	"net/http"
	"time"
)

// Status describes this node for GET /status: what an operator's admin
// view shows as node and cluster status (Centrifugo's "nodes" panel).
type Status struct {
	Version string
	Node    string
	// Cluster is the cluster's name ("" on a single node).
	Cluster string
	Started time.Time
	// Nodes lists the nodes this one knows of, itself included (nil: this
	// node alone).
	Nodes func(ctx context.Context) []string
}

type statusNode struct {
	Name string `json:"name"`
	Self bool   `json:"self"`
}

type statusNamespace struct {
	Name        string `json:"name"`
	Auth        string `json:"auth"`
	Credentials bool   `json:"credentials"`
	Connections int    `json:"connections"`
	Rooms       int    `json:"rooms"`
}

type statusBody struct {
	Version       string            `json:"version"`
	Node          string            `json:"node"`
	Cluster       *string           `json:"cluster"`
	StartedAt     time.Time         `json:"started_at"`
	UptimeSeconds int64             `json:"uptime_seconds"`
	Nodes         []statusNode      `json:"nodes"`
	Connections   int               `json:"connections"`
	Namespaces    []statusNamespace `json:"namespaces"`
}

// status answers GET /status. It is public, as /ns and /metrics are: it
// says no more than they do (counts, names) besides the version, and
// nothing about a namespace's credentials but whether some are configured
// (so that an admin page knows to ask for one).
func (a *API) status(w http.ResponseWriter, r *http.Request) {
	st := a.cfg.Status
	out := statusBody{Version: st.Version, Node: st.Node, StartedAt: st.Started.UTC().Truncate(time.Second),
		UptimeSeconds: int64(time.Since(st.Started) / time.Second), Namespaces: []statusNamespace{}}
	if st.Cluster != "" {
		out.Cluster = &st.Cluster
	}
	out.Nodes = []statusNode{{Name: st.Node, Self: true}}
	if st.Nodes != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		for _, n := range st.Nodes(ctx) {
			if n != st.Node {
				out.Nodes = append(out.Nodes, statusNode{Name: n})
			}
		}
		cancel()
	}
	for _, nc := range a.cfg.Namespaces {
		ns, err := a.cfg.Hub.Namespace(nc.Name)
		if err != nil {
			continue
		}
		conns, rooms := ns.LocalCounts()
		auth := "open"
		if nc.Security.Locked {
			auth = "jwt"
		}
		out.Connections += conns
		out.Namespaces = append(out.Namespaces, statusNamespace{Name: nc.Name, Auth: auth,
			Credentials: nc.Security.Verifier != nil, Connections: conns, Rooms: rooms})
	}
	writeJSON(w, http.StatusOK, out)
}
