// Package web serves the browser app embedded in the binary and the browser
// SDK: static files only, no business logic; the pages use the SDK
// (/sdk/roomcast.js) against the documented API.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/roomcast/roomcast"
)

//go:embed static
var static embed.FS

// SDKPath is where the browser SDK is served (a stable path: pages and
// applications import it from there).
const SDKPath = "/sdk/roomcast.js"

// Handler serves the app and the SDK; paths that name no file go to
// notFound (so that every error of the server is problem+json).
//
// Every file is served with `Cache-Control: no-cache` and an ETag of its
// content: a browser keeps its copy and revalidates it on each use (a 304
// without a body while unchanged), so that a new server version is picked
// up at once although the paths carry no version.
func Handler(notFound http.Handler) http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	tags, err := etags(sub)
	if err != nil {
		panic(err)
	}
	sdkTag := etag(roomcast.SDK)
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == SDKPath {
			h := w.Header()
			h.Set("Content-Type", "text/javascript; charset=utf-8")
			h.Set("Cache-Control", "no-cache")
			h.Set("ETag", sdkTag)
			// A public file without credentials: pages of other origins
			// may import the module (module scripts are fetched with CORS).
			h.Set("Access-Control-Allow-Origin", "*")
			h.Set("X-Content-Type-Options", "nosniff")
			http.ServeContent(w, r, "roomcast.js", time.Time{}, bytes.NewReader(roomcast.SDK))
			return
		}
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name == "" {
			name = "index.html"
		}
		if st, err := fs.Stat(sub, name); err != nil || (st.IsDir() && !exists(sub, path.Join(name, "index.html"))) {
			notFound.ServeHTTP(w, r)
			return
		}
		if tag, ok := tags[name]; ok {
			w.Header().Set("ETag", tag)
			w.Header().Set("Cache-Control", "no-cache")
		}
		pageHeaders(w.Header())
		files.ServeHTTP(w, r)
	})
}

// ContentSecurityPolicy is the pages' policy. They load nothing from
// elsewhere and run no inline script or style, so everything is 'self':
// an injected <script> or style attribute (XSS through a message that a
// page mis-renders) does not run, and no data can be sent to another
// origin by fetch, EventSource, a form or an image. frame-ancestors 'none'
// stops clickjacking (the admin page acts on the server); base-uri 'none'
// stops a <base> tag from redirecting the pages' relative URLs.
const ContentSecurityPolicy = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"

// pageHeaders sets the security headers of the app's files.
func pageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY") // frame-ancestors for browsers without CSP 2
	// Page URLs carry names (?vendor=acme): other sites are not told them.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
}

// etags returns the ETag of every file of fsys, by path.
func etags(fsys fs.FS) (map[string]string, error) {
	tags := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		tags[p] = etag(b)
		return nil
	})
	return tags, err
}

func etag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
}

func exists(fsys fs.FS, name string) bool {
	_, err := fs.Stat(fsys, name)
	return err == nil
}
