package main

// End-to-end tests of the HTTP edge (listen.go): HTTPS with certificates
// made in the test (nothing is committed), HTTP/2 over TLS and h2c,
// certificate reload without a restart (file change, SIGHUP), the HTTP/2
// bounds and timeouts, and the ACME manager's wiring.

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// testCert is a self-signed certificate made by the test, valid for
// 127.0.0.1, ::1, localhost and the given names.
type testCert struct {
	Serial          int64
	Leaf            *x509.Certificate
	CertPEM, KeyPEM []byte
}

func newTestCert(t testing.TB, serial int64, names ...string) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "roomcast test " + fmt.Sprint(serial)},
		NotBefore:    time.Now().Add(-time.Hour),
		// 90 days: autocert renews 30 days before expiry, and must not
		// try to while a test serves this from its cache.
		NotAfter:              time.Now().Add(90 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              append([]string{"localhost"}, names...),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{
		Serial: serial, Leaf: leaf,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
}

// write replaces the key and then the certificate file, each atomically
// (a new file renamed over the old), as renewal tools do.
func (c *testCert) write(t testing.TB, certFile, keyFile string) {
	t.Helper()
	for _, f := range []struct {
		path string
		data []byte
	}{{keyFile, c.KeyPEM}, {certFile, c.CertPEM}} {
		tmp := f.path + ".new"
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
	}
}

// certPool trusts the given test certificates.
func certPool(certs ...*testCert) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c.Leaf)
	}
	return p
}

// tlsTransport trusts pool and speaks only HTTP/2 (h2) or only HTTP/1.1.
func tlsTransport(pool *x509.CertPool, h2 bool) *http.Transport {
	var p http.Protocols
	p.SetHTTP1(!h2)
	p.SetHTTP2(h2)
	return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, Protocols: &p, ForceAttemptHTTP2: h2}
}

// startTLS runs the server with --tls-cert and --tls-key files holding
// cert; its requests go over HTTP/2 trusting cert.
func startTLS(t *testing.T, cert *testCert, args ...string) (s *testServer, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	cert.write(t, certFile, keyFile)
	s = startServer(t, append([]string{"--tls-cert", certFile, "--tls-key", keyFile}, args...)...)
	if !strings.HasPrefix(s.URL, "https://127.0.0.1:") {
		t.Fatalf("listening line gives %q, want https://127.0.0.1:<port>", s.URL)
	}
	tr := tlsTransport(certPool(cert), true)
	t.Cleanup(tr.CloseIdleConnections)
	s.transport = tr
	return s, certFile, keyFile
}

// handshake makes a new TLS connection to base (an https URL) and returns
// the serial number of the certificate served and the protocol agreed by
// ALPN. serverName is the SNI sent ("" for none, as to an IP address).
func handshake(t testing.TB, base string, pool *x509.CertPool, serverName string) (serial string, alpn string, err error) {
	t.Helper()
	u, perr := url.Parse(base)
	if perr != nil {
		t.Fatal(perr)
	}
	// An empty ServerName is taken from the address: an IP address is
	// verified against the certificate's IP names, and no SNI is sent.
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: e2eTimeout}, Config: &tls.Config{
		RootCAs: pool, ServerName: serverName, NextProtos: []string{"h2", "http/1.1"},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return "", "", err
	}
	defer conn.Close()
	st := conn.(*tls.Conn).ConnectionState()
	return st.PeerCertificates[0].SerialNumber.String(), st.NegotiatedProtocol, nil
}

// mustHandshake is handshake that must succeed.
func mustHandshake(t testing.TB, base string, pool *x509.CertPool) (serial, alpn string) {
	t.Helper()
	serial, alpn, err := handshake(t, base, pool, "")
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", base, err)
	}
	return serial, alpn
}

// getProto does a GET with client and returns the status and the HTTP
// major version of the answer.
func getProto(t testing.TB, client *http.Client, u string) (int, int) {
	t.Helper()
	resp, err := client.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.ProtoMajor
}

