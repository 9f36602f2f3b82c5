// Package engine is roomcast's storage and bus: an embedded NATS server with
// JetStream on the data directory (or an external NATS cluster), adapted to
// the hub's Log and Sessions interfaces.
//
// Layout in NATS (one stream per namespace, a subject per target):
//
//	stream roomcast_<ns>, subjects rc.<ns>.>
//	  rc.<ns>.r.<room>   a message to one room
//	  rc.<ns>.m          a message to several rooms (Rc-Rooms header)
//	  rc.<ns>.a          a message to the whole namespace
//	  rc.<ns>.c.<connid> a direct message to one connection
//	KV bucket roomcast_sessions: disconnected connections' ids and rooms
//	stream roomcast-webhooks (+ -parked): the webhook outbox (outbox.go)
//	stream roomcast-rooms, KV roomcast_occupancy and roomcast_nodes: rooms
//	  with members on any node, for occupancy webhooks (occupancy.go)
//
// The stream sequence is the message position; the stream's metadata holds
// the epoch, so that a wiped store is detected by resuming clients.
//
// Live fan-out uses one consumer per namespace per node feeding the hub —
// never one per connection or room — replaced as soon as it goes quiet
// (follow.go). Replay and history are direct gets, checked against the
// stream's leader where a replica may be behind (read.go). Whether this
// node can publish and serve history now (/readyz) is kept up to date in
// the background: heartbeats between the nodes of an embedded cluster tell
// a node cut off from its quorum, which then refuses writes at once, and
// each stream's leader is probed (health.go). A publish's failure is
// either certainly not stored or of unknown outcome (outcome.go).
//
// It imports hub (it is an adapter of the core) and never api or sse. All
// methods are safe for concurrent use; Close stops what Follow started.
package engine
