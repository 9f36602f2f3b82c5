// Chat: one namespace connection (GET /ns/default/events), rooms joined and
// left through REST with the connection's token, messages published as the
// connection to everyone but itself (except: [my id]) and shown locally once.
import { api, ApiError, Connection, ROOM_RE, el, enc, randomId, seqOf, statusText, timeOf } from "./roomcast.js";

const NS = "/ns/default";
const TYPING_EVERY = 2500; // ms between two "typing" events of one typist
const TYPING_SHOWN = 4000; // how long a "typing" event is shown
const TYPING_STALE = 6000; // older "typing" events (replayed after a drop) are ignored
const HELLO_FRESH = 30000; // answer "presence: join" with our name only while it is fresh

const $ = (id) => document.getElementById(id);

// Observable state for people debugging the page (and the browser tests):
// how many events of each room arrived live on the stream.
const stats = { received: {}, connects: 0 };
window.roomcastChat = { stats };

const state = {
  name: "",
  conn: null,
  me: null, // the `connected` data: {id, token, ns, rooms, restored}
  rooms: new Map(), // room name → Room, in the order joined
  current: "",
  names: new Map(), // connection id → display name (names travel in message data)
  outbox: [], // messages not yet accepted by the server, in order
  flushing: false,
  lastTyping: 0,
  typingTimer: 0,
};

function displayName(id) {
  if (state.me && id === state.me.id) return state.name;
  return state.names.get(id) || "guest " + String(id).slice(0, 6);
}

function learnName(id, name) {
  if (!id || typeof name !== "string" || !name) return;
  const clipped = name.slice(0, 40);
  if (state.names.get(id) === clipped) return;
  state.names.set(id, clipped);
  renderPresence();
}

// Room is a joined room: its message list (ordered by id), the ids and
// client ids already shown (so that a replay, a history fetch or a retried
// publish never shows a message twice), its members and typists.
class Room {
  constructor(name) {
    this.name = name;
    this.ids = new Set();
    this.cids = new Set();
    this.members = [];
    this.typing = new Map(); // connection id → {name, until}
    this.unread = 0;
    this.list = el("ol", { class: "log", id: "log-" + name, "aria-live": "polite", "aria-relevant": "additions", hidden: true, "aria-label": "Messages in " + name });
    this.tabButton = el("button", { type: "button", onclick: () => selectRoom(name) }, el("span", {}, "# " + name), el("span", { class: "badge", hidden: true }));
    this.tab = el("li", { dataset: { room: name } }, this.tabButton);
    this.empty = el("li", { class: "notice-line" }, "No messages yet. Say hello!");
    this.list.append(this.empty);
  }

  // add shows a stored message (from the stream or history) unless shown.
  add(env, { live }) {
    if (this.ids.has(env.id)) return;
    this.ids.add(env.id);
    const d = env.data && typeof env.data === "object" ? env.data : { text: String(env.data ?? "") };
    if (d.cid) {
      if (this.cids.has(d.cid)) return; // our own message (shown locally) or a retried publish
      this.cids.add(d.cid);
    }
    if (env.from) learnName(env.from, d.name);
    const mine = state.me && env.from === state.me.id;
    const announce = !env.room && !env.rooms && !env.from;
    const who = d.name || (env.from ? displayName(env.from) : "server");
    const li = this.item({ who, text: d.text ?? JSON.stringify(env.data), ts: env.ts, mine, announce, cid: d.cid });
    li.dataset.id = env.id;
    li.dataset.seq = String(seqOf(env.id));
    this.insert(li);
    if (env.from) this.typing.delete(env.from);
    if (live && this.name !== state.current) {
      this.unread++;
      this.renderTab();
    }
    if (this.name === state.current) renderTyping();
  }

  item({ who, text, ts, mine, announce, cid }) {
    return el("li", { class: "msg " + (announce ? "announce" : mine ? "mine" : "theirs"), dataset: { cid: cid || "" } },
      el("span", { class: "who" }, who), el("time", { datetime: ts || new Date().toISOString() }, timeOf(ts)),
      mine ? el("span", { class: "note" }) : null,
      el("p", { class: "text" }, text));
  }

  // insert keeps the list in id order; local messages waiting for an id
  // stay at the end.
  insert(li) {
    this.empty.remove();
    const seq = Number(li.dataset.seq || Infinity);
    let before = null;
    for (const other of this.list.children) {
      const s = Number(other.dataset.seq || Infinity);
      if (s > seq) { before = other; break; }
    }
    const log = $("logs");
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    this.list.insertBefore(li, before);
    if (atBottom && this.name === state.current) log.scrollTop = log.scrollHeight;
  }

