package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// work runs handle on c's messages from workers goroutines until ctx ends,
// and returns once they have. Each worker fetches one message at a time, so
// that no message waits in a client buffer while its ack wait runs, and
// keeps it in progress while handle runs: the consumer's ack wait can be
// short, and a node that dies leaves its messages to the others after it.
func (e *Engine) work(ctx context.Context, c jetstream.Consumer, workers int, ackWait time.Duration, what string,
	handle func(context.Context, jetstream.Msg)) {
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				batch, err := c.Fetch(1, jetstream.FetchContext(fctx))
				if err == nil {
					for msg := range batch.Messages() {
						inProgress(ctx, msg, ackWait, handle)
					}
					err = batch.Error()
				}
				cancel()
				if err == nil || ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
					continue
				}
				e.logger.Warn("consumer fetch; retrying", "consumer", what, "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(250 * time.Millisecond):
				}
			}
		}()
	}
	wg.Wait()
}

// inProgress runs handle on msg, telling the server every third of the ack
// wait that it is still in progress.
func inProgress(ctx context.Context, msg jetstream.Msg, ackWait time.Duration, handle func(context.Context, jetstream.Msg)) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(max(ackWait/3, 100*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	handle(ctx, msg)
	close(done)
	wg.Wait()
}
