// roomcast.js — the browser SDK of roomcast: Socket.IO's feel over
// Server-Sent Events and the REST API (see README.md beside this file, and
// openapi.yaml for the wire format). An ES module with no dependency and no
// build step: `import { connect } from "/sdk/roomcast.js"`.
//
// Pieces, from the top:
//   request / ApiError   the REST API, problem+json errors
//   Socket               what the page holds: handlers, its rooms, the outbox
//   Link                 the stream: one EventSource, its reconnects, the
//                        connection's room memberships. With sharing (the
//                        default) one tab of the browser holds it, elected
//                        with the Web Locks API, and relays every event to
//                        the other tabs over a BroadcastChannel.
//   Group, Job           consumer groups: one stream per tab and group, read
//                        with fetch (deliveries can carry any event name,
//                        which EventSource cannot listen to without knowing it)
//
// Every tab de-duplicates messages by their id, so a replay after a takeover
// or a reconnect never reaches a handler twice. Volatile messages have no id
// and need none: they are never stored, so never replayed, and each reaches
// a tab once (from the stream, or relayed by the leader or a sibling tab).

export const version = "0.1.0";

// Events the SDK emits on a Socket itself; an application event of the same
// name cannot be received with on() (as in Socket.IO).
const LOCAL_EVENTS = new Set(["connect", "disconnect", "reconnecting", "reset", "error"]);
// The disconnect reasons of the server's `end` event (Socket.IO's wording
// where it has one).
const END_REASONS = {
  disconnected: "io server disconnect",
  expired: "token expired",
  shutdown: "server shutdown",
  replaced: "replaced",
};
const SEEN_MAX = 10000; // message ids remembered per tab for de-duplication
const SWEEP_EVERY = 5000; // ms between the leader's checks for closed tabs
const TAB_GRACE = 5000; // ms a tab may take to hold its presence lock

// ApiError is an answer of the server that is not 2xx, with its RFC 9457
// problem (status 0: the request did not reach the server).
export class ApiError extends Error {
  constructor(status, problem, retryAfter = 0) {
    super((problem && (problem.detail || problem.title)) || (status ? `HTTP ${status}` : "network error"));
    this.name = "ApiError";
    this.status = status;
    this.problem = problem || null;
    this.retryAfter = retryAfter;
  }

