package fault

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// long runs the long versions (make fault): their figures go in the
// README's reliability section.
var long = flag.Bool("fault.long", false, "run the long fault scenarios (minutes each)")

// bin is the roomcast binary the scenarios run.
var bin string

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		if bin = os.Getenv("ROOMCAST_BIN"); bin == "" {
			dir, err := os.MkdirTemp("", "roomcast-fault-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			bin = filepath.Join(dir, "roomcast")
			// The server as released: no race detector (the e2e tests of
			// cmd/roomcast run it under -race).
			build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "../../cmd/roomcast")
			build.Stdout, build.Stderr = os.Stderr, os.Stderr
			if err := build.Run(); err != nil {
				fmt.Fprintln(os.Stderr, "build roomcast:", err)
				return 1
			}
		}
		defer func() {
			if natsDir != "" {
				os.RemoveAll(natsDir)
			}
		}()
		return m.Run()
	}()
	os.Exit(code)
}

// pick is short in make test, long with -fault.long.
func pick[T any](short, longer T) T {
	if *long {
		return longer
	}
	return short
}

// TestFaultKill9 kills the server with SIGKILL again and again under
// publishes, with EventSource-style subscribers resuming with the full SSE
// id they last received. Nothing answered 2xx may be lost, no subscriber
// may get a message twice, out of order, or miss one silently, and no
// restart may find the data directory locked.
// onceArgs: a dedupe window longer than a run, so that the retries of
// unknown publishes after it are deduplicated (the checker retries them
// then; a publish's id is an idempotency key within --dedupe-window, 2
// min by default, and the long runs last longer: 8 early ones were stored
// twice in a 3-minute kill -9 run).
var onceArgs = []string{"--dedupe-window", "1h"}

func TestFaultKill9(t *testing.T) {
	res := Run(t, bin, Scenario{
		Name: "kill9", Args: onceArgs, Rooms: 2, SubscribersPerRoom: 2, Publishers: 4, PublishEvery: pick(2*time.Millisecond, time.Millisecond),
		Warmup: 500 * time.Millisecond, Duration: pick(8*time.Second, 3*time.Minute),
		Nemesis: Kill9Loop{Up: pick(1500*time.Millisecond, 2*time.Second), Down: 100 * time.Millisecond},
	})
	r := res.Report
	if r.OK == 0 || r.Reconnects == 0 {
		t.Fatalf("the run proves nothing: %d publishes answered 2xx, %d reconnects", r.OK, r.Reconnects)
	}
	if !r.Clean() {
		t.Errorf("kill -9: %s", r)
	}
	if r.Resets > 0 {
		// Sessions are saved before connected is sent: a resume after kill
		// -9 gets its connection back, with no reset.
		t.Errorf("%d resets after kill -9 (%v), want 0", r.Resets, r.ResetReasons)
	}
}

