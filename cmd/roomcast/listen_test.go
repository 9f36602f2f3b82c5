package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// servedSerial is the serial of the certificate certFiles hands to a new
// handshake.
func servedSerial(t *testing.T, c *certFiles) string {
	t.Helper()
	cert, err := c.get(nil)
	if err != nil || cert == nil || cert.Leaf == nil {
		t.Fatalf("get = %v, %v", cert, err)
	}
	return cert.Leaf.SerialNumber.String()
}

// logCount counts the occurrences of s in the log.
func logCount(buf *syncBuffer, s string) int { return strings.Count(buf.String(), s) }

func newCertFilesForTest(t *testing.T, first *testCert) (c *certFiles, certFile, keyFile string, logs *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first.write(t, certFile, keyFile)
	logs = &syncBuffer{}
	c, err := loadCertFiles(certFile, keyFile, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return c, certFile, keyFile, logs
}

// A reload that fails keeps the certificate being served and is logged
// once however often it is tried with the same files; a good reload then
// takes over and a new failure is logged again.
func TestCertFilesFailedReloadKeepsCertificateAndLogsOnce(t *testing.T) {
	a, b := newTestCert(t, 11), newTestCert(t, 12)
	c, certFile, keyFile, logs := newCertFilesForTest(t, a)
	if err := os.WriteFile(keyFile, b.KeyPEM, 0o600); err != nil { // key of another certificate
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := c.reload("sighup"); err == nil {
			t.Fatalf("reload %d of a mismatched pair succeeded", i)
		}
		if got := servedSerial(t, c); got != "11" {
			t.Fatalf("after a failed reload the served serial is %s, want 11", got)
		}
	}
	if n := logCount(logs, "tls certificate reload failed"); n != 1 {
		t.Fatalf("3 failed reloads logged %d times, want once:\n%s", n, logs)
	}
	b.write(t, certFile, keyFile)
	if err := c.reload("sighup"); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, c); got != "12" {
		t.Fatalf("served serial %s after a good reload, want 12", got)
	}
	if err := os.Remove(certFile); err != nil {
		t.Fatal(err)
	}
	_ = c.reload("sighup")
	if n := logCount(logs, "tls certificate reload failed"); n != 2 {
		t.Fatalf("a new failure after a success logged %d failures in all, want 2:\n%s", n, logs)
	}
}

// Polling loads files once they differ from what is served and held still
// for one tick: a renewal caught between its key and its certificate is not
// tried half-written (no failure logged), and a symlink swap is seen.
func TestCertFilesPollWaitsForSettledFiles(t *testing.T) {
	a, b, c2 := newTestCert(t, 21), newTestCert(t, 22), newTestCert(t, 23)
	c, certFile, keyFile, logs := newCertFilesForTest(t, a)
	var pending [2]os.FileInfo

	c.poll(&pending)
	if got := servedSerial(t, c); got != "21" {
		t.Fatalf("unchanged files: serial %s, want 21", got)
	}
	// The key is renewed first; the certificate a tick later.
	if err := os.WriteFile(keyFile, b.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	c.poll(&pending)
	b.write(t, certFile, keyFile)
	c.poll(&pending) // changed again since the last tick: wait
	if got := servedSerial(t, c); got != "21" {
		t.Fatalf("files still changing: serial %s, want 21 until they settle", got)
	}
	c.poll(&pending)
	if got := servedSerial(t, c); got != "22" {
		t.Fatalf("settled files: serial %s, want 22", got)
	}
	if n := logCount(logs, "reload failed"); n != 0 {
		t.Fatalf("a half-written renewal was tried:\n%s", logs)
	}

	// Symlinks, as cert-manager and certbot lay them out: the names stay,
	// their targets are swapped.
	dir := t.TempDir()
	v1, v2 := filepath.Join(dir, "v1"), filepath.Join(dir, "v2")
	for _, d := range []string{v1, v2} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	b.write(t, filepath.Join(v1, "cert.pem"), filepath.Join(v1, "key.pem"))
	c2.write(t, filepath.Join(v2, "cert.pem"), filepath.Join(v2, "key.pem"))
	link := filepath.Join(dir, "live")
	if err := os.Symlink(v1, link); err != nil {
		t.Fatal(err)
	}
	c.certFile, c.keyFile = filepath.Join(link, "cert.pem"), filepath.Join(link, "key.pem")
	if err := c.reload("test"); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "live.new")
	if err := os.Symlink(v2, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
	c.poll(&pending)
	c.poll(&pending)
	if got := servedSerial(t, c); got != "23" {
		t.Fatalf("after a symlink swap: serial %s, want 23", got)
	}
}

// watch reloads on a signal even with polling off, and returns when its
// context ends.
func TestCertFilesWatchReloadsOnSignal(t *testing.T) {
	a, b := newTestCert(t, 31), newTestCert(t, 32)
	c, certFile, keyFile, _ := newCertFilesForTest(t, a)
	hup := make(chan os.Signal)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.watch(ctx, 0, hup) }()
	b.write(t, certFile, keyFile)
	hup <- os.Interrupt // any value: the channel is the signal
	hup <- os.Interrupt // the first has been handled once the second is taken
	if got := servedSerial(t, c); got != "32" {
		t.Fatalf("after a signal: serial %s, want 32", got)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(e2eTimeout):
		t.Fatal("watch did not return after its context ended")
	}
}