// TestTLSHTTP2StreamAndPublish: with --tls-cert/--tls-key the server prints
// an https:// URL, serves the certificate, agrees on HTTP/2 by ALPN, and
// carries an SSE stream and a publish over HTTP/2; HTTP/1.1 clients over
// TLS are still served, and plain HTTP on the TLS port is refused.
func TestTLSHTTP2StreamAndPublish(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t, 1001)
	s, _, _ := startTLS(t, cert)

	serial, alpn := mustHandshake(t, s.URL, certPool(cert))
	if serial != "1001" || alpn != "h2" {
		t.Fatalf("handshake: serial %s, ALPN %q; want 1001, h2", serial, alpn)
	}
	h2 := s.httpClient(requestClient)
	if code, major := getProto(t, h2, s.URL+"/healthz"); code != http.StatusOK || major != 2 {
		t.Fatalf("GET /healthz over TLS: status %d, HTTP/%d; want 200, HTTP/2", code, major)
	}

	c := e2eOpen(t, s, "/ns/default/rooms/lobby/events", "")
	if c.resp.ProtoMajor != 2 {
		t.Fatalf("SSE stream over HTTP/%d, want HTTP/2", c.resp.ProtoMajor)
	}
	id := e2ePub(t, s, "/ns/default/rooms/lobby/messages", "chat message", map[string]any{"text": "over h2"}, "")
	m := c.expect(t, id)[0]
	if d, _ := m.Env["data"].(map[string]any); d["text"] != "over h2" {
		t.Fatalf("message data %v, want text over h2", m.Env["data"])
	}

	h1 := &http.Client{Transport: tlsTransport(certPool(cert), false), Timeout: e2eTimeout}
	defer h1.CloseIdleConnections()
	if code, major := getProto(t, h1, s.URL+"/healthz"); code != http.StatusOK || major != 1 {
		t.Fatalf("GET /healthz over TLS with HTTP/1.1 only: status %d, HTTP/%d; want 200, HTTP/1", code, major)
	}
	// TLS 1.2 at least.
	u, _ := url.Parse(s.URL)
	old, err := tls.DialWithDialer(&net.Dialer{Timeout: e2eTimeout}, "tcp", u.Host,
		&tls.Config{RootCAs: certPool(cert), MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		old.Close()
		t.Fatal("a TLS 1.1 handshake succeeded, want it refused")
	}
	plain := "http://" + strings.TrimPrefix(s.URL, "https://")
	if code, _ := getProto(t, requestClient, plain+"/healthz"); code != http.StatusBadRequest {
		t.Fatalf("plain HTTP to the TLS port: status %d, want 400", code)
	}
}

// TestTLSBadPairFailsStartUp: a certificate with another certificate's key
// stops the server at start, naming the files.
func TestTLSBadPairFailsStartUp(t *testing.T) {
	t.Parallel()
	a, b := newTestCert(t, 1101), newTestCert(t, 1102)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, a.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, b.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, logs syncBuffer
	err := run(ctx, []string{"--addr", "127.0.0.1:0", "--data", t.TempDir(), "--tls-cert", certFile, "--tls-key", keyFile},
		func(string) string { return "" }, &out, &logs)
	if err == nil || !strings.Contains(err.Error(), certFile) {
		t.Fatalf("run with a mismatched pair = %v, want an error naming %s", err, certFile)
	}
	if strings.Contains(out.String(), "listening") {
		t.Fatalf("the server printed %q before failing", out.String())
	}
}