  renderTab() {
    const badge = this.tabButton.querySelector(".badge");
    badge.hidden = this.unread === 0;
    badge.textContent = String(this.unread);
    this.tabButton.setAttribute("aria-label", `${this.name}${this.unread ? `, ${this.unread} unread` : ""}`);
  }
}

// --- connection ---------------------------------------------------------

function connect() {
  state.conn = new Connection(NS + "/events", {
    onState: renderStatus,
    onConnected,
    onReset: (d) => {
      // The position we resumed from is gone: refetch what the rooms hold.
      note(`Some messages could not be replayed (${d.reason}); reloading history.`);
      for (const room of state.rooms.values()) loadHistory(room);
    },
    onServerError: (d) => note("Server error: " + (d.detail || d.title || d)),
    events: {
      "chat message": (env) => onChat(env),
      presence: onPresence,
      iam: (env) => learnName(env.from, env.data && env.data.name),
      typing: onTyping,
    },
  });
  state.conn.open();
}

// onConnected runs on every (re)connection. When the server restored the
// connection, its rooms came back and the missed messages follow; otherwise
// (first connect, or past the recovery window) the rooms are joined again
// and their history fills the gap. Rooms left while disconnected are left.
async function onConnected(info) {
  const first = stats.connects === 0;
  stats.connects++;
  stats.id = info.id;
  stats.restored = info.restored;
  state.me = info;
  renderStatus(state.conn.state);
  const onServer = new Set(info.rooms);
  if (!first && !info.restored) note("Reconnected as a new connection; reloading history.");
  const jobs = [];
  for (const room of state.rooms.values()) {
    if (!onServer.has(room.name)) jobs.push(syncRoom(room, { announce: true }));
  }
  for (const name of onServer) {
    if (!state.rooms.has(name)) jobs.push(api("DELETE", `${NS}/rooms/${enc(name)}/members/${enc(info.id)}`, { token: info.token }).catch(() => {}));
  }
  await Promise.allSettled(jobs);
  flushOutbox();
  if (state.current) refreshMembers(state.rooms.get(state.current));
}

// syncRoom joins the connection to room, then loads its history: joining
// first means that every message is either live or in history (duplicates
// are dropped by id), never in neither.
async function syncRoom(room, { announce }) {
  const me = state.me;
  if (!me || state.conn.state !== "live") return;
  try {
    await api("PUT", `${NS}/rooms/${enc(room.name)}/members/${enc(me.id)}`, { token: me.token });
  } catch (err) {
    note(`Could not join ${room.name}: ${err.message}`);
    return;
  }
  await loadHistory(room);
  if (announce) publishPresence(room.name, "join");
  refreshMembers(room);
}

async function loadHistory(room) {
  let page;
  try {
    page = await api("GET", `${NS}/rooms/${enc(room.name)}/messages?limit=300`);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 400) return;
    try { page = await api("GET", `${NS}/rooms/${enc(room.name)}/messages`); } catch { return; }
  }
  if (state.rooms.get(room.name) !== room) return; // left (or left and joined again) meanwhile
  for (const env of page.messages || []) {
    if (env.event === "chat message") room.add(env, { live: false });
    else if ((env.event === "presence" || env.event === "iam") && env.from) learnName(env.from, env.data && env.data.name);
  }
}

// roomsOf returns the joined rooms a message is for: its room, its rooms, or
// every room for a namespace-wide message.
function roomsOf(env) {
  if (env.room) return [env.room];
  if (env.rooms) return env.rooms;
  if (env.to) return [];
  return [...state.rooms.keys()];
}

function count(env) {
  for (const r of roomsOf(env)) stats.received[r] = (stats.received[r] || 0) + 1;
}

function onChat(env) {
  count(env);
  for (const r of roomsOf(env)) {
    const room = state.rooms.get(r);
    if (room) room.add(env, { live: true });
  }
}

function onPresence(env) {
  count(env);
  const d = env.data || {};
  learnName(env.from, d.name);
  const room = state.rooms.get(env.room);
  if (!room) return;
  refreshMembers(room);
  const fresh = Date.now() - Date.parse(env.ts) < HELLO_FRESH;
  if (d.action === "join" && fresh && state.me && env.from && env.from !== state.me.id) {
    // Tell the newcomer our name, directly (io.to(socketId).emit).
    api("POST", `${NS}/connections/${enc(env.from)}/messages`, { token: state.me.token, body: { event: "iam", data: { name: state.name } } }).catch(() => {});
  }
}

