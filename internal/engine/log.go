package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomcast/roomcast/internal/hub"
)

// Headers carrying a message's routing; the body is the client envelope.
const (
	hdrEvent  = "Rc-Event"
	hdrRooms  = "Rc-Rooms"
	hdrFrom   = "Rc-From"
	hdrExcept = "Rc-Except"
	hdrNotice = "Rc-Notice" // "1": a server notice about its room (hub.Outgoing.Notice)
)

// Publish implements hub.Log.
func (e *Engine) Publish(ctx context.Context, ns string, o *hub.Outgoing) (hub.Position, bool, error) {
	s, err := e.ns(ns)
	if err != nil {
		return hub.Position{}, false, err
	}
	// A full store answers at once, without trying (disk.go); so does a
	// node cut off from its cluster (health.go): sent, the message could
	// wait in a route's buffer and be stored when the partition heals.
	if err := e.disk.refuse(); err != nil {
		return hub.Position{}, false, fmt.Errorf("engine: publish: %w", err)
	}
	if err := e.health.quorum(); err != nil {
		return hub.Position{}, false, fmt.Errorf("engine: publish: not sent: %w", err)
	}
	if !e.nc.IsConnected() {
		// Reconnecting takes seconds: say so now rather than after them.
		return hub.Position{}, false, fmt.Errorf("engine: publish: not sent: the connection to NATS is down: %w", hub.ErrUnavailable)
	}
	msg := natsMsg(subjectOf(ns, o), o)
	opts := s.pubOpts
	if o.Key != "" {
		opts = append(opts[:len(opts):len(opts)], jetstream.WithMsgID(o.Key))
	}
	// While a stream has no leader (a node of the cluster just died, or
	// this node is in a minority), nothing stores it: "no responders" is
	// safe to retry, for a bounded time. A timeout is not (the message may
	// be stored): it is answered 504, outcome unknown, and a publisher
	// retries with an idempotency key (outcome.go).
	var ack *jetstream.PubAck
	deadline := time.Now().Add(publishRetry)
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		pctx, cancel := context.WithTimeout(ctx, publishTimeout)
		// A store that fails for lack of space answers nothing: give up
		// shortly after the disk guard trips instead of at the timeout.
		cut := e.disk.inflight()
		stop := context.AfterFunc(cut, cancel)
		ack, err = e.js.PublishMsg(pctx, msg, opts...)
		stop()
		cancel()
		if err != nil && e.disk.tripped(cut) {
			return hub.Position{}, false, fmt.Errorf("engine: publish: the store failed while this message was sent: %w", hub.ErrOutcomeUnknown)
		}
		if err == nil || !unstored(err) || time.Now().After(deadline) || e.health.quorum() != nil || !e.nc.IsConnected() {
			break
		}
		select {
		case <-ctx.Done():
			return hub.Position{}, false, fmt.Errorf("engine: publish: %w: %w", hub.ErrUnavailable, ctx.Err())
		case <-time.After(wait):
		}
	}
	if err != nil {
		return hub.Position{}, false, fmt.Errorf("engine: publish: %w", publishFailure(err))
	}
	return hub.Position{Epoch: s.epoch, Seq: ack.Sequence}, ack.Duplicate, nil
}

// natsMsg is o as stored (or, volatile, as sent) on subject: its routing
// in headers, its envelope as the body.
func natsMsg(subject string, o *hub.Outgoing) *nats.Msg {
	msg := nats.NewMsg(subject)
	msg.Header.Set(hdrEvent, o.Event)
	if len(o.Rooms) > 1 {
		msg.Header.Set(hdrRooms, strings.Join(o.Rooms, ","))
	}
	if o.From != "" {
		msg.Header.Set(hdrFrom, string(o.From))
	}
	if len(o.Except) > 0 {
		msg.Header.Set(hdrExcept, strings.Join(o.Except, ","))
	}
	if o.Notice {
		msg.Header.Set(hdrNotice, "1")
	}
	msg.Data = o.Body
	return msg
}

// publishTimeout bounds one store attempt; publishRetry the retries while a
// stream has no leader (≈ the 6.5 s an R3 stream takes to elect one after
// its leader is killed, notes/engine-nats.md).
const (
	publishTimeout = 3 * time.Second
	publishRetry   = 8 * time.Second
	readRetry      = 10 * time.Second
)

