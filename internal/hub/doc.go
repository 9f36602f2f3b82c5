// Package hub is roomcast's core: namespaces, rooms, connections, the
// in-memory fan-out of stored messages to the connections of this node,
// resume (replay with no gap and no duplicate), consumer groups and the
// routing of operations to the node that holds a connection.
//
// It imports no HTTP, chi, r3labs or NATS package (doc_test.go holds it to
// that). Its seams, each documented where it is declared:
//   - Log (log.go): the durable ordered store and its live feed; the engine
//     implements it, hubtest.MemLog fakes it, hubtest.RunLog holds both to
//     the contract. Two optional capabilities of a Log, each with its
//     conformance suite: BatchLog (batch.go: several messages in one round
//     trip, Namespace.PublishBatch) and VolatileLog (volatile.go: messages
//     delivered live on every node and never stored,
//     Namespace.PublishVolatile).
//   - Sessions (log.go): where restorable connections are kept.
//   - Queue and GroupAdmin (groups.go): the engine side of consumer groups.
//   - Bus (connections.go): other nodes, for operations on their
//     connections and presence; nil on a single node.
//   - Sink (conn.go): a connection's outbound side; the sse package
//     implements it.
//   - Observer (observe.go): told of joins, leaves and dead letters after
//     the fact, outside every lock (package webhook implements it); nil:
//     nobody.
//
// What adapters call: Hub (New, AddNamespace, Run, Close, Stop); per
// namespace, Publish and History; a connection's life — Open, then
// (*Conn).Run, Close, Detach (open.go); operations on any connection by id
// or token, wherever it lives — Connection, ConnectionByToken, Join, Leave,
// Disconnect, Rooms, Members (connections.go); groups — PutGroup, Group,
// ListGroups, DeleteGroup, GroupBacklog, SettleGroup, DeadLetters,
// ReplayDead, DropDead (groups.go).
//
// Concurrency contract:
//   - All exported methods are safe for concurrent use.
//   - Each Namespace has one RWMutex. The live feed (apply) holds it for
//     reading; registration, join and leave hold it for writing, so that a
//     connection sees every message with a sequence greater than the one
//     applied when it registered or joined, and none before.
//   - Nothing blocks while a namespace lock is held: delivery to a
//     connection is a non-blocking enqueue (Sink.Send); a full queue closes
//     that connection (ErrSlowConsumer) and it resumes with Last-Event-ID.
//   - The Log's Follow calls apply in sequence order, one message at a time.
//     A VolatileLog's feed calls applyVolatile from its own goroutine,
//     concurrently with apply: both hold the namespace lock for reading,
//     and a volatile delivery takes the connection's lock like any other.
//   - A group's lock (group.mu) and the namespace's group registry lock
//     (gmu) are never held with the namespace lock, nor while waiting for
//     the engine.
//   - Every goroutine the hub starts has an owner that waits for it: a
//     group's delivery loop ends with its last local member (or Stop);
//     the session saver runs inside Run.
package hub
