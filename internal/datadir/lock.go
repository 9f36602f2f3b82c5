package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// FileName is the lock file in the data directory.
const FileName = "roomcast.lock"

// ErrInUse matches (errors.Is) the *InUseError Acquire returns when another
// process holds the directory's lock.
var ErrInUse = errors.New("data directory in use")

// InUseError says which directory is locked, and by whom.
type InUseError struct {
	Dir string // absolute
	PID int    // 0: unknown (the holder had not written it yet)
}

func (e *InUseError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("data directory %s is in use by pid %d (lock file %s)", e.Dir, e.PID, FileName)
	}
	return fmt.Sprintf("data directory %s is in use by another process (lock file %s)", e.Dir, FileName)
}

func (e *InUseError) Is(target error) bool { return target == ErrInUse }

// Lock is a held data directory lock.
type Lock struct {
	f    *os.File
	path string
}

// Acquire locks dir (created if missing) for this process, without
// waiting: when another process holds it, the error wraps ErrInUse and
// names the directory and the holder's pid.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	// Never truncate on open: the holder's pid is in there.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("data directory %s: lock: %w", dir, err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data directory %s: lock %s: %w", dir, path, err)
	}
	if held {
		f.Close()
		abs, err := filepath.Abs(dir)
		if err != nil {
			abs = dir
		}
		return nil, &InUseError{Dir: abs, PID: holder(path)}
	}
	// Ours: record who holds it. A crashed holder's pid is overwritten.
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data directory %s: write lock %s: %w", dir, path, err)
	}
	return &Lock{f: f, path: path}, nil
}

// holder reads the pid a lock file names (0: unknown, e.g. the holder has
// not written it yet).
func holder(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// Path is the lock file's path.
func (l *Lock) Path() string { return l.path }

// Release gives the lock up. The file stays (removing it would race a
// server that just opened it); the next holder overwrites the pid.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last descriptor releases the flock
	l.f = nil
	return err
}
