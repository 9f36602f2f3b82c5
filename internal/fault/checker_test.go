package fault

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// pub is a publish of key to room a at ms, answered with outcome and id.
func pub(key string, ms int, o Outcome, id string) Publish {
	status := map[Outcome]int{OK: 202, Failed: 507, Unknown: 503}[o]
	return Publish{Key: key, Room: "a", Outcome: o, Status: status, ID: id, Start: at(ms), End: at(ms + 1)}
}

func msg(key, id string, ms int) Event {
	return Event{Kind: Message, Key: key, ID: id, EventID: id + ".tok", At: at(ms)}
}

func conn(ms int) Event { return Event{Kind: Connected, At: at(ms), EventID: "e-0.tok"} }

func sub(events ...Event) SubscriberLog {
	return SubscriberLog{Name: "s1", Room: "a", Events: events}
}

// base is a clean run: three publishes to room a, stored and delivered.
func base() History {
	return History{
		Publishes:   []Publish{pub("k1", 10, OK, "e-1"), pub("k2", 20, OK, "e-2"), pub("k3", 30, OK, "e-3")},
		Subscribers: []SubscriberLog{sub(conn(0), msg("k1", "e-1", 11), msg("k2", "e-2", 21), msg("k3", "e-3", 31))},
		Stored:      map[string][]Stored{"a": {{"k1", "e-1"}, {"k2", "e-2"}, {"k3", "e-3"}}},
	}
}

