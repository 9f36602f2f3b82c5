package hub

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// saver makes the periodic refreshes of live connections' sessions, off
// every connection's path: Hub.Run marks them all, and saves each marked
// connection's latest state once, however many times it was marked
// meanwhile, saveWorkers at a time.
type saver struct {
	logger *slog.Logger

	mu    sync.Mutex
	dirty map[*Conn]struct{}
	wake  chan struct{}

	lastLog time.Time // failed: at most one log line a minute
	fails   int
}

func newSaver(logger *slog.Logger) *saver {
	return &saver{logger: logger, dirty: map[*Conn]struct{}{}, wake: make(chan struct{}, 1)}
}

func (s *saver) mark(c *Conn) {
	s.mu.Lock()
	s.dirty[c] = struct{}{}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *saver) take() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.dirty) == 0 {
		return nil
	}
	out := make([]*Conn, 0, len(s.dirty))
	for c := range s.dirty {
		out = append(out, c)
	}
	clear(s.dirty)
	return out
}

// failed reports a save that did not reach the store: the connection's
// client may not be restored if this node dies before the next refresh.
func (s *saver) failed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails++
	if time.Since(s.lastLog) < time.Minute {
		return
	}
	s.logger.Warn("save live sessions", "failed", s.fails, "err", err)
	s.lastLog, s.fails = time.Now(), 0
}

// saveWorkers bounds the concurrent saves of one flush.
const saveWorkers = 8

// flush saves every marked connection, saveWorkers at a time.
func (s *saver) flush(ctx context.Context) {
	conns := s.take()
	if len(conns) == 0 {
		return
	}
	work := make(chan *Conn)
	var wg sync.WaitGroup
	for range min(saveWorkers, len(conns)) {
		wg.Go(func() {
			for c := range work {
				c.ns.save(ctx, c)
			}
		})
	}
	for _, c := range conns {
		work <- c
	}
	close(work)
	wg.Wait()
}
