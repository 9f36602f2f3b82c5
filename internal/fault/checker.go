package fault

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Report is what Check found. The lists hold one line per finding.
type Report struct {
	Publishes, OK, Failed, Unknown int
	Deliveries, Reconnects         int
	// Lost: answered OK (or delivered) but not in the room's history.
	Lost []string
	// Duplicated: a subscriber got a message twice, or a key is stored
	// twice.
	Duplicated []string
	// Reordered: a subscriber got a message after a later one of its room.
	Reordered []string
	// Unexpected: delivered or stored, but never published, or delivered
	// to a subscriber of another room.
	Unexpected []string
	// RefusedStored: stored or delivered although its publish was answered
	// as certainly not stored (4xx, 503, 507): a client that believed it
	// and retried without the same id would duplicate it.
	RefusedStored []string
	// Gaps: a subscriber missed a message of its room, published while it
	// was subscribed, and no reset told it.
	Gaps []string
	// Resets counts reset events; Announced the messages subscribers
	// missed after a reset told them they had.
	Resets, Announced int
	// ResetReasons counts resets by the server's reason.
	ResetReasons map[string]int

	// Cluster runs (checkcluster.go).
	// ServerErrors: answers 500 (publishes, /readyz, history reads).
	ServerErrors []string
	// ReadyLies: a node's /readyz disagreed with what publishes sent to it
	// met for longer than History.ReadyTolerance.
	ReadyLies []string
	// Diverged: a node's history of a room differs from the first node's.
	Diverged []string
	// Probes and reads: /readyz answers by status, history reads by status.
	ReadyStatus, ReadStatus map[int]int
	// Disagreeing counts /readyz probes that disagreed with publishes
	// (within the tolerance or not).
	Disagreeing int
	// Retried counts Unknown publishes retried with the same id after the
	// run; RetriedStored those the retry found or stored once.
	Retried, RetriedStored int
}

// Clean reports no lost, duplicated, reordered or unexpected message and
// no silent gap. Resets are judged by the scenario.
func (r *Report) Clean() bool {
	return len(r.Lost)+len(r.Duplicated)+len(r.Reordered)+len(r.Unexpected)+len(r.Gaps)+
		len(r.RefusedStored)+len(r.ServerErrors)+len(r.ReadyLies)+len(r.Diverged) == 0
}

func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d publishes: %d ok, %d failed, %d unknown; %d deliveries, %d reconnects; lost %d, duplicated %d, reordered %d, unexpected %d, gaps %d; resets %d (%d messages missed after them)",
		r.Publishes, r.OK, r.Failed, r.Unknown, r.Deliveries, r.Reconnects, len(r.Lost), len(r.Duplicated), len(r.Reordered), len(r.Unexpected), len(r.Gaps), r.Resets, r.Announced)
	if len(r.ResetReasons) > 0 {
		reasons := make([]string, 0, len(r.ResetReasons))
		for why, n := range r.ResetReasons {
			reasons = append(reasons, fmt.Sprintf("%d× %q", n, why))
		}
		sort.Strings(reasons)
		fmt.Fprintf(&b, " [%s]", strings.Join(reasons, ", "))
	}
	if len(r.ReadyStatus)+len(r.ReadStatus) > 0 || len(r.RefusedStored) > 0 {
		fmt.Fprintf(&b, "\n  refused but stored %d, 500s %d, readiness lies %d (%d probes disagreed), diverged %d; /readyz %v, reads %v; %d unknown retried with their id, %d of them stored once",
			len(r.RefusedStored), len(r.ServerErrors), len(r.ReadyLies), r.Disagreeing, len(r.Diverged), r.ReadyStatus, r.ReadStatus, r.Retried, r.RetriedStored)
	}
	for _, l := range []struct {
		name  string
		items []string
	}{{"lost", r.Lost}, {"duplicated", r.Duplicated}, {"reordered", r.Reordered}, {"unexpected", r.Unexpected}, {"gap", r.Gaps},
		{"refused but stored", r.RefusedStored}, {"500", r.ServerErrors}, {"readiness", r.ReadyLies}, {"diverged", r.Diverged}} {
		for i, it := range l.items {
			if i == 10 {
				fmt.Fprintf(&b, "\n  %s: … %d more", l.name, len(l.items)-10)
				break
			}
			fmt.Fprintf(&b, "\n  %s: %s", l.name, it)
		}
	}
	return b.String()
}

// place is where a stored message is.
type place struct {
	room string
	seq  uint64
}

