package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Headers of every webhook POST.
const (
	// HeaderSignature carries "t=<unix seconds>,v1=<hex HMAC-SHA256>": the
	// HMAC, keyed with the endpoint's secret, of the timestamp, a dot and
	// the raw body (as Stripe signs). The timestamp is the attempt's: a
	// receiver refuses old ones, so that a captured request cannot be
	// replayed later.
	HeaderSignature = "Roomcast-Signature"
	// HeaderID is the webhook's id, also the payload's "id": the same for
	// every attempt and every endpoint of one event (the idempotency key).
	HeaderID = "Roomcast-Webhook-Id"
	// HeaderEvent is the event type, also the payload's "type".
	HeaderEvent = "Roomcast-Event"
	// HeaderAttempt numbers the attempt, 1 for the first.
	HeaderAttempt = "Roomcast-Attempt"
)

// DefaultTolerance is how old a signature's timestamp Verify accepts.
const DefaultTolerance = 5 * time.Minute

// MinSecret is the shortest signing secret accepted (256 bits).
const MinSecret = 32

// Sign returns the HeaderSignature value for body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Errors of Verify.
var (
	ErrMalformed = errors.New("webhook signature: malformed header")
	ErrTooOld    = errors.New("webhook signature: timestamp outside the tolerance")
	ErrMismatch  = errors.New("webhook signature: no signature matches")
)

// maxHeader bounds the header Verify reads: a receiver is fed by anyone
// who can reach it.
const maxHeader = 4096

// Verify checks a HeaderSignature value against body and secret, at now,
// accepting timestamps within tolerance either side (clock skew). Any v1
// element may match (a sender may sign with several secrets). It is what
// a Go receiver runs; the README shows the same in Node.
func Verify(header string, body, secret []byte, tolerance time.Duration, now time.Time) error {
	if len(header) > maxHeader {
		return ErrMalformed
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrMalformed
		}
		switch k {
		case "t":
			if ts != "" {
				return ErrMalformed
			}
			ts = v
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				return ErrMalformed
			}
			sigs = append(sigs, b)
		}
		// Other schemes are ignored (a future v2 next to v1).
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 || ts != strconv.FormatInt(sec, 10) {
		return ErrMalformed
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrTooOld
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return ErrMismatch
}
