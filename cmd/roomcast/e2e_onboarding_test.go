package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestConfigKeepsDefaultNamespace: a config file that declares namespaces
// keeps "default" (which the README's curl session and the web app use)
// unless it says default_namespace: false; the 404 of a namespace that is
// not served says which are and where to declare one.
func TestConfigKeepsDefaultNamespace(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "roomcast.yaml")
	if err := os.WriteFile(cfg, []byte("namespaces:\n  - name: chat\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--config", cfg)
	for _, ns := range []string{"default", "chat"} {
		if code, body, _ := s.do(t, "GET", "/ns/"+ns+"/rooms", nil, ""); code != 200 {
			t.Errorf("namespace %s with a file declaring chat: %d %v, want 200", ns, code, body)
		}
	}
	only := startServer(t, "--config", cfg, "--default-namespace=false")
	code, body, _ := only.do(t, "GET", "/ns/default/rooms", nil, "")
	want := "namespace default is not declared on this server, which serves chat: declare it under namespaces: in the config file (--config)"
	if code != 404 || body["detail"] != want {
		t.Errorf("default with default_namespace false: %d %v, want 404 %q", code, body["detail"], want)
	}
}
