package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"
	r3sse "github.com/r3labs/sse/v2"
	r3backoff "gopkg.in/cenkalti/backoff.v1"
)

// ErrDisconnected is returned by Subscribe when the server answers a resume
// with 204: the connection was disconnected on request (DELETE
// /ns/{ns}/connections/{id}) and must not come back, as an EventSource
// stops on that answer.
var ErrDisconnected = errors.New("roomcast: the connection was disconnected on request")

// StatusError is the server's refusal of a stream or a call: its status and,
// when the answer was problem+json, the problem.
type StatusError struct {
	StatusCode int
	Problem    *Problem
}

func (e *StatusError) Error() string {
	if e.Problem != nil && e.Problem.Detail != nil {
		return fmt.Sprintf("roomcast: %d %s: %s", e.StatusCode, e.Problem.Title, *e.Problem.Detail)
	}
	return fmt.Sprintf("roomcast: %d %s", e.StatusCode, http.StatusText(e.StatusCode))
}

// Temporary reports whether retrying later may succeed (408, 425, 429,
// and 5xx answers).
func (e *StatusError) Temporary() bool {
	switch {
	case e.StatusCode == http.StatusRequestTimeout, e.StatusCode == http.StatusTooEarly,
		e.StatusCode == http.StatusTooManyRequests, e.StatusCode >= 500:
		return true
	}
	return false
}

// NewStatusError builds the StatusError of an answer whose body was read
// (a problem+json body is decoded, anything else ignored).
func NewStatusError(code int, header http.Header, body []byte) *StatusError {
	e := &StatusError{StatusCode: code}
	if mt, _, _ := mime.ParseMediaType(header.Get("Content-Type")); mt == "application/problem+json" {
		var p Problem
		if json.Unmarshal(body, &p) == nil && p.Title != "" {
			e.Problem = &p
		}
	}
	return e
}

// Bearer is a request editor that sends token (a connection token, a JWT or
// an API key) as `Authorization: Bearer <token>`; "" sends nothing.
func Bearer(token string) RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return nil
	}
}

// Event is one event of a stream. Exactly one of Connected, Reset,
// Revoked, End, Message and Volatile is set for the events this server
// sends (a `dead_letter` notice is a Message: it is stored in the room); an
// unknown event name sets none (Data holds its data).
type Event struct {
	// ID is the SSE id: the resume position after this event.
	ID string
	// Name is the SSE event name: connected, reset, revoked, end,
	// dead_letter, or the application's.
	Name string
	// Data is the event's data line as sent (JSON).
	Data json.RawMessage

	Connected *Connected
	Reset     *Reset
	// Revoked: a group delivery's lease ran out; its ack id is dead.
	Revoked *Revoked
	// End: the server ends the stream on purpose. Subscribe reconnects
	// after it, except for reason Disconnected (it returns
	// ErrDisconnected).
	End     *End
	Message *Envelope
	// Volatile: a message published with "volatile": true, delivered live
	// only and never stored (no id; ID is the position the stream was at).
	Volatile *VolatileEnvelope
}

// SubscribeOptions tune Subscribe. The zero value subscribes anonymously
// from now on.
type SubscribeOptions struct {
	// Token is sent as `Authorization: Bearer <token>` on every (re)connect:
	// a JWT or an API key of the namespace. Connection tokens cannot open
	// streams (the connection is resumed through the event ids instead),
	// and tickets are single-use (put one in the URL only for a stream
	// that is not resumed).
	Token string
	// TokenFunc, when set, is called before every (re)connect for the
	// credential instead of Token (a JWT that expires, and whose expiry
	// ends the stream, is refreshed this way). An error is retried.
	TokenFunc func(ctx context.Context) (string, error)
	// LastEventID is where to start ("": from now): an event id received
	// before, which resumes that connection, or a message id.
	LastEventID string
	// HTTPClient makes the requests (nil: a client with no timeout; a
	// Timeout would cut healthy streams).
	HTTPClient *http.Client
	// MaxInterval bounds the wait between reconnects (0: 10 s); the wait
	// starts at 0.5 s and grows while the server cannot be reached.
	MaxInterval time.Duration
	// MaxEventSize is the largest event accepted (0: 16 MiB).
	MaxEventSize int
	// OnRetry, when set, is told of each failure that is retried and of the
	// wait before the next attempt (for logs).
	OnRetry func(err error, wait time.Duration)
}

