// Chat, on the SDK: one socket on namespace default (shared by the tabs of
// this browser), rooms joined and left with socket.join/leave, messages
// emitted to everyone but this socket (socket.broadcast.to(room)) and shown
// locally once; "typing" is volatile (socket.volatile.broadcast.to(room)):
// live only, never stored, so never in the history or a replay.
import { ApiError, connect } from "/sdk/roomcast.js";
import { ROOM_RE, el, enc, randomId, seqOf, statusText, timeOf } from "./ui.js";

const NS = "/ns/default";
const TYPING_EVERY = 2500; // ms between two "typing" events of one typist
const TYPING_SHOWN = 4000; // how long a "typing" event is shown
const TYPING_STALE = 6000; // older stored "typing" events (an earlier version of this page's, replayed) are ignored
const HELLO_FRESH = 30000; // answer "presence: join" with our name only while it is fresh
const MY_IDS = 50; // own connection ids remembered (own messages stay on the right after a reload)

const $ = (id) => document.getElementById(id);

// Observable state for people debugging the page (and the browser tests):
// how many events of each room arrived live on the stream.
const stats = { received: {}, connects: 0 };
window.roomcastChat = { stats };

const state = {
  name: "",
  socket: null,
  me: null, // the `connected` data: {id, token, ns, rooms, restored}
  rooms: new Map(), // room name → Room, in the order joined
  current: "",
  names: new Map(), // connection id → display name (names travel in message data)
  sending: new Set(), // own messages not yet stored (the SDK's outbox holds them)
  // This browser's connection ids, past ones included: a message from one of
  // them is ours (shown on the right) after a reload or a new connection.
  myIds: new Set(loadIds()),
  lastTyping: 0,
  typingTimer: 0,
};

function loadIds() {
  try {
    const ids = JSON.parse(localStorage.getItem("roomcast.chat.ids") || "[]");
    return Array.isArray(ids) ? ids.filter((x) => typeof x === "string") : [];
  } catch {
    return [];
  }
}

function rememberId(id) {
  if (state.myIds.has(id)) return;
  state.myIds.add(id);
  localStorage.setItem("roomcast.chat.ids", JSON.stringify([...state.myIds].slice(-MY_IDS)));
}

function isMine(id) {
  return Boolean(id) && state.myIds.has(id);
}

