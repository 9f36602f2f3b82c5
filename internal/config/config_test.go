package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// env is a getenv over a map.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeFile writes a config file in a temp dir and returns its path.
func writeFile(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "roomcast.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// withDefaultNamespace completes a want built from Default(): Load serves
// the namespace "default" with the defaults after those declared, unless
// one of them is default or DefaultNamespace is false.
func withDefaultNamespace(c Config) Config {
	for _, n := range c.Namespaces {
		if n.Name == "default" {
			return c
		}
	}
	if c.DefaultNamespace {
		n := c.Defaults
		n.Name = "default"
		c.Namespaces = append(c.Namespaces, n)
	}
	return c
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name string
		file string // YAML; when set, passed with --config
		env  map[string]string
		args []string
		want func(c *Config)
	}{
		{name: "defaults", want: func(c *Config) {}},
		{name: "flag", args: []string{"--addr", ":9000", "--heartbeat=3s", "--queue-size", "8"},
			want: func(c *Config) { c.Addr, c.Heartbeat, c.QueueSize = ":9000", 3*time.Second, 8 }},
		{name: "single-dash flag", args: []string{"-data", "/var/lib/rc"},
			want: func(c *Config) { c.Data = "/var/lib/rc" }},
		{name: "env", env: map[string]string{"ROOMCAST_ADDR": ":9001", "ROOMCAST_DATA": "/d", "ROOMCAST_SYNC_ALWAYS": "true", "ROOMCAST_LOG_FORMAT": "json"},
			want: func(c *Config) { c.Addr, c.Data, c.SyncAlways, c.LogFormat = ":9001", "/d", true, "json" }},
		{name: "empty env is unset", env: map[string]string{"ROOMCAST_ADDR": "", "ROOMCAST_HEARTBEAT": ""},
			want: func(c *Config) {}},
		{name: "file", file: "addr: \":9002\"\nheartbeat: 20s\nsync_always: true\nqueue_size: 32\nlog_level: debug\n",
			want: func(c *Config) {
				c.Addr, c.Heartbeat, c.SyncAlways, c.QueueSize, c.LogLevel = ":9002", 20*time.Second, true, 32, "debug"
			}},
		{name: "env wins over file", file: "addr: \":1\"\nretry: 5s\n", env: map[string]string{"ROOMCAST_ADDR": ":2"},
			want: func(c *Config) { c.Addr, c.Retry = ":2", 5*time.Second }},
		{name: "flag wins over env and file", file: "addr: \":1\"\n", env: map[string]string{"ROOMCAST_ADDR": ":2"}, args: []string{"--addr", ":3"},
			want: func(c *Config) { c.Addr = ":3" }},
		{name: "flag wins over env", env: map[string]string{"ROOMCAST_RETRY": "9s", "ROOMCAST_NODE_NAME": "n1"}, args: []string{"--retry", "1s"},
			want: func(c *Config) { c.Retry, c.NodeName = time.Second, "n1" }},
		{name: "namespace setting from each source", file: "max_age: 1h\nmax_body: 1KiB\n",
			env:  map[string]string{"ROOMCAST_MAX_BODY": "2KiB", "ROOMCAST_HISTORY_LIMIT": "7"},
			args: []string{"--history-limit", "8"},
			want: func(c *Config) {
				c.Defaults.MaxAge, c.Defaults.MaxBody, c.Defaults.HistoryLimit = time.Hour, 2<<10, 8
			}},
		{name: "byte sizes", args: []string{"--max-body", "64KiB", "--max-bytes", "3MiB"}, env: map[string]string{"ROOMCAST_MAX_MSGS_PER_ROOM": "-1"},
			want: func(c *Config) {
				c.Defaults.MaxBody, c.Defaults.MaxBytes, c.Defaults.MaxMsgsPerRoom = 64<<10, 3<<20, -1
			}},
		{name: "batch bounds", file: "max_batch: 10\nmax_batch_body: 2KiB\n", args: []string{"--max-batch", "20"},
			want: func(c *Config) { c.Defaults.MaxBatch, c.Defaults.MaxBatchBody = 20, 2<<10 }},
		{name: "byte sizes in the file", file: "max_bytes: 2GiB\nmax_body: 100000\n",
			want: func(c *Config) { c.Defaults.MaxBytes, c.Defaults.MaxBody = 2<<30, 100000 }},
		{name: "per-namespace overrides",
			file: "max_body: 1MiB\nnamespaces:\n  - name: chat\n  - name: jobs\n    max_body: 2MiB\n    recovery_window: 10m\n    max_rooms_per_conn: 3\n    max_msgs_per_room: -1\n",
			env:  map[string]string{"ROOMCAST_HISTORY_LIMIT": "50"},
			want: func(c *Config) {
				c.Defaults.MaxBody, c.Defaults.HistoryLimit = 1<<20, 50
				chat, jobs := c.Defaults, c.Defaults
				chat.Name, jobs.Name = "chat", "jobs"
				jobs.MaxBody, jobs.RecoveryWindow, jobs.MaxRoomsPerConn, jobs.MaxMsgsPerRoom = 2<<20, 10*time.Minute, 3, -1
				c.Namespaces = []Namespace{chat, jobs}
			}},
		{name: "a namespace entry wins over flags for that namespace",
			file: "namespaces:\n  - name: a\n    history_limit: 5\n  - name: b\n",
			args: []string{"--history-limit", "9"},
			want: func(c *Config) {
				c.Defaults.HistoryLimit = 9
				a, b := c.Defaults, c.Defaults
				a.Name, a.HistoryLimit, b.Name = "a", 5, "b"
				c.Namespaces = []Namespace{a, b}
			}},
		{name: "namespaces keep the file's order", file: "namespaces:\n  - name: zeta\n  - name: alpha\n",
			want: func(c *Config) {
				z, a := c.Defaults, c.Defaults
				z.Name, a.Name = "zeta", "alpha"
				c.Namespaces = []Namespace{z, a}
			}},
		{name: "tls files, h2 bounds", args: []string{"--tls-cert", "/c.pem", "--tls-reload-interval", "0", "--max-concurrent-streams", "10"},
			env: map[string]string{"ROOMCAST_TLS_KEY": "/k.pem", "ROOMCAST_IDLE_TIMEOUT": "30s", "ROOMCAST_MAX_HEADER_BYTES": "8KiB"},
			want: func(c *Config) {
				c.TLSCert, c.TLSKey, c.TLSReloadInterval, c.MaxConcurrentStreams = "/c.pem", "/k.pem", 0, 10
				c.IdleTimeout, c.MaxHeaderBytes = 30*time.Second, 8<<10
			}},
		{name: "acme from the file, domains as a YAML list", file: "acme_domain: [chat.example.com, www.example.org]\nacme_email: ops@example.com\nacme_http_addr: \":80\"\n",
			want: func(c *Config) {
				c.ACMEDomains, c.ACMEEmail, c.ACMEHTTPAddr = []string{"chat.example.com", "www.example.org"}, "ops@example.com", ":80"
			}},
		{name: "acme domains from a flag", args: []string{"--acme-domain", "a.example.com, b.example.com", "--acme-directory", "https://acme-staging-v02.api.letsencrypt.org/directory"},
			want: func(c *Config) {
				c.ACMEDomains, c.ACMEDirectory = []string{"a.example.com", "b.example.com"}, "https://acme-staging-v02.api.letsencrypt.org/directory"
			}},
		{name: "h2c", args: []string{"--h2c"}, want: func(c *Config) { c.H2C = true }},
		{name: "a file that declares namespaces keeps default", file: "namespaces:\n  - name: chat\n    auth: jwt\n    jwt_audience: a\n    api_keys: [0123456789abcdef]\n",
			want: func(c *Config) {
				chat := c.Defaults
				chat.Name, chat.Auth, chat.JWTAudience, chat.APIKeys = "chat", "jwt", "a", []string{"0123456789abcdef"}
				d := c.Defaults
				d.Name = "default"
				c.Namespaces = []Namespace{chat, d}
			}},
		{name: "default_namespace: false serves only those declared", file: "default_namespace: false\nnamespaces:\n  - name: chat\n",
			want: func(c *Config) {
				chat := c.Defaults
				chat.Name = "chat"
				c.DefaultNamespace, c.Namespaces = false, []Namespace{chat}
			}},
		{name: "a file that declares default sets it", file: "namespaces:\n  - name: chat\n  - name: default\n    max_age: 1h\n",
			want: func(c *Config) {
				chat, d := c.Defaults, c.Defaults
				chat.Name, d.Name, d.MaxAge = "chat", "default", time.Hour
				c.Namespaces = []Namespace{chat, d}
			}},
		{name: "webhooks per namespace", file: "webhook_debounce: 2s\nwebhook_max_attempts: 5\nnamespaces:\n  - name: chat\n    webhook_debounce: 0s\n    webhooks:\n      - url: https://api.example.com/hooks\n        events: [room.occupied, room.vacated]\n        secret_env: CHAT_HOOKS\n      - url: http://127.0.0.1:9000/x\n        events: [member.joined, member.left, message.dead_lettered]\n        secret_env: OTHER\n",
			args: []string{"--webhook-backoff", "250ms"},
			want: func(c *Config) {
				c.Defaults.WebhookDebounce, c.WebhookMaxAttempts, c.WebhookBackoff = 2*time.Second, 5, 250*time.Millisecond
				chat := c.Defaults
				chat.Name, chat.WebhookDebounce = "chat", 0
				chat.Webhooks = []Webhook{
					{URL: "https://api.example.com/hooks", Events: []string{"room.occupied", "room.vacated"}, SecretEnv: "CHAT_HOOKS"},
					{URL: "http://127.0.0.1:9000/x", Events: []string{"member.joined", "member.left", "message.dead_lettered"}, SecretEnv: "OTHER"},
				}
				c.Namespaces = []Namespace{chat}
			}},
		{name: "nats url lets data be empty", args: []string{"--nats-url", "nats://x:4222", "--data", ""},
			want: func(c *Config) { c.NATSURL, c.Data = "nats://x:4222", "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			want := Default()
			if tt.file != "" {
				p := writeFile(t, tt.file)
				args = append([]string{"--config", p}, args...)
				want.ConfigFile = p
			}
			tt.want(&want)
			want = withDefaultNamespace(want)
			var out bytes.Buffer
			got, err := Load(args, env(tt.env), &out)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Load =\n%+v\nwant\n%+v", got, want)
			}
			if out.Len() != 0 {
				t.Errorf("Load wrote %q, want nothing", out.String())
			}
		})
	}
}

