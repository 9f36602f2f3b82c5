// Type declarations of roomcast.js, the browser SDK of roomcast.

/** Any JSON value: a message's data. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A stored message as delivered (the `data:` of an SSE event, and the history's items). */
export interface StoredEnvelope<T = Json> {
  /** `<epoch>-<sequence>`: grows within a namespace. */
  id: string;
  ns: string;
  /** The target room of a one-room message, otherwise null. */
  room: string | null;
  /** The target rooms of a message to several rooms. */
  rooms?: string[];
  /** The target connection of a direct message. */
  to?: string;
  event: string;
  /** The public id of the sending connection, null for an anonymous publish. */
  from: string | null;
  /** When the server accepted the message (RFC 3339). */
  ts: string;
  data: T;
  /** Group deliveries only. */
  ack_id?: string;
  delivery?: number;
  /** Group deliveries only: when the lease ends (RFC 3339, the server's clock). */
  ack_deadline?: string;
  volatile?: undefined;
}

/**
 * A volatile message as delivered (sent with `socket.volatile…emit`): live only, never stored, so
 * it has no id, is never replayed and is not in the history.
 */
export interface VolatileEnvelope<T = Json> {
  id?: undefined;
  ns: string;
  /** The target room of a one-room message, otherwise null. */
  room: string | null;
  /** The target rooms of a message to several rooms. */
  rooms?: string[];
  /** The target connection of a direct message. */
  to?: string;
  event: string;
  /** The public id of the sending connection, null for an anonymous publish. */
  from: string | null;
  /** When the server accepted the message (RFC 3339); relayed by a sibling tab: that tab's clock. */
  ts: string;
  data: T;
  volatile: true;
}

/**
 * What a handler of an application event gets: a stored message, or a volatile one (`volatile:
 * true`, no `id`); `if (env.volatile)` tells them apart.
 */
export type Envelope<T = Json> = StoredEnvelope<T> | VolatileEnvelope<T>;

/** The `data` of a `dead_letter` notice: a consumer group parked a message of the room. */
export interface DeadLetterNotice {
  /** The parked message's id. */
  id: string;
  group: string;
  room: string;
  /** The parked message's event name. */
  event: string;
  /** How many times it was delivered before it was parked. */
  deliveries: number;
  reason: string;
}

/** The data of a `revoked` event (the lease of a group delivery ran out). */
export interface RevokedInfo {
  ack_id: string;
  id: string;
  group: string;
  room: string;
  reason: string;
}

/** A group's settings in force (`GET …/groups/{group}`). */
export interface GroupConfig {
  ack_wait: string;
  max_deliver: number;
  max_in_flight: number;
  backoff: string[];
}

/**
 * Why a socket or group was disconnected: "io client disconnect" (disconnect() was called), "io
 * server disconnect" (the server closed it on request: it does not reconnect), "token expired"
 * (it reconnects at once with a fresh token), "server shutdown" and "replaced" (it reconnects
 * after a backoff), "transport error" / "transport close" (a drop: it reconnects), "error".
 */
export type DisconnectReason =
  | "io client disconnect" | "io server disconnect" | "token expired" | "server shutdown" | "replaced"
  | "transport error" | "transport close" | "error" | (string & {});

/** The data of the `connected` event, given to `connect` handlers. */
export interface ConnectedInfo {
  /** The connection's public id (what others see in `from`). */
  id: string;
  /** The connection's secret token; never show it to anyone. */
  token: string;
  ns: string;
  rooms: string[];
  /** True when a previous connection (its id and rooms) was restored. */
  restored: boolean;
  user?: string;
}

/** The data of a `reset` event: messages after `position` may have been missed. */
export interface ResetInfo {
  reason: string;
  position: string;
  group?: string;
  room?: string;
}

/** An RFC 9457 problem, as the server answers errors. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  instance?: string;
  errors?: { field: string; message: string }[];
  [key: string]: unknown;
}

/** A non-2xx answer of the server (status 0: the request did not reach it). */
export class ApiError extends Error {
  constructor(status: number, problem: Problem | null, retryAfter?: number);
  readonly status: number;
  readonly problem: Problem | null;
  /** Seconds from the Retry-After header, 0 if none. */
  readonly retryAfter: number;
  /** True for failures that waiting or reconnecting can cure (network, 401, 408, 429, 5xx). */
  readonly retryable: boolean;
}

/** The credential of a locked namespace: a JWT, or a function returning a fresh one. */
export type Token = string | (() => string | Promise<string>);

export interface ConnectOptions {
  /** A JWT of the namespace (or a function returning a fresh one): the stream is opened with a ticket. */
  token?: Token;
  /** Rooms this page is in from the start. */
  rooms?: string[];
  /**
   * Share one connection among the tabs of this browser that connect to the same namespace as
   * the same user (default true). false: a connection of this page's own. A string: share only
   * with sockets given the same string.
   */
  shared?: boolean | string;
  /** Resume from this position (an SSE id, e.g. stored earlier); implies a connection of its own. */
  lastEventId?: string;
  /** First reconnect delay in ms (default 1000), doubled up to reconnectDelayMax (default 30000). */
  reconnectDelay?: number;
  reconnectDelayMax?: number;
  /** Send cookies to another origin (EventSource withCredentials, fetch credentials: include). */
  withCredentials?: boolean;
}