function onTyping(env) {
  count(env);
  const room = state.rooms.get(env.room);
  if (!room || !state.me || env.from === state.me.id) return;
  if (Date.now() - Date.parse(env.ts) > TYPING_STALE) return; // replayed after a drop: stale
  const name = (env.data && env.data.name) || displayName(env.from);
  learnName(env.from, name);
  room.typing.set(env.from, { name, until: Date.now() + TYPING_SHOWN });
  renderTyping();
  setTimeout(renderTyping, TYPING_SHOWN + 50);
}

// --- actions ------------------------------------------------------------

function publishPresence(room, action, opts = {}) {
  if (!state.me) return Promise.resolve();
  return api("POST", `${NS}/rooms/${enc(room)}/messages`, {
    token: state.me.token, keepalive: opts.keepalive,
    body: { event: "presence", data: { name: state.name, action }, except: [state.me.id] },
  }).catch(() => {});
}

function send(text) {
  const room = state.rooms.get(state.current);
  if (!room) return;
  const cid = randomId();
  room.cids.add(cid);
  const li = room.item({ who: state.name, text, mine: true, cid });
  li.dataset.state = "sending";
  li.querySelector(".note").textContent = "sending…";
  room.insert(li);
  state.outbox.push({ room: room.name, text, cid, li });
  flushOutbox();
}

// flushOutbox publishes queued messages in order. A message that fails for
// a reason a reconnect cures stays queued (marked "waiting") and goes out on
// the next `connected`; the cid doubles as the idempotency key, and
// receivers drop a cid they have shown, so a retry is never seen twice.
async function flushOutbox() {
  if (state.flushing) return;
  state.flushing = true;
  try {
    while (state.outbox.length) {
      const m = state.outbox[0];
      const me = state.me;
      if (!me || state.conn.state !== "live") {
        for (const w of state.outbox) markSent(w.li, "waiting", "waiting for the connection…");
        return;
      }
      if (!state.rooms.has(m.room)) { state.outbox.shift(); continue; }
      try {
        const res = await api("POST", `${NS}/rooms/${enc(m.room)}/messages`, {
          token: me.token,
          body: { event: "chat message", data: { name: state.name, text: m.text, cid: m.cid }, except: [me.id], id: m.cid },
        });
        state.outbox.shift();
        const room = state.rooms.get(m.room);
        if (room && res && res.id) {
          room.ids.add(res.id);
          m.li.dataset.id = res.id;
          m.li.dataset.seq = String(seqOf(res.id));
          m.li.remove();
          room.insert(m.li); // to its place among messages that arrived meanwhile
        }
        markSent(m.li, "sent", "");
      } catch (err) {
        if (err instanceof ApiError && err.retryable) {
          for (const w of state.outbox) markSent(w.li, "waiting", "waiting for the connection…");
          return;
        }
        state.outbox.shift();
        markSent(m.li, "failed", "not sent: " + err.message);
      }
    }
  } finally {
    state.flushing = false;
  }
}

function markSent(li, st, text) {
  li.dataset.state = st;
  const n = li.querySelector(".note");
  if (n) n.textContent = text;
}

function joinRoom(name) {
  let room = state.rooms.get(name);
  if (!room) {
    room = new Room(name);
    state.rooms.set(name, room);
    $("room-list").append(room.tab);
    $("logs").append(room.list);
    saveRooms();
    syncRoom(room, { announce: true });
  }
  selectRoom(name);
}

async function leaveRoom(name) {
  const room = state.rooms.get(name);
  if (!room) return;
  state.rooms.delete(name);
  room.tab.remove();
  room.list.remove();
  saveRooms();
  const next = state.rooms.keys().next();
  selectRoom(next.done ? "" : next.value);
  const me = state.me;
  if (!me) return;
  try {
    await api("DELETE", `${NS}/rooms/${enc(name)}/members/${enc(me.id)}`, { token: me.token });
  } catch { /* reconciled on the next `connected` */ }
  publishPresence(name, "leave");
}

function selectRoom(name) {
  state.current = name;
  for (const room of state.rooms.values()) {
    const on = room.name === name;
    room.list.hidden = !on;
    room.tabButton.setAttribute("aria-current", on ? "true" : "false");
    if (on) { room.unread = 0; }
    room.renderTab();
  }
  const has = Boolean(name);
  $("room-title").textContent = has ? "# " + name : "No room — join one";
  $("text-label").textContent = has ? "Message to " + name : "Message";
  $("text").placeholder = has ? `Message #${name} — Enter to send` : "Join a room first";
  $("text").disabled = !has;
  $("send").disabled = !has;
  $("leave").disabled = !has;
  const log = $("logs");
  log.scrollTop = log.scrollHeight;
  renderTyping();
  renderPresence();
  if (has && state.me) refreshMembers(state.rooms.get(name));
  sessionStorage.setItem("roomcast.chat.current", name);
}

// --- presence and typing -----------------------------------------------