func TestLoadConfigFileFromEnv(t *testing.T) {
	p := writeFile(t, "addr: \":7\"\n")
	got, err := Load(nil, env(map[string]string{"ROOMCAST_CONFIG": p}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Addr != ":7" || got.ConfigFile != p {
		t.Errorf("Addr, ConfigFile = %q, %q; want :7, %q", got.Addr, got.ConfigFile, p)
	}
	// --config wins over ROOMCAST_CONFIG.
	q := writeFile(t, "addr: \":8\"\n")
	got, err = Load([]string{"--config", q}, env(map[string]string{"ROOMCAST_CONFIG": p}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Addr != ":8" || got.ConfigFile != q {
		t.Errorf("Addr, ConfigFile = %q, %q; want :8, %q", got.Addr, got.ConfigFile, q)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		env     map[string]string
		args    []string
		wantErr string // a part of the message that names the culprit
	}{
		{name: "unknown key in file", file: "adress: \":1\"\n", wantErr: "adress"},
		{name: "config key in file", file: "config: other.yaml\n", wantErr: "config"},
		{name: "unknown key in a namespace", file: "namespaces:\n  - name: a\n    heartbeat: 1s\n", wantErr: "heartbeat"},
		{name: "unknown flag", args: []string{"--adress", ":1"}, wantErr: "adress"},
		{name: "no namespace at all", args: []string{"--default-namespace=false"}, wantErr: "default-namespace is false but the config file declares no namespace"},
		{name: "positional argument", args: []string{"serve", "extra"}, wantErr: "serve"},
		{name: "bad duration in flag", args: []string{"--heartbeat", "10"}, wantErr: "--heartbeat"},
		{name: "bad duration in env", env: map[string]string{"ROOMCAST_RETRY": "soon"}, wantErr: "ROOMCAST_RETRY"},
		{name: "bad duration in file", file: "write_timeout: 1 minute\n", wantErr: "write_timeout"},
		{name: "bad duration in a namespace", file: "namespaces:\n  - name: a\n    max_age: forever\n", wantErr: "max_age"},
		{name: "negative duration", args: []string{"--heartbeat", "-1s"}, wantErr: "heartbeat"},
		{name: "zero queue", env: map[string]string{"ROOMCAST_QUEUE_SIZE": "0"}, wantErr: "queue-size"},
		{name: "bad integer", args: []string{"--queue-size", "many"}, wantErr: "--queue-size"},
		{name: "bad bool", env: map[string]string{"ROOMCAST_SYNC_ALWAYS": "yes please"}, wantErr: "ROOMCAST_SYNC_ALWAYS"},
		{name: "bad byte size unit", args: []string{"--max-body", "64KB"}, wantErr: "--max-body"},
		{name: "fractional byte size", args: []string{"--max-body", "1.5MiB"}, wantErr: "--max-body"},
		{name: "max-body under 64", args: []string{"--max-body", "10"}, wantErr: "max-body"},
		{name: "max-batch zero", args: []string{"--max-batch", "0"}, wantErr: "max-batch"},
		{name: "max-msgs-per-room zero", args: []string{"--max-msgs-per-room", "0"}, wantErr: "max-msgs-per-room"},
		{name: "bad namespace name with a dot", file: "namespaces:\n  - name: a.b\n", wantErr: "a.b"},
		{name: "bad namespace name with a wildcard", file: "namespaces:\n  - name: \"*\"\n", wantErr: "*"},
		{name: "namespace name too long", file: "namespaces:\n  - name: " + strings.Repeat("n", 65) + "\n", wantErr: strings.Repeat("n", 65)},
		{name: "namespace without a name", file: "namespaces:\n  - max_body: 1KiB\n", wantErr: "name"},
		{name: "duplicate namespace", file: "namespaces:\n  - name: a\n  - name: b\n  - name: a\n", wantErr: `"a"`},
		{name: "namespaces not a list", file: "namespaces:\n  a: {}\n", wantErr: "namespaces"},
		{name: "namespace entry not a mapping", file: "namespaces:\n  - a\n", wantErr: "namespaces[0]"},
		{name: "invalid log format", args: []string{"--log-format", "xml"}, wantErr: "log-format"},
		{name: "invalid log format in env", env: map[string]string{"ROOMCAST_LOG_FORMAT": "JSON"}, wantErr: "log-format"},
		{name: "invalid log level", file: "log_level: verbose\n", wantErr: "log-level"},
		{name: "no data and no NATS", args: []string{"--data", ""}, wantErr: "data"},
		{name: "tls cert without key", args: []string{"--tls-cert", "/c.pem"}, wantErr: "--tls-key"},
		{name: "tls key without cert", env: map[string]string{"ROOMCAST_TLS_KEY": "/k.pem"}, wantErr: "--tls-cert"},
		{name: "tls files and acme", args: []string{"--tls-cert", "/c", "--tls-key", "/k", "--acme-domain", "a.example.com"}, wantErr: "not both"},
		{name: "negative reload interval", args: []string{"--tls-reload-interval", "-1s"}, wantErr: "tls-reload-interval"},
		{name: "h2c with tls", args: []string{"--h2c", "--tls-cert", "/c", "--tls-key", "/k"}, wantErr: "h2c"},
		{name: "h2c with acme", args: []string{"--h2c", "--acme-domain", "a.example.com"}, wantErr: "h2c"},
		{name: "acme email without domain", args: []string{"--acme-email", "a@example.com"}, wantErr: "--acme-domain"},
		{name: "acme http addr without domain", file: "acme_http_addr: \":80\"\n", wantErr: "--acme-domain"},
		{name: "acme without data", args: []string{"--acme-domain", "a.example.com", "--data", "", "--nats-url", "nats://x:4222"}, wantErr: "--data"},
		{name: "acme wildcard", args: []string{"--acme-domain", "*.example.com"}, wantErr: "wildcard"},
		{name: "acme ip", args: []string{"--acme-domain", "127.0.0.1"}, wantErr: "IP address"},
		{name: "acme single label", args: []string{"--acme-domain", "localhost"}, wantErr: "localhost"},
		{name: "acme upper case", args: []string{"--acme-domain", "Chat.example.com"}, wantErr: "Chat"},
		{name: "acme bad label", args: []string{"--acme-domain", "a..example.com"}, wantErr: "label"},
		{name: "acme directory not a URL", args: []string{"--acme-domain", "a.example.com", "--acme-directory", "letsencrypt"}, wantErr: "acme-directory"},
		{name: "zero streams", args: []string{"--max-concurrent-streams", "0"}, wantErr: "max-concurrent-streams"},
		{name: "zero idle timeout", args: []string{"--idle-timeout", "0s"}, wantErr: "idle-timeout"},
		{name: "tiny header limit", args: []string{"--max-header-bytes", "100"}, wantErr: "max-header-bytes"},
		{name: "webhook unknown event", file: "namespaces:\n  - name: a\n    webhooks:\n      - {url: \"https://x.example/h\", events: [room.created], secret_env: S}\n", wantErr: "room.created"},
		{name: "webhook without events", file: "namespaces:\n  - name: a\n    webhooks:\n      - {url: \"https://x.example/h\", secret_env: S}\n", wantErr: "events"},
		{name: "webhook not http", file: "namespaces:\n  - name: a\n    webhooks:\n      - {url: \"ftp://x.example/h\", events: [member.left], secret_env: S}\n", wantErr: "ftp://x.example/h"},
		{name: "webhook without secret_env", file: "namespaces:\n  - name: a\n    webhooks:\n      - {url: \"https://x.example/h\", events: [member.left]}\n", wantErr: "secret_env"},
		{name: "webhook with an inline secret", file: "namespaces:\n  - name: a\n    webhooks:\n      - {url: \"https://x.example/h\", events: [member.left], secret: s3cr3t}\n", wantErr: "secret"},
		{name: "webhook listed twice", file: "namespaces:\n  - name: a\n    webhooks:\n      - {url: \"https://x.example/h\", events: [member.left], secret_env: S}\n      - {url: \"https://x.example/h\", events: [member.joined], secret_env: S}\n", wantErr: "twice"},
		{name: "negative webhook debounce", args: []string{"--webhook-debounce", "-1s"}, wantErr: "webhook-debounce"},
		{name: "webhook max backoff under backoff", args: []string{"--webhook-backoff", "1m", "--webhook-max-backoff", "10s"}, wantErr: "webhook-max-backoff"},
		{name: "webhook node ttl too short", args: []string{"--webhook-node-ttl", "1s"}, wantErr: "webhook-node-ttl"},
		{name: "malformed YAML", file: "addr: [\n", wantErr: "config file"},
		{name: "missing config file", args: []string{"--config", "/nonexistent/roomcast.yaml"}, wantErr: "/nonexistent/roomcast.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.file != "" {
				args = append([]string{"--config", writeFile(t, tt.file)}, args...)
			}
			got, err := Load(args, env(tt.env), &bytes.Buffer{})
			if err == nil {
				t.Fatalf("Load = %+v, nil; want an error naming %q", got, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Load error %q does not name %q", err, tt.wantErr)
			}
		})
	}
}

func TestLoadByteSizeOverflowIsAnError(t *testing.T) {
	for _, v := range []string{"17179869185GiB", "9223372036854775807KiB", "8589934592GiB"} {
		got, err := Load([]string{"--max-bytes", v}, env(nil), &bytes.Buffer{})
		if err == nil {
			t.Errorf("--max-bytes %s = %d bytes, want an error", v, got.Defaults.MaxBytes)
		}
	}
}

func TestBoolFlagWithoutValue(t *testing.T) {
	got, err := Load([]string{"--sync-always"}, env(nil), &bytes.Buffer{})
	if err != nil || !got.SyncAlways {
		t.Errorf("Load(--sync-always) = SyncAlways %v, %v; want true, nil", got.SyncAlways, err)
	}
	got, err = Load([]string{"--sync-always", "--addr", ":1"}, env(nil), &bytes.Buffer{})
	if err != nil || !got.SyncAlways || got.Addr != ":1" {
		t.Errorf("Load(--sync-always --addr :1) = %v, %q, %v; want true, :1, nil", got.SyncAlways, got.Addr, err)
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "-help"} {
		t.Run(arg, func(t *testing.T) {
			var out bytes.Buffer
			_, err := Load([]string{arg}, env(nil), &out)
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("Load(%s) = %v, want flag.ErrHelp", arg, err)
			}
			usage := out.String()
			for _, s := range settings {
				if !strings.Contains(usage, "-"+s.name+" ") {
					t.Errorf("usage does not list -%s", s.name)
				}
				if !strings.Contains(usage, "(env "+s.env()+")") {
					t.Errorf("usage does not give -%s's environment name %s", s.name, s.env())
				}
			}
			// The defaults are shown.
			for _, want := range []string{`"127.0.0.1:8080"`, `"./data"`, `"15s"`} {
				if !strings.Contains(usage, want) {
					t.Errorf("usage does not show the default %s", want)
				}
			}
		})
	}
}

func TestAddrAndDataSettings(t *testing.T) {
	want := map[string]struct{ env, def string }{
		"addr": {"ROOMCAST_ADDR", "127.0.0.1:8080"},
		"data": {"ROOMCAST_DATA", "./data"},
	}
	c := Default()
	for name, w := range want {
		var found bool
		for _, s := range settings {
			if s.name != name {
				continue
			}
			found = true
			if s.env() != w.env {
				t.Errorf("--%s env = %s, want %s", name, s.env(), w.env)
			}
			if got := show(s.target(&c)); got != w.def {
				t.Errorf("--%s default = %q, want %q", name, got, w.def)
			}
		}
		if !found {
			t.Errorf("no --%s setting", name)
		}
	}
	got, err := Load([]string{"--addr", "127.0.0.1:1", "--data", "/x"}, env(nil), &bytes.Buffer{})
	if err != nil || got.Addr != "127.0.0.1:1" || got.Data != "/x" {
		t.Errorf("Load(--addr --data) = %q, %q, %v", got.Addr, got.Data, err)
	}
	got, err = Load(nil, env(map[string]string{"ROOMCAST_ADDR": ":2", "ROOMCAST_DATA": "/y"}), &bytes.Buffer{})
	if err != nil || got.Addr != ":2" || got.Data != "/y" {
		t.Errorf("Load(ROOMCAST_ADDR, ROOMCAST_DATA) = %q, %q, %v", got.Addr, got.Data, err)
	}
}

// fileOnly lists the fields deliberately set only in the config file's
// namespaces entries (lists of structured values), not by flag or env.
var fileOnly = map[string]bool{"Namespace.JWTKeys": true, "Namespace.APIKeys": true, "Namespace.Webhooks": true}

// Every field of Config and Namespace is reachable by exactly one setting
// (so by flag, env and file), unless listed in fileOnly, and every setting
// sets one field.
func TestEverySettingHasOneFieldAndEveryFieldOneSetting(t *testing.T) {
	var c Config
	fields := map[uintptr]string{}
	cv := reflect.ValueOf(&c).Elem()
	for i := 0; i < cv.NumField(); i++ {
		f := cv.Type().Field(i)
		if f.Name == "Defaults" || f.Name == "Namespaces" {
			continue
		}
		fields[cv.Field(i).Addr().Pointer()] = "Config." + f.Name
	}
	nv := reflect.ValueOf(&c.Defaults).Elem()
	for i := 0; i < nv.NumField(); i++ {
		if f := nv.Type().Field(i); f.Name != "Name" {
			fields[nv.Field(i).Addr().Pointer()] = "Namespace." + f.Name
		}
	}
	seen := map[uintptr]string{}
	names := map[string]bool{}
	for _, s := range settings {
		if names[s.name] {
			t.Errorf("setting %s is declared twice", s.name)
		}
		names[s.name] = true
		p := reflect.ValueOf(s.target(&c)).Pointer()
		field, ok := fields[p]
		if !ok {
			t.Errorf("setting %s targets no field", s.name)
			continue
		}
		if other, dup := seen[p]; dup {
			t.Errorf("settings %s and %s both set %s", other, s.name, field)
		}
		seen[p] = s.name
	}
	for p, field := range fields {
		if _, ok := seen[p]; !ok && !fileOnly[field] {
			t.Errorf("%s has no setting: it cannot be configured by flag or env (if that is meant, add it to fileOnly)", field)
		}
	}
}

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "0", want: 0},
		{in: "65536", want: 65536},
		{in: "64KiB", want: 64 << 10},
		{in: "5 KiB", want: 5 << 10},
		{in: "3MiB", want: 3 << 20},
		{in: "2GiB", want: 2 << 30},
		{in: "-1", want: -1},
		{in: "", wantErr: true},
		{in: "KiB", wantErr: true},
		{in: "1KB", wantErr: true},
		{in: "1kib", wantErr: true},
		{in: "1.5MiB", wantErr: true},
		{in: "1MiBKiB", wantErr: true},
		{in: "0x10", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseBytes(tt.in)
		if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
			t.Errorf("parseBytes(%q) = %d, %v; want %d (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
