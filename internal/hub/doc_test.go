package hub

import (
	"os/exec"
	"reflect"
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

// TestAdaptersReachTheEngineOnlyThroughTheHub: api and sse import no engine
// package, and nothing the hub hands out at run time is an engine-facing
// seam — the namespace offers verbs, never the Log, Sessions, Groups or Bus
// behind them.
func TestAdaptersReachTheEngineOnlyThroughTheHub(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/roomcast/roomcast/api", "github.com/roomcast/roomcast/sse").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, d := range strings.Fields(string(out)) {
		if d == "github.com/roomcast/roomcast/internal/engine" || strings.HasPrefix(d, "github.com/nats-io/") {
			t.Errorf("api or sse depends on %s", d)
		}
	}
	seams := []reflect.Type{
		reflect.TypeFor[Log](), reflect.TypeFor[Sessions](), reflect.TypeFor[Queue](),
		reflect.TypeFor[GroupAdmin](), reflect.TypeFor[Groups](), reflect.TypeFor[Bus](),
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[*Hub](), reflect.TypeFor[*Namespace](), reflect.TypeFor[*Conn]()} {
		for i := range typ.NumMethod() {
			m := typ.Method(i)
			for j := range m.Type.NumOut() {
				out := m.Type.Out(j)
				for _, s := range seams {
					if out == s || (out.Kind() == reflect.Interface && out.Implements(s)) {
						t.Errorf("%s.%s hands out %s, an engine-facing seam", typ, m.Name, out)
					}
				}
			}
		}
		for i := range typ.Elem().NumField() {
			if f := typ.Elem().Field(i); f.IsExported() {
				for _, s := range seams {
					if f.Type == s {
						t.Errorf("%s has the exported field %s of type %s", typ, f.Name, s)
					}
				}
			}
		}
	}
}
