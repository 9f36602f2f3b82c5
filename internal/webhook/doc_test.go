package webhook

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestImportsNoAdapters holds doc.go's rule: webhook imports hub, never
// api, sse, the engine or NATS (the engine implements its interfaces).
func TestImportsNoAdapters(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/roomcast/roomcast/internal/hub") {
		t.Fatalf("go list -deps . does not list hub: %v", deps)
	}
	for _, d := range deps {
		for _, f := range []string{"github.com/roomcast/roomcast/api", "github.com/roomcast/roomcast/sse",
			"github.com/roomcast/roomcast/internal/engine", "github.com/nats-io/"} {
			if d == f || strings.HasPrefix(d, f+"/") || strings.HasPrefix(f, "github.com/nats-io/") && strings.HasPrefix(d, f) {
				t.Errorf("internal/webhook depends on %s", d)
			}
		}
	}
}
