// prism-check.mjs: real requests against a live roomcast (ROOMCAST_SERVER),
// sent through Prism's validating proxy (@stoplight/prism-cli) loaded with the
// unmodified openapi.yaml. Prism checks every request and answer against the
// spec and reports what does not match in an `sl-violations` header. This
// exits 1 on any violation of an answer, on any violation of a request meant
// to be valid, when a request that breaks a rule of the spec is NOT flagged
// (so that a spec Prism cannot read, as when Payload made it skip every
// schema around it, fails here), and when the server answers another status
// than the one expected. `make spec-tools` runs it through
// clients/ts/with-server.sh; PRISM_CHECK_VERBOSE=1 prints every request with
// its status and Prism's violations.
//
// Prism buffers an answer until it ends, so live streams are read from the
// server directly; streams are sent through Prism when they end at once (an
// error, a 204).

import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const spec = path.join(here, "..", "..", "openapi.yaml");
const server = process.env.ROOMCAST_SERVER;
if (!server) {
  console.error("prism-check: ROOMCAST_SERVER is not set");
  process.exit(2);
}

const freePort = () =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

/** Starts `prism proxy` and resolves with its URL once it listens. */
async function startPrism() {
  const port = await freePort();
  const bin = path.join(here, "node_modules", ".bin", "prism");
  const child = spawn(bin, ["proxy", "--host", "127.0.0.1", "--port", String(port), spec, server], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`prism did not start within 60 s:\n${log}`)), 60_000);
    const onData = (chunk) => {
      log += chunk;
      if (log.includes("Prism is listening")) {
        clearTimeout(timer);
        resolve(`http://127.0.0.1:${port}`);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`prism exited (${code}):\n${log}`));
    });
  });
  return { url, child, log: () => log };
}

/** Reads SSE events from a fetch body (comments and retry: are skipped). */
async function* sseEvents(body) {
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true }).replaceAll("\r\n", "\n");
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const ev = { id: "", event: "message", data: "" };
      for (const line of block.split("\n")) {
        if (line === "" || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "id") ev.id = value;
        else if (field === "event") ev.event = value;
        else if (field === "data") ev.data = ev.data === "" ? value : `${ev.data}\n${value}`;
      }
      if (ev.data !== "") yield ev;
    }
  }
}

/** A stream opened on the server directly, read event by event. */
async function openStream(pathAndQuery, headers = {}) {
  const ctl = new AbortController();
  const res = await fetch(server + pathAndQuery, { headers, signal: ctl.signal });
  if (res.status !== 200) throw new Error(`GET ${pathAndQuery}: ${res.status}`);
  const events = sseEvents(res.body);
  const next = async (want) => {
    const timer = setTimeout(() => ctl.abort(new Error(`no ${want} event within 10 s on ${pathAndQuery}`)), 10_000);
    try {
      for (;;) {
        const r = await events.next();
        if (r.done) throw new Error(`${pathAndQuery} ended before a ${want} event`);
        if (want === undefined || r.value.event === want) return { ...r.value, json: JSON.parse(r.value.data) };
      }
    } finally {
      clearTimeout(timer);
    }
  };
  const ended = async () => {
    const timer = setTimeout(() => ctl.abort(new Error(`${pathAndQuery} did not end within 10 s`)), 10_000);
    try {
      while (!(await events.next()).done);
    } catch {
      // cut rather than ended: ended all the same
    } finally {
      clearTimeout(timer);
    }
  };
  return { next, ended, close: () => ctl.abort() };
}

const failures = [];
let sent = 0;
let flagged = 0;

/**
 * Sends one request through Prism and checks it. badRequest: the request
 * breaks a rule of the spec, and Prism must say so.
 */
