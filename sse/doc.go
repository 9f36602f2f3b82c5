// Package sse serves roomcast's Server-Sent Events streams on
// github.com/r3labs/sse/v2 (imported as r3sse; this is the only package that
// imports it).
//
// One r3labs stream per connection, AutoReplay off (resume comes from the
// engine through the hub), non-blocking TryPublish for live messages: one
// slow client can never stall a room, only overflow its own queue, which
// closes it (it resumes with Last-Event-ID). Replay after a reconnect uses
// the blocking Publish instead, so that a resuming client is paced by its
// own reading speed.
//
// Every write to a client goes through a writer that sets a per-write
// deadline (http.ResponseController) — the server has no WriteTimeout, which
// would kill healthy long-lived streams — and turns the first write error
// into a cancelled request context, the only way to stop an r3labs stream.
// The same writer coalesces: r3labs flushes after every event, one write
// syscall per event per connection; the writer skips a flush while more
// events are known to be queued for its connection (the stream counts what
// it enqueues) and flushes when the queue is drained, so a burst leaves in
// one write and an idle connection gets each event at once. A message's
// event is built once and shared by every connection; the writer adds the
// connection's token to its id on the wire.
//
// It imports hub, never api. Concurrency: Server's methods are safe for
// concurrent use; each stream has one writer goroutine (r3labs' ServeHTTP
// loop) and one start goroutine (replay, go live) that the handler waits
// for before returning; the `connected` event leaves with the response
// header, before r3labs starts.
package sse
