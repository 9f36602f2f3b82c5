package api

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/hub"
)

// FuzzRequestBodies feeds arbitrary bytes to the decoder of every JSON body
// the API takes: it never panics, fails only with ErrInvalid or ErrTooLarge,
// and whatever it accepts satisfies the rules the handlers rely on.
func FuzzRequestBodies(f *testing.F) {
	for _, s := range []string{
		`{"event":"e","data":{"a":1},"rooms":["a","b"],"except":["c"],"id":"k"}`,
		`{"ids":["x.y"]}`, `{"ack_wait":"5s","max_deliver":3,"max_in_flight":2}`,
		`{"event":"e"}}`, `{"event":"\u0000"}`, `{"ack_wait":"-1s"}`, `[]`, ``, `{"ids":[]}`,
	} {
		f.Add([]byte(s), uint8(0))
	}
	a := &API{validate: newValidator()}
	f.Fuzz(func(t *testing.T, body []byte, kind uint8) {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		w := httptest.NewRecorder()
		var err error
		switch kind % 5 {
		case 0:
			var v publishRequest
			if err = a.decode(w, r, 4096, &v); err == nil {
				check(t, hub.ValidEvent(v.Event) == nil, "event %q accepted", v.Event)
				for _, room := range append(v.Rooms, v.Except...) {
					check(t, hub.ValidRoom(room), "room %q accepted", room)
				}
			}
		case 1:
			var v roomPublishRequest
			if err = a.decode(w, r, 4096, &v); err == nil {
				check(t, hub.ValidEvent(v.Event) == nil, "event %q accepted", v.Event)
			}
		case 2:
			var v directPublishRequest
			err = a.decode(w, r, 4096, &v)
		case 3:
			var v putGroupRequest
			if err = a.decodeOptional(w, r, &v); err == nil && v.AckWait != "" {
				d, perr := time.ParseDuration(v.AckWait)
				check(t, perr == nil && d >= 100*time.Millisecond, "ack_wait %q accepted", v.AckWait)
			}
			check(t, v.MaxDeliver >= 0 && v.MaxInFlight >= 0 || err != nil, "negative limits accepted")
		case 4:
			var v ackRequest
			if err = a.decode(w, r, 4096, &v); err == nil {
				check(t, len(v.IDs) >= 1 && len(v.IDs) <= 1000, "%d ids accepted", len(v.IDs))
			}
		}
		if err != nil && !errors.Is(err, hub.ErrInvalid) && !errors.Is(err, hub.ErrTooLarge) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}

func check(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		t.Fatalf(format, args...)
	}
}
