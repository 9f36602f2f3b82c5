package fault

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestFaultImportsNoServerPackage holds doc.go's rule: the suite talks to
// the server over HTTP, as any client, and shares none of its code (a bug
// there would otherwise be checked by itself).
func TestFaultImportsNoServerPackage(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/roomcast/roomcast/internal/fault") {
		t.Fatalf("go list -deps . does not list the package itself: %v", deps)
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "github.com/") && d != "github.com/roomcast/roomcast/internal/fault" {
			t.Errorf("internal/fault depends on %s", d)
		}
	}
}
