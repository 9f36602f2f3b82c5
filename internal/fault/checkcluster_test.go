package fault

import (
	"strings"
	"testing"
	"time"
)

// probe is a /readyz answer of node at ms.
func readyAt(node, ms, status int) Probe {
	return Probe{Kind: Ready, Node: node, At: at(ms), Status: status, Detail: "why"}
}

// onNode is a publish to node at ms with outcome.
func onNode(key string, node, ms int, o Outcome, id string) Publish {
	p := pub(key, ms, o, id)
	p.Node = node
	return p
}

// TestCheckCluster feeds the cluster checks histories that each break one
// rule, and clean ones that must stay clean.
func TestCheckCluster(t *testing.T) {
	tests := []struct {
		name   string
		change func(h *History)
		field  func(r *Report) int
		want   int
		text   string
	}{
		{"a 500 on a history read", func(h *History) {
			h.Probes = append(h.Probes, Probe{Kind: Read, Node: 1, At: at(5), Status: 500, Detail: "no responders available for request"})
		}, func(r *Report) int { return len(r.ServerErrors) }, 1, "answered 500 on node 2"},
		{"a 500 on a publish", func(h *History) {
			h.Publishes = append(h.Publishes, Publish{Key: "k9", Room: "a", Outcome: Unknown, Status: 500, Start: at(50)})
		}, func(r *Report) int { return len(r.ServerErrors) }, 1, "publish k9 answered 500"},
		{"ready while every publish to it failed, past the tolerance", func(h *History) {
			for ms := 1000; ms <= 9000; ms += 500 {
				h.Publishes = append(h.Publishes, onNode(keyAt(ms), 2, ms-100, Unknown, ""))
				h.Probes = append(h.Probes, readyAt(2, ms, 200))
			}
		}, func(r *Report) int { return len(r.ReadyLies) }, 1, "node 3 said ready (200) while every publish sent to it failed for 8s"},
		{"ready while failing, within the tolerance", func(h *History) {
			for ms := 1000; ms <= 3000; ms += 500 {
				h.Publishes = append(h.Publishes, onNode(keyAt(ms), 2, ms-100, Unknown, ""))
				h.Probes = append(h.Probes, readyAt(2, ms, 200))
			}
		}, func(r *Report) int { return len(r.ReadyLies) }, 0, ""},
		{"not ready while publishes to it succeeded", func(h *History) {
			h.Stored["a"] = nil
			h.Subscribers = nil
			h.Publishes = nil
			for ms := 1000; ms <= 9000; ms += 500 {
				h.Publishes = append(h.Publishes, onNode(keyAt(ms), 0, ms-100, OK, "e-"+keyAt(ms)))
				h.Stored["a"] = append(h.Stored["a"], Stored{keyAt(ms), "e-" + keyAt(ms)})
				h.Probes = append(h.Probes, readyAt(0, ms, 503))
			}
		}, func(r *Report) int { return len(r.ReadyLies) }, 1, "node 1 said not ready (503: why) while publishes sent to it succeeded"},
		{"not ready and refusing: agrees", func(h *History) {
			for ms := 1000; ms <= 9000; ms += 500 {
				h.Publishes = append(h.Publishes, onNode(keyAt(ms), 1, ms-100, Failed, ""))
				h.Probes = append(h.Probes, readyAt(1, ms, 503))
			}
		}, func(r *Report) int { return len(r.ReadyLies) + r.Disagreeing }, 0, ""},
		{"another node's probes do not break a run", func(h *History) {
			for ms := 1000; ms <= 9000; ms += 500 {
				h.Publishes = append(h.Publishes, onNode(keyAt(ms), 2, ms-100, Unknown, ""))
				h.Probes = append(h.Probes, readyAt(2, ms, 200), readyAt(0, ms+1, 200))
			}
		}, func(r *Report) int { return len(r.ReadyLies) }, 1, "node 3 said ready"},
		{"a node's history differs", func(h *History) {
			h.NodeStored = []map[string][]Stored{h.Stored, {"a": h.Stored["a"][:2]}}
		}, func(r *Report) int { return len(r.Diverged) }, 1, "node 2's history of a differs from node 1's: 3 messages there, 2 here"},
		{"nodes agree", func(h *History) {
			h.NodeStored = []map[string][]Stored{h.Stored, h.Stored, h.Stored}
		}, func(r *Report) int { return len(r.Diverged) }, 0, ""},
		{"an unknown retried with its id and stored once", func(h *History) {
			h.Publishes = append(h.Publishes, pub("k4", 40, Unknown, ""))
			ok := pub("k4", 100, OK, "e-4")
			h.Publishes[3].Retried = &ok
			h.Stored["a"] = append(h.Stored["a"], Stored{"k4", "e-4"})
			h.Subscribers[0].Events = append(h.Subscribers[0].Events, msg("k4", "e-4", 101))
		}, func(r *Report) int { return r.RetriedStored*10 + len(r.Lost) }, 10, ""},
		{"a retry answered ok, not stored: lost", func(h *History) {
			h.Publishes = append(h.Publishes, pub("k4", 40, Unknown, ""))
			ok := pub("k4", 100, OK, "e-4")
			h.Publishes[3].Retried = &ok
		}, func(r *Report) int { return len(r.Lost) }, 1, "retried with its id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := base()
			h.ReadyTolerance = 5 * time.Second
			tt.change(&h)
			r := Check(h)
			if got := tt.field(r); got != tt.want {
				t.Fatalf("got %d, want %d\n%s", got, tt.want, r)
			}
			if tt.text != "" && !strings.Contains(r.String(), tt.text) {
				t.Errorf("report does not say %q:\n%s", tt.text, r)
			}
			if tt.want == 0 && !r.Clean() {
				t.Errorf("not clean:\n%s", r)
			}
		})
	}
}

func keyAt(ms int) string { return "k" + time.Duration(ms*int(time.Millisecond)).String() }
