package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomcast/roomcast/internal/hub"
)

// Reads (history, replay, a group's backlog) are direct gets, answered by
// any replica of the stream that caught up once (AllowDirect): no consumer
// is made, so a read needs neither the meta leader nor a consumer's
// placement, and does not race the propagation of a new consumer's
// interest across the cluster — an ephemeral consumer per read answered
// "no responders" to 1 read in 6 in a healthy 3-node cluster (issue 19).
//
// A replica may be behind the leader: a follower applies a message a
// little after the leader acknowledged it; a node that was paused or cut
// off answers, when it comes back, with what it had then (NATS picks any
// replica of the queue group, not only the local one: measured, a read on
// one node was answered by another that had just been continued after a
// SIGSTOP, 300 messages short). What a replica returns is a prefix of the
// log (raft), so only where a subject's messages end is in doubt: when a
// replica says a subject has nothing more before the read's last sequence,
// the stream's leader is asked for the subject's next message (one
// request per subject and read), and the read goes on if there is one.
// A single server (no cluster, no external NATS) is its streams' only
// replica: it is not asked twice.

// directBatch is the most messages one direct get returns.
const directBatch = 256

// directTimeout bounds one direct get (a paused replica does not answer).
const directTimeout = 2 * time.Second

// errNoReplica: no replica answered a direct get (none reachable).
var errNoReplica = errors.New("no replica of the stream answered")

// directGetRequest is JetStream's direct get request (server
// JSApiMsgGetRequest): up to Batch messages with sequence >= Seq on
// NextFor (any subject if empty), then an end-of-batch status.
type directGetRequest struct {
	Seq      uint64 `json:"seq,omitempty"`
	NextFor  string `json:"next_by_subj,omitempty"`
	Batch    int    `json:"batch,omitempty"`
	MaxBytes int    `json:"max_bytes,omitempty"`
}

// stored is one message of a direct get.
type stored struct {
	seq     uint64
	subject string
	ts      time.Time
	msg     *nats.Msg
}