// Subscribe opens the SSE stream at streamURL (a stream route of the API:
// GET /ns/{ns}/events or /ns/{ns}/rooms/{room}/events, with its query; see
// ConnectURL and RoomEventsURL) and calls handle for each event, in order,
// on the calling goroutine. It keeps the id of the last event and, whenever
// the stream ends or fails (a server restart, a slow-consumer disconnect, a
// network error), reconnects with it as Last-Event-ID after a backoff that
// never gives up: the server restores the connection and replays what was
// missed, so handle sees every message once, with no gap (or a Reset event
// when the server cannot honour the position).
//
// Subscribe returns when ctx ends (ctx.Err()), when handle returns an error
// (that error), when the server ends the stream with `end` reason
// disconnected or a resume is answered 204 (ErrDisconnected), or when the
// server refuses the stream for good: a 4xx answer other than 408, 425 and
// 429 (a *StatusError). It is cancelled through ctx only; nothing else needs
// closing.
func Subscribe(ctx context.Context, streamURL string, opts SubscribeOptions, handle func(Event) error) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()

	hc := http.Client{}
	if opts.HTTPClient != nil {
		hc = *opts.HTTPClient
	}
	hc.Transport = &authTransport{base: hc.Transport, token: opts.Token, tokenFunc: opts.TokenFunc}
	maxSize := opts.MaxEventSize
	if maxSize <= 0 {
		maxSize = 16 << 20
	}
	c := r3sse.NewClient(streamURL, r3sse.ClientMaxBufferSize(maxSize))
	c.Connection = &hc
	if opts.LastEventID != "" {
		c.LastEventID.Store([]byte(opts.LastEventID))
	}

	// The r3labs client's own backoff gives up after 15 minutes and ignores
	// the context: this one never gives up, and stops when ctx ends (the
	// r3labs loop recognises WithContext's context while it waits).
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 500 * time.Millisecond
	bo.MaxInterval = 10 * time.Second
	if opts.MaxInterval > 0 {
		bo.MaxInterval = opts.MaxInterval
	}
	bo.InitialInterval = min(bo.InitialInterval, bo.MaxInterval)
	bo.MaxElapsedTime = 0
	c.ReconnectStrategy = backoff.WithContext(bo, sctx)
	c.ReconnectNotify = opts.OnRetry
	c.ResponseValidator = func(_ *r3sse.Client, resp *http.Response) error {
		if resp.StatusCode == http.StatusOK {
			if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "text/event-stream" {
				// A healthy stream: the next drop reconnects quickly again.
				bo.Reset()
				// The r3labs client treats a clean end of the stream as the
				// end of the subscription; here it is one more drop.
				resp.Body = &endIsDrop{ReadCloser: resp.Body}
				return nil
			}
		}
		// The r3labs client closes the body only when there is no validator.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		switch err := NewStatusError(resp.StatusCode, resp.Header, body); {
		case resp.StatusCode == http.StatusNoContent:
			return r3backoff.Permanent(ErrDisconnected)
		case resp.StatusCode >= 400 && !err.Temporary():
			return r3backoff.Permanent(err)
		default:
			return err
		}
	}

	var handleErr error
	for {
		err := c.SubscribeWithContext(sctx, "", func(raw *r3sse.Event) {
			if handleErr != nil {
				return // stopping: the read loop may still hand over an event
			}
			ev, err := decodeEvent(raw)
			if err == nil {
				err = handle(ev)
			}
			if err == nil && ev.End != nil && ev.End.Reason == Disconnected {
				err = ErrDisconnected // told to stop: do not come back
			}
			if err != nil {
				handleErr = err
				cancel() // ends the request and the retries
			}
		})
		switch {
		case handleErr != nil:
			return handleErr
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			return err
		}
		// nil: cannot happen while ends are drops; subscribe again.
	}
}

// decodeEvent types an SSE event by its name.
func decodeEvent(raw *r3sse.Event) (Event, error) {
	ev := Event{ID: string(raw.ID), Name: string(raw.Event), Data: json.RawMessage(raw.Data)}
	var dst any
	switch ev.Name {
	case "connected":
		ev.Connected = &Connected{}
		dst = ev.Connected
	case "reset":
		ev.Reset = &Reset{}
		dst = ev.Reset
	case "revoked":
		ev.Revoked = &Revoked{}
		dst = ev.Revoked
	case "end":
		ev.End = &End{}
		dst = ev.End
	case "error", "":
		return ev, nil // reserved; this server sends none
	default:
		ev.Message = &Envelope{}
		dst = ev.Message
	}
	if err := json.Unmarshal(raw.Data, dst); err != nil {
		return ev, fmt.Errorf("roomcast: event %q (id %s): data is not the documented JSON: %w", ev.Name, ev.ID, err)
	}
	if ev.Message != nil && ev.Message.Id == "" {
		// A stored message always has an id; one without is volatile.
		ev.Message, ev.Volatile = nil, &VolatileEnvelope{}
		if err := json.Unmarshal(raw.Data, ev.Volatile); err != nil || !bool(ev.Volatile.Volatile) {
			return ev, fmt.Errorf("roomcast: event %q (id %s): a message without id that is not volatile: %s", ev.Name, ev.ID, raw.Data)
		}
	}
	return ev, nil
}

// errStreamEnded marks a stream the server ended cleanly.
var errStreamEnded = errors.New("roomcast: the server ended the stream")

// endIsDrop turns the end of a stream into an error, so that the r3labs
// client retries (with Last-Event-ID) instead of returning.
type endIsDrop struct{ io.ReadCloser }

func (r *endIsDrop) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		err = errStreamEnded
	}
	return n, err
}

// authTransport sets the credential of each (re)connect.
type authTransport struct {
	base      http.RoundTripper
	token     string
	tokenFunc func(ctx context.Context) (string, error)
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	token := t.token
	if t.tokenFunc != nil {
		var err error
		if token, err = t.tokenFunc(req.Context()); err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, fmt.Errorf("roomcast: credential: %w", err)
		}
	}
	if token != "" {
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", "Bearer "+token)
	}
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(req)
}

// ConnectURL is the URL of GET /ns/{ns}/events with params (rooms, ticket,
// last_event_id), for Subscribe.
func ConnectURL(server, ns string, params *ConnectParams) (string, error) {
	req, err := NewConnectRequest(server, ns, params)
	if err != nil {
		return "", err
	}
	return req.URL.String(), nil
}

// RoomEventsURL is the URL of GET /ns/{ns}/rooms/{room}/events with params
// (group, ticket, last_event_id), for Subscribe.
func RoomEventsURL(server, ns, room string, params *RoomEventsParams) (string, error) {
	req, err := NewRoomEventsRequest(server, ns, room, params)
	if err != nil {
		return "", err
	}
	return req.URL.String(), nil
}