// TestCheckFlagsEachAnomaly feeds the checker histories that each break
// one rule, and clean ones that must stay clean.
func TestCheckFlagsEachAnomaly(t *testing.T) {
	type counts struct{ lost, dup, reord, unexp, gaps, resets, announced, refused int }
	tests := []struct {
		name   string
		change func(h *History)
		want   counts
		text   string // a finding's text must contain this
	}{
		{"clean", func(h *History) {}, counts{}, ""},
		{"ok publish missing from history", func(h *History) {
			h.Stored["a"] = h.Stored["a"][:2]
			h.Subscribers[0].Events = h.Subscribers[0].Events[:3]
		}, counts{lost: 1}, "k3"},
		{"delivered, then gone from history", func(h *History) {
			h.Publishes[2].Outcome = Unknown
			h.Stored["a"] = h.Stored["a"][:2]
		}, counts{lost: 1}, "no longer in"},
		{"delivered twice", func(h *History) {
			h.Subscribers[0].Events = append(h.Subscribers[0].Events, msg("k3", "e-3", 40))
		}, counts{dup: 1}, "twice"},
		{"stored twice", func(h *History) {
			h.Stored["a"] = append(h.Stored["a"], Stored{"k3", "e-4"})
		}, counts{dup: 1, gaps: 1}, "stored twice"}, // and the subscriber did not get the second copy
		{"delivered out of order", func(h *History) {
			ev := h.Subscribers[0].Events
			ev[2], ev[3] = ev[3], ev[2]
		}, counts{reord: 1}, "after a message of sequence 3"},
		{"delivered, never published", func(h *History) {
			h.Subscribers[0].Events = append(h.Subscribers[0].Events, msg("ghost", "e-9", 50))
		}, counts{unexp: 1, lost: 0}, "never published"},
		{"stored, never published", func(h *History) {
			h.Stored["a"] = append(h.Stored["a"], Stored{"ghost", "e-4"})
		}, counts{unexp: 1}, "never published"},
		{"stored although the publish failed", func(h *History) {
			h.Publishes[1].Outcome = Failed
		}, counts{refused: 2}, "its publish failed"},
		{"a 503 stored: refused but stored", func(h *History) {
			h.Publishes[1].Outcome, h.Publishes[1].Status = Failed, 503
		}, counts{refused: 2}, "refused but stored: e-2"},
		{"delivered to another room's subscriber", func(h *History) {
			h.Publishes = append(h.Publishes, Publish{Key: "b1", Room: "b", Outcome: OK, Status: 202, ID: "e-4", Start: at(40)})
			h.Stored["b"] = []Stored{{"b1", "e-4"}}
			h.Subscribers[0].Events = append(h.Subscribers[0].Events, msg("b1", "e-4", 41))
		}, counts{unexp: 1}, "of room b"},
		{"a silent gap", func(h *History) {
			ev := h.Subscribers[0].Events
			h.Subscribers[0].Events = append(ev[:2:2], ev[3])
		}, counts{gaps: 1}, "never got e-2"},
		{"missed at the end", func(h *History) {
			h.Subscribers[0].Events = h.Subscribers[0].Events[:3]
		}, counts{gaps: 1}, "never got e-3"},
		{"a gap a reset announced", func(h *History) {
			h.Subscribers[0].Events = []Event{conn(0), msg("k1", "e-1", 11),
				{Kind: Dropped, At: at(15)}, conn(25),
				{Kind: Reset, At: at(25), EventID: "e-2.tok2", Reason: "the connection is past its recovery window"},
				msg("k3", "e-3", 31)}
		}, counts{resets: 1, announced: 1}, ""},
		{"a reset does not excuse what follows it", func(h *History) {
			h.Subscribers[0].Events = []Event{conn(0), msg("k1", "e-1", 11),
				{Kind: Reset, At: at(12), EventID: "e-1.tok2", Reason: "retention"}, msg("k3", "e-3", 31)}
		}, counts{resets: 1, gaps: 1}, "never got e-2"},
		{"published before it subscribed: not owed", func(h *History) {
			h.Subscribers[0].Events = []Event{conn(15), msg("k2", "e-2", 21), msg("k3", "e-3", 31)}
		}, counts{}, ""},
		{"never subscribed: nothing owed", func(h *History) {
			h.Subscribers[0].Events = []Event{{Kind: Dropped, At: at(1), Reason: "connection refused"}}
		}, counts{}, ""},
		{"unknown, not stored, not delivered: fine", func(h *History) {
			h.Publishes = append(h.Publishes, pub("k4", 40, Unknown, ""))
		}, counts{}, ""},
		{"unknown but stored: owed to subscribers", func(h *History) {
			h.Publishes = append(h.Publishes, pub("k4", 40, Unknown, ""))
			h.Stored["a"] = append(h.Stored["a"], Stored{"k4", "e-4"})
		}, counts{gaps: 1}, "never got e-4"},
		{"failed, not stored: fine", func(h *History) {
			h.Publishes = append(h.Publishes, pub("k4", 40, Failed, ""))
		}, counts{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := base()
			tt.change(&h)
			r := Check(h)
			got := counts{len(r.Lost), len(r.Duplicated), len(r.Reordered), len(r.Unexpected), len(r.Gaps), r.Resets, r.Announced, len(r.RefusedStored)}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v\n%s", got, tt.want, r)
			}
			if clean := tt.want.lost+tt.want.dup+tt.want.reord+tt.want.unexp+tt.want.gaps+tt.want.refused == 0; r.Clean() != clean {
				t.Errorf("Clean() = %v, want %v", r.Clean(), clean)
			}
			if tt.text != "" && !strings.Contains(r.String(), tt.text) {
				t.Errorf("report does not say %q:\n%s", tt.text, r)
			}
		})
	}
}

// TestCheckCounts: the totals of a run.
func TestCheckCounts(t *testing.T) {
	h := base()
	h.Publishes = append(h.Publishes, pub("k4", 40, Failed, ""), pub("k5", 50, Unknown, ""))
	h.Subscribers[0].Events = append(h.Subscribers[0].Events, Event{Kind: Dropped, At: at(60)}, conn(70))
	h.Subscribers = append(h.Subscribers, SubscriberLog{Name: "s2", Room: "a", Events: []Event{conn(0),
		{Kind: Reset, At: at(1), EventID: "e-0.t", Reason: "r1"}, msg("k1", "e-1", 11), msg("k2", "e-2", 21), msg("k3", "e-3", 31)}})
	r := Check(h)
	if r.Publishes != 5 || r.OK != 3 || r.Failed != 1 || r.Unknown != 1 || r.Deliveries != 6 || r.Reconnects != 1 || r.Resets != 1 || r.ResetReasons["r1"] != 1 || !r.Clean() {
		t.Fatalf("counts: %s", r)
	}
}

func TestSeqOf(t *testing.T) {
	for in, want := range map[string]uint64{"ab12-7": 7, "ab12-7.tok-en": 7, "ab12-0": 0, "x": 0, "": 0, "a-b-42": 42} {
		if got := seqOf(in); got != want {
			t.Errorf("seqOf(%q) = %d, want %d", in, got, want)
		}
	}
}