// directGet asks a replica of stream for up to n messages with sequence >=
// from on subject ("": any). more reports that the replica holds more.
func (e *Engine) directGet(ctx context.Context, stream string, from uint64, subject string, n int) (out []stored, more bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, directTimeout)
	defer cancel()
	req, err := json.Marshal(directGetRequest{Seq: from, NextFor: subject, Batch: n, MaxBytes: 4 << 20})
	if err != nil {
		return nil, false, err
	}
	// The answer is at most n messages and a status, on the engine's reply
	// subscription (a subscription per read cost a SUB and an UNSUB, and
	// SubscribeSync's buffer of 64k pointers, allocated and cleared per
	// read, was most of a resume's CPU).
	prefix, ch, release, err := e.replyBatch(n + 1)
	if err != nil {
		return nil, false, err
	}
	defer release()
	if err := e.nc.PublishRequest("$JS.API.DIRECT.GET."+stream, prefix+"0", req); err != nil {
		return nil, false, err
	}
	for {
		var m *nats.Msg
		select {
		case m = <-ch:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
		switch status := m.Header.Get("Status"); status {
		case "":
		case "204": // end of batch
			np, _ := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			return out, np > 0, nil
		case "404": // nothing at or after from
			return out, false, nil
		case "503":
			return nil, false, errNoReplica
		default:
			return nil, false, fmt.Errorf("direct get: status %s %s", status, m.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
		if err != nil {
			return nil, false, fmt.Errorf("direct get: sequence %q: %w", m.Header.Get("Nats-Sequence"), err)
		}
		ts, _ := time.Parse(time.RFC3339Nano, m.Header.Get("Nats-Time-Stamp"))
		out = append(out, stored{seq: seq, subject: m.Header.Get("Nats-Subject"), ts: ts, msg: m})
	}
}

// cursor reads one subject of a stream forward, a batch at a time.
type cursor struct {
	subject string
	next    uint64 // the next sequence to ask for
	buf     []stored
	done    bool
}

// Read implements hub.Log with direct gets: one cursor per subject of f,
// merged in sequence order.
func (e *Engine) Read(ctx context.Context, ns string, from, to uint64, f hub.Filter, fn func(*hub.Message) bool) error {
	s, err := e.ns(ns)
	if err != nil {
		return err
	}
	if to == 0 {
		st, err := e.State(ctx, ns)
		if err != nil {
			return err
		}
		to = st.Last
	}
	if from == 0 {
		from = 1
	}
	if from > to {
		return nil
	}
	subjects := filterSubjects(ns, f)
	cursors := make([]*cursor, len(subjects))
	for i, subj := range subjects {
		cursors[i] = &cursor{subject: subj, next: from}
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var head *cursor
		for _, c := range cursors {
			if len(c.buf) == 0 && !c.done {
				if err := e.fill(ctx, s, c, to); err != nil {
					return fmt.Errorf("engine: read %s: %w: %w", ns, hub.ErrUnavailable, err)
				}
			}
			if len(c.buf) > 0 && (head == nil || c.buf[0].seq < head.buf[0].seq) {
				head = c
			}
		}
		if head == nil || head.buf[0].seq > to {
			return nil
		}
		sm := head.buf[0]
		head.buf = head.buf[1:]
		m, err := decodeAt(s, ns, sm.subject, sm.msg.Header, sm.msg.Data, sm.seq, sm.ts)
		if errors.Is(err, errVoid) {
			continue // a lost write's number (restartJetStream)
		}
		if err != nil {
			e.logger.Error("skip undecodable message", "ns", ns, "err", err)
			continue
		}
		if !fn(m) {
			return nil
		}
	}
}

// fill reads c's next batch, retrying (within readRetry) while no replica
// answers. Where the replica says the subject ends before to, the leader
// says whether it does.
func (e *Engine) fill(ctx context.Context, s *nsStream, c *cursor, to uint64) error {
	var got []stored
	var more bool
	err := e.serve(ctx, func(ctx context.Context) error {
		var err error
		got, more, err = e.directGet(ctx, s.name, c.next, c.subject, directBatch)
		return err
	})
	if err != nil {
		return err
	}
	if len(got) > 0 {
		c.next = got[len(got)-1].seq + 1
	}
	c.buf = got
	if more || c.next > to {
		c.done = c.next > to
		return nil
	}
	if !e.Clustered() {
		// One server: the replica that answered is the leader.
		c.done = true
		return nil
	}
	var next *stored
	err = e.serve(ctx, func(ctx context.Context) error {
		var err error
		next, err = e.leaderNext(ctx, s.name, c.next, c.subject)
		return err
	})
	if err != nil {
		return err
	}
	if next == nil || next.seq > to {
		c.done = true
		return nil
	}
	// The replica was behind: the leader's message, then read on.
	c.buf = append(c.buf, *next)
	c.next = next.seq + 1
	return nil
}

// leaderNext asks stream's leader for the first message with sequence >=
// from on subject (nil: none).
func (e *Engine) leaderNext(ctx context.Context, stream string, from uint64, subject string) (*stored, error) {
	ctx, cancel := context.WithTimeout(ctx, directTimeout)
	defer cancel()
	req, err := json.Marshal(directGetRequest{Seq: from, NextFor: subject})
	if err != nil {
		return nil, err
	}
	msg, err := e.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, req)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Error   *jetstream.APIError `json:"error"`
		Message *struct {
			Subject string    `json:"subject"`
			Seq     uint64    `json:"seq"`
			Header  []byte    `json:"hdrs"`
			Data    []byte    `json:"data"`
			Time    time.Time `json:"time"`
		} `json:"message"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, fmt.Errorf("stream message get: %w", err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return nil, nil
	case resp.Error != nil:
		return nil, resp.Error
	case resp.Message == nil:
		return nil, errors.New("stream message get: an empty answer")
	}
	m := &nats.Msg{Subject: resp.Message.Subject, Data: resp.Message.Data, Header: nats.Header{}}
	if len(resp.Message.Header) > 0 {
		if m.Header, err = nats.DecodeHeadersMsg(resp.Message.Header); err != nil {
			return nil, fmt.Errorf("stream message get: %w", err)
		}
	}
	return &stored{seq: resp.Message.Seq, subject: resp.Message.Subject, ts: resp.Message.Time, msg: m}, nil
}
