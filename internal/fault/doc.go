// Package fault is roomcast's fault suite, in the manner of Jepsen: clients
// work against real server processes while a nemesis injects faults, every
// operation is recorded, and a checker reads the whole history afterwards.
//
//   - Publishers record each publish as OK (answered 2xx: stored), Failed
//     (certainly not stored: never sent, 4xx, 503, 507 — the publish
//     contract promises a 503 stored nothing) or Unknown (a timeout, a
//     connection lost after sending, a 504, another 5xx: it may be
//     stored). Each publish carries its key as its idempotency id; after
//     the run every Unknown one is retried with it, and must be stored
//     exactly once. In a cluster each publisher keeps to one node.
//   - Subscribers behave as a browser's EventSource: they reconnect after
//     the server's retry: delay with Last-Event-ID set to the full SSE id
//     they last received (to the next node of a cluster), and log every
//     connected, message and reset event and every drop; with Idle they
//     also drop a silent stream (a paused node's), as a client with a
//     read timeout would.
//   - A Prober (cluster runs) asks every node /readyz every 0.5 s and
//     reads on every node every second (a room's latest messages, a page
//     after a position, a consumer group's state and backlog).
//   - After the run the nemesis heals, publishers stop, subscribers drain,
//     and each room's history is read from every node.
//   - Check (checker.go, checkcluster.go) reports lost (OK but not in
//     history), duplicated, reordered, unexpected (delivered or stored but
//     never published), refused but stored (stored although its publish
//     was Failed), gaps (a subscriber missed a stored message it should
//     have had, and no reset said so), resets, 500s (publishes, /readyz,
//     reads), readiness that disagreed with what publishes to its node met
//     for longer than a tolerance, and nodes whose histories differ.
//     Times (timings.go) measures each fault: when the faulted node said
//     it was not ready, how long the others' publishes waited (failover),
//     when it was ready after the heal, the others' 503s, and the live
//     fan-out stall.
//
// A Scenario names a cluster (one node; Nodes embedded engines clustered
// by routes, Isolated in network namespaces of their own (netns.go: root,
// ip from iproute2; skipped otherwise); or nodes on an ExternalNATS
// nats-server, built from the module cache), the servers' flags, a
// workload and a Nemesis; Run plays it. The nemeses: Kill9Loop (SIGKILL
// and restart), DiskFull (a small tmpfs filled and freed; root only),
// SlowBodies (a slowloris from one address), and for clusters Partition
// (a node's route links cut), Pause (SIGSTOP, SIGCONT), KillNode (one node
// SIGKILLed and restarted), NATSOutage (the external nats-server stopped:
// SIGTERM, SIGKILL) and StartLate (a new cluster's first start without
// all its nodes).
//
// The scenarios are Go tests (fault_test.go, cluster_test.go): a short
// mode in `make test`, a long one with `make fault` (flag -fault.long),
// whose figures the README reports. The servers are a roomcast binary
// built once per test run (ROOMCAST_BIN names another; NATS_SERVER_BIN a
// nats-server). FAULT_HISTORY_DIR keeps each run's history (JSON) and
// server logs. The checker is a library tested on synthetic histories
// (checker_test.go, checkcluster_test.go) so that it can be trusted to
// fail.
//
// Nothing here is imported by the server; it imports none of its packages.
// Recorder and Subscriber are safe for concurrent use.
package fault
