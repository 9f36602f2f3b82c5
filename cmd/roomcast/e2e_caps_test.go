package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCapsParcelService is the parcel-service story end to end in a "caps"
// namespace: vendors publish pickups to a room consumed by a "drivers"
// group of three driver connections; each driver acknowledges its pickup
// and reports "in-transit" and "delivered" to the vendor's own room. One
// vendor is offline during the run and gets all its notices, in order, when
// it reconnects; one driver crashes holding a pickup and another delivers it.
func TestCapsParcelService(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "roomcast.yaml")
	if err := os.WriteFile(cfg, []byte("namespaces:\n  - name: caps\n    group_ack_wait: 30s\n    group_max_in_flight: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--config", cfg)
	const ns = "/ns/caps"

	// Vendor "acme" is online; vendor "globex" connected once, then went
	// offline (it keeps its last event id).
	acme := s.subscribe(t, ns+"/rooms/vendor-acme/events", "")
	acmeID, _, _ := acme.connected()
	globex := s.subscribe(t, ns+"/rooms/vendor-globex/events", "")
	_, _, globexLast := globex.connected()
	globex.Close()

	type driver struct {
		*member
		name string
	}
	drivers := make([]*driver, 3)
	for i := range drivers {
		st := s.subscribe(t, ns+"/rooms/pickups/events?group=drivers", "")
		id, token, _ := st.connected()
		drivers[i] = &driver{member: &member{st: st, id: id, token: token, ns: ns}, name: fmt.Sprintf("driver-%d", i)}
	}
	eventually(t, 10*time.Second, "three drivers in the group", func() bool {
		_, body, _ := s.do(t, http.MethodGet, ns+"/rooms/pickups/groups/drivers", nil, "")
		ms, _ := body["members"].([]any)
		return len(ms) == 3
	})

	type order struct {
		ID     string `json:"order"`
		Vendor string `json:"vendor"`
	}
	var orders []order
	for i := 0; i < 6; i++ {
		o := order{ID: fmt.Sprintf("o%d", i), Vendor: []string{"acme", "globex"}[i%2]}
		orders = append(orders, o)
		s.publish(t, ns+"/rooms/pickups/messages", map[string]any{"event": "pickup", "data": o}, "")
	}

	// Driver 0 crashes holding the first pickup it gets (max_in_flight 1:
	// it gets exactly one); the others work until every order is delivered.
	crashed := drivers[0].next(t, 10*time.Second)
	drivers[0].st.Close()
	var crashedOrder order
	if err := json.Unmarshal(crashed.Data, &crashedOrder); err != nil {
		t.Fatal(err)
	}

	delivered := map[string]string{} // order → driver
	deadline := time.Now().Add(30 * time.Second)
	for len(delivered) < len(orders) && time.Now().Before(deadline) {
		for _, d := range drivers[1:] {
			select {
			case ev := <-d.st.events:
				var dl delivery
				if err := json.Unmarshal([]byte(ev.Data), &dl); err != nil || dl.AckID == "" {
					t.Fatalf("%s: not a delivery: %s", d.name, ev.Data)
				}
				var o order
				if err := json.Unmarshal(dl.Data, &o); err != nil {
					t.Fatal(err)
				}
				if prev, ok := delivered[o.ID]; ok {
					t.Fatalf("order %s delivered twice (by %s and %s)", o.ID, prev, d.name)
				}
				for _, status := range []string{"in-transit", "delivered"} {
					s.publish(t, ns+"/rooms/vendor-"+o.Vendor+"/messages",
						map[string]any{"event": status, "data": map[string]string{"order": o.ID, "driver": d.name}}, d.token)
				}
				if code := d.settle(t, s, "pickups", "drivers", "acks", dl.AckID); code != http.StatusNoContent {
					t.Fatalf("ack: %d", code)
				}
				delivered[o.ID] = d.name
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	if len(delivered) != len(orders) {
		t.Fatalf("delivered %d of %d orders: %v", len(delivered), len(orders), delivered)
	}
	if delivered[crashedOrder.ID] == "" || delivered[crashedOrder.ID] == drivers[0].name {
		t.Fatalf("the crashed driver's order %s was not delivered by another driver", crashedOrder.ID)
	}

	// acme, online, saw its notices live; globex gets all of its own on
	// reconnecting with its last event id, in order, from the drivers.
	check := func(st *sseStream, id, vendor string) {
		t.Helper()
		seen := map[string][]string{}
		want := 0
		for _, o := range orders {
			if o.Vendor == vendor {
				want += 2
			}
		}
		for i := 0; i < want; i++ {
			ev := st.Next(10 * time.Second)
			env := ev.envelope(t)
			d := env["data"].(map[string]any)
			if env["from"] == nil {
				t.Errorf("%s: notice without from", vendor)
			}
			seen[d["order"].(string)] = append(seen[d["order"].(string)], ev.Event)
		}
		for _, o := range orders {
			if o.Vendor != vendor {
				continue
			}
			if got := seen[o.ID]; len(got) != 2 || got[0] != "in-transit" || got[1] != "delivered" {
				t.Errorf("%s: order %s notices %v, want [in-transit delivered]", vendor, o.ID, got)
			}
		}
		st.NothingBefore(s, ns[len("/ns/"):], id, "")
	}
	check(acme, acmeID, "acme")
	back := s.subscribe(t, ns+"/rooms/vendor-globex/events", globexLast)
	backID, _, _ := back.connected()
	check(back, backID, "globex")
}