// TestFaultDiskFull fills the data volume (a small tmpfs; root only) and
// frees it, in rounds, under publishes: publishes are answered at once with 507 (a few
// in flight when the store failed with 504, outcome unknown), /readyz says 503, and the
// server recovers by itself once space is freed, losing nothing it
// acknowledged. One run keeps a reserve (publishes refused before any
// write fails), one none (a write fails: JetStream is restarted).
func TestFaultDiskFull(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reserve string
		leave   int64
	}{
		{"reserve", "4MiB", 1 << 20},
		{"write-failure", "0", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vol := SmallVolume(t, 64<<20)
			nem := &DiskFull{Volume: vol, Leave: tc.leave, Hold: pick(2*time.Second, 5*time.Second), Rounds: pick(2, 5)}
			res := Run(t, bin, Scenario{
				Name: "disk-" + tc.name, Data: vol, Args: append([]string{"--max-bytes", "16MiB", "--disk-reserve", tc.reserve}, onceArgs...),
				Rooms: 2, SubscribersPerRoom: 1, Publishers: 4, PublishEvery: 2 * time.Millisecond,
				Warmup: 300 * time.Millisecond, Duration: pick(time.Minute, 10*time.Minute), Nemesis: nem,
			})
			r := res.Report
			if !r.Clean() || r.Resets > 0 {
				t.Errorf("disk full: %s", r)
			}
			full, freed := res.Marks["full 0"], res.Marks["freed 0"]
			refused := func(p Publish) bool {
				return p.Status == http.StatusInsufficientStorage
			}
			n, p50, slowest := Latencies(res.History.Publishes, refused)
			if n == 0 {
				t.Fatalf("no publish was refused with 507 while the disk was full")
			}
			if slowest > time.Second {
				t.Errorf("507 answers took up to %s, want at once (not after the store's 3 s timeout)", slowest)
			}
			for _, p := range res.History.Publishes {
				if p.Outcome == Unknown && !p.Start.Before(full) && p.Start.Before(freed) && p.Status != http.StatusGatewayTimeout {
					t.Errorf("a publish while full ended %s (%d %s), want 507 or, in flight when the store failed, 504", p.Outcome, p.Status, p.Err)
				}
				if p.Outcome == Failed && p.Status != http.StatusInsufficientStorage {
					t.Errorf("publish failed with %d %s", p.Status, p.Err)
				}
			}
			_, _, unknownSlowest := Latencies(res.History.Publishes, func(p Publish) bool { return p.Outcome == Unknown })
			if unknownSlowest > 2*time.Second {
				t.Errorf("a publish in flight when the store failed took %s, want well under the 3 s timeout", unknownSlowest)
			}
			if nem.ReadyProbes == 0 || nem.NotReady < nem.ReadyProbes*9/10 {
				t.Errorf("/readyz answered 503 to %d of %d probes while the disk was full", nem.NotReady, nem.ReadyProbes)
			}
			if nem.Recovery > 5*time.Second {
				t.Errorf("ready again %s after space was freed, want within seconds", nem.Recovery)
			}
			t.Logf("%d publishes answered 507 (p50 %s, slowest %s); %d unknown (slowest %s); recovered within %s",
				n, p50, slowest, r.Unknown, unknownSlowest, nem.Recovery.Round(time.Millisecond))
		})
	}
}

// TestFaultSlowBody: a slowloris from one address (publishes announcing
// 65,000 bytes and sending one) while clients on another address publish
// and subscribe: the slow ones are cut (408) or refused at once (429), the
// others are all served and lose nothing.
func TestFaultSlowBody(t *testing.T) {
	const perIP = 20
	nem := &SlowBodies{N: pick(500, 5000), From: "127.0.0.1"}
	res := Run(t, bin, Scenario{
		Name: "slowbody", Args: []string{"--body-timeout", "1s", "--max-requests-per-ip", fmt.Sprint(perIP)},
		Rooms: 2, SubscribersPerRoom: 2, Publishers: 4, PublishEvery: 2 * time.Millisecond,
		PublishFrom: "127.0.0.2", SubscribeFrom: "127.0.0.2",
		Warmup: 300 * time.Millisecond, Duration: pick(10*time.Second, time.Minute), Nemesis: nem,
	})
	r := res.Report
	if !r.Clean() || r.Resets > 0 || r.Failed+r.Unknown > 0 {
		t.Errorf("slow bodies beside: %s", r)
	}
	if got := nem.Answers[http.StatusRequestTimeout] + nem.Answers[http.StatusTooManyRequests]; got != nem.N {
		t.Errorf("slow bodies answered %v, want each 408 or 429", nem.Answers)
	}
	if nem.Answers[http.StatusRequestTimeout] > perIP {
		t.Errorf("%d slow bodies held to the deadline, more than --max-requests-per-ip %d", nem.Answers[http.StatusRequestTimeout], perIP)
	}
	n, p50, slowest := Latencies(res.History.Publishes, func(p Publish) bool { return p.Outcome == OK })
	t.Logf("other address: %d publishes, p50 %s, slowest %s", n, p50, slowest)
	if !strings.Contains(strings.Join(res.Figures, " "), "slow bodies") {
		t.Error("no slow-body figure recorded")
	}
}
