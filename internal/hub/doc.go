// Package hub is roomcast's core: namespaces, rooms, connections, the
// in-memory fan-out of stored messages to the connections of this node, and
// the resume logic (replay of missed messages with no gap and no duplicate).
//
// It imports no HTTP, chi, r3labs or NATS package. Storage and ordering come
// from a Log (implemented by internal/engine); bytes reach a client through a
// Sink (implemented by sse). main wires them together.
//
// Concurrency contract:
//   - All exported methods are safe for concurrent use.
//   - Each Namespace has one RWMutex. Apply (fan-out) holds it for reading;
//     registration, join and leave hold it for writing, so that a connection
//     sees every message with a sequence greater than the one applied when it
//     registered or joined, and none before.
//   - Nothing blocks while a namespace lock is held: delivery to a connection
//     is a non-blocking enqueue (Sink.Send); a full queue closes that
//     connection (ErrSlowConsumer) and it resumes with Last-Event-ID.
//   - Apply must be called from one goroutine per namespace, in sequence
//     order (the engine's ordered consumer does that).
package hub