// info reads a stream's state, waiting across a leader election.
func (e *Engine) info(ctx context.Context, s *nsStream) (*jetstream.StreamInfo, error) {
	var info *jetstream.StreamInfo
	err := e.serve(ctx, func(ctx context.Context) error {
		var err error
		info, err = s.stream.Info(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("engine: stream info %s: %w: %w", s.name, hub.ErrUnavailable, err)
	}
	return info, nil
}

type metaMsg interface {
	Metadata() (*jetstream.MsgMetadata, error)
}

// decode turns a stored NATS message into a hub.Message.
func (e *Engine) decode(s *nsStream, ns, subject string, h nats.Header, data []byte, mm metaMsg) (*hub.Message, error) {
	md, err := mm.Metadata()
	if err != nil {
		return nil, err
	}
	return decodeAt(s, ns, subject, h, data, md.Sequence.Stream, md.Timestamp)
}

// errVoid is decodeAt's answer for a void marker: a sequence number that
// carries no message (restartJetStream). Readers skip it silently.
var errVoid = errors.New("a void sequence number")

func decodeAt(s *nsStream, ns, subject string, h nats.Header, data []byte, seq uint64, ts time.Time) (*hub.Message, error) {
	k, err := parseSubject(ns, subject)
	if err != nil {
		return nil, err
	}
	if k.void {
		return nil, errVoid
	}
	m := &hub.Message{Pos: hub.Position{Epoch: s.epoch, Seq: seq}, Time: ts}
	route(m, k, h)
	if !oneLineObject(data) {
		return nil, fmt.Errorf("seq %d: body is not a one-line JSON object", seq)
	}
	m.Body = hub.WithID(data, m.Pos.String())
	return m, nil
}

// oneLineObject reports whether a stored body can go on an SSE data: line
// as it is: an object ({…}) with no CR, LF or NUL, which would end the line
// (or the event) early and let the rest be read as fields. Bodies are
// written by hub.EncodeBody (compact JSON, on any node); this is what the
// wire needs from whatever else may have reached the stream's subjects. It
// replaced a full json.Valid per message (~5 % of a stored message's CPU in
// BenchmarkPublishBatch), which did not ensure one line either.
func oneLineObject(b []byte) bool {
	return len(b) >= 2 && b[0] == '{' && b[len(b)-1] == '}' && bytes.IndexAny(b, "\r\n\x00") < 0
}

// route fills m's event and addressing from its subject and headers.
func route(m *hub.Message, k subjectKind, h nats.Header) {
	m.Event = h.Get(hdrEvent)
	switch {
	case k.multi:
		m.Rooms = strings.Split(h.Get(hdrRooms), ",")
	case k.room != "":
		m.Rooms = []string{k.room}
		m.Notice = h.Get(hdrNotice) == "1"
	case k.conn != "":
		m.To = k.conn
	case k.consumer != "":
		m.GroupOnly = true
		m.Rooms = []string{h.Get(hdrRooms)}
	}
	m.From = hub.ConnID(h.Get(hdrFrom))
	if ex := h.Get(hdrExcept); ex != "" {
		m.Except = strings.Split(ex, ",")
	}
}

// Gap implements hub.Log. Retention removes a namespace's oldest messages
// (max age, max bytes) and a subject's oldest beyond MaxMsgsPerRoom; a gap is
// reported when either may have removed a message after `after`. The
// per-subject test is conservative: a subject at its limit whose oldest kept
// message is later than after+1 counts as a gap.
func (e *Engine) Gap(ctx context.Context, ns string, after uint64, f hub.Filter) (bool, error) {
	s, err := e.ns(ns)
	if err != nil {
		return false, err
	}
	info, err := e.info(ctx, s)
	if err != nil {
		return false, err
	}
	st := info.State
	if st.LastSeq > after && st.FirstSeq > after+1 {
		return true, nil
	}
	if s.retention.MaxMsgsPerRoom <= 0 || st.LastSeq <= after {
		return false, nil
	}
	for _, subj := range filterSubjects(ns, f) {
		if strings.HasSuffix(subj, ">") {
			// Too many rooms to check one by one: any subject at its limit
			// could have lost something.
			return uint64(st.Msgs) < st.LastSeq-st.FirstSeq+1, nil
		}
		var sinfo *jetstream.StreamInfo
		err := e.serve(ctx, func(ctx context.Context) error {
			var err error
			sinfo, err = s.stream.Info(ctx, jetstream.WithSubjectFilter(subj))
			return err
		})
		if err != nil {
			return false, fmt.Errorf("engine: subject info %s: %w: %w", subj, hub.ErrUnavailable, err)
		}
		if int64(sinfo.State.Subjects[subj]) < s.retention.MaxMsgsPerRoom {
			continue
		}
		var first *jetstream.RawStreamMsg
		notFound := false
		err = e.serve(ctx, func(ctx context.Context) error {
			var err error
			first, err = s.stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subj))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				notFound = true
				return nil
			}
			return err
		})
		if notFound {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("engine: first of %s: %w: %w", subj, hub.ErrUnavailable, err)
		}
		if first.Sequence > after+1 {
			return true, nil
		}
	}
	return false, nil
}
