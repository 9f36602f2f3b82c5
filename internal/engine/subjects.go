package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/roomcast/roomcast/internal/hub"
)

// Every NATS subject and JetStream name roomcast uses, built here and
// nowhere else. Names reaching a subject are checked by the hub's
// allow-lists (hub.ValidNamespace, hub.ValidRoom, hub.ValidConnID): no '*',
// '>' or space can widen a subject.
//
//	rc.<ns>.a            a namespace-wide message
//	rc.<ns>.r.<room>     a message to one room (and the room's notices)
//	rc.<ns>.m            a message to several rooms (Rc-Rooms lists them)
//	rc.<ns>.c.<conn>     a direct message to one connection
//	rc.<ns>.g.<consumer> a dead letter replayed to one consumer group
//	rc.<ns>.v            a void: a sequence number whose message the store lost (disk.go)
//	rcv.<ns>.<kind>      a volatile message (core NATS, in no stream); <kind> as under rc.<ns>
//	dead.<ns>.<consumer> a consumer group's dead letters (stream roomcast_dead)
//	rcctl.<ns>.<op>      a control request between nodes (core NATS)
//	rcwh.out.<endpoint>  a webhook to send (stream roomcast-webhooks, outbox.go)
//	rcwh.parked.<endpoint> a webhook given up on (stream roomcast-webhooks-parked)
//	rcwh.room.<ns>.<rk>  a room whose occupancy may have changed (stream
//	                     roomcast-rooms, occupancy.go; rk hashes the room)
//	rcwh.node.<node>     a node whose lease ran out: its counts are removed
//	rcnode.heartbeat     each node of an embedded cluster announcing itself (health.go)

const (
	subjectRoot  = "rc."
	volatileRoot = "rcv."
	controlRoot  = "rcctl."
	deadRoot     = "dead."
	deadStream   = "roomcast_dead"
	streamPrefix = "roomcast_"
)

// streamName maps a namespace (validated by hub.ValidNamespace: [A-Za-z0-9_-])
// to its stream.
func streamName(ns string) string { return streamPrefix + ns }

// nsSubjects is what namespace ns's stream stores.
func nsSubjects(ns string) string { return subjectRoot + ns + ".>" }

func allSubject(ns string) string        { return subjectRoot + ns + ".a" }
func multiSubject(ns string) string      { return subjectRoot + ns + ".m" }
func roomSubject(ns, room string) string { return subjectRoot + ns + ".r." + room }
func connSubject(ns string, c hub.ConnID) string {
	return subjectRoot + ns + ".c." + string(c)
}
func groupSubject(ns, consumer string) string { return subjectRoot + ns + ".g." + consumer }
func voidSubject(ns string) string            { return subjectRoot + ns + ".v" }

// volatileSubject is where volatile o is sent: rcv. in place of rc.
func volatileSubject(ns string, o *hub.Outgoing) string {
	return volatileRoot + strings.TrimPrefix(subjectOf(ns, o), subjectRoot)
}

// volatileAll is what a node subscribes to for ns's volatile messages.
func volatileAll(ns string) string { return volatileRoot + ns + ".>" }

// deadSubject is the subject of consumer's dead letters in ns (consumer ">":
// all of ns's).
func deadSubject(ns, consumer string) string { return deadRoot + ns + "." + consumer }

func controlSubject(ns, op string) string { return controlRoot + ns + "." + op }

// The sessions bucket, and the stream JetStream keeps it in.
const (
	sessionsBucket = "roomcast_sessions"
	sessionsStream = "KV_" + sessionsBucket
)

// heartbeatSubject carries the nodes' heartbeats (health.go).
const heartbeatSubject = "rcnode.heartbeat"

// controlAll is every node's control subscription.
const controlAll = controlRoot + ">"

// parseControl splits a control subject into namespace and operation.
func parseControl(subject string) (ns, op string, ok bool) {
	rest, ok := strings.CutPrefix(subject, controlRoot)
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, ".")
}

// subjectOf is where o is stored.
func subjectOf(ns string, o *hub.Outgoing) string {
	switch {
	case o.To != "":
		return connSubject(ns, o.To)
	case len(o.Rooms) == 1:
		return roomSubject(ns, o.Rooms[0])
	case len(o.Rooms) > 1:
		return multiSubject(ns)
	default:
		return allSubject(ns)
	}
}

