package web

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestPageHeaders: every file of the app carries the security headers,
// the favicon is served, and the SDK keeps its own headers.
func TestPageHeaders(t *testing.T) {
	srv := httptest.NewServer(Handler(http.NotFoundHandler()))
	defer srv.Close()
	for _, path := range []string{"/", "/chat.html", "/parcel.html", "/admin.html", "/app.css", "/chat.js", "/favicon.svg"} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		h := res.Header
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, res.StatusCode)
		}
		want := map[string]string{
			"Content-Security-Policy": ContentSecurityPolicy,
			"X-Content-Type-Options":  "nosniff",
			"X-Frame-Options":         "DENY",
			"Referrer-Policy":         "same-origin",
		}
		for k, v := range want {
			if got := h.Get(k); got != v {
				t.Errorf("GET %s: %s %q, want %q", path, k, got, v)
			}
		}
		if !strings.HasPrefix(ContentSecurityPolicy, "default-src 'self';") {
			t.Errorf("the policy %q does not start with default-src 'self'", ContentSecurityPolicy)
		}
	}
	res, err := http.Get(srv.URL + "/favicon.svg")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "image/svg+xml" {
		t.Errorf("favicon Content-Type %q", ct)
	}
	res, err = http.Get(srv.URL + SDKPath)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Header.Get("Access-Control-Allow-Origin") != "*" || res.Header.Get("Content-Security-Policy") != "" {
		t.Errorf("the SDK's headers %v: want CORS for everyone and no page policy", res.Header)
	}
}

// TestPagesFitThePolicy: no page has what default-src 'self' blocks (inline
// scripts, style attributes or elements, event handler attributes, URLs of
// other origins), and each names the favicon.
func TestPagesFitThePolicy(t *testing.T) {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		t.Fatal(err)
	}
	inline := regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]|<style|\sstyle=|\son[a-z]+=|(?:src|href)="(?:https?:)?//`)
	pages, _ := fs.Glob(sub, "*.html")
	if len(pages) < 4 {
		t.Fatalf("pages %v", pages)
	}
	for _, p := range pages {
		b, _ := fs.ReadFile(sub, p)
		if m := inline.Find(b); m != nil {
			t.Errorf("%s: %q is blocked by the Content-Security-Policy", p, m)
		}
		if !strings.Contains(string(b), `<link rel="icon" href="favicon.svg"`) {
			t.Errorf("%s names no favicon", p)
		}
	}
}
