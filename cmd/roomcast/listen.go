package main

// The HTTP server at the edge: its timeouts and bounds, and how it is
// reached — plain HTTP/1.1 (the default), HTTPS with a certificate from
// files (reloaded without a restart), HTTPS with certificates from an ACME
// CA (autocert), HTTP/2 with either, and cleartext HTTP/2 (h2c) for a proxy
// in front. main only calls listen, Serve and Close.

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/roomcast/roomcast/api"
	"github.com/roomcast/roomcast/internal/config"
)

// front is the API's HTTP server and its listener, with what serves TLS.
type front struct {
	srv    *http.Server
	ln     net.Listener
	scheme string      // http or https
	fresh  *freshConns // connections with no request yet (closed at shutdown)

	certs     *certFiles        // --tls-cert/--tls-key, else nil
	acme      *autocert.Manager // --acme-domain, else nil
	challenge *http.Server      // --acme-http-addr, else nil

	stop context.CancelFunc // ends the goroutines below
	wg   sync.WaitGroup     // the certificate watcher and the challenge server
}

// acmeCacheDir is where autocert keeps the account key and certificates.
func acmeCacheDir(data string) string { return filepath.Join(data, "acme") }

// listen builds the HTTP server of handler from cfg and binds cfg.Addr (and
// --acme-http-addr); nothing is served until Serve.
func listen(cfg config.Config, handler http.Handler, logger *slog.Logger) (*front, error) {
	var protos http.Protocols
	protos.SetHTTP1(true)
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout, // also bounds the TLS handshake
		IdleTimeout:       cfg.IdleTimeout,       // HTTP/1.1 keep-alive and idle HTTP/2 connections
		// Larger than the API's own limit, which answers 431 as
		// problem+json; net/http answers past this one itself.
		MaxHeaderBytes: api.ServerHeaderBytes(int(cfg.MaxHeaderBytes)),
		// No ReadTimeout or WriteTimeout: they would cut healthy SSE
		// streams. Request bodies have their own deadline (api.Limits). Each
		// SSE write has its own deadline (sse.Config.WriteTimeout), set
		// through http.ResponseController: on HTTP/1.1 on the connection, on
		// HTTP/2 on the stream alone (a stream past its deadline is reset;
		// the connection's other streams go on).
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: cfg.MaxConcurrentStreams,
			// A connection whose client reads nothing at all (every
			// stream stalled) is closed after this, as HTTP/1.1's would be
			// by the write deadline.
			WriteByteTimeout: cfg.WriteTimeout,
		},
		Protocols: &protos,
		ErrorLog:  serverErrorLog(logger),
	}
	f := &front{srv: srv, scheme: "http", fresh: &freshConns{m: map[net.Conn]struct{}{}}}
	srv.ConnState = f.fresh.track
	ctx, stop := context.WithCancel(context.Background())
	f.stop = stop

	switch {
	case cfg.TLSCert != "":
		certs, err := loadCertFiles(cfg.TLSCert, cfg.TLSKey, logger)
		if err != nil {
			stop()
			return nil, err
		}
		f.certs = certs
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get}
		// SIGHUP reloads (as nginx does); without TLS files SIGHUP keeps
		// its default action.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer signal.Stop(hup)
			certs.watch(ctx, cfg.TLSReloadInterval, hup)
		}()
	case len(cfg.ACMEDomains) > 0:
		m := &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			Cache:      autocert.DirCache(acmeCacheDir(cfg.Data)),
			HostPolicy: autocert.HostWhitelist(cfg.ACMEDomains...),
			Email:      cfg.ACMEEmail,
		}
		if cfg.ACMEDirectory != "" {
			m.Client = &acme.Client{DirectoryURL: cfg.ACMEDirectory}
		}
		f.acme = m
		// acme.ALPNProto lets the CA validate by TLS-ALPN-01 on this
		// listener; ServeTLS adds h2 and http/1.1.
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: m.GetCertificate,
			NextProtos: []string{acme.ALPNProto}}
	}
	if srv.TLSConfig != nil {
		f.scheme = "https"
		protos.SetHTTP2(true)
	}
	if cfg.H2C {
		protos.SetUnencryptedHTTP2(true)
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		f.Close()
		return nil, err
	}
	f.ln = ln
	if f.acme != nil && cfg.ACMEHTTPAddr != "" {
		cln, err := net.Listen("tcp", cfg.ACMEHTTPAddr)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("acme-http-addr: %w", err)
		}
		// HTTP-01 challenges; anything else is redirected to https.
		f.challenge = &http.Server{Handler: f.acme.HTTPHandler(nil), ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			IdleTimeout: cfg.IdleTimeout, MaxHeaderBytes: int(cfg.MaxHeaderBytes), ErrorLog: srv.ErrorLog}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			_ = f.challenge.Serve(cln)
		}()
	}
	return f, nil
}

// URL is the base URL to print: the listener's address, a wildcard named
// localhost.
func (f *front) URL() string { u, _ := listenerURL(f.scheme, f.ln.Addr()); return u }

// Serve serves until the server is shut down (http.Server.Shutdown), and
// returns http.ErrServerClosed then.
func (f *front) Serve() error {
	if f.srv.TLSConfig != nil {
		return f.srv.ServeTLS(f.ln, "", "")
	}
	return f.srv.Serve(f.ln)
}

// Close stops the certificate watcher and the ACME challenge server and
// waits for them; the API's server is shut down by its owner first.
func (f *front) Close() {
	f.stop()
	if f.challenge != nil {
		_ = f.challenge.Close()
	}
	if f.ln != nil {
		_ = f.ln.Close() // when Serve never ran (after Shutdown it is closed already)
	}
	f.wg.Wait()
}

