package hub

import (
	"context"
	"fmt"
	"time"
)

// catchUp makes a resume on a node that is behind wait for it. A node
// applies the log through its live feed, which can lag the cluster: just
// after a partition healed, after a leader change, under load. A client
// that resumes there with a position this node has not applied yet must
// not be told `reset` ("ahead of this server's log") for a position that
// exists in the cluster, nor be replayed, from the node's older position,
// messages it already has (issue 19). So when the position is past what
// this node applied, the log's leader is asked how far the log goes:
//   - not as far: the position is really ahead (a store that lost its
//     tail): Open goes on and answers `reset`;
//   - as far: wait, within CatchUpWait, for the live feed to reach it;
//     past that, ErrUnavailable (503 with Retry-After): the client retries,
//     here or elsewhere.
//
// A log that cannot be asked (no quorum) answers ErrUnavailable too.
//
// A leader that was paused answers, for the moment it takes to learn that
// another was elected meanwhile, with what it had then (measured: a resume
// just after a SIGCONT was told "ahead" of a log 1,400 messages longer,
// and replayed them again). A position the client has was delivered, so it
// was stored: "not as far" is believed only when the log says so three
// times over a second (aheadChecks).
func (ns *Namespace) catchUp(ctx context.Context, resume *Position) error {
	if resume == nil || resume.Epoch != ns.epoch || resume.Seq <= ns.applied.Load() {
		return nil
	}
	wait := ns.hub.cfg.CatchUpWait
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	exists := false
	for asked := 0; !exists; asked++ {
		st, err := ns.hub.log.State(ctx, ns.name)
		if err != nil {
			return fmt.Errorf("resume at %s: %w", resume, err)
		}
		if st.Epoch != ns.epoch {
			return nil
		}
		exists = resume.Seq <= st.Last
		if !exists && asked+1 >= aheadChecks {
			return nil // Open resets: ahead of the log
		}
		if !exists {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(aheadEvery):
			}
			if ns.applied.Load() >= resume.Seq {
				return nil
			}
		}
	}
	for ns.applied.Load() < resume.Seq {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("resume at %s: this node has applied the log up to %d only and did not catch up within %s: retry: %w",
				resume, ns.applied.Load(), wait, ErrUnavailable)
		case <-tick.C:
		}
	}
	return nil
}

// A position ahead of the log is believed after aheadChecks answers
// aheadEvery apart.
const (
	aheadChecks = 3
	aheadEvery  = 500 * time.Millisecond
)