async function call(prism, { method = "GET", path: p, body, token, headers = {}, want, badRequest = false }) {
  const h = { ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    h["Content-Type"] = "application/json";
    payload = typeof body === "string" ? body : JSON.stringify(body);
  }
  const res = await fetch(prism + p, { method, headers: h, body: payload, signal: AbortSignal.timeout(20_000) });
  const text = await res.text();
  sent++;
  if (process.env.PRISM_CHECK_VERBOSE) console.log(`${method} ${p} → ${res.status} ${res.headers.get("sl-violations") ?? ""}`);
  const what = `${method} ${p}`;
  const raw = res.headers.get("sl-violations");
  const violations = raw ? JSON.parse(raw) : [];
  const onRequest = violations.filter((v) => v.location?.[0] === "request");
  const onResponse = violations.filter((v) => v.location?.[0] !== "request");
  if (res.status !== want) failures.push(`${what}: ${res.status}, want ${want}: ${text.slice(0, 300)}`);
  for (const v of onResponse) failures.push(`${what}: the ${res.status} answer violates openapi.yaml: ${JSON.stringify(v)}`);
  if (badRequest) {
    if (onRequest.length === 0) failures.push(`${what}: the request breaks openapi.yaml, but Prism did not flag it`);
    else flagged++;
  } else {
    for (const v of onRequest) failures.push(`${what}: the request violates openapi.yaml: ${JSON.stringify(v)}`);
  }
  return { status: res.status, text, json: text && res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : undefined };
}