// TestTLSReloadOnFileChange: new certificate files are served to new
// connections without a restart while an open stream goes on; a broken
// renewal keeps the previous certificate and is logged once; the next good
// files are loaded.
func TestTLSReloadOnFileChange(t *testing.T) {
	t.Parallel()
	a, b, c := newTestCert(t, 2001), newTestCert(t, 2002), newTestCert(t, 2003)
	s, certFile, keyFile := startTLS(t, a, "--tls-reload-interval", "50ms")
	pool := certPool(a, b, c)
	s.transport.(*http.Transport).TLSClientConfig.RootCAs = pool

	st := e2eOpen(t, s, "/ns/default/rooms/r/events", "")
	b.write(t, certFile, keyFile)
	eventually(t, e2eTimeout, "a new handshake to get serial 2002", func() bool {
		serial, _ := mustHandshake(t, s.URL, pool)
		return serial == "2002"
	})
	// The stream opened with the old certificate lives on.
	id := e2ePub(t, s, "/ns/default/rooms/r/messages", "after reload", 1, "")
	st.expect(t, id)

	if err := os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, e2eTimeout, "the failed reload in the log", func() bool {
		return len(e2eLogLines(s, "tls certificate reload failed")) > 0
	})
	if serial, _ := mustHandshake(t, s.URL, pool); serial != "2002" {
		t.Fatalf("after a failed reload the server serves serial %s, want the previous 2002", serial)
	}
	c.write(t, certFile, keyFile)
	eventually(t, e2eTimeout, "a new handshake to get serial 2003", func() bool {
		serial, _ := mustHandshake(t, s.URL, pool)
		return serial == "2003"
	})
	if n := len(e2eLogLines(s, "tls certificate reload failed")); n != 1 {
		t.Errorf("the failed reload was logged %d times, want once:\n%s", n, strings.Join(e2eLogLines(s, "tls certificate"), "\n"))
	}
	if n := len(e2eLogLines(s, "tls certificate reloaded", "file change")); n != 2 {
		t.Errorf("%d reloads logged, want 2 (2002 and 2003):\n%s", n, strings.Join(e2eLogLines(s, "tls certificate"), "\n"))
	}
}

// TestTLSReloadOnSIGHUP: a server process with polling off keeps its
// certificate when the files change, and serves the new one to new
// connections after SIGHUP, without a restart.
func TestTLSReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	a, b := newTestCert(t, 3001), newTestCert(t, 3002)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	a.write(t, certFile, keyFile)
	c := startChild(t, t.TempDir(), "--tls-cert", certFile, "--tls-key", keyFile, "--tls-reload-interval", "0")
	if !strings.HasPrefix(c.URL, "https://") {
		t.Fatalf("listening line gives %q, want https://", c.URL)
	}
	pool := certPool(a, b)
	if serial, _ := mustHandshake(t, c.URL, pool); serial != "3001" {
		t.Fatalf("serial %s, want 3001", serial)
	}
	b.write(t, certFile, keyFile)
	if serial, _ := mustHandshake(t, c.URL, pool); serial != "3001" {
		t.Fatalf("serial %s before SIGHUP with polling off, want still 3001", serial)
	}
	if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, e2eTimeout, "a new handshake to get serial 3002 after SIGHUP", func() bool {
		serial, _ := mustHandshake(t, c.URL, pool)
		return serial == "3002"
	})
	client := &http.Client{Transport: tlsTransport(pool, true), Timeout: e2eTimeout}
	defer client.CloseIdleConnections()
	if code, major := getProto(t, client, c.URL+"/healthz"); code != http.StatusOK || major != 2 {
		t.Fatalf("GET /healthz after SIGHUP: status %d, HTTP/%d; want 200, HTTP/2 (the process must still serve)", code, major)
	}
}

// h2cTransport speaks HTTP/2 with prior knowledge over cleartext only.
func h2cTransport() *http.Transport {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Transport{Protocols: &p}
}

