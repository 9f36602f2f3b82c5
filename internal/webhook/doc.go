// Package webhook sends a namespace's events to HTTP endpoints a backend
// runs: room.occupied and room.vacated (debounced, once per cluster),
// member.joined and member.left, message.dead_lettered. Each POST carries a
// JSON Payload signed with the endpoint's secret (Sign, Verify).
//
// The path of a webhook:
//   - The hub tells the Service (its hub.Observer) of joins, leaves and
//     dead letters, after the fact and outside its locks; the Service only
//     enqueues: a join or leave updates the room's local count in the
//     Occupancy tracker (a map write), a member or dead-letter event goes
//     to a bounded in-memory queue (full: dropped and counted, never
//     waited for). Publishes and fan-out never wait for webhooks.
//   - Run stores queued events in the durable Outbox (a JetStream work
//     queue), and Occupancy announces room changes there, once per
//     cluster, with ids derived from durable state.
//   - Run sends the Outbox's webhooks: one attempt at a time per webhook
//     across the cluster, retried with exponential backoff, parked after
//     MaxAttempts (kept, logged and counted). Delivery is at least once:
//     receivers dedupe by the webhook id.
//
// It imports hub (for the Observer) and never api, sse or engine: the
// engine implements Outbox and Occupancy, and main wires them. All methods
// are safe for concurrent use; Run's goroutines end before it returns.
package webhook
