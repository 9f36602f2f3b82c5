// The small client shared by the pages: fetch helpers for the REST API and
// Connection, an EventSource wrapper that keeps its resume position and
// reports its state. Nothing here knows about chat, parcels or the admin view.

// ROOM_RE is the server's room name rule: 1–128 characters of
// A-Z a-z 0-9 _ - : @ =, optionally in dot-separated segments.
export const ROOM_RE = /^(?=.{1,128}$)[A-Za-z0-9_:@=-]+(\.[A-Za-z0-9_:@=-]+)*$/;

// ApiError carries the RFC 9457 problem the server answered (status 0: the
// request did not reach the server).
export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
  // retryable is true for failures that a reconnect can cure: no network,
  // an unknown token (the connection is down right now), server trouble.
  get retryable() {
    return this.status === 0 || this.status === 401 || this.status === 429 || this.status >= 500;
  }
}

// api calls the REST API and returns the decoded JSON answer (null for 204).
export async function api(method, path, { body, token, keepalive } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = "Bearer " + token;
  let res;
  try {
    res = await fetch(path, {
      method, headers, keepalive,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, { title: "network error", detail: String(err) });
  }
  const text = await res.text();
  let json = null;
  if (text) {
    try { json = JSON.parse(text); } catch { json = { title: text.slice(0, 200) }; }
  }
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

// enc encodes one path segment.
export const enc = encodeURIComponent;

// position strips the connection token from an SSE event id: what is left
// ("<epoch>-<sequence>") resumes a fresh connection and can be stored
// without handing anyone the token.
export function position(eventID) {
  return eventID ? eventID.split(".")[0] : "";
}

// seqOf returns the namespace sequence of a message id or event id.
export function seqOf(id) {
  const pos = position(id);
  const i = pos.lastIndexOf("-");
  const n = Number(pos.slice(i + 1));
  return Number.isFinite(n) ? n : 0;
}

// randomId returns 24 hex characters (crypto.randomUUID needs a secure
// context; getRandomValues does not).
export function randomId() {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// el builds an element: el("li", {class: "x", dataset: {id}}, "text", child).
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "dataset") Object.assign(e.dataset, v);
    else if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== undefined && c !== null && c !== false) e.append(c);
  return e;
}

export function timeOf(ts) {
  const d = ts ? new Date(ts) : new Date();
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// Connection is one SSE connection to roomcast. It reports its state
// ("connecting", "live", "reconnecting", "closed") and keeps the id of the
// last event, so that it can reopen the stream where it stopped.
//
// The browser's EventSource reconnects by itself after a network error and
// sends Last-Event-ID; the server then restores the connection (same id,
// token and rooms) and replays what was missed. An HTTP error answer closes
// an EventSource for good: Connection reopens it, with the last id in the
// last_event_id query parameter since a new EventSource cannot send the
// header.
export class Connection {
  constructor(url, { events = {}, onConnected, onReset, onState, onServerError, lastEventId = "", onEventId } = {}) {
    Object.assign(this, { url, events, onConnected, onReset, onState, onServerError, onEventId });
    this.lastEventId = lastEventId;
    this.info = null;
    this.state = "connecting";
    this.es = null;
    this.backoff = 1000;
    this.timer = 0;
  }

  open() {
    clearTimeout(this.timer);
    let url = this.url;
    if (this.lastEventId) {
      url += (url.includes("?") ? "&" : "?") + "last_event_id=" + enc(this.lastEventId);
    }
    const es = new EventSource(url);
    this.es = es;
    const track = (fn) => (e) => {
      if (es !== this.es) return;
      if (e.lastEventId) {
        this.lastEventId = e.lastEventId;
        this.onEventId?.(e.lastEventId);
      }
      let data;
      try { data = JSON.parse(e.data); } catch { return; }
      fn(data, e);
    };
    es.addEventListener("connected", track((info) => {
      this.info = info;
      this.backoff = 1000;
      this.setState("live");
      this.onConnected?.(info);
    }));
    es.addEventListener("reset", track((d) => this.onReset?.(d)));
    for (const [name, fn] of Object.entries(this.events)) es.addEventListener(name, track(fn));
    es.addEventListener("error", (e) => {
      if (es !== this.es) return;
      if (e.data) { // the server's reserved `error` event, not a transport error
        let d = e.data;
        try { d = JSON.parse(e.data); } catch { /* keep the text */ }
        this.onServerError?.(d);
        return;
      }
      this.setState("reconnecting");
      if (es.readyState === EventSource.CLOSED) {
        this.timer = setTimeout(() => this.open(), this.backoff);
        this.backoff = Math.min(this.backoff * 2, 15000);
      }
    });
  }

  close() {
    clearTimeout(this.timer);
    if (this.es) this.es.close();
    this.es = null;
    this.setState("closed");
  }

  setState(s) {
    if (s === this.state) return;
    this.state = s;
    this.onState?.(s);
  }
}

// statusText is the wording of a connection state for a role="status" line.
export function statusText(state, who) {
  switch (state) {
    case "live": return who ? `Connected as ${who}` : "Connected";
    case "reconnecting": return "Reconnecting… what you miss meanwhile will follow";
    case "closed": return "Disconnected";
    default: return "Connecting…";
  }
}
