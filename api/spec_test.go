package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"

	"github.com/roomcast/roomcast"
	"github.com/roomcast/roomcast/internal/hub"
	"github.com/roomcast/roomcast/internal/spectest"
)

// specLoad parses and validates openapi.yaml (examples included: kin-openapi
// checks each example against its schema).
func specLoad(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := spectest.Load()
	if err != nil {
		t.Fatalf("openapi.yaml does not parse: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	return doc
}

// TestSpecIsValid checks that openapi.yaml is a valid OpenAPI 3.0 document:
// oapi-codegen, which generates clients from it, only reads 3.0.
func TestSpecIsValid(t *testing.T) {
	doc := specLoad(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.0.") {
		t.Errorf("openapi: %q, want 3.0.x (the version the most OpenAPI tools read)", doc.OpenAPI)
	}
	seen := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if op.OperationID == "" {
				t.Errorf("%s has no operationId", where)
				continue
			}
			if prev, dup := seen[op.OperationID]; dup {
				t.Errorf("operationId %q is used by %s and %s", op.OperationID, prev, where)
			}
			seen[op.OperationID] = where
		}
	}
	for _, name := range []string{"Envelope", "Connected", "Reset", "Problem"} {
		if doc.Components.Schemas[name] == nil {
			t.Errorf("components/schemas/%s is missing: SSE clients reuse it", name)
		}
	}
}

// specRouteOf maps a route walked on the router built for the namespace
// "default" back to the spec's path template.
func specRouteOf(route string) string {
	route = strings.TrimSuffix(route, "/")
	if route == "" {
		return "/"
	}
	if rest, ok := strings.CutPrefix(route, "/ns/default/"); ok {
		return "/ns/{ns}/" + rest
	}
	return route
}

// specIgnoredRoute reports whether a walked route is not an API operation: the
// catch-alls that answer 400/404 for undeclared namespaces, and the static
// web app's file server (/*), which the spec documents as GET / only.
func specIgnoredRoute(route string) bool {
	switch route {
	case "/ns/{ns}", "/ns/{ns}/*", "/*":
		return true
	}
	return false
}

// specRoutes walks the real router and returns "METHOD /path" for each API
// route, and separately the ignored ones.
func specRoutes(t *testing.T, h http.Handler) (map[string]bool, map[string]bool) {
	t.Helper()
	cr, ok := h.(chi.Routes)
	if !ok {
		t.Fatalf("New returned %T, want a chi.Routes", h)
	}
	got := map[string]bool{}
	ignored := map[string]bool{}
	err := chi.Walk(cr, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if specIgnoredRoute(route) {
			ignored[method+" "+route] = true
			return nil
		}
		got[method+" "+specRouteOf(route)] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, ignored
}

type specNopStreams struct{}

func (specNopStreams) Serve(http.ResponseWriter, *http.Request, *hub.Namespace, hub.OpenRequest) error {
	return nil
}

// specRouter builds the whole surface as main does: the one namespace of the
// default config, a web app, metrics and status (main always serves them). No engine
// is needed to walk routes.
func specRouter(t *testing.T) http.Handler {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := testHub(t, nil, logger)
	r, err := New(Config{
		Hub: h, Streams: specNopStreams{}, Namespaces: []Namespace{{Name: "default", MaxBody: 1 << 10}},
		Spec: roomcast.OpenAPI, Web: func(nf http.Handler) http.Handler { return nf }, Metrics: http.NotFoundHandler(), Logger: logger,
		Status: &Status{Version: "test", Node: "n1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSpecMatchesRoutes fails when a route of the router is missing from
// openapi.yaml or an operation of openapi.yaml has no route: the spec is the
// source of truth of the HTTP surface.
func TestSpecMatchesRoutes(t *testing.T) {
	doc := specLoad(t)
	got, ignored := specRoutes(t, specRouter(t))

	want := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			want[method+" "+path] = true
		}
	}
	// GET / is the web app, served by the /* file server that the walk
	// ignores: it is covered when that catch-all is registered for GET.
	if want["GET /"] {
		delete(want, "GET /")
		if !ignored["GET /*"] {
			t.Errorf("openapi.yaml documents GET / but the router serves no web app on /*")
		}
	}
	if len(got) < 15 {
		t.Fatalf("walked only %d routes (%v): the walk is broken", len(got), got)
	}

	var missing, extra []string
	for r := range got {
		if !want[r] {
			missing = append(missing, r)
		}
	}
	for r := range want {
		if !got[r] {
			extra = append(extra, r)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	for _, r := range missing {
		t.Errorf("route %s is not documented in openapi.yaml", r)
	}
	for _, r := range extra {
		t.Errorf("openapi.yaml documents %s, which has no route", r)
	}
}

// TestSpecPerNamespaceRoutes checks that every per-namespace path of the spec
// declares the ns path parameter and answers an undeclared namespace (404)
// and a malformed one (400): the /ns/{ns}/* catch-all serves those for every
// method, so each such operation must document both.
func TestSpecPerNamespaceRoutes(t *testing.T) {
	doc := specLoad(t)
	for path, item := range doc.Paths.Map() {
		if !strings.HasPrefix(path, "/ns/{ns}/") {
			continue
		}
		hasNS := slices.ContainsFunc(item.Parameters, func(p *openapi3.ParameterRef) bool {
			return p.Value != nil && p.Value.In == "path" && p.Value.Name == "ns"
		})
		if !hasNS {
			t.Errorf("%s does not declare the ns path parameter", path)
		}
		for method, op := range item.Operations() {
			for _, code := range []int{http.StatusBadRequest, http.StatusNotFound, http.StatusInternalServerError} {
				if op.Responses.Status(code) == nil {
					t.Errorf("%s %s does not document %d", method, path, code)
				}
			}
		}
	}
}
