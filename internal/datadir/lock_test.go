package datadir

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestSecondAcquireIsRefusedWithThePid: a second Acquire on a held
// directory fails at once with ErrInUse, naming the directory and the
// holder's pid; once released, the directory can be locked again.
func TestSecondAcquireIsRefusedWithThePid(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // created by Acquire
	first, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("lock file holds %q (%v), want this pid %d", b, err, os.Getpid())
	}
	// flock locks belong to open file descriptions: a second open in the
	// same process conflicts as another process would.
	second, err := Acquire(dir)
	if err == nil {
		second.Release()
		t.Fatal("a second Acquire on a held directory succeeded")
	}
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("error %v, want ErrInUse", err)
	}
	want := "is in use by pid " + strconv.Itoa(os.Getpid())
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("error %q, want it to name %s and say %q", err, dir, want)
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	again, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	again.Release()
}

// TestStalePidIsOverwritten: a lock file left by a dead holder (its pid
// still written, but no flock held) is taken over and rewritten.
func TestStalePidIsOverwritten(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte("999999999\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	l, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire over a stale file: %v", err)
	}
	defer l.Release()
	b, _ := os.ReadFile(filepath.Join(dir, FileName))
	if got := strings.TrimSpace(string(b)); got != strconv.Itoa(os.Getpid()) {
		t.Fatalf("lock file holds %q, want %d", got, os.Getpid())
	}
}
