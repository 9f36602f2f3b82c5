package engine

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomcast/roomcast/internal/hub"
)

// A publish has three outcomes a client can act on, and the engine tells
// them apart by how the request failed, never by guessing:
//   - stored: the stream leader acknowledged it (202);
//   - refused, certainly not stored (hub.ErrUnavailable, 503): the request
//     was never sent (the connection to NATS was down: with the client's
//     reconnect buffer turned off, nats.go refuses at once instead of
//     keeping the message and sending it on reconnect — which stored
//     messages whose publish had already been answered 503, issue 19), it
//     reached no stream leader ("no responders"), or the leader answered
//     with an error;
//   - unknown (hub.ErrOutcomeUnknown, 504): it was sent and no answer came
//     (a timeout: a leader lost mid-request, a partition, a paused node) or
//     the answer was lost with the connection. The message may be stored
//     and delivered; a retry with the same idempotency key stores it once.

// publishFailure classifies the error of a publish attempt that will not
// be retried.
func publishFailure(err error) error {
	var apiErr *jetstream.APIError
	switch {
	case unstored(err):
		return fmt.Errorf("not stored: %w: %w", hub.ErrUnavailable, err)
	case errors.As(err, &apiErr):
		// The leader checks a message before proposing it and answers
		// errors about it; a message it stored is answered with an ack.
		return fmt.Errorf("not stored: the stream refused it: %w: %w", hub.ErrUnavailable, err)
	default:
		return fmt.Errorf("%w: %w", hub.ErrOutcomeUnknown, err)
	}
}
