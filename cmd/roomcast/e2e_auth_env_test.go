package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// authEnvConfig is a jwt namespace whose secret and API keys come from the
// environment (the README's locked-down example).
const authEnvConfig = `namespaces:
  - name: app
    auth: jwt
    jwt_audience: roomcast
    jwt_keys:
      - {alg: HS256, secret_env: ROOMCAST_APP_SECRET}
    api_keys_env: ROOMCAST_APP_API_KEYS
`

// runWithEnv runs the server with authEnvConfig and env as its environment
// until it fails or listens; a listening server is stopped at the test's end
// and its URL returned.
func runWithEnv(t *testing.T, env map[string]string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "roomcast.yaml")
	if err := os.WriteFile(cfg, []byte(authEnvConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	aw := &addrWriter{addr: make(chan string, 1)}
	logs := &syncBuffer{}
	args := []string{"--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--config", cfg, "--shutdown-timeout", "5s"}
	go func() { done <- run(ctx, args, func(n string) string { return env[n] }, aw, logs) }()
	select {
	case err := <-done:
		cancel()
		return "", err
	case url := <-aw.addr:
		t.Cleanup(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run returned %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("server did not stop within 30s")
			}
		})
		return url, nil
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("server neither failed nor listened within 60s\nlogs:\n%s", logs.String())
		return "", nil
	}
}

// TestStartRefusesUnsetAuthVariables (issue 14): a namespace whose
// secret_env or api_keys_env variable is unset or empty does not start, and
// the error names the setting and the variable. Before, an unset secret
// read "HMAC secret shorter than 32 bytes" and an unset API-keys variable
// started the namespace silently with no keys.
func TestStartRefusesUnsetAuthVariables(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	const apiKey = "env-admin-key-0123456789"
	for _, c := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"secret variable unset", map[string]string{"ROOMCAST_APP_API_KEYS": apiKey},
			"namespace app: jwt key 0: secret_env: the environment variable ROOMCAST_APP_SECRET is unset or empty; set it to an HMAC secret of at least 32 bytes"},
		{"secret variable empty", map[string]string{"ROOMCAST_APP_SECRET": "", "ROOMCAST_APP_API_KEYS": apiKey},
			"namespace app: jwt key 0: secret_env: the environment variable ROOMCAST_APP_SECRET is unset or empty; set it to an HMAC secret of at least 32 bytes"},
		{"secret too short", map[string]string{"ROOMCAST_APP_SECRET": "tooshort", "ROOMCAST_APP_API_KEYS": apiKey},
			"namespace app: jwt key 0: secret_env: the HMAC secret in ROOMCAST_APP_SECRET is 8 bytes, shorter than 32"},
		{"API keys variable unset", map[string]string{"ROOMCAST_APP_SECRET": secret},
			"namespace app: api_keys_env: the environment variable ROOMCAST_APP_API_KEYS is unset or empty; set it to comma-separated API keys of at least 16 characters each"},
		{"API keys variable of blanks and commas", map[string]string{"ROOMCAST_APP_SECRET": secret, "ROOMCAST_APP_API_KEYS": " , ,"},
			"namespace app: api_keys_env: the environment variable ROOMCAST_APP_API_KEYS is unset or empty; set it to comma-separated API keys of at least 16 characters each"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := runWithEnv(t, c.env)
			if err == nil || err.Error() != c.want {
				t.Fatalf("run: %v\nwant: %s", err, c.want)
			}
			var stderr bytes.Buffer
			exitStatus(err, &stderr)
			if strings.Contains(stderr.String(), "tooshort") {
				t.Errorf("the secret is printed: %s", stderr.String())
			}
		})
	}

	// Both set: the namespace starts and takes the keys from the variable.
	url, err := runWithEnv(t, map[string]string{"ROOMCAST_APP_SECRET": secret, "ROOMCAST_APP_API_KEYS": " other-admin-key-0123456789, " + apiKey})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key  string
		want int
	}{{apiKey, 200}, {"other-admin-key-0123456789", 200}, {"", 401}, {"not-a-key-0123456789", 401}} {
		req, _ := http.NewRequest("GET", url+"/ns/app/rooms", nil)
		if c.key != "" {
			req.Header.Set("Authorization", "Bearer "+c.key)
		}
		resp, err := requestClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("GET /ns/app/rooms with key %q: %d, want %d", c.key, resp.StatusCode, c.want)
		}
	}
}