export interface EmitOptions {
  /** The idempotency key (default: a random one, kept across retries). */
  id?: string;
}

/** The server's answer to an emit: the stored message's id. */
export interface Published {
  id: string;
  /** True when the idempotency key was seen before: nothing new was stored. */
  duplicate?: boolean;
}

/** An application event name: any but the SDK's own (SocketEvents). */
export type AppEvent<E extends string> = E extends keyof SocketEvents ? never : E;

export type MessageHandler<T = Json> = (data: T, envelope: Envelope<T>) => void;

export interface SocketEvents {
  connect: (info: ConnectedInfo) => void;
  disconnect: (reason: DisconnectReason) => void;
  reconnecting: (attempt: { attempt: number; delay: number }) => void;
  reset: (info: ResetInfo) => void;
  error: (error: ApiError | Problem) => void;
}

/** A target of an emit: socket.to(a).to(b).except(c).emit(…). */
export interface BroadcastOperator {
  to(room: string | string[]): BroadcastOperator;
  in(room: string | string[]): BroadcastOperator;
  except(roomOrConnection: string | string[]): BroadcastOperator;
  /** The same target, volatile (see VolatileOperator). */
  readonly volatile: VolatileOperator;
  emit<T = Json>(event: string, data?: T, options?: EmitOptions): Promise<Published>;
}

/**
 * A target of a volatile emit (Socket.IO's `socket.volatile`): sent at once if the socket is
 * connected, dropped if not — never queued, never retried, never stored, no idempotency id.
 */
export interface VolatileOperator {
  to(room: string | string[]): VolatileOperator;
  in(room: string | string[]): VolatileOperator;
  except(roomOrConnection: string | string[]): VolatileOperator;
  /**
   * Resolves true once the server took it (204), false when it was dropped (not connected, or a
   * failure a retry could cure: no network, 401, 408, 429, 5xx); rejects with ApiError when refused
   * (400, 403, 404, 413).
   */
  emit<T = Json>(event: string, data?: T): Promise<boolean>;
}

/** `socket.volatile`: a volatile emit to the namespace, or narrowed down. */
export interface VolatileSocket extends VolatileOperator {
  /** Everyone but this socket. */
  readonly broadcast: VolatileOperator;
  /** One connection by its public id. */
  direct(connectionId: string): VolatileOperator;
}

/** `socket.direct(id)`: an emit to one connection. */
export interface DirectOperator {
  emit<T = Json>(event: string, data?: T, options?: EmitOptions): Promise<Published>;
  /** The same target, volatile (see VolatileOperator). */
  readonly volatile: { emit<T = Json>(event: string, data?: T): Promise<boolean> };
}

export type SocketState = "connecting" | "connected" | "reconnecting" | "disconnected";

export class Socket {
  constructor(url: string, options?: ConnectOptions);
  /** The namespace's name. */
  readonly ns: string;
  /** The namespace's absolute URL (`…/ns/{ns}`). */
  readonly url: string;
  readonly options: ConnectOptions;
  /** The connection's public id (shared by the tabs that share the connection); null before connect. */
  readonly id: string | null;
  readonly connected: boolean;
  readonly state: SocketState;
  readonly info: ConnectedInfo | null;
  /** The SSE id of the last event received (it carries the connection's token: keep it private). */
  readonly lastEventId: string;
  /** "own": a connection of its own; "leader": holds the shared one; "follower": uses the leader's. */
  readonly role: "" | "own" | "leader" | "follower";
  /** The rooms this page joined. */
  readonly rooms: string[];

  /** The SDK's own events: connect, disconnect, reconnecting, reset, error. */
  on<E extends keyof SocketEvents>(event: E, fn: SocketEvents[E]): this;
  /** An application event: data is the message's data, envelope the whole message. */
  on<T = Json, E extends string = string>(event: AppEvent<E>, fn: MessageHandler<T>): this;
  once<E extends keyof SocketEvents>(event: E, fn: SocketEvents[E]): this;
  once<T = Json, E extends string = string>(event: AppEvent<E>, fn: MessageHandler<T>): this;
  off(event: string, fn?: (...args: any[]) => void): this;

  /** Emit to the whole namespace, this connection included. */
  emit<T = Json>(event: string, data?: T, options?: EmitOptions): Promise<Published>;
  /** Emit to rooms (their union), this connection included. */
  to(room: string | string[]): BroadcastOperator;
  in(room: string | string[]): BroadcastOperator;
  except(roomOrConnection: string | string[]): BroadcastOperator;
  /** Emit to everyone but this socket. */
  readonly broadcast: BroadcastOperator;
  /** Emit live only (typing indicators, cursors): sent now or dropped, never stored (VolatileOperator). */
  readonly volatile: VolatileSocket;
  /** Emit to one connection by its public id. */
  direct(connectionId: string): DirectOperator;

