// A type-level test of roomcast.d.ts: every part of the API used as the
// README shows it (tsc --noEmit fails on a declaration that does not fit),
// and misuses that must not compile, marked @ts-expect-error.
import roomcast, { ApiError, connect, parseDuration, position, readEventStream, request, type DeadLetterNotice, type Envelope, type Job, type Published, type StoredEnvelope, type VolatileEnvelope } from "../roomcast.js";

interface Chat {
  text: string;
}

const socket = connect("/ns/chat", { token: () => Promise.resolve("jwt"), rooms: ["lobby"] });
const other = roomcast.connect("https://rc.example/ns/chat", { shared: false, lastEventId: "1a-2" });
const keyed = connect("/ns/chat", { shared: "per-user-key", token: "jwt", reconnectDelay: 500, reconnectDelayMax: 10_000 });

socket.on("connect", (info) => {
  const id: string = info.id;
  const restored: boolean = info.restored;
  void id, restored;
});
socket.on("disconnect", (reason: string) => void reason);
socket.on("reconnecting", ({ attempt, delay }) => void (attempt + delay));
socket.on("reset", (r) => void r.position);
socket.on("error", (e) => void e);
socket.on<Chat>("chat message", (data, env: Envelope<Chat>) => {
  const text: string = data.text;
  const from: string | null = env.from;
  void text, from;
});
socket.on<{ name: string }>("typing", (data, env) => {
  // A handler gets stored and volatile messages: only a stored one has an id.
  if (env.volatile) {
    const v: VolatileEnvelope<{ name: string }> = env;
    // @ts-expect-error: a volatile message has no id
    const none: string = env.id;
    void v, none;
  } else {
    const stored: StoredEnvelope<{ name: string }> = env;
    const id: string = env.id;
    void stored, id;
  }
  void data.name;
});
socket.once("chat message", () => {});
socket.off("chat message");

const sent: Promise<Published> = socket.emit("announcement", { text: "hi" });
void sent.then((r) => r.id + String(r.duplicate));
void socket.to("lobby").emit("chat message", { text: "hi" }, { id: "client-1" });
void socket.to("a").to(["b", "c"]).except("d").emit("x");
void socket.broadcast.to("lobby").emit("typing", { name: "ada" });
void socket.broadcast.emit("x", 1);
void socket.in("lobby").emit("x", null);
void socket.direct("DOqlT_e84BH5qnPiPslufw").emit("iam", { name: "ada" });

// Volatile emits: sent now or dropped (false), never stored.
const dropped: Promise<boolean> = socket.volatile.emit("cursor", { x: 1, y: 2 });
void dropped.then((sentNow: boolean) => sentNow);
void socket.volatile.to("lobby").emit("typing", { name: "ada" });
void socket.volatile.broadcast.to("lobby").except("muted").emit("typing", { name: "ada" });
void socket.broadcast.volatile.emit("typing");
void socket.broadcast.to("lobby").volatile.to("dev").emit("typing", { name: "ada" });
void socket.to(["a", "b"]).in("c").volatile.emit("cursor", null);
void socket.volatile.direct("DOqlT_e84BH5qnPiPslufw").emit("ping", 1);
void socket.direct("DOqlT_e84BH5qnPiPslufw").volatile.emit("ping", 1);
// @ts-expect-error: a volatile emit is never stored: no idempotency id
void socket.volatile.emit("typing", null, { id: "k" });
// @ts-expect-error: a volatile emit answers no id
void socket.volatile.to("lobby").emit("typing").then((r) => r.id);
// @ts-expect-error: broadcast comes before to(), as in Socket.IO
void socket.volatile.to("lobby").broadcast.emit("typing");
void socket.join("dev").then(() => socket.leave(["dev"]));
void socket.request<{ members: unknown[] }>("GET", "/rooms/lobby/members").then((m) => m.members.length);

const id: string | null = socket.id;
const connected: boolean = socket.connected;
const role: "" | "own" | "leader" | "follower" = socket.role;
const rooms: string[] = socket.rooms;
void id, connected, role, rooms;

const drivers = socket.group("pickups", "drivers");
drivers.on((job: Job) => {
  void job.ack().then((ok: boolean) => ok || job.nack());
  job.signal.addEventListener("abort", () => {});
});
drivers.on<{ order: string }>((job) => void job.data.order);
drivers.on("revoked", (job, reason) => void (job.ackId + reason));
drivers.on(async (job) => {
  const left: number = job.deadline ? job.deadline.getTime() - Date.now() : Infinity;
  if (left < 5000 && !(await job.progress())) return;
  void job.nack({ delay: "10s" });
  void job.nack({ delay: 10_000 });
});
drivers.on("dead_letter", (notice, env) => void (notice.id + notice.group + notice.deliveries + env.room));
drivers.on("disconnect", (reason) => void (reason === "io server disconnect"));
const wait: number = drivers.ackWait + parseDuration("1m30s");
void fetch("/ns/chat/rooms/lobby/events").then((res) => res.body && readEventStream(res.body, (ev) => void (ev.event + ev.data + ev.id)));
socket.on<DeadLetterNotice>("dead_letter", (notice) => void notice.reason);
void wait, drivers.config?.backoff;
drivers.on("reset", (r) => void r.reason);
drivers.close();

void request("POST", "/ns/chat/messages", { body: { event: "e" }, token: "k" }).catch((err: unknown) => {
  if (err instanceof ApiError && err.retryable) void err.status;
});
const pos: string = position("1a-2.token");
void pos, other, keyed.disconnect().connect();

// @ts-expect-error: a nack's delay is ms or a duration string
void drivers.jobs.get("x")?.nack({ delay: true });
// @ts-expect-error: emit needs an event name
void socket.emit();
// @ts-expect-error: rooms are strings
connect("/ns/chat", { rooms: [1] });
// @ts-expect-error: a connect handler gets the connection's data, not a string
socket.on("connect", (info: string) => void info);
