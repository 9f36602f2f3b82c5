package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/hub"
)

// cluster3 prepares the configurations of a 3-node embedded cluster on
// loopback.
func cluster3(t *testing.T) []Config {
	t.Helper()
	var routes, listens []string
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listens = append(listens, l.Addr().String())
		routes = append(routes, "nats://"+l.Addr().String())
		l.Close()
	}
	cfgs := make([]Config, 3)
	for i := range cfgs {
		cfgs[i] = Config{DataDir: t.TempDir(), NodeName: fmt.Sprintf("n%d", i+1), ClusterName: "c", ClusterListen: listens[i], Routes: routes}
	}
	return cfgs
}

// openAll opens engines on cfgs at once (a new cluster's nodes wait for
// each other) and closes them when the test ends.
func openAll(t *testing.T, cfgs ...Config) []*Engine {
	t.Helper()
	engines := make([]*Engine, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			engines[i], errs[i] = Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		}()
	}
	wg.Wait()
	for i, e := range engines {
		if errs[i] != nil {
			t.Fatalf("node %s: %v", cfgs[i].NodeName, errs[i])
		}
		t.Cleanup(e.Close)
	}
	return engines
}

// TestFirstStartWithTwoOfThree: a new cluster of three whose third node
// does not come serves with two (it gave up after 60 s), with streams of
// two replicas, raised to three once the third node joins, which then
// reads what was stored without it.
func TestFirstStartWithTwoOfThree(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster: not in -short")
	}
	cfgs := cluster3(t)
	began := time.Now()
	two := openAll(t, cfgs[0], cfgs[1])
	t.Logf("two nodes of three serve after %s", time.Since(began).Round(time.Millisecond))
	ctx := context.Background()
	for _, e := range two {
		if _, err := e.OpenNamespace(ctx, "x", hub.Retention{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := two[0].Replicas(); got != 2 {
		t.Errorf("replicas with two nodes of three: %d, want 2", got)
	}
	var acked []uint64
	for i := range 10 {
		pos, _, err := two[i%2].Publish(ctx, "x", &hub.Outgoing{Rooms: []string{"r"}, Event: "e", Body: []byte(fmt.Sprintf(`{"n":%d}`, i))})
		if err != nil {
			t.Fatalf("publish on two nodes of three: %v", err)
		}
		acked = append(acked, pos.Seq)
	}

	third := openAll(t, cfgs[2])[0]
	if _, err := third.OpenNamespace(ctx, "x", hub.Retention{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "every stream raised to 3 replicas", func() bool {
		for _, name := range []string{"roomcast_x", sessionsStream} {
			s, err := third.js.Stream(ctx, name)
			if err != nil || s.CachedInfo().Config.Replicas != 3 {
				return false
			}
		}
		return two[0].Replicas() == 3
	})
	var got []uint64
	if err := third.Read(ctx, "x", 1, 0, hub.Filter{Rooms: []string{"r"}}, func(m *hub.Message) bool {
		got = append(got, m.Pos.Seq)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(acked) {
		t.Fatalf("the third node reads %v, want %v", got, acked)
	}
}

// TestReadsOnEveryNode: in a healthy cluster, a message acknowledged on
// one node is read at once on every node (no "no responders", no message
// missing from a follower that has not applied it yet), page after page.
func TestReadsOnEveryNode(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster: not in -short")
	}
	engines := openAll(t, cluster3(t)...)
	ctx := context.Background()
	for _, e := range engines {
		if _, err := e.OpenNamespace(ctx, "x", hub.Retention{}); err != nil {
			t.Fatal(err)
		}
	}
	var last uint64
	for i := range 600 {
		pos, _, err := engines[i%3].Publish(ctx, "x", &hub.Outgoing{Rooms: []string{[]string{"a", "b"}[i%2]}, Event: "e", Body: []byte(fmt.Sprintf(`{"n":%d}`, i))})
		if err != nil {
			t.Fatal(err)
		}
		last = pos.Seq
		if i%50 != 49 {
			continue
		}
		// Right after the ack, on each node: the whole room, to the last.
		for j, e := range engines {
			n, top := 0, uint64(0)
			if err := e.Read(ctx, "x", 1, last, hub.Filter{Rooms: []string{"a", "b"}}, func(m *hub.Message) bool {
				n++
				top = m.Pos.Seq
				return true
			}); err != nil {
				t.Fatalf("read on node %d after publish %d: %v", j+1, i, err)
			}
			if uint64(n) != last || top != last {
				t.Fatalf("read on node %d right after publish %d: %d messages up to %d, want %d", j+1, i, n, top, last)
			}
		}
	}
}
