package webhook_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/webhook"
)

// snippet returns the README's code block that starts with start.
func snippet(t *testing.T, readme, fence, start string) string {
	t.Helper()
	i := strings.Index(readme, "```"+fence+"\n"+start)
	if i < 0 {
		t.Fatalf("README.md has no %s block starting with %q", fence, start)
	}
	body := readme[i+len("```"+fence+"\n"):]
	end := strings.Index(body, "\n```")
	if end < 0 {
		t.Fatalf("README.md: the %s block starting with %q does not end", fence, start)
	}
	return body[:end+1]
}

// TestREADMEVerifySnippets runs the README's Go and Node verification
// snippets, as a backend would paste them, against webhooks signed by the
// server's signer: genuine ones verify, a tampered body or an old
// timestamp does not.
func TestREADMEVerifySnippets(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	now := time.Now()
	body := []byte(`{"id":"wh_4f1c2a0b9d8e7f6a5b4c3d2e1f0a9b8c","type":"room.occupied","ns":"chat","time":"2026-12-07T10:15:02.118Z","data":{"room":"lobby"}}`)
	sig := webhook.Sign(secret, now, body)
	type tc struct {
		Name   string `json:"name"`
		Header string `json:"header"`
		Body   string `json:"body"`
		Want   bool   `json:"want"`
	}
	cases := []tc{
		{"genuine", sig, string(body), true},
		{"rotation: a second v1", webhook.Sign([]byte("an older secret of thirty-two bytes"), now, body) + "," + strings.Split(sig, ",")[1], string(body), true},
		{"tampered body", sig, strings.Replace(string(body), "lobby", "lobbx", 1), false},
		{"old timestamp", webhook.Sign(secret, now.Add(-6*time.Minute), body), string(body), false},
		{"another secret", webhook.Sign([]byte("another secret of thirty-two bytes!"), now, body), string(body), false},
		{"malformed", "v1=00", string(body), false},
	}
	dir := t.TempDir()

	t.Run("go", func(t *testing.T) {
		var calls strings.Builder
		for _, c := range cases {
			calls.WriteString("\tfmt.Println(verifyWebhook(" + strconv.Quote(c.Header) + ", []byte(" + strconv.Quote(c.Body) +
				"), []byte(" + strconv.Quote(string(secret)) + "), time.Now()))\n")
		}
		src := "package main\n\nimport (\n\t\"crypto/hmac\"\n\t\"crypto/sha256\"\n\t\"encoding/hex\"\n\t\"fmt\"\n\t\"strconv\"\n\t\"strings\"\n\t\"time\"\n)\n\n" +
			snippet(t, readme, "go", "// verifyWebhook") + "\nfunc main() {\n" + calls.String() + "}\n"
		p := filepath.Join(dir, "verify.go")
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("go", "run", p)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go run the README's Go snippet: %v\n%s\n%s", err, out, src)
		}
		got := strings.Fields(string(out))
		if len(got) != len(cases) {
			t.Fatalf("output %q, want %d lines", out, len(cases))
		}
		for i, c := range cases {
			if got[i] != strconv.FormatBool(c.Want) {
				t.Errorf("%s: verifyWebhook = %s, want %v", c.Name, got[i], c.Want)
			}
		}
	})

	t.Run("node", func(t *testing.T) {
		node, err := exec.LookPath("node")
		if err != nil {
			t.Skip("node is not installed")
		}
		if err := os.WriteFile(filepath.Join(dir, "verify.mjs"), []byte(snippet(t, readme, "js", "import { createHmac")), 0o600); err != nil {
			t.Fatal(err)
		}
		harness := `import { verifyWebhook } from "./verify.mjs";
const [secret, cases] = [process.argv[2], JSON.parse(process.argv[3])];
console.log(JSON.stringify(cases.map((c) => verifyWebhook(c.header, Buffer.from(c.body), secret))));
`
		if err := os.WriteFile(filepath.Join(dir, "run.mjs"), []byte(harness), 0o600); err != nil {
			t.Fatal(err)
		}
		in, _ := json.Marshal(cases)
		out, err := exec.Command(node, filepath.Join(dir, "run.mjs"), string(secret), string(in)).CombinedOutput()
		if err != nil {
			t.Fatalf("node: %v\n%s", err, out)
		}
		var got []bool
		if err := json.Unmarshal(out, &got); err != nil || len(got) != len(cases) {
			t.Fatalf("node printed %q, want %d booleans", out, len(cases))
		}
		for i, c := range cases {
			if got[i] != c.Want {
				t.Errorf("%s: verifyWebhook = %v, want %v", c.Name, got[i], c.Want)
			}
		}
	})
}
