// A small roomcast client in TypeScript: the types come from openapi.yaml
// (openapi-typescript → src/schema.d.ts), the calls are made with
// openapi-fetch, so that tsc checks every path, parameter, body and answer
// against the spec. Against a live server (ROOMCAST_SERVER) it opens a
// connection, joins a room, publishes to it, receives the message on the
// stream, sends a volatile message and a batch, and reads the stored ones
// back from the history; it exits 1 at the first surprise. `make ts-client` runs it against a server it starts.

import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Connected = components["schemas"]["Connected"];
type Envelope = components["schemas"]["Envelope"];
type VolatileEnvelope = components["schemas"]["VolatileEnvelope"];
type BatchResult = components["schemas"]["BatchResult"];
type Problem = components["schemas"]["Problem"];

const server = process.env.ROOMCAST_SERVER ?? "http://localhost:8080";
const ns = process.env.ROOMCAST_NS ?? "default";
const room = `ts-${process.pid}`;
const deadline = AbortSignal.timeout(15_000); // the whole run

const api = createClient<paths>({ baseUrl: server });

function check(ok: boolean, what: string, detail?: unknown): asserts ok {
  if (!ok) {
    throw new Error(`${what}${detail === undefined ? "" : `: ${JSON.stringify(detail)}`}`);
  }
}

/** One event of an SSE stream. */
interface SSEEvent {
  id: string;
  event: string;
  data: string;
}

/** Reads the events of an SSE body (comments and retry: are skipped). */
async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<SSEEvent> {
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true }).replaceAll("\r\n", "\n");
    let end: number;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const ev: SSEEvent = { id: "", event: "message", data: "" };
      for (const line of block.split("\n")) {
        if (line === "" || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "id") ev.id = value;
        else if (field === "event") ev.event = value;
        else if (field === "data") ev.data = ev.data === "" ? value : `${ev.data}\n${value}`;
      }
      if (ev.data !== "" || ev.id !== "") yield ev;
    }
  }
}

async function main(): Promise<void> {
  // A connection (a socket) with no room yet.
  const stream = new AbortController();
  deadline.addEventListener("abort", () => stream.abort(deadline.reason));
  const opened = await api.GET("/ns/{ns}/events", {
    params: { path: { ns } },
    parseAs: "stream",
    signal: stream.signal,
  });
  check(opened.response.status === 200 && opened.response.body !== null, "open a connection", opened.response.status);
  const events = sseEvents(opened.response.body);
  const next = async (): Promise<SSEEvent> => {
    const r = await events.next();
    check(!r.done, "the stream ended");
    return r.value;
  };

  const first = await next();
  check(first.event === "connected", "first event", first);
  const me = JSON.parse(first.data) as Connected;
  check(me.ns === ns && me.rooms.length === 0 && !me.restored, "connected", me);
  const asMe = { Authorization: `Bearer ${me.token}` };

  // Join the room with the connection's token (socket.join).
  const joined = await api.PUT("/ns/{ns}/rooms/{room}/members/{id}", {
    params: { path: { ns, room, id: me.id } },
    headers: asMe,
  });
  check(joined.data !== undefined && joined.data.member && joined.data.rooms.includes(room), "join", joined.error);

  // A join without the token is refused, with a typed problem.
  const refused = await api.PUT("/ns/{ns}/rooms/{room}/members/{id}", { params: { path: { ns, room, id: me.id } } });
  const problem: Problem | undefined = refused.error;
  check(refused.response.status === 401 && problem?.status === 401, "join without the token", problem);

  // Publish to the room as the connection; it receives its own message.
  const text = `hello from TypeScript ${new Date().toISOString()}`;
  const published = await api.POST("/ns/{ns}/rooms/{room}/messages", {
    params: { path: { ns, room } },
    headers: asMe,
    body: { event: "chat message", data: { text } },
  });
  check(published.response.status === 202 && published.data !== undefined, "publish", published.error);
  const id = published.data.id;

  const got = await next();
  const env = JSON.parse(got.data) as Envelope;
  check(got.event === "chat message" && got.id.startsWith(`${id}.`), "the message on the stream", got);
  check(env.id === id && env.room === room && env.from === me.id, "its envelope", env);
  check(JSON.stringify(env.data) === JSON.stringify({ text }), "its data", env.data);

  // A volatile message (socket.volatile.emit): 204, no id; on the stream its
  // id is the connection's position, unchanged.
  const typing = await api.POST("/ns/{ns}/rooms/{room}/messages", {
    params: { path: { ns, room } },
    body: { event: "typing", data: { typing: true }, volatile: true },
  });
  check(typing.response.status === 204, "volatile publish", typing.error);
  const vol = await next();
  const venv = JSON.parse(vol.data) as VolatileEnvelope;
  check(vol.event === "typing" && vol.id === got.id, "the volatile message on the stream", vol);
  check(venv.volatile && !("id" in venv) && venv.room === room, "its envelope", venv);

  // A batch: stored in order, one result per message.
  const batch = await api.POST("/ns/{ns}/messages/batch", {
    params: { path: { ns } },
    body: {
      messages: [
        { event: "chat message", data: { n: 1 }, rooms: [room] },
        { event: "", rooms: [room] },
        { event: "chat message", data: { n: 2 }, rooms: [room] },
      ],
    },
  });
  check(batch.data !== undefined, "batch publish", batch.error);
  const results: BatchResult[] = batch.data.results;
  check(results.length === 3 && results[1]?.error?.status === 400, "the batch's results", results);
  const [b1, b2] = [results[0]?.id, results[2]?.id];
  check(b1 !== undefined && b2 !== undefined, "the batch's ids", results);
  for (const want of [b1, b2]) {
    const ev = await next();
    check(ev.id.startsWith(`${want}.`), "a batch message on the stream", { want, got: ev });
  }
  stream.abort();

  // History: the same message, typed.
  const history = await api.GET("/ns/{ns}/rooms/{room}/messages", {
    params: { path: { ns, room }, query: { limit: 10 } },
    signal: deadline,
  });
  check(history.data !== undefined, "history", history.error);
  const last: Envelope | undefined = history.data.messages.at(-1);
  const ids = history.data.messages.map((m: Envelope) => m.id);
  check(JSON.stringify(ids) === JSON.stringify([id, b1, b2]) && history.data.last === b2 && last?.event === "chat message",
    "the history: the message and the batch, not the volatile one", history.data);

  console.log(`ok: connection ${me.id} joined ${room}, published ${id}, received it, a volatile message and a batch (${b1}, ${b2}), and found the stored ones in the history`);
}

main().catch((err: unknown) => {
  console.error("ts-client:", err instanceof Error ? err.message : err);
  process.exit(1);
});
