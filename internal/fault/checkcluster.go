package fault

import (
	"fmt"
	"net/http"
	"sort"
	"time"
)

// readyWindow is how far back from a /readyz probe the publishes sent to
// its node are compared with its answer.
const readyWindow = time.Second

// checkCluster adds the checks of runs with probes and several nodes:
// unknown publishes retried with their id, 500s, readiness against
// publishes, and nodes' histories against each other.
func checkCluster(r *Report, h History, storedID map[string]place) {
	for _, p := range h.Publishes {
		if p.Retried == nil {
			continue
		}
		r.Retried++
		if p.Retried.Outcome == OK {
			if _, ok := storedID[p.Retried.ID]; ok {
				r.RetriedStored++
			} else {
				r.Lost = append(r.Lost, fmt.Sprintf("key %s, retried with its id after an unknown outcome, answered %d with id %s, is not in %s's history",
					p.Key, p.Retried.Status, p.Retried.ID, p.Room))
			}
		}
	}

	serverError := func(what string, node int, at time.Time, detail string) {
		if len(r.ServerErrors) < 50 {
			r.ServerErrors = append(r.ServerErrors, fmt.Sprintf("%s on node %d at %s: %s", what, node+1, at.Format("15:04:05.000"), clip(detail, 200)))
		}
	}
	for _, p := range h.Publishes {
		if p.Status == http.StatusInternalServerError {
			serverError("publish "+p.Key+" answered 500", p.Node, p.Start, p.Err)
		}
	}
	if len(h.Probes) > 0 {
		r.ReadyStatus, r.ReadStatus = map[int]int{}, map[int]int{}
	}
	for _, pr := range h.Probes {
		if pr.Kind == Ready {
			r.ReadyStatus[pr.Status]++
		} else {
			r.ReadStatus[pr.Status]++
		}
		if pr.Status == http.StatusInternalServerError {
			serverError(pr.Kind.String()+" "+pr.URL+" answered 500", pr.Node, pr.At, pr.Detail)
		}
	}

	checkReadiness(r, h)

	for i := 1; i < len(h.NodeStored); i++ {
		for room, want := range h.NodeStored[0] {
			got := h.NodeStored[i][room]
			if d := differ(want, got); d != "" {
				r.Diverged = append(r.Diverged, fmt.Sprintf("node %d's history of %s differs from node 1's: %s", i+1, room, d))
			}
		}
	}
}

// checkReadiness compares each /readyz answer with the publishes sent to
// its node in the readyWindow before it: "ready" while every one of them
// failed, or "not ready" while one succeeded, is a disagreement; a run of
// them longer than h.ReadyTolerance is a lie.
func checkReadiness(r *Report, h History) {
	byNode := map[int][]Publish{}
	for _, p := range h.Publishes {
		byNode[p.Node] = append(byNode[p.Node], p)
	}
	for _, pubs := range byNode {
		sort.Slice(pubs, func(i, j int) bool { return pubs[i].Start.Before(pubs[j].Start) })
	}
	probes := map[int][]Probe{}
	var nodes []int
	for _, pr := range h.Probes {
		if pr.Kind != Ready || (pr.Status != http.StatusOK && pr.Status != http.StatusServiceUnavailable) {
			continue
		}
		if probes[pr.Node] == nil {
			nodes = append(nodes, pr.Node)
		}
		probes[pr.Node] = append(probes[pr.Node], pr)
	}
	sort.Ints(nodes)
	for _, node := range nodes {
		var start, end time.Time // the current run of disagreeing probes
		var ready bool
		var detail string
		flush := func() {
			if !start.IsZero() && end.Sub(start) > h.ReadyTolerance {
				what := "ready (200) while every publish sent to it failed"
				if !ready {
					what = "not ready (503: " + clip(detail, 160) + ") while publishes sent to it succeeded"
				}
				r.ReadyLies = append(r.ReadyLies, fmt.Sprintf("node %d said %s for %s from %s",
					node+1, what, end.Sub(start).Round(time.Millisecond), start.Format("15:04:05.000")))
			}
			start = time.Time{}
		}
		for _, pr := range probes[node] {
			ok, failed := 0, 0
			for _, p := range byNode[node] {
				if p.Start.After(pr.At) {
					break
				}
				if p.Start.Before(pr.At.Add(-readyWindow)) {
					continue
				}
				if p.Outcome == OK {
					ok++
				} else {
					failed++
				}
			}
			isReady := pr.Status == http.StatusOK
			if !(isReady && failed > 0 && ok == 0 || !isReady && ok > 0) {
				flush()
				continue
			}
			r.Disagreeing++
			if !start.IsZero() && ready != isReady {
				flush()
			}
			if start.IsZero() {
				start, ready, detail = pr.At, isReady, pr.Detail
			}
			end = pr.At
		}
		flush()
	}
}

// differ says where two histories of a room part ("" when equal).
func differ(a, b []Stored) string {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i].ID != b[i].ID || a[i].Key != b[i].Key {
			return fmt.Sprintf("message %d is %s (key %s) there, %s (key %s) here", i+1, a[i].ID, a[i].Key, b[i].ID, b[i].Key)
		}
	}
	if len(a) != len(b) {
		return fmt.Sprintf("%d messages there, %d here", len(a), len(b))
	}
	return ""
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