// TestH2CPriorKnowledge: with --h2c a prior-knowledge HTTP/2 client (a
// proxy's, typically) gets HTTP/2 in clear text, SSE and publish included,
// and HTTP/1.1 clients are still served; without --h2c the same client
// fails.
func TestH2CPriorKnowledge(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--h2c")
	if !strings.HasPrefix(s.URL, "http://") {
		t.Fatalf("listening line gives %q, want http://", s.URL)
	}
	tr := h2cTransport()
	defer tr.CloseIdleConnections()
	s.transport = tr
	h2c := s.httpClient(requestClient)
	if code, major := getProto(t, h2c, s.URL+"/healthz"); code != http.StatusOK || major != 2 {
		t.Fatalf("GET /healthz with h2c: status %d, HTTP/%d; want 200, HTTP/2", code, major)
	}
	c := e2eOpen(t, s, "/ns/default/rooms/lobby/events", "")
	if c.resp.ProtoMajor != 2 {
		t.Fatalf("SSE stream over HTTP/%d, want HTTP/2", c.resp.ProtoMajor)
	}
	id := e2ePub(t, s, "/ns/default/rooms/lobby/messages", "m", "h2c", "")
	c.expect(t, id)
	if code, major := getProto(t, requestClient, s.URL+"/healthz"); code != http.StatusOK || major != 1 {
		t.Fatalf("GET /healthz with HTTP/1.1 next to h2c: status %d, HTTP/%d; want 200, HTTP/1", code, major)
	}

	plain := startServer(t)
	resp, err := h2c.Get(plain.URL + "/healthz")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("h2c to a server without --h2c: status %d over HTTP/%d, want an error", resp.StatusCode, resp.ProtoMajor)
	}
}

// rawSSE is an SSE response read by hand, so that the test decides when
// (and whether) its body is read.
type rawSSE struct {
	resp *http.Response
	br   *bufio.Reader
	id   string // the connection's public id
}

// openRaw opens path and reads up to the `connected` event only.
func openRaw(t testing.TB, client *http.Client, base, path string) *rawSSE {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", path, resp.StatusCode)
	}
	r := &rawSSE{resp: resp, br: bufio.NewReaderSize(resp.Body, 1024)}
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the connected event: %v", err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var d struct{ ID string }
			if err := json.Unmarshal([]byte(data), &d); err != nil || d.ID == "" {
				t.Fatalf("connected data %q: %v", data, err)
			}
			r.id = d.ID
		}
		if line == "\n" && r.id != "" {
			return r
		}
	}
}

// TestHTTP2SlowStreamDoesNotStallOthers: two SSE streams share one HTTP/2
// connection; the client stops reading one of them. HTTP/2 flow control is
// per stream, so the other keeps receiving every message; the stalled
// stream's writes hit their per-stream deadline (--write-timeout) and it
// alone is reset and disconnected (it would resume with Last-Event-ID),
// while the connection and its other stream go on.
func TestHTTP2SlowStreamDoesNotStallOthers(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t, 5001)
	s, _, _ := startTLS(t, cert, "--write-timeout", "1s", "--heartbeat", "200ms")
	var dials atomic.Int32
	tr := tlsTransport(certPool(cert), true)
	// A small per-stream window: 16 KiB unread on a stream stalls it.
	tr.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: 16 << 10}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	defer tr.CloseIdleConnections()
	s.transport = tr
	client := &http.Client{Transport: tr}

	slow := openRaw(t, client, s.URL, "/ns/default/rooms/r/events")
	fast := e2eOpen(t, s, "/ns/default/rooms/r/events", "")
	if slow.resp.ProtoMajor != 2 || fast.resp.ProtoMajor != 2 {
		t.Fatalf("streams over HTTP/%d and HTTP/%d, want HTTP/2", slow.resp.ProtoMajor, fast.resp.ProtoMajor)
	}

	// 100 messages of 1 KiB: six times the slow stream's window, well
	// under the queue (--queue-size 256), so only the write deadline can
	// end the slow stream.
	payload := strings.Repeat("x", 1024)
	ids := make([]string, 0, 100)
	for i := 0; i < 100; i++ {
		ids = append(ids, e2ePub(t, s, "/ns/default/rooms/r/messages", "bulk", payload, ""))
	}
	fast.expect(t, ids...)

	rec := e2eWaitDisconnects(t, s, slow.id, 1)
	if r := rec["reason"]; r == "slow consumer" || r == "client gone" || r == "server closing" {
		t.Fatalf("the stalled stream ended with reason %q, want its write deadline", r)
	}
	t.Logf("stalled stream ended: reason %q", rec["reason"])
	// The stalled stream was reset: reading it now ends in an error, not
	// a clean end of stream.
	if _, err := io.Copy(io.Discard, slow.br); err == nil {
		t.Errorf("the stalled stream ended cleanly; want a reset (stream error)")
	}

	// The other stream and the connection live on.
	id := e2ePub(t, s, "/ns/default/rooms/r/messages", "after", 1, "")
	fast.expect(t, id)
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d TCP connections, want the 2 streams and every publish on 1", n)
	}
}

