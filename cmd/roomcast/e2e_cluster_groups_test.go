package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestClusterGroupLeases: a consumer group's guarantees hold when its
// members, its publisher and the acks are on different nodes of a
// three-node cluster (issue 13, points 2 and 3):
//   - a member's connection ends: the jobs it held go at once (long before
//     the ack wait) to a member on another node;
//   - a lease runs out: the job goes to a member on another node, the old
//     holder is told (revoked), and its late ack — sent to a third node —
//     is refused with 409; only the new holder's ack counts.
func TestClusterGroupLeases(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: not in -short")
	}
	t.Parallel()
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0].srv, nodes[1].srv, nodes[2].srv

	t.Run("a closed member's jobs go to a member on another node at once", func(t *testing.T) {
		putGroup(t, n1, "handoff", "g", map[string]any{"ack_wait": "1h", "max_in_flight": 3})
		a := joinGroup(t, n2, "handoff", "g")
		for i := 0; i < 3; i++ {
			n1.publish(t, "/ns/default/rooms/handoff/messages", map[string]any{"event": "job", "data": i}, "")
		}
		for i := 0; i < 3; i++ {
			a.next(t, 10*time.Second)
		}
		b := joinGroup(t, n3, "handoff", "g")
		b.st.NothingBefore(n1, "default", b.id, "") // a holds all three
		a.st.Close()
		got := map[string]bool{}
		var acks []string
		for i := 0; i < 3; i++ {
			d := b.next(t, 20*time.Second) // the ack wait is an hour
			if d.Delivery != 2 {
				t.Errorf("delivery count %d, want 2", d.Delivery)
			}
			got[string(d.Data)] = true
			acks = append(acks, d.AckID)
		}
		if len(got) != 3 {
			t.Fatalf("b got %v", got)
		}
		if code := b.settle(t, n1, "handoff", "g", "acks", acks...); code != http.StatusNoContent {
			t.Fatalf("acks of b's jobs sent to n1: %d", code)
		}
		eventually(t, 10*time.Second, "group drained", func() bool {
			st := groupState(t, n2, "handoff", "g")
			return st["pending"].(float64) == 0 && st["in_flight"].(float64) == 0
		})
		b.st.Close()
	})

	t.Run("a superseded ack is refused on any node", func(t *testing.T) {
		putGroup(t, n1, "lease", "g", map[string]any{"ack_wait": "1s", "max_in_flight": 1, "max_deliver": 10})
		a := joinGroup(t, n2, "lease", "g")
		n1.publish(t, "/ns/default/rooms/lease/messages", `{"event":"job","data":1}`, "")
		first := a.next(t, 10*time.Second) // a holds it and never acks
		b := joinGroup(t, n3, "lease", "g")
		again := b.next(t, 20*time.Second) // after a's lease ran out
		if again.ID != first.ID || again.Delivery < 2 || again.AckID == first.AckID {
			t.Fatalf("b got %s delivery %d ack id %s, want %s redelivered with a new ack id", again.ID, again.Delivery, again.AckID, first.ID)
		}
		// a was told when its lease ended.
		if ev := a.st.Next(10 * time.Second); ev.Event != "revoked" || !strings.Contains(ev.Data, first.AckID) {
			t.Fatalf("a's next event %s %s, want revoked for %s", ev.Event, ev.Data, first.AckID)
		}
		// a's late ack, sent to n1 (neither a's node nor b's), is refused.
		code, body, _ := n1.do(t, http.MethodPost, "/ns/default/rooms/lease/groups/g/acks", map[string]any{"ids": []string{first.AckID}}, a.token)
		if code != http.StatusConflict || !strings.Contains(body["detail"].(string), "superseded") {
			t.Fatalf("a's late ack on n1: %d %v, want 409 superseded", code, body)
		}
		// b's ack, sent to n2 (a's node), counts.
		if code := b.settle(t, n2, "lease", "g", "acks", again.AckID); code != http.StatusNoContent {
			t.Fatalf("b's ack on n2: %d", code)
		}
		eventually(t, 10*time.Second, "group drained", func() bool {
			st := groupState(t, n3, "lease", "g")
			return st["pending"].(float64) == 0 && st["in_flight"].(float64) == 0 && st["redelivered"].(float64) == 0
		})
	})
}
