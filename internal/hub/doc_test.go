package hub

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The package doc's contracts, as tests.

func TestHubImportsNoHTTPChiR3labsOrNATS(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	forbidden := []string{"net/http", "github.com/go-chi/", "github.com/r3labs/", "github.com/nats-io/",
		"github.com/roomcast/roomcast/api", "github.com/roomcast/roomcast/sse", "github.com/roomcast/roomcast/internal/engine"}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/roomcast/roomcast/internal/hub") {
		t.Fatalf("go list -deps . does not list the hub itself: %v", deps)
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f) {
				t.Errorf("internal/hub depends on %s", d)
			}
		}
	}
}

func TestConnSeesEveryMessageAfterRegistrationAndNoneBefore(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	for range 3 {
		fx.publish(&Message{Event: "e"})
		fx.publish(&Message{Event: "e", Rooms: []string{"lobby"}})
	}
	c, sink := fx.connect(t, "lobby")
	fx.publish(&Message{Event: "e"})                           // 7
	fx.publish(&Message{Event: "e", Rooms: []string{"lobby"}}) // 8
	fx.publish(&Message{Event: "e", To: c.ID})                 // 9
	if got, want := sink.seqs(), []uint64{7, 8, 9}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