// h2conn is a raw HTTP/2 client connection over TLS, for what Go's client
// hides: SETTINGS, resets, GOAWAY.
type h2conn struct {
	t    testing.TB
	conn *tls.Conn
	fr   *http2.Framer
	host string
}

func dialH2(t testing.TB, base string, pool *x509.CertPool, settings ...http2.Setting) *h2conn {
	t.Helper()
	u, _ := url.Parse(base)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: e2eTimeout}, "tcp", u.Host, &tls.Config{RootCAs: pool, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN %q, want h2", p)
	}
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	c := &h2conn{t: t, conn: conn, fr: http2.NewFramer(conn, conn), host: u.Host}
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := c.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	return c
}

// next reads the next frame, failing after e2eTimeout.
func (c *h2conn) next() (http2.Frame, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(e2eTimeout))
	return c.fr.ReadFrame()
}

// settings reads up to the server's SETTINGS, acknowledges them and
// returns them.
func (c *h2conn) settings() map[http2.SettingID]uint32 {
	c.t.Helper()
	for {
		f, err := c.next()
		if err != nil {
			c.t.Fatalf("reading the server's SETTINGS: %v", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			m := map[http2.SettingID]uint32{}
			_ = sf.ForeachSetting(func(s http2.Setting) error { m[s.ID] = s.Val; return nil })
			if err := c.fr.WriteSettingsAck(); err != nil {
				c.t.Fatal(err)
			}
			return m
		}
	}
}

// get opens stream id with a GET of path.
func (c *h2conn) get(id uint32, path string) {
	c.t.Helper()
	var b strings.Builder
	enc := hpack.NewEncoder(&b)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", c.host}, {":path", path}, {"accept", "text/event-stream"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: []byte(b.String()), EndStream: true, EndHeaders: true}); err != nil {
		c.t.Fatal(err)
	}
}