  join(room: string | string[]): Promise<unknown>;
  leave(room: string | string[]): Promise<unknown>;
  group(room: string, name: string): Group;
  /** Call the namespace's REST API (path relative to /ns/{ns}) with the application's token. */
  request<T = any>(method: string, path: string, body?: unknown): Promise<T>;

  disconnect(): this;
  close(): this;
  /** Reopen a socket closed by disconnect() or by the server; while reconnecting, try now. */
  connect(): this;
}

export interface GroupEvents {
  connect: (info: ConnectedInfo) => void;
  disconnect: (reason: DisconnectReason) => void;
  reconnecting: (attempt: { attempt: number; delay: number; reason: string }) => void;
  reset: (info: ResetInfo) => void;
  revoked: (job: Job, reason: string) => void;
  /** A message of the room was parked after max_deliver deliveries (notice.group names the group). */
  dead_letter: (notice: DeadLetterNotice, envelope: StoredEnvelope<DeadLetterNotice>) => void;
  error: (error: ApiError | Problem) => void;
}

/** A member of a consumer group, with a connection of this tab's own. */
export class Group {
  readonly socket: Socket;
  readonly room: string;
  readonly name: string;
  /** The group connection's public id. */
  readonly id: string | null;
  readonly info: ConnectedInfo | null;
  readonly connected: boolean;
  readonly closed: boolean;
  /** Deliveries held and not yet settled, by ack_id. */
  readonly jobs: Map<string, Job>;
  /** The group's settings, read once connected (null until then, or when refused). */
  readonly config: GroupConfig | null;
  /** config.ack_wait in ms (NaN while unknown). */
  readonly ackWait: number;
  /** Handle deliveries. */
  on<T = Json>(fn: (job: Job<T>) => void): this;
  on<E extends keyof GroupEvents>(event: E, fn: GroupEvents[E]): this;
  once<E extends keyof GroupEvents>(event: E, fn: GroupEvents[E]): this;
  off(event: string | ((job: Job) => void), fn?: (...args: any[]) => void): this;
  close(): void;
}

/** One group delivery. */
export class Job<T = Json> {
  readonly group: Group;
  readonly envelope: StoredEnvelope<T>;
  readonly id: string;
  readonly event: string;
  readonly data: T;
  readonly ackId: string;
  /** How many times the message was delivered to the group (1 the first time). */
  readonly delivery: number;
  /** True once the delivery is no longer this member's (its lease ran out, or its stream ended). */
  readonly revoked: boolean;
  readonly settled: boolean;
  /**
   * When the lease ends on this page's clock (ack_wait after the delivery arrived, or after the
   * last progress()); null if the server gave no ack_deadline. Past it the server revokes the job.
   */
  readonly deadline: Date | null;
  /** Aborted when the job is revoked. */
  readonly signal: AbortSignal;
  /** Acknowledge: true once done, false when the job was revoked meanwhile. */
  ack(): Promise<boolean>;
  /** Extend the lease by ack_wait: true once done (deadline moved), false when revoked meanwhile. */
  progress(): Promise<boolean>;
  /**
   * Hand back for redelivery, now or after `delay` (ms, or a duration such as "10s"): true once
   * done, false when the job was revoked meanwhile.
   */
  nack(options?: { delay?: number | string }): Promise<boolean>;
}

export interface RequestOptions {
  body?: unknown;
  token?: string;
  keepalive?: boolean;
  signal?: AbortSignal;
}

/** Call the REST API; resolves with the JSON answer (null for 204), rejects with ApiError. */
export function request<T = any>(method: string, url: string, options?: RequestOptions): Promise<T>;
/** An SSE id without its connection token: `<epoch>-<sequence>`. */
export function position(eventId: string): string;
/** A duration in Go's syntax ("1m30s", "500ms") in ms; NaN when it is not one. */
export function parseDuration(duration: string): number;
/** One event of an SSE stream (`event` is "message" when the stream named none). */
export interface StreamEvent {
  event: string;
  data: string;
  id: string;
}
/**
 * Read a `text/event-stream` body fetched by the application (every event name, any headers: a
 * live tail of a room); fn is called per event; resolves when the body ends.
 */
export function readEventStream(body: ReadableStream<Uint8Array>, fn: (event: StreamEvent) => void): Promise<void>;
/** Open a socket on a namespace URL (`/ns/{ns}`, relative to the page or absolute). */
export function connect(url: string, options?: ConnectOptions): Socket;
export const version: string;

declare const roomcast: {
  connect: typeof connect;
  request: typeof request;
  position: typeof position;
  parseDuration: typeof parseDuration;
  readEventStream: typeof readEventStream;
  ApiError: typeof ApiError;
  Socket: typeof Socket;
  Group: typeof Group;
  Job: typeof Job;
  version: string;
};
export default roomcast;
