package fault

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// FaultTimes is what one fault cost, measured from the run's history.
type FaultTimes struct {
	Fault
	// Detect: from the fault to the first 503 of the faulted node's
	// /readyz (-1: it never said so; a paused node cannot answer).
	Detect time.Duration
	// Outage: the longest time, overlapping the fault or the 10 s after
	// its heal (or until the next fault), in which no publish to another
	// node was answered 2xx:
	// what the surviving nodes' clients waited for a leader (failover).
	Outage time.Duration
	// Ready: from the heal to the faulted node's first /readyz 200 after it.
	Ready time.Duration
	// OthersUnready counts 503s of the other nodes' /readyz during the
	// fault and the 10 s after its heal (they keep a quorum: want 0).
	OthersUnready int
	OthersWhy     string // the first of those 503s' detail
	// Stall: for messages stored from the fault to 10 s after the heal,
	// the longest time from a publish's answer to its first delivery to a
	// subscriber (live fan-out resuming); StallAll: to its delivery to
	// every subscriber of the room (reconnections and replays included).
	Stall, StallAll time.Duration
}

const afterHeal = 10 * time.Second

// Times measures each fault of res.
func Times(res *Result) []FaultTimes {
	h := res.History
	first := map[string]time.Time{} // key → first delivery
	last := map[string]time.Time{}  // key → last subscriber's first delivery
	for _, s := range h.Subscribers {
		got := map[string]time.Time{}
		for _, ev := range s.Events {
			if ev.Kind == Message {
				if _, ok := got[ev.Key]; !ok {
					got[ev.Key] = ev.At
				}
			}
		}
		for k, at := range got {
			if f, ok := first[k]; !ok || at.Before(f) {
				first[k] = at
			}
			if l, ok := last[k]; !ok || at.After(l) {
				last[k] = at
			}
		}
	}
	var out []FaultTimes
	for i, f := range res.Faults {
		ft := FaultTimes{Fault: f, Detect: -1, Ready: -1}
		end := f.End
		if end.IsZero() {
			end = f.Start
		}
		// Until 10 s after the heal, or the next fault.
		window := end.Add(afterHeal)
		if i+1 < len(res.Faults) && res.Faults[i+1].Start.Before(window) {
			window = res.Faults[i+1].Start
		}
		for _, pr := range h.Probes {
			if pr.Kind != Ready {
				continue
			}
			switch {
			case pr.Node == f.Node && pr.Status == http.StatusServiceUnavailable && ft.Detect < 0 && !pr.At.Before(f.Start) && pr.At.Before(end):
				ft.Detect = pr.At.Add(pr.Took).Sub(f.Start)
			case pr.Node == f.Node && pr.Status == http.StatusOK && ft.Ready < 0 && !pr.At.Before(end):
				ft.Ready = pr.At.Add(pr.Took).Sub(end)
			case pr.Node != f.Node && pr.Status == http.StatusServiceUnavailable && !pr.At.Before(f.Start) && pr.At.Before(window):
				ft.OthersUnready++
				if ft.OthersWhy == "" {
					ft.OthersWhy = fmt.Sprintf("node %d at +%s: %s", pr.Node+1, pr.At.Sub(f.Start).Round(10*time.Millisecond), pr.Detail)
				}
			}
		}
		var oks []time.Time
		for _, p := range h.Publishes {
			if p.Outcome == OK && p.Node != f.Node {
				oks = append(oks, p.End)
			}
		}
		sort.Slice(oks, func(i, j int) bool { return oks[i].Before(oks[j]) })
		prev := time.Time{}
		for _, at := range oks {
			if !prev.IsZero() && at.After(f.Start) && prev.Before(window) {
				ft.Outage = max(ft.Outage, at.Sub(prev))
			}
			prev = at
		}
		for _, p := range h.Publishes {
			if p.Outcome != OK || p.End.Before(f.Start) || p.End.After(window) {
				continue
			}
			if at, ok := first[p.Key]; ok {
				ft.Stall = max(ft.Stall, at.Sub(p.End))
			}
			if at, ok := last[p.Key]; ok {
				ft.StallAll = max(ft.StallAll, at.Sub(p.End))
			}
		}
		out = append(out, ft)
	}
	return out
}

// String is one line of the run's report.
func (ft FaultTimes) String() string {
	who := fmt.Sprintf("node %d", ft.Node+1)
	if ft.Node < 0 {
		who = "the engine"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s of %s for %s: ", ft.Kind, who, ft.End.Sub(ft.Start).Round(100*time.Millisecond))
	if ft.Detect >= 0 {
		fmt.Fprintf(&b, "its /readyz 503 after %s, ", ft.Detect.Round(10*time.Millisecond))
	}
	if ft.Ready >= 0 {
		fmt.Fprintf(&b, "ready %s after the heal, ", ft.Ready.Round(10*time.Millisecond))
	}
	fmt.Fprintf(&b, "others' publishes waited at most %s, others unready %d probes, fan-out stall %s (every subscriber %s)",
		ft.Outage.Round(10*time.Millisecond), ft.OthersUnready, ft.Stall.Round(10*time.Millisecond), ft.StallAll.Round(10*time.Millisecond))
	if ft.OthersWhy != "" {
		fmt.Fprintf(&b, " [%s]", clip(ft.OthersWhy, 300))
	}
	return b.String()
}