function displayName(id) {
  if (isMine(id)) return state.name;
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
    this.loading = 0; // history loads in progress: the list is not announced meanwhile
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
    if (env.from && !isMine(env.from)) learnName(env.from, d.name);
    const mine = isMine(env.from);
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
  // stay at the end. An item already in place is not moved (a moved item
  // would be announced again).
  insert(li) {
    this.empty.remove();
    const seq = Number(li.dataset.seq || Infinity);
    let before = null;
    for (const other of this.list.children) {
      if (other === li) continue;
      const s = Number(other.dataset.seq || Infinity);
      if (s > seq) { before = other; break; }
    }
    if (li.parentNode === this.list && (before ? li.nextElementSibling === before : !li.nextElementSibling)) return;
    if (li.dataset.seq && !li.dataset.estimated) {
      // A stored message's time bounds the estimated times of our own
      // messages stored before it (see send).
      const ts = li.querySelector("time").dateTime;
      for (let p = before ? before.previousElementSibling : this.list.lastElementChild; p; p = p.previousElementSibling) {
        if (p === li) continue;
        if (!p.dataset.estimated && p.dataset.seq) break; // it bounded those before it
        if (p.dataset.estimated && Number(p.dataset.seq) < seq && later(p.querySelector("time").dateTime, ts)) setTime(p, ts);
      }
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

function openSocket() {
  const socket = connect(NS, { rooms: [...state.rooms.keys()] });
  state.socket = socket;
  renderStatus("connecting");
  socket.on("connect", onConnected);
  socket.on("disconnect", () => {
    renderStatus("reconnecting");
    for (const m of state.sending) markSent(m.li, "waiting", "waiting for the connection…");
  });
  socket.on("reconnecting", () => renderStatus("reconnecting"));
  socket.on("reset", (d) => {
    // Say what really happened: the connection was not restored (its
    // rooms' messages were replayed: nothing is missing), or messages
    // could not be replayed. Either way the history is read again.
    const reason = String(d.reason || "");
    const lost = /^the connection was not restored: (.*?); it continues as a new connection/.exec(reason);
    if (lost) note(`Back as a new connection: the server did not restore the old one (${lost[1]}). Missed messages were replayed; reloading history.`);
    else note(`Some messages could not be replayed (${reason || "no reason given"}); reloading history.`);
    for (const room of state.rooms.values()) loadHistory(room);
  });
  socket.on("error", (d) => note("Server error: " + (d.detail || d.title || d.message || d)));
  socket.on("chat message", (d, env) => onChat(env));
  socket.on("presence", (d, env) => onPresence(env));
  socket.on("iam", (d, env) => learnName(env.from, d && d.name));
  socket.on("typing", (d, env) => onTyping(env));
}

// onConnected runs on every (re)connection, once the socket's rooms are in.
// When the server restored the connection, the missed messages follow by
// themselves; otherwise (first connect, or past the recovery window) the
// rooms' history fills the gap (joined first, then read: every message is
// either live or in history, duplicates dropped by id).
function onConnected(info) {
  const first = stats.connects === 0;
  stats.connects++;
  stats.id = info.id;
  stats.restored = info.restored;
  state.me = info;
  rememberId(info.id);
  renderStatus("live");
  if (first || !info.restored) {
    // (A connection that was not restored is explained by the reset that
    // follows, with its cause.)
    for (const room of state.rooms.values()) {
      loadHistory(room);
      publishPresence(room.name, "join");
    }
  }
  if (state.current) refreshMembers(state.rooms.get(state.current));
}

async function loadHistory(room) {
  let page;
  try {
    page = await state.socket.request("GET", `/rooms/${enc(room.name)}/messages?limit=300`);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 400) return;
    try { page = await state.socket.request("GET", `/rooms/${enc(room.name)}/messages`); } catch { return; }
  }
  if (state.rooms.get(room.name) !== room) return; // left (or left and joined again) meanwhile
  // Old messages are not news: the list is not announced while they go in.
  room.list.setAttribute("aria-live", "off");
  for (const env of page.messages || []) {
    if (env.event === "chat message") room.add(env, { live: false });
    else if ((env.event === "presence" || env.event === "iam") && env.from && !isMine(env.from)) learnName(env.from, env.data && env.data.name);
  }
  setTimeout(() => room.list.setAttribute("aria-live", "polite"), 0);
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
  const rooms = roomsOf(env).map((r) => state.rooms.get(r)).filter(Boolean);
  if (!rooms.length) return;
  for (const room of rooms) refreshMembers(room);
  const fresh = Date.now() - Date.parse(env.ts) < HELLO_FRESH;
  if (d.action === "join" && fresh && state.me && env.from && env.from !== state.me.id) {
    // Tell the newcomer our name, directly (io.to(socketId).emit).
    state.socket.direct(env.from).emit("iam", { name: state.name });
  }
}

function onTyping(env) {
  count(env);
  const room = state.rooms.get(env.room);
  if (!room || !state.me || env.from === state.me.id) return;
  // A volatile one is live by nature (never replayed); a stored one comes
  // from a page of an earlier version, and may be a replay.
  if (!env.volatile && Date.now() - Date.parse(env.ts) > TYPING_STALE) return;
  const name = (env.data && env.data.name) || displayName(env.from);
  learnName(env.from, name);
  room.typing.set(env.from, { name, until: Date.now() + TYPING_SHOWN });
  renderTyping();
  setTimeout(renderTyping, TYPING_SHOWN + 50);
}

// --- actions ------------------------------------------------------------

// publishPresence tells a room's others (or several rooms' at once) that
// this person came or went.
function publishPresence(room, action) {
  if (!state.socket) return;
  state.socket.broadcast.to(room).emit("presence", { name: state.name, action });
}

// send shows the message at once and emits it to everyone but this socket.
// The SDK's outbox keeps it while the connection is down and sends it when
// back; the cid doubles as the idempotency key, and receivers drop a cid
// they have shown, so a retry is never seen twice.
function send(text) {
  const room = state.rooms.get(state.current);
  if (!room) return;
  const cid = randomId();
  room.cids.add(cid);
  const li = room.item({ who: state.name, text, mine: true, cid });
  if (state.socket.connected) markSent(li, "sending", "sending…");
  else markSent(li, "waiting", "waiting for the connection…");
  room.insert(li);
  const m = { room: room.name, li };
  state.sending.add(m);
  state.socket.broadcast.to(room.name).emit("chat message", { name: state.name, text, cid }, { id: cid })
    .then((res) => {
      state.sending.delete(m);
      const r = state.rooms.get(m.room);
      if (r && res && res.id) {
        r.ids.add(res.id);
        li.dataset.id = res.id;
        li.dataset.seq = String(seqOf(res.id));
        // Its place and time are the stored message's: among the messages
        // that arrived meanwhile, at about the time it was stored (a
        // message typed offline does not keep the time it was typed, which
        // would run backwards among its neighbours). The answer does not
        // say when it was stored: it was by now, and before any message
        // stored after it (those that come later lower it, in insert).
        li.dataset.estimated = "1";
        r.insert(li);
        let t = new Date().toISOString();
        for (let n = li.nextElementSibling; n; n = n.nextElementSibling) {
          if (n.dataset.seq && !n.dataset.estimated) {
            if (later(t, n.querySelector("time").dateTime)) t = n.querySelector("time").dateTime;
            break;
          }
        }
        setTime(li, t);
      }
      markSent(li, "sent", "");
    }, (err) => {
      state.sending.delete(m);
      markSent(li, "failed", "not sent: " + err.message);
    });
}

// later compares two RFC 3339 times (to the millisecond: a local time
// has no more, so one equal to a stored time's millisecond is not after it).
function later(a, b) {
  return Date.parse(a) > Date.parse(b);
}

function setTime(li, iso) {
  const t = li.querySelector("time");
  t.dateTime = iso;
  t.textContent = timeOf(iso);
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
    state.socket.join(name).then(async () => {
      await loadHistory(room);
      publishPresence(name, "join");
      refreshMembers(room);
    }, (err) => note(`Could not join ${name}: ${err.message}`));
  }
  selectRoom(name);
}

async function leaveRoom(name) {
  const room = state.rooms.get(name);
  if (!room) return;
  const hadFocus = document.activeElement === $("leave");
  state.rooms.delete(name);
  room.tab.remove();
  room.list.remove();
  saveRooms();
  const next = state.rooms.keys().next();
  selectRoom(next.done ? "" : next.value);
  // The Leave button may be disabled now: the focus goes where the next
  // action is (the message box, or joining a room when none is left).
  if (hadFocus) (next.done ? $("join-room") : $("text")).focus();
  try {
    await state.socket.leave(name);
  } catch { /* the SDK leaves it on the next connect */ }
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
  $("rooms-summary").textContent = has ? "# " + name : "";
  if (has && state.me) refreshMembers(state.rooms.get(name));
  sessionStorage.setItem("roomcast.chat.current", name);
}

// --- presence and typing -----------------------------------------------

const refreshing = new Map();
function refreshMembers(room) {
  if (!room || refreshing.get(room.name)) return;
  refreshing.set(room.name, true);
  state.socket.request("GET", `/rooms/${enc(room.name)}/members`)
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
  if (!state.socket || !state.socket.connected || !state.current) return;
  state.lastTyping = Date.now();
  // Volatile: sent now or dropped (a late "typing" means nothing), never
  // stored, so the history holds only what was said.
  state.socket.volatile.broadcast.to(state.current).emit("typing", { name: state.name });
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
  openSocket();
  $("text").focus();
}

$("name-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = $("name").value.trim();
  if (name) start(name);
});
$("rename").addEventListener("click", () => {
  localStorage.removeItem("roomcast.chat.name");
  if (state.socket) state.socket.disconnect();
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
  if (state.current && state.socket && state.socket.connected) refreshMembers(state.rooms.get(state.current));
}, 10000);
window.addEventListener("pagehide", () => {
  // One emit to every room (the SDK sends small emits with keepalive, so
  // this one outlives the page).
  if (state.rooms.size) publishPresence([...state.rooms.keys()], "leave");
});

// On a phone the rooms and the people are folded away, so that the
// conversation and its message box fill the screen; on a wider screen they
// are open beside it.
const phone = matchMedia("(max-width: 40rem)");
function fold() {
  $("rooms-fold").open = !phone.matches;
  $("people-fold").open = !phone.matches;
}
phone.addEventListener("change", fold);
fold();

const saved = localStorage.getItem("roomcast.chat.name");
if (saved) {
  $("name").value = saved;
  start(saved);
}