async function main() {
  const prism = await startPrism();
  const streams = [];
  try {
    const P = prism.url;
    const ns = "/ns/default";
    const room = `prism-${process.pid}`;

    // The server's own routes.
    for (const p of ["/healthz", "/readyz", "/openapi.yaml", "/metrics", "/", "/ns", "/status"]) await call(P, { path: p, want: 200 });

    // A connection, kept open on the server; REST calls on its behalf go through Prism.
    const conn = await openStream(`${ns}/events`);
    streams.push(conn);
    const me = (await conn.next("connected")).json;
    const member = `${ns}/rooms/${room}/members/${me.id}`;
    await call(P, { method: "PUT", path: member, token: me.token, want: 200 });
    await call(P, { method: "PUT", path: member, token: me.token, want: 200 }); // idempotent
    await call(P, { method: "PUT", path: member, token: "AAAAAAAAAAAAAAAAAAAAAA", want: 401 });
    await call(P, { method: "PUT", path: `${ns}/rooms/a..b/members/${me.id}`, token: me.token, want: 400, badRequest: true });

    // Publishes: to the namespace, a room, several rooms, one connection.
    await call(P, { method: "POST", path: `${ns}/messages`, body: { event: "announcement", data: "restart at noon" }, want: 202 });
    await call(P, { method: "POST", path: `${ns}/messages`, body: { event: "no data" }, want: 202 });
    await call(P, { method: "POST", path: `${ns}/messages`, body: { event: "null data", data: null, rooms: [room, "other"] }, want: 202 });
    const pub = await call(P, {
      method: "POST", path: `${ns}/rooms/${room}/messages`, token: me.token,
      body: { event: "chat message", data: { text: "hi", n: [1, 2.5, true, null] }, except: ["nobody"], id: "key-1" }, want: 202,
    });
    const dup = await call(P, { method: "POST", path: `${ns}/rooms/${room}/messages`, token: me.token, body: { event: "chat message", data: 1, id: "key-1" }, want: 202 });
    if (dup.json?.duplicate !== true || dup.json?.id !== pub.json?.id) failures.push(`idempotent retry: ${dup.text}, want ${pub.text} and duplicate`);
    await call(P, { method: "POST", path: `${ns}/connections/${me.id}/messages`, body: { event: "private", data: [1, "two"] }, want: 202 });
    // Volatile (204, no body) and batch publishes: a batch whose messages are
    // all valid, and one with an invalid message (answered 200 with that
    // message's problem; the request itself breaks the spec).
    await call(P, { method: "POST", path: `${ns}/rooms/${room}/messages`, body: { event: "typing", data: { on: true }, volatile: true }, want: 204 });
    await call(P, { method: "POST", path: `${ns}/messages`, body: { event: "cursor", volatile: true }, want: 204 });
    await call(P, { method: "POST", path: `${ns}/rooms/${room}/messages`, body: { event: "typing", volatile: true, id: "k" }, want: 400 });
    const batch = await call(P, {
      method: "POST", path: `${ns}/messages/batch`, token: me.token,
      body: { messages: [{ event: "chat message", data: { n: 1 }, rooms: [room], id: "batch-1" }, { event: "announcement" }] }, want: 200,
    });
    if (batch.json?.results?.length !== 2 || !batch.json.results.every((r) => r.id)) failures.push(`batch: ${batch.text}`);
    await call(P, { method: "POST", path: `${ns}/messages/batch`, body: { messages: [{ event: "ok", rooms: [room] }, { data: 1 }] }, want: 200, badRequest: true });
    await call(P, { method: "POST", path: `${ns}/messages/batch`, body: { messages: [] }, want: 400, badRequest: true });
    await call(P, { method: "POST", path: `${ns}/messages/batch`, body: { messages: [{ event: "x" }], rooms: [room] }, want: 400, badRequest: true });
    // Requests that break the spec's rules: refused by the server, flagged by Prism.
    await call(P, { method: "POST", path: `${ns}/messages`, body: { event: 123 }, want: 400, badRequest: true });
    await call(P, { method: "POST", path: `${ns}/messages`, body: { event: "x", room: "lobby" }, want: 400, badRequest: true });
    await call(P, { method: "POST", path: `${ns}/messages`, body: { data: 1 }, want: 400, badRequest: true });
    await call(P, { method: "POST", path: `${ns}/messages`, body: { event: "connected" }, want: 400, badRequest: true });
    await call(P, { method: "POST", path: `${ns}/messages`, body: { event: "x", rooms: ["a b"] }, want: 400, badRequest: true });
    // (Not a body that is not JSON: Prism 5.16 never answers one.)
    await call(P, { method: "POST", path: `${ns}/messages`, body: { event: "big", data: "x".repeat(70_000) }, want: 413 });
    await call(P, { method: "POST", path: "/ns/nope/messages", body: { event: "x" }, want: 404 });
    await call(P, { method: "POST", path: "/ns/bad.name/messages", body: { event: "x" }, want: 400, badRequest: true });

    // Presence, history, connections.
    await call(P, { path: `${ns}/rooms`, want: 200 });
    await call(P, { path: `${ns}/rooms/${room}`, want: 200 });
    await call(P, { path: `${ns}/rooms/${room}/members`, want: 200 });
    const hist = await call(P, { path: `${ns}/rooms/${room}/messages?limit=10`, want: 200 });
    if (!hist.json?.messages?.some((m) => m.id === pub.json?.id)) failures.push(`history lacks ${pub.json?.id}: ${hist.text}`);
    await call(P, { path: `${ns}/rooms/${room}/messages?after=${pub.json?.id}&limit=5`, want: 200 });
    await call(P, { path: `${ns}/rooms/${room}/messages?after=ffff-1`, want: 410 });
    await call(P, { path: `${ns}/rooms/${room}/messages?limit=0`, want: 400, badRequest: true });
    await call(P, { path: "/ns/nope/rooms", want: 404 });
    await call(P, { path: `${ns}/connections/${me.id}`, want: 200 });
    await call(P, { path: `${ns}/connections/AAAAAAAAAAAAAAAAAAAAAA`, want: 404 });
    await call(P, { method: "DELETE", path: member, token: me.token, want: 200 });
    await call(P, { method: "POST", path: `${ns}/tickets`, want: 401, badRequest: true }); // no credential

    // A consumer group: created ahead, a member on the server, acks and nacks
    // through Prism, a dead letter replayed and dropped.
    const g = `${ns}/rooms/${room}-jobs/groups/workers`;
    await call(P, { path: g, want: 404 });
    await call(P, { method: "PUT", path: g, body: { ack_wait: "1m", max_deliver: 1, max_in_flight: 5 }, want: 200 });
    await call(P, { method: "PUT", path: g, body: { ack_wait: "forever" }, want: 400, badRequest: true });
    await call(P, { path: `${ns}/rooms/${room}-jobs/groups`, want: 200 });
    const worker = await openStream(`${ns}/rooms/${room}-jobs/events?group=workers`);
    streams.push(worker);
    const wme = (await worker.next("connected")).json;
    await call(P, { method: "POST", path: `${ns}/rooms/${room}-jobs/messages`, body: { event: "job", data: { n: 1 } }, want: 202 });
    const job1 = (await worker.next("job")).json;
    await call(P, { path: `${g}/messages`, want: 200 });
    await call(P, { path: g, want: 200 });
    await call(P, { method: "POST", path: `${g}/acks`, token: wme.token, body: { ids: [job1.ack_id] }, want: 204 });
    await call(P, { method: "POST", path: `${g}/acks`, token: wme.token, body: { ids: [] }, want: 400, badRequest: true });
    await call(P, { method: "POST", path: `${g}/acks`, token: wme.token, body: { ids: ["not-an-ack-id"] }, want: 400 });
    await call(P, { method: "POST", path: `${ns}/rooms/${room}-jobs/messages`, body: { event: "job", data: { n: 2 } }, want: 202 });
    const job2 = (await worker.next("job")).json;
    await call(P, { method: "POST", path: `${g}/nacks`, token: wme.token, body: { ids: [job2.ack_id] }, want: 204 }); // max_deliver 1: parked
    let dead;
    for (let i = 0; i < 100 && !dead; i++) {
      const r = await fetch(`${server}${g}/dead`).then((x) => x.json());
      dead = r.dead_letters?.[0];
      if (!dead) await new Promise((ok) => setTimeout(ok, 100));
    }
    if (!dead) throw new Error("the nacked job was not parked as a dead letter within 10 s");
    await call(P, { path: `${g}/dead?limit=10`, want: 200 });
    await call(P, { method: "POST", path: `${g}/dead/${dead.seq}/replay`, want: 202 });
    const job3 = (await worker.next("job")).json;
    await call(P, { method: "POST", path: `${g}/nacks`, token: wme.token, body: { ids: [job3.ack_id] }, want: 204 });
    let dead2;
    for (let i = 0; i < 100 && !dead2; i++) {
      const r = await fetch(`${server}${g}/dead`).then((x) => x.json());
      dead2 = r.dead_letters?.[0];
      if (!dead2) await new Promise((ok) => setTimeout(ok, 100));
    }
    if (!dead2) throw new Error("the replayed job was not parked again within 10 s");
    await call(P, { method: "DELETE", path: `${g}/dead/${dead2.seq}`, want: 204 });
    await call(P, { method: "DELETE", path: `${g}/dead/${dead2.seq}`, want: 404 });
    await call(P, { method: "DELETE", path: g, want: 204 });

    // Streams through Prism: answers that end at once...
    await call(P, { path: "/ns/nope/events", want: 404 });
    await call(P, { path: `${ns}/rooms/a..b/events`, want: 400, badRequest: true });
    await call(P, { path: `${ns}/events`, headers: { "Last-Event-ID": "not a position" }, want: 400, badRequest: true });
    // ...and 204: the resume of a connection disconnected on request.
    const gone = await openStream(`${ns}/rooms/${room}/events`);
    streams.push(gone);
    const goneEv = await gone.next("connected");
    await call(P, { method: "DELETE", path: `${ns}/connections/${goneEv.json.id}`, token: goneEv.json.token, want: 204 });
    await gone.ended();
    await call(P, { path: `${ns}/rooms/${room}/events`, headers: { "Last-Event-ID": goneEv.id }, want: 204 });
    // (A 200 stream is not sent through Prism: Prism validates an answer once
    // it ends, and the server cuts the streams it closes rather than ending
    // them, which Prism answers with a 500 "Premature close". The Go tests
    // validate 200 streams: status, headers and every event's data.)
  } finally {
    for (const s of streams) s.close();
    prism.child.kill("SIGTERM");
  }
  const problems = failures.length;
  console.log(`prism-check: ${sent} requests through Prism, ${flagged} spec-breaking requests flagged, ${problems} problems`);
  if (problems > 0) {
    for (const f of failures) console.error(`  ${f}`);
    process.exit(1);
  }
}

main().catch((err) => {
  console.error("prism-check:", err instanceof Error ? err.message : err);
  process.exit(1);
});
