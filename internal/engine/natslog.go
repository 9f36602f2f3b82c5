package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// natsLog hands the embedded NATS server's log to roomcast's logger (it had
// none: a port already in use showed only as "not ready after 30s"). Its
// notices (the start-up banner, routes connecting) go at debug, its
// warnings and errors as they are, and its fatal errors as errors that
// Open also reports at once: embedded, the server does not exit on them.
// A cluster's start-up and shutdown are not silent at warn: "Waiting for
// routing", "no meta leader" and a first route error per node not yet up
// are expected there.
type natsLog struct {
	l     *slog.Logger
	fatal atomic.Pointer[string]
	// onError sees each error line (the disk guard looks for a store
	// write that failed for lack of space); nil: none.
	onError func(line string)
	// spaceLogged is when an out-of-space error was last logged (unix ns).
	spaceLogged atomic.Int64
}

func (n *natsLog) log(level slog.Level, format string, v []any) {
	if n.l.Enabled(context.Background(), level) {
		n.l.Log(context.Background(), level, fmt.Sprintf(format, v...), "component", "nats")
	}
}

func (n *natsLog) Noticef(format string, v ...any) { n.log(slog.LevelDebug, format, v) }
func (n *natsLog) Warnf(format string, v ...any)   { n.log(slog.LevelWarn, format, v) }
func (n *natsLog) Errorf(format string, v ...any) {
	line := fmt.Sprintf(format, v...)
	if n.onError != nil {
		n.onError(line)
	}
	// A full disk makes the server log on every write that fails, and the
	// log may live on that disk: once a minute is enough.
	if outOfSpace(line) {
		now := time.Now().UnixNano()
		if last := n.spaceLogged.Load(); now-last < int64(time.Minute) || !n.spaceLogged.CompareAndSwap(last, now) {
			return
		}
	}
	n.log(slog.LevelError, "%s", []any{line})
}
func (n *natsLog) Debugf(format string, v ...any) {} // not enabled (SetLoggerV2's debug flag is off)
func (n *natsLog) Tracef(format string, v ...any) {}

func (n *natsLog) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	n.fatal.CompareAndSwap(nil, &msg)
	n.log(slog.LevelError, format, v)
}

// fatalError is the server's first fatal error, if any.
func (n *natsLog) fatalError() error {
	if p := n.fatal.Load(); p != nil {
		return errors.New(*p)
	}
	return nil
}