// Check reads a run's history.
func Check(h History) *Report {
	r := &Report{ResetReasons: map[string]int{}}
	pubs := map[string]*Publish{}
	for i := range h.Publishes {
		p := &h.Publishes[i]
		pubs[p.Key] = p
		r.Publishes++
		switch p.Outcome {
		case OK:
			r.OK++
		case Failed:
			r.Failed++
		default:
			r.Unknown++
		}
	}

	// What the store holds.
	storedID := map[string]place{}
	storedKey := map[string]bool{}
	rooms := make([]string, 0, len(h.Stored))
	for room := range h.Stored {
		rooms = append(rooms, room)
	}
	sort.Strings(rooms)
	for _, room := range rooms {
		for _, m := range h.Stored[room] {
			storedID[m.ID] = place{room, seqOf(m.ID)}
			if storedKey[m.Key] {
				r.Duplicated = append(r.Duplicated, fmt.Sprintf("key %s is stored twice (again as %s in %s)", m.Key, m.ID, room))
			}
			storedKey[m.Key] = true
			switch p := pubs[m.Key]; {
			case p == nil:
				r.Unexpected = append(r.Unexpected, fmt.Sprintf("%s in %s (key %q) is stored but was never published", m.ID, room, m.Key))
			case p.Outcome == Failed:
				r.RefusedStored = append(r.RefusedStored, fmt.Sprintf("%s in %s (key %s) is stored although its publish failed with %d %s", m.ID, room, m.Key, p.Status, p.Err))
			case p.Room != room:
				r.Unexpected = append(r.Unexpected, fmt.Sprintf("%s (key %s) is stored in %s but was published to %s", m.ID, m.Key, room, p.Room))
			}
		}
	}
	for _, p := range h.Publishes {
		if p.Outcome == OK {
			if _, ok := storedID[p.ID]; !ok {
				r.Lost = append(r.Lost, fmt.Sprintf("key %s answered %d with id %s is not in %s's history", p.Key, p.Status, p.ID, p.Room))
			}
		}
	}

	for _, s := range h.Subscribers {
		checkSubscriber(r, s, pubs, storedID, h.Stored[s.Room])
	}
	checkCluster(r, h, storedID)
	return r
}

// checkSubscriber checks one subscriber's log against the history of its
// room.
func checkSubscriber(r *Report, s SubscriberLog, pubs map[string]*Publish, storedID map[string]place, room []Stored) {
	var first time.Time
	seen := map[string]bool{}
	var last uint64           // highest sequence delivered so far
	var announced [][2]uint64 // (after, upTo]: missed messages a reset told of
	connects := 0
	for _, ev := range s.Events {
		switch ev.Kind {
		case Connected:
			if first.IsZero() {
				first = ev.At
			}
			connects++
		case Reset:
			r.Resets++
			r.ResetReasons[ev.Reason]++
			if upTo := seqOf(ev.EventID); upTo > last {
				announced = append(announced, [2]uint64{last, upTo})
			}
		case Message:
			r.Deliveries++
			where, stored := storedID[ev.ID]
			p := pubs[ev.Key]
			switch {
			case p == nil:
				r.Unexpected = append(r.Unexpected, fmt.Sprintf("%s got %s (key %q), never published", s.Name, ev.ID, ev.Key))
			case p.Outcome == Failed:
				r.RefusedStored = append(r.RefusedStored, fmt.Sprintf("%s got %s (key %s) although its publish failed with %d %s", s.Name, ev.ID, ev.Key, p.Status, p.Err))
			case p.Room != s.Room:
				r.Unexpected = append(r.Unexpected, fmt.Sprintf("%s of room %s got %s (key %s) of room %s", s.Name, s.Room, ev.ID, ev.Key, p.Room))
			case !stored:
				r.Lost = append(r.Lost, fmt.Sprintf("%s got %s (key %s), which is no longer in %s's history", s.Name, ev.ID, ev.Key, s.Room))
			}
			if seen[ev.ID] {
				r.Duplicated = append(r.Duplicated, fmt.Sprintf("%s got %s (key %s) twice", s.Name, ev.ID, ev.Key))
				continue
			}
			seen[ev.ID] = true
			seq := seqOf(ev.ID)
			if stored {
				seq = where.seq
			}
			if seq < last {
				r.Reordered = append(r.Reordered, fmt.Sprintf("%s got %s after a message of sequence %d", s.Name, ev.ID, last))
				continue
			}
			last = seq
		}
	}
	r.Reconnects += max(0, connects-1)
	if first.IsZero() {
		return // never subscribed: nothing was owed to it
	}
	// Every message of its room published once it was subscribed is owed.
	for _, m := range room {
		p := pubs[m.Key]
		if p == nil || p.Outcome == Failed || p.Start.Before(first) || seen[m.ID] {
			continue
		}
		seq := seqOf(m.ID)
		told := false
		for _, a := range announced {
			told = told || seq > a[0] && seq <= a[1]
		}
		if told {
			r.Announced++
			continue
		}
		r.Gaps = append(r.Gaps, fmt.Sprintf("%s never got %s (key %s, published %s after it subscribed) and no reset said so",
			s.Name, m.ID, m.Key, p.Start.Sub(first).Round(time.Millisecond)))
	}
}
