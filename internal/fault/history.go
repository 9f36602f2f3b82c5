package fault

import (
	"strconv"
	"strings"
	"sync"
	"time"
)

// Outcome is what a publisher knows about one publish.
type Outcome int

const (
	// OK: answered 2xx, the message is stored.
	OK Outcome = iota + 1
	// Failed: certainly not stored (never sent, a 4xx, a 503, a 507).
	Failed
	// Unknown: may or may not be stored (a timeout, a connection lost
	// after the request was sent, a 504, a 5xx other than 503 and 507).
	Unknown
)

func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Failed:
		return "failed"
	case Unknown:
		return "unknown"
	}
	return "?"
}

// Publish is one publish attempt.
type Publish struct {
	Key     string // unique: the message's data is {"key": Key}
	Room    string
	Outcome Outcome
	Status  int    // HTTP status; 0 without an answer
	ID      string // the message id when OK
	Type    string // the problem type of an error answer
	Node    int    // the node it was sent to (index in the cluster)
	Start   time.Time
	End     time.Time
	Err     string
	// Retried is, for an Unknown publish, the answer to its retry with the
	// same id after the run (Retried.ID: where the one stored copy is).
	Retried *Publish
}

// EventKind is what a subscriber saw.
type EventKind int

const (
	Connected EventKind = iota + 1 // a stream opened (its `connected` event)
	Message                        // an application message
	Reset                          // a `reset` event: messages were missed, the server says so
	Dropped                        // the stream ended or could not open
)

// Event is one entry of a subscriber's log.
type Event struct {
	Kind     EventKind
	At       time.Time
	Key      string // Message: the publish's key
	ID       string // Message: the message id (<epoch>-<seq>)
	EventID  string // the SSE id: the resume position (Reset: where the stream goes on)
	Restored bool   // Connected: the server restored the connection (same id and rooms)
	Reason   string // Reset: the server's reason; Dropped: what happened
}

// SubscriberLog is one subscriber's whole life.
type SubscriberLog struct {
	Name   string
	Room   string
	Events []Event
}

// Stored is one message of a room's history, as the server returns it.
type Stored struct {
	Key string
	ID  string
}

// History is everything a run recorded.
type History struct {
	Publishes   []Publish
	Subscribers []SubscriberLog
	// Stored is each room's history after the run, in order.
	Stored map[string][]Stored
	// NodeStored is each room's history read from each node after the run
	// (nil on a single node): every node must serve the same.
	NodeStored []map[string][]Stored
	// Probes are the probers' /readyz and history requests (cluster runs).
	Probes []Probe
	// ReadyTolerance is how long /readyz may disagree with what publishes
	// to its node meet before the checker reports it (the time a node
	// takes to notice: --peer-timeout and a probe).
	ReadyTolerance time.Duration
}

// Recorder collects publishes from concurrent publishers.
type Recorder struct {
	mu   sync.Mutex
	pubs []Publish
}

// Add records p.
func (r *Recorder) Add(p Publish) {
	r.mu.Lock()
	r.pubs = append(r.pubs, p)
	r.mu.Unlock()
}

// Publishes returns a copy of what was recorded.
func (r *Recorder) Publishes() []Publish {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Publish(nil), r.pubs...)
}

// seqOf is the sequence of a message id or position ("<epoch>-<seq>",
// optionally ".<token>"); 0 when it has none.
func seqOf(id string) uint64 {
	id, _, _ = strings.Cut(id, ".")
	i := strings.LastIndexByte(id, '-')
	if i < 0 {
		return 0
	}
	n, _ := strconv.ParseUint(id[i+1:], 10, 64)
	return n
}
