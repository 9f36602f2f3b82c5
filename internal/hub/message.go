package hub

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ConnID is the public id of a connection: others see it in `from` and name it
// in `except`. It grants nothing.
type ConnID string

// Position is a place in a namespace's log: the store's epoch (it changes
// when the store is wiped or recreated) and the stream sequence.
type Position struct {
	Epoch string
	Seq   uint64
}

// String renders "epoch-seq", the message id clients see.
func (p Position) String() string {
	return p.Epoch + "-" + strconv.FormatUint(p.Seq, 10)
}

// ResumeID is the SSE `id:` of an event sent on a connection: the position
// and the connection's token, so that a reconnecting EventSource (which can
// send nothing but Last-Event-ID) gets its identity and rooms back.
func ResumeID(p Position, token string) string {
	return p.String() + "." + token
}

// ParseResume parses a Last-Event-ID: "epoch-seq" or "epoch-seq.token".
func ParseResume(s string) (Position, string, error) {
	pos, token, _ := strings.Cut(s, ".")
	p, err := ParsePosition(pos)
	if err != nil {
		return Position{}, "", err
	}
	if token != "" && !validToken(token) {
		return Position{}, "", fmt.Errorf("resume id: malformed token: %w", ErrInvalid)
	}
	return p, token, nil
}

// ParsePosition parses "epoch-seq".
func ParsePosition(s string) (Position, error) {
	epoch, seq, ok := strings.Cut(s, "-")
	if !ok || len(epoch) == 0 || len(epoch) > 16 {
		return Position{}, fmt.Errorf("position %q: want epoch-sequence: %w", clip(s), ErrInvalid)
	}
	for i := 0; i < len(epoch); i++ {
		c := epoch[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return Position{}, fmt.Errorf("position %q: bad epoch: %w", clip(s), ErrInvalid)
		}
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil || (len(seq) > 1 && seq[0] == '0') {
		return Position{}, fmt.Errorf("position %q: bad sequence: %w", clip(s), ErrInvalid)
	}
	return Position{Epoch: epoch, Seq: n}, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Message is one stored message as the hub fans it out. It is immutable once
// built; the same *Message goes to every local connection.
type Message struct {
	Pos   Position
	Event string
	// Rooms is the target room set; empty with To empty means the whole
	// namespace.
	Rooms []string
	// To is the target connection of a direct message.
	To ConnID
	// From is the sending connection, if the publish carried its token.
	From ConnID
	// Except lists connection ids and room names that must not receive it.
	Except []string
	// Body is the complete JSON envelope, id included, encoded once.
	Body []byte
	// Time is when the message was stored.
	Time time.Time
	// GroupOnly marks a dead letter replayed to one consumer group: no
	// connection receives it through rooms, replay or history.
	GroupOnly bool
	// Notice marks a server notice about its room (Outgoing.Notice):
	// consumer groups never receive it.
	Notice bool

	frameOnce sync.Once
	frame     any
}

// Frame returns a value built once per message by build and shared by every
// connection (the SSE layer caches its encoded event here, so fan-out does
// not encode per subscriber).
func (m *Message) Frame(build func(*Message) any) any {
	m.frameOnce.Do(func() { m.frame = build(m) })
	return m.frame
}

// Envelope is the JSON object a client receives in `data:`: the one
// definition of its members. Stored bodies are encoded from it without ID
// (known only once stored: WithID adds it), group deliveries add the
// delivery members (GroupBody).
type Envelope struct {
	ID    string          `json:"id,omitempty"`
	NS    string          `json:"ns"`
	Room  *string         `json:"room"`
	Rooms []string        `json:"rooms,omitempty"`
	To    string          `json:"to,omitempty"`
	Event string          `json:"event"`
	From  *string         `json:"from"`
	TS    string          `json:"ts"`
	Data  json.RawMessage `json:"data"`
	// Group deliveries only.
	AckID       string `json:"ack_id,omitempty"`
	Delivery    uint64 `json:"delivery,omitempty"`
	AckDeadline string `json:"ack_deadline,omitempty"`
	// Volatile messages only (they have no ID: they are never stored).
	Volatile bool `json:"volatile,omitempty"`
}

// Outgoing is a message to publish, before the log gives it a position.
type Outgoing struct {
	Event  string
	Data   json.RawMessage
	Rooms  []string
	To     ConnID
	From   ConnID
	Except []string
	// Key is the publisher's idempotency key (empty: none).
	Key string
	// Notice marks a message of the server's own about its room (a dead
	// letter's announcement): room subscribers receive it, consumer groups
	// never do.
	Notice bool
	// Volatile marks a message delivered live only, never stored
	// (Namespace.PublishVolatile): its envelope says so, and has no id.
	Volatile bool
	// Body is the envelope without its id, filled by Namespace.Publish.
	Body []byte
}

// EncodeBody encodes the envelope of o without the "id" member: the id is
// only known once the log has stored the message (WithID adds it).
func EncodeBody(ns string, o *Outgoing, ts time.Time) ([]byte, error) {
	env := Envelope{NS: ns, To: string(o.To), Event: o.Event, TS: ts.UTC().Format(time.RFC3339Nano), Data: o.Data, Volatile: o.Volatile}
	if len(o.Rooms) == 1 {
		env.Room = &o.Rooms[0]
	} else if len(o.Rooms) > 1 {
		env.Rooms = o.Rooms
	}
	if o.From != "" {
		f := string(o.From)
		env.From = &f
	}
	if len(env.Data) == 0 {
		env.Data = json.RawMessage("null")
	}
	// json.Marshal compacts Data and escapes U+2028/2029 and HTML-sensitive
	// bytes, so the body is always one line and can never end an SSE field.
	return json.Marshal(env)
}

// WithID returns body (an envelope without id) with "id" as its first member.
func WithID(body []byte, id string) []byte {
	out := make([]byte, 0, len(body)+len(id)+8)
	out = append(out, `{"id":"`...)
	out = append(out, id...)
	out = append(out, '"')
	if len(body) > 2 {
		out = append(out, ',')
	}
	out = append(out, body[1:]...)
	return out
}

// GroupBody returns m's envelope as a group member receives it: the
// delivery members ack_id, delivery and ack_deadline follow its id. (m.Body
// always begins with its id member: WithID made it.)
func GroupBody(m *Message, ackID string, count uint64, deadline time.Time) []byte {
	id := m.Pos.String()
	rest := m.Body[len(`{"id":"`)+len(id)+1:] // `,…}` or `}`
	out := make([]byte, 0, len(m.Body)+len(ackID)+80)
	out = append(out, `{"id":"`...)
	out = append(out, id...)
	out = append(out, `","ack_id":"`...)
	out = append(out, ackID...) // an ack id is base64url and '.': nothing to escape
	out = append(out, `","delivery":`...)
	out = strconv.AppendUint(out, count, 10)
	out = append(out, `,"ack_deadline":"`...)
	out = deadline.UTC().AppendFormat(out, time.RFC3339Nano)
	out = append(out, '"')
	return append(out, rest...)
}