// maxFilterSubjects: past this many rooms a read filters in memory instead.
const maxFilterSubjects = 64

// filterSubjects is what a read for f asks the stream for.
func filterSubjects(ns string, f hub.Filter) []string {
	if len(f.Rooms) > maxFilterSubjects {
		return []string{nsSubjects(ns)}
	}
	subs := make([]string, 0, len(f.Rooms)+3)
	subs = append(subs, allSubject(ns), multiSubject(ns))
	for _, r := range f.Rooms {
		subs = append(subs, roomSubject(ns, r))
	}
	if f.Conn != "" {
		subs = append(subs, connSubject(ns, f.Conn))
	}
	return subs
}

// groupSubjects is what a consumer group of room reads: the room's
// messages, messages to several rooms (those not to this one are skipped)
// and its own replayed dead letters.
func groupSubjects(ns, room, consumer string) []string {
	return []string{roomSubject(ns, room), multiSubject(ns), groupSubject(ns, consumer)}
}

// consumerName maps a group to a durable name: room names may hold
// characters consumer names may not ('.'), so the room is hashed.
func consumerName(g hub.GroupKey) string {
	h := sha256.Sum256([]byte(g.Room))
	return "g_" + hex.EncodeToString(h[:8]) + "_" + g.Name
}

// subjectKind is what a stored subject of ns addresses.
type subjectKind struct {
	all, multi bool
	room       string
	conn       hub.ConnID
	consumer   string // a replayed dead letter's group consumer
	void       bool
}

func parseSubject(ns, subject string) (subjectKind, error) {
	rest, ok := strings.CutPrefix(subject, subjectRoot+ns+".")
	if !ok {
		return subjectKind{}, fmt.Errorf("subject %q outside namespace %s", subject, ns)
	}
	switch {
	case rest == "a":
		return subjectKind{all: true}, nil
	case rest == "m":
		return subjectKind{multi: true}, nil
	case rest == "v":
		return subjectKind{void: true}, nil
	case strings.HasPrefix(rest, "r."):
		return subjectKind{room: rest[2:]}, nil
	case strings.HasPrefix(rest, "c."):
		return subjectKind{conn: hub.ConnID(rest[2:])}, nil
	case strings.HasPrefix(rest, "g."):
		return subjectKind{consumer: rest[2:]}, nil
	}
	return subjectKind{}, fmt.Errorf("subject %q: unknown kind", subject)
}

// Webhook names (outbox.go, occupancy.go). The streams' names cannot be a
// namespace's (streamName: "roomcast_" and [A-Za-z0-9_-]); endpoint and node
// keys are [A-Za-z0-9_-] (EndpointKey, nodeKey), rooms are hashed.
const (
	outboxStream   = "roomcast-webhooks"
	parkedStream   = "roomcast-webhooks-parked"
	roomsStream    = "roomcast-rooms"
	occupancyKV    = "roomcast_occupancy"
	nodesKV        = "roomcast_nodes"
	webhookRoot    = "rcwh."
	roomEvalRoot   = webhookRoot + "room."
	nodeReapRoot   = webhookRoot + "node."
	outboxSubjects = webhookRoot + "out.>"
)

func outboxSubject(endpoint string) string { return webhookRoot + "out." + endpoint }
func parkedSubject(endpoint string) string { return webhookRoot + "parked." + endpoint }
func roomEvalSubject(ns, room string) string {
	return roomEvalRoot + ns + "." + roomKey(room)
}
func nodeReapSubject(node string) string { return nodeReapRoot + node }

// roomKey names a room in KV keys and subjects: rooms may hold characters
// KV keys may not (':', '@'), and dots that would split a key's tokens.
func roomKey(room string) string {
	h := sha256.Sum256([]byte(room))
	return hex.EncodeToString(h[:12])
}

// countKey is node's member count of room; stateKey the room's announced
// occupancy.
func countKey(ns, room, node string) string { return "c." + ns + "." + roomKey(room) + "." + node }
func stateKey(ns, room string) string       { return "s." + ns + "." + roomKey(room) }