  // retryable is true for failures that waiting or reconnecting can cure: no
  // network, an unknown connection token (the connection is down right
  // now), rate limits, server trouble.
  get retryable() {
    return this.status === 0 || this.status === 401 || this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

// request calls the REST API and returns the decoded JSON answer (null for
// 204). url is absolute or relative to the page; token, when set, is sent as
// `Authorization: Bearer`.
export async function request(method, url, { body, token, keepalive, signal } = {}) {
  const headers = {};
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  if (token) headers.Authorization = "Bearer " + token;
  let res;
  try {
    res = await fetch(url, { method, headers, body: payload, keepalive, signal, credentials: "same-origin" });
  } catch (err) {
    if (signal && signal.aborted) throw err;
    throw new ApiError(0, { title: "network error", detail: String(err && err.message || err) });
  }
  const text = await res.text().catch(() => "");
  let json = null;
  if (text) {
    try { json = JSON.parse(text); } catch { json = { title: text.slice(0, 200) }; }
  }
  if (!res.ok) throw new ApiError(res.status, json, Number(res.headers.get("Retry-After")) || 0);
  return json;
}

// position strips the connection token from an SSE event id: what is left
// ("<epoch>-<sequence>") resumes a fresh connection and can be stored
// without handing anyone the token.
export function position(eventId) {
  return eventId ? String(eventId).split(".")[0] : "";
}

export function connect(url, options) {
  return new Socket(url, options);
}

const enc = encodeURIComponent;

function randomId() {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b); // randomUUID needs a secure context; this does not
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// backoff is the delay before attempt n (0-based): doubling from min, at
// most max, with ±20 % jitter so that a server restart is not met by every
// client at the same instant.
function backoff(n, min, max) {
  return Math.round(Math.min(max, min * 2 ** Math.min(n, 20)) * (0.8 + Math.random() * 0.4));
}

// report rethrows a handler's exception outside the dispatch loop, so that
// the page sees it (console, window.onerror) and the other handlers still
// run, as with EventTarget listeners.
function report(err) {
  setTimeout(() => { throw err; });
}

// quiet marks a promise as handled, so that a caller who ignores it does not
// get an "unhandled rejection"; a caller who awaits it still sees the error.
function quiet(p) {
  p.catch(() => {});
  return p;
}

function problemOf(err) {
  return { status: err.status || 0, problem: err.problem || { title: String(err.message || err) } };
}

// Emitter is the on/off/once of Socket and Group.
class Emitter {
  constructor() {
    this._handlers = new Map();
  }

  on(event, fn) {
    if (!this._handlers.has(event)) this._handlers.set(event, new Set());
    this._handlers.get(event).add(fn);
    return this;
  }

  once(event, fn) {
    const wrap = (...args) => { this.off(event, wrap); fn(...args); };
    return this.on(event, wrap);
  }

  off(event, fn) {
    if (!fn) this._handlers.delete(event);
    else this._handlers.get(event)?.delete(fn);
    return this;
  }

  _fire(event, ...args) {
    const hs = this._handlers.get(event);
    if (!hs) return 0;
    for (const fn of [...hs]) {
      try { fn(...args); } catch (err) { report(err); }
    }
    return hs.size;
  }
}

// Operator is a pending emit's target: socket.to(a).to(b).except(c).emit(…),
// with Socket.IO's flags as getters: .broadcast (not this socket) and
// .volatile (live only: sent now or dropped, never stored).
class Operator {
  constructor(socket, target) {
    this._socket = socket;
    this._target = target;
  }

  get broadcast() {
    return new Operator(this._socket, { ...this._target, self: false });
  }

  get volatile() {
    return new Operator(this._socket, { ...this._target, volatile: true });
  }

  // direct targets one connection (socket.volatile.direct(id)).
  direct(connectionId) {
    return new Operator(this._socket, { ...this._target, direct: connectionId });
  }

  to(room) {
    const rooms = [].concat(room);
    return new Operator(this._socket, { ...this._target, rooms: [...this._target.rooms, ...rooms] });
  }

  in(room) {
    return this.to(room);
  }

  except(room) {
    const ex = [].concat(room);
    return new Operator(this._socket, { ...this._target, except: [...this._target.except, ...ex] });
  }

  emit(event, data, options) {
    return this._socket._emit(this._target, event, data, options);
  }
}

// Socket is one page's view of a roomcast connection (Socket.IO's socket).
export class Socket extends Emitter {
  constructor(url, options = {}) {
    super();
    if (typeof location === "undefined" && !/^https?:/.test(url)) throw new TypeError("roomcast.connect: an absolute URL is needed outside a page");
    const u = new URL(url, typeof location === "undefined" ? undefined : location.href);
    const m = /^(.*\/ns\/)([^/]+)\/?$/.exec(u.pathname);
    if (!m) throw new TypeError(`roomcast.connect: ${url} is not a namespace URL (…/ns/{ns})`);
    this.ns = decodeURIComponent(m[2]);
    this.url = u.origin + m[1] + m[2]; // REST paths follow: `${url}/rooms/…`
    this.options = {
      shared: true, reconnectDelay: 1000, reconnectDelayMax: 30000, withCredentials: false, ...options,
    };
    this.id = null;
    this.state = "connecting";
    this.connected = false;
    this.info = null; // the `connected` data: {id, token, ns, rooms, restored, user?}
    this.lastEventId = options.lastEventId || "";
    this.role = ""; // "own" (a connection of its own), "leader" or "follower"
    this._rooms = new Set(options.rooms || []);
    this._seen = new Map();
    this._outbox = [];
    this._flushing = false;
    this._flushTimer = 0;
    this._flushAttempt = 0;
    this._groups = new Map();
    this._tab = randomId();
    this._calls = new Map(); // call id → {resolve, left}
    this._ready = false; // this page's first rooms are in: `connect` may fire
    this._pendingConnect = null;
    this._peers = new Map(); // other tabs: tab → {rooms, events, since}
    this._closed = false;
    this._start();
  }

  // --- the API -----------------------------------------------------------

  // rooms is what this page joined (with sharing, the connection may be in
  // more rooms for other tabs; only these rooms' messages reach this page).
  get rooms() {
    return [...this._rooms];
  }

  on(event, fn) {
    super.on(event, fn);
    if (!LOCAL_EVENTS.has(event)) this._announce();
    return this;
  }

  get broadcast() {
    return new Operator(this, { rooms: [], except: [], self: false });
  }

  // volatile is Socket.IO's volatile flag: socket.volatile.emit(…),
  // .volatile.to(room), .volatile.broadcast, .volatile.direct(id) (also
  // socket.broadcast.volatile, socket.to(room).volatile). A volatile emit
  // is sent at once if the socket is connected and dropped if not: never
  // queued, never retried, never stored (the server answers 204, no id).
  // Its promise resolves true once the server took it, false when it was
  // dropped (not connected, or a failure that a retry could cure: no
  // network, 401, 408, 429, 5xx); a refusal (400, 403, 404, 413) rejects
  // with the server's ApiError.
  get volatile() {
    return new Operator(this, { rooms: [], except: [], self: true, volatile: true });
  }

  to(room) {
    return new Operator(this, { rooms: [], except: [], self: true }).to(room);
  }

  in(room) {
    return this.to(room);
  }

  except(room) {
    return new Operator(this, { rooms: [], except: [], self: true }).except(room);
  }

  // direct targets one connection by its public id (io.to(socketId));
  // direct(id).volatile.emit(…) sends it volatile.
  direct(connectionId) {
    return new Operator(this, { direct: connectionId, rooms: [], except: [], self: true });
  }

  // emit sends to the whole namespace. It returns a promise of the stored
  // message's {id, duplicate}; emits wait in an outbox while offline.
  emit(event, data, options) {
    return this._emit({ rooms: [], except: [], self: true }, event, data, options);
  }

  // join resolves once the connection is in room (after a reconnect if
  // offline now); it rejects with the server's ApiError if refused.
  join(room) {
    const rooms = [].concat(room);
    for (const r of rooms) this._rooms.add(r);
    return quiet(this._call(rooms, []));
  }

  // leave stops this page's delivery of room at once, and resolves once the
  // connection left it (with sharing: unless another tab is still in it).
  leave(room) {
    const rooms = [].concat(room);
    for (const r of rooms) this._rooms.delete(r);
    return quiet(this._call([], rooms));
  }

  // group joins consumer group name of room, with a connection of this tab's
  // own (see Group).
  group(room, name) {
    const key = room + "\0" + name;
    let g = this._groups.get(key);
    if (!g || g.closed) {
      g = new Group(this, room, name);
      this._groups.set(key, g);
    }
    return g;
  }

  // request calls the namespace's REST API (path relative to /ns/{ns}) with
  // the application's token, if any.
  async request(method, path, body) {
    return request(method, this.url + path, { body, token: await this._token() });
  }

  // disconnect closes this page's socket. A connection of its own is ended
  // on the server too (DELETE: its rooms are left at once); a shared one
  // goes on for the other tabs, without this page's rooms.
  disconnect() {
    if (this._closed) return this;
    this._closed = true;
    for (const g of this._groups.values()) g.close();
    const info = this.info;
    if (this.role === "own" || this._peers.size === 0) {
      if (info) request("DELETE", `${this.url}/connections/${enc(info.id)}`, { token: info.token, keepalive: true }).catch(() => {});
      this.lastEventId = ""; // that connection is gone: connect() opens a new one
    } else if (this._rooms.size) {
      const rooms = [...this._rooms];
      this._rooms.clear();
      quiet(this._call([], rooms));
    }
    this._stop();
    const was = this.connected;
    this._setState("disconnected");
    if (was) this._fire("disconnect", "io client disconnect");
    return this;
  }

  close() {
    return this.disconnect();
  }

  // connect reopens a socket closed with disconnect() (or by the server);
  // while it is reconnecting, it tries now rather than after its backoff
  // (a "Retry now" button after a long outage), and so does its outbox.
  connect() {
    if (!this._closed) {
      if (!this.connected) {
        if (this._link) this._link.retryNow();
        else this._post({ t: "retry" });
      }
      return this;
    }
    this._closed = false;
    this._seen.clear();
    this._setState("connecting");
    this._start();
    return this;
  }

  // --- start: shared or own connection ------------------------------------

  async _start() {
    const o = this.options;
    const canShare = o.shared !== false && !o.lastEventId && typeof navigator !== "undefined" &&
      navigator.locks && typeof BroadcastChannel !== "undefined";
    if (!canShare) {
      this.role = "own";
      this._link = new Link(this, null);
      this._first();
      this._link.open();
      return;
    }
    let key;
    try {
      key = `roomcast|${this.url}|${typeof o.shared === "string" ? o.shared : await this._identity()}`;
    } catch (err) {
      this._fatal(err);
      return;
    }
    if (this._closed) return;
    this._key = key;
    this.role = "follower";
    const ch = new BroadcastChannel(key);
    this._channel = ch;
    ch.onmessage = (e) => this._onBus(e.data);
    this._abort = new AbortController();
    const signal = this._abort.signal;
    // The presence lock tells the leader that this tab is alive; the browser
    // releases it when the tab closes or crashes.
    navigator.locks.request(`${key}|tab|${this._tab}`, { signal }, () => new Promise((r) => { this._releaseTab = r; }))
      .catch(() => {});
    this._first();
    navigator.locks.request(key, { signal }, () => this._lead()).catch(() => {});
    this._onPageHide = (e) => { if (!e.persisted) this._post({ t: "bye", tab: this._tab }); };
    this._onPageShow = (e) => { if (e.persisted) this._announce(true); };
    addEventListener("pagehide", this._onPageHide);
    addEventListener("pageshow", this._onPageShow);
  }

  // _first asks for this page's first rooms; `connect` fires once they are
  // in (a page that reads history on `connect` then misses nothing).
  _first() {
    this._ready = false;
    this._call([...this._rooms], []).catch((err) => { if (!this._closed) this._fire("error", err); }).finally(() => {
      this._ready = true;
      const info = this._pendingConnect;
      this._pendingConnect = null;
      if (info && !this._closed) this._connected(info);
    });
  }

  // _lead runs while this tab holds the leader lock: it owns the stream until
  // the tab closes or disconnect() is called.
  _lead() {
    if (this._closed) return;
    this.role = "leader";
    const link = new Link(this, (m) => this._channel.postMessage(m));
    for (const [tab, p] of this._peers) link.tabs.set(tab, { rooms: new Set(p.rooms), events: new Set(p.events), since: p.since });
    link.tabs.set(this._tab, { rooms: new Set(this._rooms), events: this._events(), since: Date.now() });
    this._link = link;
    this._post({ t: "leader", tab: this._tab });
    // Calls made to the previous leader and not answered are asked again.
    for (const [id, c] of this._calls) link.call(this._tab, id, [...this._rooms], [...this._events()], c.left);
    link.open();
    return new Promise((r) => { this._releaseLeader = r; });
  }

  _stop() {
    if (this._link) this._link.close();
    this._link = null;
    clearTimeout(this._flushTimer);
    if (this._channel) {
      this._post({ t: "bye", tab: this._tab });
      this._channel.close();
      this._channel = null;
    }
    if (this._abort) this._abort.abort();
    this._releaseTab?.();
    this._releaseLeader?.();
    this._releaseTab = this._releaseLeader = null;
    if (this._onPageHide) {
      removeEventListener("pagehide", this._onPageHide);
      removeEventListener("pageshow", this._onPageShow);
    }
    for (const c of this._calls.values()) c.resolve({ closed: true });
    this._calls.clear();
  }

  async _token() {
    const t = this.options.token;
    return typeof t === "function" ? await t() : t;
  }

  // _identity names the user, so that only tabs of the same user share a
  // connection: the JWT's sub, else a digest of the token, else anonymous.
  async _identity() {
    const t = await this._token();
    if (!t) return "anonymous";
    try {
      const claims = JSON.parse(atob(t.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
      if (claims && typeof claims.sub === "string") return "sub:" + claims.sub;
    } catch { /* not a JWT */ }
    let h = 0x811c9dc5; // FNV-1a: a grouping key, not a secret
    for (let i = 0; i < t.length; i++) h = Math.imul(h ^ t.charCodeAt(i), 0x01000193) >>> 0;
    return "token:" + h.toString(16);
  }

  async _ticket() {
    const token = await this._token();
    const res = await request("POST", `${this.url}/tickets`, { token });
    return res.ticket;
  }

  _events() {
    return new Set([...this._handlers.keys()].filter((e) => !LOCAL_EVENTS.has(e)));
  }

  // --- talking to the link (own, or the leader tab) -----------------------

  _post(m) {
    if (this._channel) this._channel.postMessage(m);
  }

  // _announce tells the leader what this page listens to and which rooms it
  // is in (without asking for an answer).
  _announce(force) {
    const events = this._events();
    if (this._link) {
      this._link.setTab(this._tab, this._rooms, events);
      return;
    }
    if (!force && this._announced === [...events].join("\0")) return;
    this._announced = [...events].join("\0");
    this._post({ t: "tab", tab: this._tab, rooms: [...this._rooms], events: [...events] });
  }

  // _call tells the link this page's rooms (left: rooms it just left) and
  // resolves with the link's answer once the connection's memberships were
  // brought in line: {failed: {room: {status, problem}}}.
  _call(joined, left) {
    const id = randomId();
    const rooms = [...this._rooms];
    const events = [...this._events()];
    const p = new Promise((resolve) => this._calls.set(id, { resolve, left }));
    if (this._link) this._link.call(this._tab, id, rooms, events, left);
    else this._post({ t: "tab", tab: this._tab, id, rooms, events, left });
    this._announced = events.join("\0");
    return p.then((answer) => {
      if (answer.closed) throw new Error("roomcast: the socket was closed");
      const bad = [...joined, ...left].find((r) => answer.failed && answer.failed[r]);
      if (bad) {
        const f = answer.failed[bad];
        if (joined.includes(bad)) {
          this._rooms.delete(bad);
          this._announce(true);
        }
        throw new ApiError(f.status, f.problem);
      }
      return answer;
    });
  }

  // _onBus handles what other tabs post on the channel.
  _onBus(m) {
    if (!m || typeof m !== "object" || this._closed) return;
    switch (m.t) {
      case "tab": {
        this._peers.set(m.tab, { rooms: m.rooms, events: m.events, since: Date.now() });
        if (this._link) {
          if (m.id) this._link.call(m.tab, m.id, m.rooms, m.events, m.left || []);
          else this._link.setTab(m.tab, new Set(m.rooms), new Set(m.events));
        }
        break;
      }
      case "bye":
        this._peers.delete(m.tab);
        this._link?.dropTab(m.tab);
        break;
      case "leader":
        // A new leader needs every tab's rooms and events, and the calls
        // it has not answered.
        this._announce(true);
        for (const [id, c] of this._calls) {
          this._post({ t: "tab", tab: this._tab, id, rooms: [...this._rooms], events: [...this._events()], left: c.left });
        }
        break;
      case "sent": // another tab's broadcast emit
        if (!(m.except || []).some((r) => this._rooms.has(r))) this._deliver(m.env);
        break;
      case "reply":
        if (m.to === this._tab) this._answer(m.id, m.failed);
        break;
      case "retry":
        this._link?.retryNow();
        break;
      default:
        if (!this._link) this._fromLink(m);
    }
  }

  _answer(id, failed) {
    const c = this._calls.get(id);
    if (!c) return;
    this._calls.delete(id);
    c.resolve({ failed });
  }

  // _fromLink handles what the link says (directly, or relayed by the
  // leader): state changes, events, and other tabs' broadcast emits.
  _fromLink(m) {
    switch (m.t) {
      case "state":
        if (m.lastEventId) this.lastEventId = m.lastEventId;
        this._linkState(m);
        break;
      case "ev":
        if (m.lastEventId) this.lastEventId = m.lastEventId;
        this._onEvent(m.name, m.data);
        break;
    }
  }

  _linkState(m) {
    if (m.state === "connected") {
      this.info = m.info;
      this.id = m.info.id;
      if (!this._ready) { // `connect` once this page's rooms are in
        this._pendingConnect = m.info;
        return;
      }
      this._connected(m.info);
    } else if (m.state === "reconnecting") {
      const was = this.connected;
      this._setState("reconnecting");
      if (was) this._fire("disconnect", m.reason || "transport error");
      this._fire("reconnecting", { attempt: m.attempt || 0, delay: m.delay || 0 });
    } else if (m.state === "ended") {
      // Disconnected on request (DELETE /connections/{id}): the connection
      // is gone; connect() opens a new one.
      const was = this.connected;
      this._closed = true;
      this._stop();
      this.lastEventId = "";
      this._setState("disconnected");
      if (was) this._fire("disconnect", END_REASONS.disconnected);
    } else if (m.state === "failed") {
      const err = new ApiError(m.error.status, m.error.problem);
      const was = this.connected;
      this._setState("disconnected");
      if (was) this._fire("disconnect", "error");
      this._fire("error", err);
    }
  }

  _connected(info) {
    const first = !this.connected;
    this._setState("connected");
    this._flushAttempt = 0;
    if (first) this._fire("connect", info);
    this._flush();
  }

  _setState(s) {
    this.state = s;
    this.connected = s === "connected";
  }

  _fatal(err) {
    this._linkState({ t: "state", state: "failed", error: problemOf(err) });
  }

  // --- incoming events ----------------------------------------------------

  _onEvent(name, raw) {
    let data;
    try { data = JSON.parse(raw); } catch { return; }
    if (name === "reset") {
      this._fire("reset", data);
      return;
    }
    if (name === "error") {
      this._fire("error", data);
      return;
    }
    this._deliver(data);
  }

  // _wants says whether a message is for this page: namespace-wide and
  // direct messages always, room messages when the page is in the room
  // (with sharing the connection is in every tab's rooms).
  _wants(env) {
    if (env.to) return true;
    if (env.room) return this._rooms.has(env.room);
    if (Array.isArray(env.rooms)) return env.rooms.some((r) => this._rooms.has(r));
    return true;
  }

  // _deliver hands a message to this page's handlers, once: a stored one
  // by its id (a replay after a reconnect or a takeover repeats ids); a
  // volatile one has no id and is never replayed, so it comes once.
  _deliver(env) {
    if (!env || typeof env !== "object" || typeof env.event !== "string") return;
    if (LOCAL_EVENTS.has(env.event) || !this._wants(env)) return;
    if (env.volatile !== true) {
      if (!env.id || this._seen.has(env.id)) return;
      this._seen.set(env.id, true);
      if (this._seen.size > SEEN_MAX) this._seen.delete(this._seen.keys().next().value);
    }
    this._fire(env.event, env.data, env);
  }

  // --- the outbox ---------------------------------------------------------

  _emit(target, event, data, options = {}) {
    if (typeof event !== "string" || !event) throw new TypeError("roomcast: emit needs an event name");
    if (target.volatile) return this._emitVolatile(target, event, data, options);
    const item = { target, event, data: data === undefined ? null : data, key: options.id || randomId() };
    const p = new Promise((resolve, reject) => Object.assign(item, { resolve, reject }));
    this._outbox.push(item);
    this._flush();
    return quiet(p);
  }

  // _flush sends the outbox in order, one emit at a time (the order of a
  // socket's emits is kept). An emit that fails for a reason a reconnect or
  // a wait can cure stays first in line; its idempotency key (the body's
  // id) makes the retry store it once even if the first try was stored.
  async _flush() {
    if (this._flushing || this._closed) return;
    this._flushing = true;
    clearTimeout(this._flushTimer);
    try {
      while (this._outbox.length && this.connected && !this._closed) {
        const item = this._outbox[0];
        const info = this.info;
        const { path, body } = this._publishRequest(item, info);
        let res;
        try {
          const size = JSON.stringify(body).length;
          res = await request("POST", this.url + path, { body, token: info.token, keepalive: size < 8192 && this.url.startsWith(location.origin + "/") });
        } catch (err) {
          if (err instanceof ApiError && err.retryable) {
            // Try again after a while, or at the next `connect`.
            const delay = Math.max(err.retryAfter * 1000, backoff(this._flushAttempt++, 500, 15000));
            this._flushTimer = setTimeout(() => this._flush(), delay);
            return;
          }
          this._outbox.shift();
          item.reject(err);
          continue;
        }
        this._outbox.shift();
        this._flushAttempt = 0;
        this._relaySent(item, info, res.id);
        item.resolve(res);
      }
    } finally {
      this._flushing = false;
    }
  }

  // _emitVolatile sends a volatile emit now, beside the outbox (which may
  // hold stored emits waiting for their turn): never queued, never retried.
  _emitVolatile(target, event, data, options) {
    if (options && options.id !== undefined) throw new TypeError("roomcast: a volatile emit is never stored: it takes no idempotency id");
    const info = this.info;
    if (!this.connected || this._closed || !info) return Promise.resolve(false);
    const item = { target, event, data: data === undefined ? null : data };
    const { path, body } = this._publishRequest(item, info);
    return quiet(request("POST", this.url + path, { body, token: info.token }).then(() => {
      this._relaySent(item, info, "");
      return true;
    }, (err) => {
      if (err instanceof ApiError && err.retryable) return false;
      throw err;
    }));
  }

  // _relaySent gives a broadcast emit to the sibling tabs: the server skips
  // this connection, which they share, so they get it from here (Socket.IO's
  // broadcast skips only the sending socket). id is the stored message's;
  // a volatile one has none (and no tab de-duplicates it: the channel
  // brings it once to each other tab).
  _relaySent(item, info, id) {
    if (item.target.self || item.target.direct || !this._channel) return;
    const env = { ns: this.ns, room: null, event: item.event, from: info.id, ts: new Date().toISOString(), data: item.data };
    if (id) env.id = id;
    else env.volatile = true;
    if (item.target.rooms.length === 1) env.room = item.target.rooms[0];
    else if (item.target.rooms.length > 1) env.rooms = item.target.rooms;
    this._post({ t: "sent", env, except: item.target.except });
  }

  _publishRequest(item, info) {
    const t = item.target;
    const body = { event: item.event, data: item.data };
    if (t.volatile) body.volatile = true;
    else body.id = item.key;
    if (t.direct) return { path: `/connections/${enc(t.direct)}/messages`, body };
    const except = [...t.except];
    if (!t.self) except.push(info.id);
    if (except.length) body.except = except;
    if (t.rooms.length === 1) return { path: `/rooms/${enc(t.rooms[0])}/messages`, body };
    if (t.rooms.length > 1) body.rooms = [...new Set(t.rooms)];
    return { path: "/messages", body };
  }
}

// Link holds the stream of one connection: an EventSource, its reconnects
// (tickets in locked namespaces, last_event_id after a full reconnect), and
// the connection's room memberships as the union of its tabs' rooms. post
// relays to the other tabs (null: a connection of one page's own).
class Link {
  constructor(socket, post) {
    this.socket = socket;
    this.relay = post;
    this.tabs = new Map(); // tab → {rooms: Set, events: Set, since}
    this.server = new Set(); // the connection's rooms, as the server has them
    this.dropped = new Set(); // rooms some tab left: leave them on the server once no tab wants them
    this.pending = []; // calls to answer after the next sync: {tab, id}
    this.listening = new Set();
    this.es = null;
    this.info = null;
    this.live = false;
    this.attempt = 0;
    this.timer = 0;
    this.closed = false;
    this.queue = Promise.resolve();
    this.lastEventId = socket.lastEventId;
    this.onOnline = () => { if (this.timer) this.open(); };
    addEventListener("online", this.onOnline);
    if (post) this.sweeper = setInterval(() => this.sweep(), SWEEP_EVERY);
  }

  get url() {
    return this.socket.url;
  }

  // post hands a message to every tab: this one directly, the others over
  // the channel.
  post(m) {
    if (this.relay) this.relay(m);
    this.socket._fromLink(m);
  }

  union() {
    const all = new Set();
    for (const t of this.tabs.values()) for (const r of t.rooms) all.add(r);
    return all;
  }

  async open() {
    clearTimeout(this.timer);
    this.timer = 0;
    if (this.closed) return;
    const q = new URLSearchParams();
    const rooms = [...this.union()];
    if (rooms.length) q.set("rooms", rooms.join(","));
    if (this.lastEventId) q.set("last_event_id", this.lastEventId);
    const o = this.socket.options;
    this.ticketed = Boolean(o.token);
    if (this.ticketed) {
      this.opening = true;
      try {
        q.set("ticket", await this.socket._ticket());
      } catch (err) {
        this.opening = false;
        if (err instanceof ApiError && !err.retryable) return this.fail(err);
        if (err instanceof ApiError && err.status === 401 && typeof o.token !== "function") return this.fail(err);
        return this.retry("ticket refused");
      }
      this.opening = false;
      if (this.closed) return;
    }
    const es = new EventSource(`${this.url}/events?${q}`, { withCredentials: Boolean(o.withCredentials) });
    this.es = es;
    this.listening = new Set();
    this.listen("connected");
    this.listen("reset");
    this.listen("end");
    for (const t of this.tabs.values()) for (const e of t.events) this.listen(e);
    es.addEventListener("error", (e) => this.onError(es, e));
  }

  listen(name) {
    const es = this.es;
    if (!es || this.listening.has(name) || name === "error") return;
    this.listening.add(name);
    es.addEventListener(name, (e) => {
      if (es !== this.es) return;
      if (e.lastEventId) this.lastEventId = e.lastEventId;
      if (name === "connected") {
        let info;
        try { info = JSON.parse(e.data); } catch { return; }
        this.connected(info);
        return;
      }
      if (name === "end") {
        let d = {};
        try { d = JSON.parse(e.data) || {}; } catch { /* no reason: a drop */ }
        this.ended(es, d.reason);
        return;
      }
      this.post({ t: "ev", name, data: e.data, lastEventId: e.lastEventId });
    });
  }

  onError(es, e) {
    if (es !== this.es) return;
    if (typeof e.data === "string") { // the server's reserved `error` event
      this.post({ t: "ev", name: "error", data: e.data, lastEventId: this.lastEventId });
      return;
    }
    this.live = false;
    if (es.readyState === EventSource.CLOSED || this.ticketed) {
      // An HTTP error closed it for good (or its ticket was single-use): a
      // new EventSource resumes with last_event_id in its URL.
      es.close();
      this.es = null;
      this.retry("transport error");
      return;
    }
    // The browser reconnects by itself and sends Last-Event-ID.
    this.post({ t: "state", state: "reconnecting", reason: "transport error", attempt: this.attempt++, delay: 0 });
  }

  // ended handles the server's last event on a stream it ends on purpose
  // (its id, already kept, is where the stream stopped): "disconnected"
  // (closed on request: do not come back; a resume would answer 204),
  // "expired" (the credential expired: a fresh token and ticket now, then
  // resume), "shutdown" and "replaced" (resume after the usual backoff).
  ended(es, reason) {
    if (es !== this.es) return;
    es.close();
    this.es = null;
    this.live = false;
    if (reason === "disconnected") {
      this.closed = true;
      clearTimeout(this.timer);
      this.post({ t: "state", state: "ended", reason });
      return;
    }
    if (reason === "expired") {
      this.post({ t: "state", state: "reconnecting", reason: END_REASONS.expired, attempt: this.attempt++, delay: 0 });
      this.open();
      return;
    }
    this.retry(END_REASONS[reason] || "transport close");
  }

  // retryNow reopens the stream at once if it is down (its EventSource
  // waiting to reconnect by itself, or the backoff's timer).
  retryNow() {
    if (this.closed || this.live || this.opening) return;
    if (this.es) {
      this.es.close();
      this.es = null;
    }
    this.open();
  }

  retry(reason) {
    if (this.closed) return;
    const o = this.socket.options;
    const delay = backoff(this.attempt, o.reconnectDelay, o.reconnectDelayMax);
    this.post({ t: "state", state: "reconnecting", reason, attempt: this.attempt++, delay });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), delay);
  }

  fail(err) {
    this.closed = true;
    this.post({ t: "state", state: "failed", error: problemOf(err) });
  }

  connected(info) {
    this.info = info;
    this.server = new Set(info.rooms || []);
    this.live = true;
    this.attempt = 0;
    const first = !this.seen;
    this.seen = true;
    if (!this.relay) {
      // A page of its own: a connection it resumed by a stored id brings its
      // rooms back to the page; rooms the page no longer wants are left.
      const s = this.socket;
      if (first && s.options.lastEventId) for (const r of this.server) s._rooms.add(r);
      this.setTab(s._tab, s._rooms, s._events());
      for (const r of this.server) if (!s._rooms.has(r)) this.dropped.add(r);
    } else {
      // Shared: rooms no tab claims once every tab had time to answer the
      // new leader (closed tabs' rooms, a URL's rooms re-added by the
      // browser's own reconnect) are left.
      clearTimeout(this.adopt);
      this.adopt = setTimeout(() => {
        const want = this.union();
        for (const r of this.server) if (!want.has(r)) this.dropped.add(r);
        this.sync();
      }, TAB_GRACE / 2);
    }
    this.sync();
  }

  // tellState tells the tabs that the connection is live, with its data.
  tellState() {
    if (!this.live || !this.info || this.syncing) return;
    this.post({ t: "state", state: "connected", info: { ...this.info, rooms: [...this.server] }, lastEventId: this.lastEventId });
  }

  close() {
    this.closed = true;
    this.live = false;
    clearTimeout(this.timer);
    clearTimeout(this.adopt);
    clearInterval(this.sweeper);
    removeEventListener("online", this.onOnline);
    if (this.es) this.es.close();
    this.es = null;
  }

  setTab(tab, rooms, events) {
    const prev = this.tabs.get(tab);
    this.tabs.set(tab, { rooms: new Set(rooms), events: new Set(events), since: prev ? prev.since : Date.now() });
    for (const e of events) this.listen(e);
    if (prev) for (const r of prev.rooms) if (!rooms.has(r)) this.dropped.add(r);
    for (const r of rooms) this.dropped.delete(r);
  }

  call(tab, id, rooms, events, left) {
    this.setTab(tab, new Set(rooms), new Set(events));
    for (const r of left || []) if (!rooms.includes(r)) this.dropped.add(r);
    this.pending.push({ tab, id });
    this.sync();
  }

  dropTab(tab) {
    const t = this.tabs.get(tab);
    if (!t || tab === this.socket._tab) return;
    this.tabs.delete(tab);
    for (const r of t.rooms) this.dropped.add(r);
    this.sync();
  }

  // sweep forgets tabs that closed without a word (crash, kill): their
  // presence lock is gone.
  async sweep() {
    let held;
    try { held = new Set((await navigator.locks.query()).held.map((l) => l.name)); } catch { return; }
    const now = Date.now();
    for (const [tab, t] of this.tabs) {
      if (tab !== this.socket._tab && now - t.since > TAB_GRACE && !held.has(`${this.socket._key}|tab|${tab}`)) this.dropTab(tab);
    }
  }

  // sync brings the connection's rooms in line with what the tabs want, one
  // pass at a time (a leave and a join of one room must reach the server in
  // order), then answers the calls that were waiting for it.
  sync() {
    this.queue = this.queue.then(() => this.syncOnce()).catch(() => {}).then(() => this.tellState());
    return this.queue;
  }

  async syncOnce() {
    if (!this.live || this.closed) return;
    this.syncing = true;
    const want = this.union();
    const failed = {};
    let later = false;
    const info = this.info;
    const member = (method, room) => request(method, `${this.url}/rooms/${enc(room)}/members/${enc(info.id)}`, { token: info.token });
    try {
      for (const room of want) {
        if (this.server.has(room)) continue;
        try {
          await member("PUT", room);
          this.server.add(room);
        } catch (err) {
          if (err instanceof ApiError && err.retryable) later = true;
          else failed[room] = problemOf(err);
        }
      }
      for (const room of [...this.server]) {
        if (want.has(room) || !this.dropped.has(room)) continue;
        try {
          await member("DELETE", room);
          this.server.delete(room);
        } catch (err) {
          if (err instanceof ApiError && err.retryable) later = true;
          else failed[room] = problemOf(err);
        }
      }
    } finally {
      this.syncing = false;
    }
    if (later || info !== this.info) return; // answered after the next `connected`
    const calls = this.pending;
    this.pending = [];
    for (const c of calls) {
      if (c.tab === this.socket._tab) this.socket._answer(c.id, failed);
      else if (this.relay) this.relay({ t: "reply", to: c.tab, id: c.id, failed });
    }
  }
}

// Group is a member of consumer group `name` of `room`: each message of the
// room goes to one member of the group, which must acknowledge it.
//
// A group member has a connection of its own, per tab, even when the socket
// shares one: an ack_id is bound to the connection that received it, and a
// closed tab's unacknowledged deliveries must go back to the group at once
// (they do when its stream ends), so each tab is one worker of the group.
//
// It reads its stream with fetch, which sees deliveries of every event name
// (EventSource only dispatches names it listens to), sends the token as a
// header (no ticket) and sees the status of a refused stream.
export class Group extends Emitter {
  constructor(socket, room, name) {
    super();
    this.socket = socket;
    this.room = room;
    this.name = name;
    this.id = null;
    this.info = null;
    this.connected = false;
    this.closed = false;
    this.jobs = new Map(); // ack_id → Job, not yet settled
    this.config = null; // the group's settings (GET …/groups/{group}), once read
    this.ackWait = NaN; // config.ack_wait in ms
    this._attempt = 0;
    this._lastEventId = "";
    this._abort = null;
    this._waiting = [];
    this._open();
  }

  // on(fn) handles deliveries (a Job each); on(name, fn) handles "connect",
  // "disconnect", "reconnecting", "reset", "revoked" (job, reason), "error".
  on(event, fn) {
    if (typeof event !== "function") return super.on(event, fn);
    super.on("job", event);
    // Deliveries that came before any handler go to the first one.
    const waiting = this._waiting;
    this._waiting = [];
    for (const job of waiting) if (!job.revoked) this._fire("job", job);
    return this;
  }

  off(event, fn) {
    if (typeof event === "function") return super.off("job", event);
    return super.off(event, fn);
  }

  get path() {
    return `/rooms/${enc(this.room)}/groups/${enc(this.name)}`;
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.connected = false;
    clearTimeout(this._timer);
    if (this._abort) this._abort.abort();
    for (const job of this.jobs.values()) job._revoke("the group was closed");
  }

  async _open() {
    const s = this.socket;
    const o = s.options;
    const abort = new AbortController();
    this._abort = abort;
    let res;
    try {
      const headers = { Accept: "text/event-stream" };
      const token = await s._token();
      if (token) headers.Authorization = "Bearer " + token;
      if (this._lastEventId) headers["Last-Event-ID"] = this._lastEventId;
      res = await fetch(`${s.url}/rooms/${enc(this.room)}/events?group=${enc(this.name)}`, {
        headers, signal: abort.signal, cache: "no-store", credentials: o.withCredentials ? "include" : "same-origin",
      });
    } catch (err) {
      if (this.closed) return;
      return this._retry("transport error");
    }
    if (res.status === 204) { // disconnected on request: do not come back
      this.closed = true;
      this._fire("disconnect", "io server disconnect");
      return;
    }
    if (!res.ok) {
      const text = await res.text().catch(() => "");
      let problem = null;
      try { problem = JSON.parse(text); } catch { /* not JSON */ }
      const err = new ApiError(res.status, problem);
      const tokenFn = typeof o.token === "function";
      if (err.retryable && !(res.status === 401 && !tokenFn)) return this._retry("refused: " + res.status);
      this.closed = true;
      this._fire("error", err);
      return;
    }
    this._end = "";
    try {
      await readEvents(res.body, (ev) => this._onEvent(ev));
    } catch { /* the stream broke */ }
    if (this.closed) return;
    const was = this.connected;
    this.connected = false;
    const end = this._end;
    const reason = END_REASONS[end] || "transport error";
    // Unacknowledged deliveries went back to the group with the stream.
    for (const job of this.jobs.values()) job._revoke("the stream ended");
    if (end === "disconnected") { // closed on request: do not come back
      this.closed = true;
      this._fire("disconnect", reason);
      return;
    }
    if (was) this._fire("disconnect", reason);
    if (end === "expired") { // a fresh token now, then resume
      this._fire("reconnecting", { attempt: this._attempt++, delay: 0, reason });
      this._open();
      return;
    }
    this._retry(reason);
  }

  _retry(reason) {
    if (this.closed) return;
    const o = this.socket.options;
    const delay = backoff(this._attempt, o.reconnectDelay, o.reconnectDelayMax);
    this._fire("reconnecting", { attempt: this._attempt++, delay, reason });
    this._timer = setTimeout(() => this._open(), delay);
  }

  _onEvent(ev) {
    if (ev.id) this._lastEventId = ev.id;
    let data;
    try { data = JSON.parse(ev.data); } catch { return; }
    switch (ev.event) {
      case "connected":
        this.info = data;
        this.id = data.id;
        this.connected = true;
        this._attempt = 0;
        this._fire("connect", data);
        this._loadConfig();
        return;
      case "end":
        this._end = data && data.reason;
        return;
      case "reset":
        this._fire("reset", data);
        return;
      case "revoked": {
        const job = this.jobs.get(data.ack_id);
        if (job) job._revoke(data.reason || "revoked");
        return;
      }
      case "error":
        this._fire("error", data);
        return;
    }
    if (data && data.event === "dead_letter" && !data.ack_id) {
      // A message of the room was parked (data.data.group names the group:
      // every group of the room is told).
      this._fire("dead_letter", data.data, data);
      return;
    }
    if (!data || typeof data !== "object" || !data.ack_id) return; // namespace-wide and direct messages: the socket's
    // A redelivery of a message this member still holds supersedes it.
    for (const old of this.jobs.values()) {
      if (old.id === data.id) old._revoke("redelivered");
    }
    const job = new Job(this, data, Date.now());
    this.jobs.set(job.ackId, job);
    if (!this._fire("job", job)) this._waiting.push(job); // no handler yet
  }

  // _loadConfig reads the group's settings (ack_wait gives each job's
  // deadline on this page's clock); without them (refused, offline) a
  // job's deadline is the server's ack_deadline as is.
  _loadConfig() {
    const info = this.info;
    request("GET", `${this.socket.url}${this.path}`, { token: info.token }).then((st) => {
      if (this.info !== info || !st || !st.config) return;
      this.config = st.config;
      this.ackWait = parseDuration(st.config.ack_wait);
    }, () => {});
  }

  async _settle(job, what, extra) {
    if (job.revoked) return false;
    if (job.settled) return true;
    const info = this.info;
    if (!info) return false;
    const progress = what === "progress";
    if (!progress) job._busy = true; // its fate is this request's (not a stream end's)
    const sent = Date.now();
    try {
      await request("POST", `${this.socket.url}${this.path}/${what}`, { body: { ids: [job.ackId], ...extra }, token: info.token });
    } catch (err) {
      job._busy = false;
      if (job.revoked) return false;
      if (err instanceof ApiError && (err.status === 409 || err.status === 403 || err.status === 401)) {
        // Redelivered meanwhile (409), or the connection that received it
        // is gone (its deliveries went back to the group).
        job._revoke(err.message);
        return false;
      }
      this._fire("error", err);
      throw err;
    }
    if (progress) {
      // The server restarted the lease when it answered: ack_wait from a
      // moment after `sent` (so this deadline is never later than its).
      if (!job.revoked && !job.settled) job.deadline = new Date(sent + job._lease);
      return !job.revoked;
    }
    job.settled = true;
    this.jobs.delete(job.ackId);
    return true;
  }
}

// parseDuration reads Go's duration syntax ("1m30s", "500ms") into ms (NaN
// when it is not one).
export function parseDuration(s) {
  const units = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000 };
  const re = /([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)/y;
  let ms = 0;
  let i = 0;
  if (typeof s !== "string" || !s) return NaN;
  while (i < s.length) {
    re.lastIndex = i;
    const m = re.exec(s);
    if (!m) return NaN;
    ms += Number(m[1]) * units[m[2]];
    i = re.lastIndex;
  }
  return ms;
}

// durationOf writes a delay (ms, or a duration string) in Go's syntax.
function durationOf(d) {
  if (typeof d === "number") return Math.max(0, Math.round(d)) + "ms";
  return String(d);
}

// Job is one group delivery, leased to this member until its deadline.
// ack() resolves true once acknowledged, false when the delivery is no
// longer this member's (revoked: its lease ran out and it went to another
// delivery, or its stream ended); progress() extends the lease; nack()
// hands it back for redelivery (now, or after a delay).
export class Job {
  constructor(group, env, receivedAt = Date.now()) {
    this.group = group;
    this.envelope = env;
    this.id = env.id;
    this.event = env.event;
    this.data = env.data;
    this.ackId = env.ack_id;
    this.delivery = env.delivery || 1;
    this.revoked = false;
    this.settled = false;
    // The lease, on this page's clock: ack_wait from the delivery's arrival
    // when the group's ack_wait is known (so a skewed clock does not show a
    // wrong countdown), else the server's ack_deadline as is.
    const server = Date.parse(env.ack_deadline);
    this._lease = group.ackWait > 0 ? group.ackWait : Number.isFinite(server) ? Math.max(0, server - receivedAt) : NaN;
    this.deadline = group.ackWait > 0 ? new Date(receivedAt + group.ackWait) : Number.isFinite(server) ? new Date(server) : null;
    this._abort = new AbortController();
    this.signal = this._abort.signal; // aborted when revoked
  }

  ack() {
    return quiet(this.group._settle(this, "acks"));
  }

  // nack hands the delivery back: redelivered at once, or after
  // options.delay (ms, or a duration such as "10s").
  nack(options = {}) {
    const extra = options.delay !== undefined && options.delay !== null ? { delay: durationOf(options.delay) } : undefined;
    return quiet(this.group._settle(this, "nacks", extra));
  }

  // progress extends the lease by the group's ack_wait (still working on
  // it): true once extended (job.deadline moved), false when it is no
  // longer this member's.
  progress() {
    return quiet(this.group._settle(this, "progress"));
  }

  _revoke(reason) {
    if (this.revoked || this.settled || this._busy) return;
    this.revoked = true;
    this.group.jobs.delete(this.ackId);
    this._abort.abort(reason);
    this.group._fire("revoked", this, reason);
  }
}

// readEventStream reads an SSE body fetched by the application (every
// event name, with its own headers: an admin's live tail of a room, a
// server-side client) and calls fn({event, data, id}) per event; it
// resolves when the body ends.
export function readEventStream(body, fn) {
  return readEvents(body, fn);
}

// readEvents parses a text/event-stream body (the HTML standard's rules:
// CR, LF or CRLF line ends; data lines joined with LF; comments ignored; the
// last event id carried over) and calls fn({event, data, id}) per event.
async function readEvents(body, fn) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let data = [];
  let event = "";
  let id = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let start = 0;
    for (;;) {
      const cr = buf.indexOf("\r", start);
      const lf = buf.indexOf("\n", start);
      let end = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
      if (end < 0) break;
      if (buf[end] === "\r" && end === buf.length - 1) break; // a CRLF may be split
      const line = buf.slice(start, end);
      start = end + (buf[end] === "\r" && buf[end + 1] === "\n" ? 2 : 1);
      if (line === "") {
        if (data.length) fn({ event: event || "message", data: data.join("\n"), id });
        data = [];
        event = "";
        continue;
      }
      if (line[0] === ":") continue;
      const c = line.indexOf(":");
      const field = c < 0 ? line : line.slice(0, c);
      let v = c < 0 ? "" : line.slice(c + 1);
      if (v[0] === " ") v = v.slice(1);
      if (field === "data") data.push(v);
      else if (field === "event") event = v;
      else if (field === "id" && !v.includes("\0")) id = v;
    }
    buf = buf.slice(start);
  }
}

export default { connect, request, position, parseDuration, readEventStream, ApiError, Socket, Group, Job, version };
