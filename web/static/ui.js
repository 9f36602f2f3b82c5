import { position } from "/sdk/roomcast.js";

// Page helpers shared by the app's pages: names, ids, DOM and wording. The
// pages talk to the server through the SDK (/sdk/roomcast.js); nothing here
// does, and nothing here knows about chat, parcels or the admin view.

// ROOM_RE is the server's room name rule: 1–128 characters of
// A-Z a-z 0-9 _ - : @ =, optionally in dot-separated segments.
export const ROOM_RE = /^(?=.{1,128}$)[A-Za-z0-9_:@=-]+(\.[A-Za-z0-9_:@=-]+)*$/;

// enc encodes one path segment.
export const enc = encodeURIComponent;

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

// statusText is the wording of a connection state for a role="status" line.
export function statusText(state, who) {
  switch (state) {
    case "live": return who ? `Connected as ${who}` : "Connected";
    case "reconnecting": return "Reconnecting… what you miss meanwhile will follow";
    case "closed": return "Disconnected";
    default: return "Connecting…";
  }
}

// keepFocus runs fn (which rebuilds part of the page) and puts the focus
// back on the control that had it, found again by its data-focus key, so
// that a list that refreshes does not drop a keyboard user's place.
export function keepFocus(fn) {
  const a = document.activeElement;
  const key = a && a.dataset ? a.dataset.focus : "";
  fn();
  if (key && document.activeElement !== a) {
    document.querySelector(`[data-focus="${CSS.escape(key)}"]`)?.focus();
  }
}

// announce tells screen readers something new, once, through the page's
// #announce status region (the lists themselves are not live regions: they
// are rebuilt too often).
export function announce(text) {
  const a = document.getElementById("announce");
  if (!a) return;
  a.textContent = "";
  setTimeout(() => { a.textContent = text; }, 50);
}