const refreshing = new Map();
function refreshMembers(room) {
  if (!room || refreshing.get(room.name)) return;
  refreshing.set(room.name, true);
  api("GET", `${NS}/rooms/${enc(room.name)}/members`)
    .then((res) => {
      room.members = (res.members || []).map((m) => m.id);
      if (room.name === state.current) renderPresence();
    })
    .catch(() => {})
    .finally(() => refreshing.delete(room.name));
}

function renderPresence() {
  const room = state.rooms.get(state.current);
  const list = $("presence-list");
  const members = room ? room.members : [];
  list.replaceChildren(...members.map((id) => {
    const me = state.me && id === state.me.id;
    return el("li", { dataset: { id } }, displayName(id), me ? el("span", { class: "you" }, " (you)") : null);
  }));
  if (!members.length) list.append(el("li", { class: "empty" }, "nobody"));
  $("presence-count").textContent = String(members.length);
}

function renderTyping() {
  const room = state.rooms.get(state.current);
  const now = Date.now();
  const names = [];
  if (room) {
    for (const [id, t] of room.typing) {
      if (t.until < now) room.typing.delete(id);
      else names.push(t.name);
    }
  }
  $("typing").textContent = names.length === 0 ? "" :
    names.length === 1 ? `${names[0]} is typing…` : `${names.slice(0, -1).join(", ")} and ${names.at(-1)} are typing…`;
}

// onInput sends "typing" at most every TYPING_EVERY while the box has text;
// keystrokes inside that interval send one more at its end.
function onInput() {
  if (!$("text").value.trim()) return;
  const wait = state.lastTyping + TYPING_EVERY - Date.now();
  if (wait > 0) {
    if (!state.typingTimer) state.typingTimer = setTimeout(() => { state.typingTimer = 0; onInput(); }, wait);
    return;
  }
  if (!state.me || state.conn.state !== "live" || !state.current) return;
  state.lastTyping = Date.now();
  api("POST", `${NS}/rooms/${enc(state.current)}/messages`, {
    token: state.me.token, body: { event: "typing", data: { name: state.name }, except: [state.me.id] },
  }).catch(() => {});
}

// --- page ---------------------------------------------------------------

function renderStatus(s) {
  const st = $("status");
  st.dataset.state = s;
  st.textContent = statusText(s, s === "live" ? state.name : "");
}

function note(text) {
  const room = state.rooms.get(state.current);
  if (!room) return;
  room.insert(el("li", { class: "notice-line", dataset: { seq: "" } }, text));
}

function saveRooms() {
  sessionStorage.setItem("roomcast.chat.rooms", JSON.stringify([...state.rooms.keys()]));
}

function start(name) {
  state.name = name;
  localStorage.setItem("roomcast.chat.name", name);
  $("name-step").hidden = true;
  $("chat").hidden = false;
  $("who").hidden = false;
  $("who").textContent = "You are " + name;
  $("rename").hidden = false;
  let rooms = ["lobby"];
  try {
    const saved = JSON.parse(sessionStorage.getItem("roomcast.chat.rooms") || "null");
    if (Array.isArray(saved)) rooms = saved.filter((r) => ROOM_RE.test(r));
  } catch { /* default */ }
  for (const r of rooms) {
    const room = new Room(r);
    state.rooms.set(r, room);
    $("room-list").append(room.tab);
    $("logs").append(room.list);
  }
  const cur = sessionStorage.getItem("roomcast.chat.current");
  selectRoom(state.rooms.has(cur) ? cur : rooms[0] || "");
  connect();
  $("text").focus();
}

$("name-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = $("name").value.trim();
  if (name) start(name);
});
$("rename").addEventListener("click", () => {
  localStorage.removeItem("roomcast.chat.name");
  if (state.conn) state.conn.close();
  location.reload();
});
$("join-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("join-room");
  const name = input.value.trim();
  if (!ROOM_RE.test(name)) {
    $("join-error").textContent = "Not a valid room name.";
    return;
  }
  $("join-error").textContent = "";
  input.value = "";
  joinRoom(name);
  $("text").focus();
});
$("leave").addEventListener("click", () => leaveRoom(state.current));
$("send-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("text");
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  clearTimeout(state.typingTimer);
  state.typingTimer = 0;
  send(text);
});
$("text").addEventListener("input", onInput);
setInterval(() => {
  if (state.current && state.conn && state.conn.state === "live") refreshMembers(state.rooms.get(state.current));
}, 10000);
window.addEventListener("pagehide", () => {
  for (const name of state.rooms.keys()) publishPresence(name, "leave", { keepalive: true });
});

const saved = localStorage.getItem("roomcast.chat.name");
if (saved) {
  $("name").value = saved;
  start(saved);
}