// serverErrorLog is net/http's error log: warnings, except TLS handshake
// failures, which any scanner of the Internet causes (and every client that
// does not trust the certificate): debug.
func serverErrorLog(logger *slog.Logger) *log.Logger {
	return log.New(levelWriter{logger}, "", 0)
}

type levelWriter struct{ logger *slog.Logger }

func (w levelWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimRight(p, "\n"))
	level := slog.LevelWarn
	if strings.Contains(msg, "TLS handshake error") {
		level = slog.LevelDebug
	}
	w.logger.Log(context.Background(), level, msg, "component", "http")
	return len(p), nil
}

// certFiles serves the certificate of --tls-cert/--tls-key and loads it
// again, without a restart, on SIGHUP and when the files change (polled:
// a stat of each file per interval, which sees in-place writes, renames
// and symlink swaps alike). A new TLS handshake gets the new certificate;
// open connections keep the one they were made with. A reload that fails
// (a missing file, a key that does not match, a renewal caught half
// written) keeps the previous certificate and is logged once; the next
// change of the files is tried again.
type certFiles struct {
	certFile, keyFile string
	logger            *slog.Logger
	cur               atomic.Pointer[tls.Certificate]

	mu     sync.Mutex     // one load at a time; guards the fields below
	seen   [2]os.FileInfo // the files as they were when last loaded or tried (nil: missing)
	failed string         // the last failure logged; "" after a success
}

// loadCertFiles loads the pair once; a failure here fails start-up.
func loadCertFiles(certFile, keyFile string, logger *slog.Logger) (*certFiles, error) {
	c := &certFiles{certFile: certFile, keyFile: keyFile, logger: logger}
	c.seen = c.stat()
	cert, err := loadPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	c.cur.Store(cert)
	logger.Info("tls certificate loaded", certAttrs(cert)...)
	return c, nil
}

func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls certificate %s, key %s: %w", certFile, keyFile, err)
	}
	return &cert, nil // Leaf is set by LoadX509KeyPair
}

func certAttrs(cert *tls.Certificate) []any {
	if cert.Leaf == nil {
		return nil
	}
	return []any{"serial", cert.Leaf.SerialNumber.String(), "names", strings.Join(cert.Leaf.DNSNames, ","),
		"not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339)}
}

// get is tls.Config.GetCertificate.
func (c *certFiles) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cur.Load(), nil }

func (c *certFiles) stat() [2]os.FileInfo {
	var s [2]os.FileInfo
	for i, name := range []string{c.certFile, c.keyFile} {
		s[i], _ = os.Stat(name) // nil when missing: a change like any other
	}
	return s
}

// sameFiles reports whether two stats of the pair show the same files.
func sameFiles(a, b [2]os.FileInfo) bool {
	for i := range a {
		if (a[i] == nil) != (b[i] == nil) {
			return false
		}
		if a[i] != nil && (!os.SameFile(a[i], b[i]) || !a[i].ModTime().Equal(b[i].ModTime()) || a[i].Size() != b[i].Size()) {
			return false
		}
	}
	return true
}

// poll is one tick of the watcher: it reloads once the files differ from
// what was last loaded and have not changed since the previous tick, so
// that a renewal writing the certificate and then the key (or swapping two
// symlinks) is loaded whole rather than tried half-written. pending is the
// watcher's memory of the previous tick.
func (c *certFiles) poll(pending *[2]os.FileInfo) {
	now := c.stat()
	c.mu.Lock()
	changed := !sameFiles(c.seen, now)
	c.mu.Unlock()
	switch {
	case !changed:
		*pending = [2]os.FileInfo{}
	case sameFiles(*pending, now):
		_ = c.reload("file change")
		*pending = [2]os.FileInfo{}
	default:
		*pending = now
	}
}

// reload loads the pair again; on failure the previous certificate stays.
func (c *certFiles) reload(trigger string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Stat before reading: a write that lands after the read changes the
	// files again, and the next poll loads it.
	c.seen = c.stat()
	cert, err := loadPair(c.certFile, c.keyFile)
	if err != nil {
		if msg := err.Error(); msg != c.failed {
			c.failed = msg
			c.logger.Warn("tls certificate reload failed: still serving the previous certificate",
				append([]any{"trigger", trigger, "err", err}, certAttrs(c.cur.Load())...)...)
		}
		return err
	}
	c.failed = ""
	c.cur.Store(cert)
	c.logger.Info("tls certificate reloaded", append([]any{"trigger", trigger}, certAttrs(cert)...)...)
	return nil
}

// watch reloads on each signal of hup and, polling every interval (0:
// never), when the files changed; it returns when ctx ends.
func (c *certFiles) watch(ctx context.Context, interval time.Duration, hup <-chan os.Signal) {
	var tick <-chan time.Time
	var pending [2]os.FileInfo
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_ = c.reload("sighup")
		case <-tick:
			c.poll(&pending)
		}
	}
}

// freshConns tracks connections that have not sent a request yet. An HTTP
// client may dial a connection it ends up not using (Go's transport dials
// while waiting for a busy one, and keeps the spare); http.Server.Shutdown
// counts such a connection as active for its first 5 seconds, so a
// shutdown would wait that long for nothing. They carry no request: close
// them at once.
type freshConns struct {
	mu sync.Mutex
	m  map[net.Conn]struct{}
}

func (f *freshConns) track(c net.Conn, st http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st == http.StateNew {
		f.m[c] = struct{}{}
	} else {
		delete(f.m, c)
	}
}

func (f *freshConns) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.m {
		_ = c.Close()
	}
}