// TestHTTP2StreamLimit: the server advertises --max-concurrent-streams and
// holds it: a client that opens one stream more gets that stream reset,
// while its open streams go on; once one ends, a new one is accepted.
func TestHTTP2StreamLimit(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t, 6001)
	s, _, _ := startTLS(t, cert, "--max-concurrent-streams", "3")
	c := dialH2(t, s.URL, certPool(cert))
	set := c.settings()
	if got := set[http2.SettingMaxConcurrentStreams]; got != 3 {
		t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS %d, want 3", got)
	}
	if got := set[http2.SettingMaxHeaderListSize]; got < 32<<10 {
		t.Fatalf("SETTINGS_MAX_HEADER_LIST_SIZE %d, want at least --max-header-bytes (32 KiB)", got)
	}
	for _, id := range []uint32{1, 3, 5, 7} {
		c.get(id, "/ns/default/rooms/r/events")
	}
	// Read until the three streams answered 200 and sent their first
	// event, and the fourth was reset.
	status := map[uint32]string{}
	data := map[uint32]bool{}
	var reset *http2.RSTStreamFrame
	for len(status) < 3 || len(data) < 3 || reset == nil {
		f, err := c.next()
		if err != nil {
			t.Fatalf("reading frames (status %v, data %v, reset %v): %v", status, data, reset, err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			status[f.StreamID] = f.PseudoValue("status")
		case *http2.DataFrame:
			data[f.StreamID] = true
		case *http2.RSTStreamFrame:
			reset = f
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v: the connection must survive a stream over the limit", f.ErrCode)
		}
	}
	for _, id := range []uint32{1, 3, 5} {
		if status[id] != "200" || !data[id] {
			t.Fatalf("stream %d: status %q, data %v; want 200 and its connected event", id, status[id], data[id])
		}
	}
	if reset.StreamID != 7 {
		t.Fatalf("stream %d reset (%v), want the 4th stream, 7", reset.StreamID, reset.ErrCode)
	}
	if _, ok := status[7]; ok {
		t.Fatalf("stream 7 over the limit was answered %s", status[7])
	}
	// One stream ends; a new one fits.
	if err := c.fr.WriteRSTStream(1, http2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	c.get(9, "/ns/default/rooms/r/events")
	for {
		f, err := c.next()
		if err != nil {
			t.Fatalf("waiting for stream 9: %v", err)
		}
		if h, ok := f.(*http2.MetaHeadersFrame); ok && h.StreamID == 9 {
			if st := h.PseudoValue("status"); st != "200" {
				t.Fatalf("stream 9 status %q, want 200", st)
			}
			break
		}
		if r, ok := f.(*http2.RSTStreamFrame); ok && r.StreamID == 9 {
			t.Fatalf("stream 9 reset (%v) after stream 1 ended", r.ErrCode)
		}
	}
}

// TestHTTP2Timeouts: a TCP connection that never starts its TLS handshake
// is closed after --read-header-timeout, and an HTTP/2 connection with no
// stream is closed with GOAWAY after --idle-timeout.
func TestHTTP2Timeouts(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t, 7001)
	s, _, _ := startTLS(t, cert, "--read-header-timeout", "1s", "--idle-timeout", "1s")
	u, _ := url.Parse(s.URL)

	raw, err := net.DialTimeout("tcp", u.Host, e2eTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetReadDeadline(time.Now().Add(e2eTimeout))
	if _, err := raw.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a connection silent before its handshake: read %v; want it closed by the server", err)
	}
	// Failed handshakes (scanners, clients that distrust the certificate)
	// are logged at debug, not as warnings.
	eventually(t, e2eTimeout, "the handshake timeout in the log", func() bool {
		return len(e2eLogLines(s, "TLS handshake error")) > 0
	})
	for _, l := range e2eLogLines(s, "TLS handshake error") {
		if rec := e2eParseLog(l); rec["level"] != "DEBUG" || rec["component"] != "http" {
			t.Fatalf("handshake error logged as %q (component %q), want DEBUG, http: %s", rec["level"], rec["component"], l)
		}
	}

	c := dialH2(t, s.URL, certPool(cert))
	c.settings()
	for {
		f, err := c.next()
		if err != nil {
			t.Fatalf("an idle HTTP/2 connection: %v before any GOAWAY; want GOAWAY after --idle-timeout", err)
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			if g.ErrCode != http2.ErrCodeNo {
				t.Fatalf("GOAWAY %v, want NO_ERROR", g.ErrCode)
			}
			return
		}
	}
}

// fakeACME is an ACME directory on loopback that records what it is asked
// and answers 404 (not retried by the ACME client): it shows whether and
// where the manager goes for a certificate; no certificate is issued.
type fakeACME struct {
	*httptest.Server
	mu    sync.Mutex
	paths []string
}

