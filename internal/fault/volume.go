package fault

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// SmallVolume mounts a tmpfs of size bytes on a new temp dir and returns
// it, unmounted when the test ends. Mounting needs root: otherwise, or
// when mount fails, the test is skipped with the reason (CI runs as root).
func SmallVolume(t testing.TB, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs for a full disk (CI runs as root)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs for a full disk: %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, bytes.TrimSpace(out))
		}
	})
	return dir
}

// Free is the space left on dir's volume.
func Free(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// Fill writes a file on dir's volume until at most leave bytes are free
// (or a write fails: the volume is full) and returns its path; removing it
// frees the space.
func Fill(dir string, leave int64) (string, error) {
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		free, err := Free(dir)
		if err != nil {
			return path, err
		}
		if free <= leave {
			return path, nil
		}
		n := min(int64(len(buf)), max(4096, free-leave))
		if _, err := f.Write(buf[:n]); err != nil {
			return path, nil // full
		}
	}
}
