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
// Live fan-out uses one ordered consumer per namespace per node feeding the
// hub — never one per connection or room. Replay and history use short-lived
// ephemeral consumers deleted after use.
//
// It imports hub (it is an adapter of the core) and never api or sse. All
// methods are safe for concurrent use; Close stops what Follow started.
package engine