func newFakeACME(t *testing.T) *fakeACME {
	f := &fakeACME{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.paths = append(f.paths, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		http.NotFound(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeACME) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.paths...)
}

// TestACMEManagerWiring: with --acme-domain the server serves HTTPS (and
// HTTP/2) with certificates from autocert's cache in <data>/acme, for the
// listed names only; a listed name without a certificate makes it register
// with the configured --acme-directory (a fake here, so nothing is issued)
// and keep its account key in the cache; --acme-http-addr answers HTTP-01
// challenge paths and redirects the rest to https. Issuance by a real CA
// cannot run here (no CA can reach this machine).
func TestACMEManagerWiring(t *testing.T) {
	t.Parallel()
	const domain, uncached, unlisted = "chat.roomcast.test", "new.roomcast.test", "evil.roomcast.test"
	cert := newTestCert(t, 8001, domain)
	data := t.TempDir()
	cache := filepath.Join(data, "acme")
	if err := os.MkdirAll(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	// autocert's cache entry for an ECDSA certificate: the key, then the chain.
	if err := os.WriteFile(filepath.Join(cache, domain), append(append([]byte{}, cert.KeyPEM...), cert.CertPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := newFakeACME(t)
	httpAddr := freeAddr(t)
	s := startServerData(t, data, "--acme-domain", domain+","+uncached, "--acme-directory", ca.URL, "--acme-http-addr", httpAddr)
	if !strings.HasPrefix(s.URL, "https://") {
		t.Fatalf("listening line gives %q, want https://", s.URL)
	}

	// The cached certificate, by SNI, over HTTP/2.
	pool := certPool(cert)
	serial, alpn, err := handshake(t, s.URL, pool, domain)
	if err != nil || serial != "8001" || alpn != "h2" {
		t.Fatalf("handshake for %s: serial %s, ALPN %q, %v; want 8001 from the cache, h2", domain, serial, alpn, err)
	}
	tr := tlsTransport(pool, true)
	tr.TLSClientConfig.ServerName = domain
	defer tr.CloseIdleConnections()
	if code, major := getProto(t, &http.Client{Transport: tr, Timeout: e2eTimeout}, s.URL+"/healthz"); code != http.StatusOK || major != 2 {
		t.Fatalf("GET /healthz as %s: status %d, HTTP/%d; want 200, HTTP/2", domain, code, major)
	}
	if r := ca.requests(); len(r) != 0 {
		t.Fatalf("the CA was asked %v while the certificate was cached", r)
	}

	// A name not listed gets nothing, and the CA is not asked.
	if _, _, err := handshake(t, s.URL, pool, unlisted); err == nil {
		t.Fatalf("handshake for the unlisted %s succeeded", unlisted)
	}
	if r := ca.requests(); len(r) != 0 {
		t.Fatalf("the CA was asked %v for an unlisted name", r)
	}

	// A listed name without a certificate: the manager goes to the
	// configured directory, with an account key kept in <data>/acme.
	if _, _, err := handshake(t, s.URL, pool, uncached); err == nil {
		t.Fatalf("handshake for %s succeeded without a CA", uncached)
	}
	if r := ca.requests(); len(r) == 0 || r[0] != "GET /" {
		t.Fatalf("the CA was asked %v for %s, want its directory (GET /)", r, uncached)
	}
	if _, err := os.Stat(filepath.Join(cache, "acme_account+key")); err != nil {
		t.Fatalf("no account key in the cache %s: %v", cache, err)
	}

	// HTTP-01 on --acme-http-addr.
	noRedirect := &http.Client{Timeout: e2eTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get("http://" + httpAddr + "/ns/default/rooms")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "https://") || !strings.HasSuffix(loc, "/ns/default/rooms") {
		t.Fatalf("GET on --acme-http-addr: %d to %q, want 302 to https://…/ns/default/rooms", resp.StatusCode, loc)
	}
	for _, tc := range []struct {
		host string
		want int
	}{{domain, http.StatusNotFound}, {unlisted, http.StatusForbidden}} {
		req, err := http.NewRequest(http.MethodGet, "http://"+httpAddr+"/.well-known/acme-challenge/unknown-token", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = tc.host
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// The challenge handler answers (not the redirect): an unknown
		// token of a listed name is 404, any token of another name 403.
		if resp.StatusCode != tc.want {
			t.Fatalf("an HTTP-01 token for %s: status %d, want %d", tc.host, resp.StatusCode, tc.want)
		}
	}
}

// TestHTTP2IdleStreamOutlivesWriteTimeout: on HTTP/2 a write deadline is a
// per-stream timer that resets the stream when it fires, even with no write
// under way. Two streams get a message; one cannot take it (its window is
// too small and its client does not read) and is reset by its deadline;
// the other got it and is idle for longer than --write-timeout (heartbeats
// an hour apart): it must live on, a member of its room, and get the next
// message.
func TestHTTP2IdleStreamOutlivesWriteTimeout(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t, 5101)
	s, _, _ := startTLS(t, cert, "--write-timeout", "1s", "--heartbeat", "1h")
	tr := tlsTransport(certPool(cert), true)
	tr.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: 16 << 10}
	defer tr.CloseIdleConnections()
	s.transport = tr

	slow := openRaw(t, &http.Client{Transport: tr}, s.URL, "/ns/default/rooms/r/events")
	fast := e2eOpen(t, s, "/ns/default/rooms/r/events", "")
	id := e2ePub(t, s, "/ns/default/rooms/r/messages", "big", strings.Repeat("x", 48<<10), "")
	fast.expect(t, id)
	rec := e2eWaitDisconnects(t, s, slow.id, 1)
	t.Logf("stalled stream ended: reason %q", rec["reason"])
	if got := e2eMembers(t, s, "r"); got != 1 {
		t.Fatalf("room r has %d members after the stalled stream ended, want 1 (the idle one)\n%s", got, strings.Join(e2eLogLines(s, "connect"), "\n"))
	}
	next := e2ePub(t, s, "/ns/default/rooms/r/messages", "next", 1, "")
	fast.expect(t, next)
}

// TestHTTP2StalledFlushIsNoticed: a raw HTTP/2 client with a 4 KiB stream
// window reads a stream's frames but never grants more window. Messages are
// published one at a time until one does not fit: its flush blocks on flow
// control, and nothing is written after it (heartbeats an hour apart). The
// stream's write deadline resets it; the server disconnects the connection
// with the flush's own error as the reason (a write timeout, not "client
// gone": the access log's writer wrapper drops that error, the SSE writer
// reads it under the wrappers), and the client sees the reset.
func TestHTTP2StalledFlushIsNoticed(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t, 5201)
	s, _, _ := startTLS(t, cert, "--write-timeout", "1s", "--heartbeat", "1h")
	c := dialH2(t, s.URL, certPool(cert), http2.Setting{ID: http2.SettingInitialWindowSize, Val: 4096})
	c.settings()
	c.get(1, "/ns/default/rooms/r/events")

	var body []byte
	received := 0 // DATA bytes of stream 1
	var connID string
	read := func(until func() bool) {
		t.Helper()
		for !until() {
			f, err := c.next()
			if err != nil {
				t.Fatalf("reading stream 1 (%d bytes so far): %v", received, err)
			}
			switch f := f.(type) {
			case *http2.DataFrame:
				received += len(f.Data())
				body = append(body, f.Data()...)
			case *http2.RSTStreamFrame:
				t.Fatalf("stream reset (%v) before its window was full", f.ErrCode)
			}
		}
	}
	read(func() bool {
		_, after, ok := strings.Cut(string(body), "event: connected")
		if !ok || !strings.Contains(after, "\n\n") {
			return false
		}
		var d struct{ ID string }
		data := strings.SplitN(strings.SplitN(string(body), "data: ", 2)[1], "\n", 2)[0]
		if err := json.Unmarshal([]byte(data), &d); err != nil || d.ID == "" {
			t.Fatalf("connected data %q: %v", data, err)
		}
		connID = d.ID
		return true
	})
	// Each message is read whole before the next is published, so that
	// each is its own write and flush; the one that does not fit stalls.
	payload := strings.Repeat("y", 700)
	for i := 0; received < 4096; i++ {
		if i == 20 {
			t.Fatalf("20 messages of 700 bytes did not fill a 4096-byte window (%d bytes)", received)
		}
		e2ePub(t, s, "/ns/default/rooms/r/messages", "m", payload, "")
		before := strings.Count(string(body), "event: m\n")
		read(func() bool { return strings.Count(string(body), "event: m\n") > before || received == 4096 })
	}
	rec := e2eWaitDisconnects(t, s, connID, 1)
	if r := rec["reason"]; !strings.Contains(r, "timeout") {
		t.Fatalf("the stalled stream ended with reason %q, want its write timeout", r)
	}
	for {
		f, err := c.next()
		if err != nil {
			t.Fatalf("waiting for the stalled stream's reset: %v", err)
		}
		if r, ok := f.(*http2.RSTStreamFrame); ok && r.StreamID == 1 {
			break
		}
	}
}
