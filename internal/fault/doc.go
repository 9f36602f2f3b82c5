// Package fault is roomcast's fault suite, in the manner of Jepsen: clients
// work against real server processes while a nemesis injects faults, every
// operation is recorded, and a checker reads the whole history afterwards.
//
//   - Publishers record each publish as OK (answered 2xx: stored), Failed
//     (certainly not stored: never sent, 4xx, 507) or Unknown (a timeout, a
//     connection lost after sending, another 5xx: it may be stored).
//   - Subscribers behave as a browser's EventSource: they reconnect after
//     the server's retry: delay with Last-Event-ID set to the full SSE id
//     they last received, and log every connected, message and reset event
//     and every drop.
//   - After the run the nemesis heals, publishers stop, subscribers drain,
//     and each room's history is read from the server.
//   - Check (checker.go) reports lost (OK but not in history), duplicated,
//     reordered, unexpected (delivered or stored but never published, or
//     published with a Failed answer) messages, gaps (a subscriber missed a
//     stored message it should have had, and no reset said so), and resets.
//
// A Scenario names a cluster size, the servers' flags, a workload and a
// Nemesis; Run plays it. The nemeses today: Kill9Loop (SIGKILL and
// restart), DiskFull (a small tmpfs filled and freed; root only) and
// SlowBodies (a slowloris from one address). The cluster issue adds
// scenarios of several nodes (Cluster already holds a list; clients take
// every node's URL and move on a drop) and nemeses such as partitions.
//
// The scenarios are Go tests (fault_test.go): a short mode in `make test`,
// a long one with `make fault` (flag -fault.long), whose figures the README
// reports. The servers are a roomcast binary built once per test run
// (ROOMCAST_BIN names another). The checker is a library tested on
// synthetic histories (checker_test.go) so that it can be trusted to fail.
//
// Nothing here is imported by the server; it imports none of its packages.
// Recorder and Subscriber are safe for concurrent use.
package fault
