// Admin view: node and cluster status, namespaces, rooms with their members
// and history, a live tail of any room, connections (disconnect), consumer
// groups in words a person reads, dead letters (replay, drop), the message
// rate, and a form to publish. Refreshed every 2 s from the REST API.
//
// Login: when the server has credentials configured for any namespace
// (GET /status says so), the page asks for an API key or an admin JWT,
// keeps it in sessionStorage (this tab only) and sends it as Bearer. An open
// namespace without credentials (a dev setup) needs none, and the page says
// so: anyone who reaches the server can do what it does.
import { ApiError, readEventStream, request } from "/sdk/roomcast.js";
import { ROOM_RE, announce, el, enc, keepFocus, timeOf } from "./ui.js";

const EVERY = 2000;
const WINDOW = 10000; // the rate is averaged over this
const TAIL_MAX = 200; // events kept in the live tail
const CRED_KEY = "roomcast.admin.credential";
const $ = (id) => document.getElementById(id);

// Observable state for debugging (and the browser tests).
window.roomcastAdmin = { tail: [] };

const state = {
  ns: sessionStorage.getItem("roomcast.admin.ns") || "default",
  status: null, // the last GET /status
  credential: sessionStorage.getItem(CRED_KEY) || "",
  needsLogin: false,
  paused: false,
  watched: loadWatched(),
  room: "", // the room shown in the room panel
  groups: [],
  busy: false,
  // Rate: per room, the id of the last message seen (history is read after
  // it); ids counted once across rooms; counts per poll for the window.
  cursors: new Map(),
  counted: new Set(),
  samples: [], // {t, published, delivered} from /metrics, or {t, n} from history
  since: Date.now(),
  // whether /metrics has the counters (undefined: not tried yet); ?rate=history
  // measures from the histories even when it has
  metrics: new URLSearchParams(location.search).get("rate") === "history" ? false : undefined,
  tail: null, // {room, abort}
};

function loadWatched() {
  try {
    const w = JSON.parse(localStorage.getItem("roomcast.admin.watched") || "null");
    if (Array.isArray(w)) return w.filter((r) => ROOM_RE.test(r));
  } catch { /* default */ }
  return ["pickups"];
}

const P = (path) => `/ns/${enc(state.ns)}${path}`;

// credentialFor is the credential to send to a namespace: none to an open
// namespace without credentials (it would refuse one it cannot check).
function credentialFor(ns) {
  const n = state.status && state.status.namespaces.find((x) => x.name === ns);
  return n && n.auth === "open" && !n.credentials ? undefined : state.credential || undefined;
}

// api calls the shown namespace's API with the credential, if any. A
// refused credential (401) sends the page back to its login.
async function api(method, path, body) {
  try {
    return await request(method, P(path), { body, token: credentialFor(state.ns) });
  } catch (err) {
    if (err instanceof ApiError && err.status === 401 && state.needsLogin) showLogin("The server refused the credential: " + err.message);
    throw err;
  }
}

function cell(text, label, cls) {
  return el("td", { class: cls, "data-label": label }, String(text));
}

// fill replaces a table's rows, keeping the focus on the control that had
// it (a Disconnect or Replay button survives the refresh).
function fill(table, rows, emptyText, cols) {
  keepFocus(() => {
    const body = $(table).tBodies[0];
    body.replaceChildren(...rows);
    if (!rows.length) body.append(el("tr", {}, el("td", { colspan: cols, class: "empty" }, emptyText)));
  });
}

function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  if (d) return `${d} d ${h} h`;
  if (h) return `${h} h ${m} min`;
  if (m) return `${m} min ${s % 60} s`;
  return `${s} s`;
}

// --- login ----------------------------------------------------------------

function showLogin(why) {
  $("login").hidden = false;
  $("login-error").textContent = why || "";
  $("open-note").hidden = true;
  for (const s of document.querySelectorAll("[data-needs-login]")) s.hidden = true;
  $("signout").hidden = true;
  $("who").hidden = true;
  $("credential").focus();
}

function showApp() {
  $("login").hidden = true;
  for (const s of document.querySelectorAll("[data-needs-login]")) s.hidden = s.id === "room-panel" && !state.room;
  $("signout").hidden = !state.credential;
  $("who").hidden = !state.credential;
  $("who").textContent = state.credential ? "Signed in (" + (state.credential.split(".").length === 3 ? "JWT" : "API key") + ")" : "";
  openNote();
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const cred = $("credential").value.trim();
  const ns = (state.status.namespaces.find((n) => n.auth === "jwt" || n.credentials) || { name: state.ns }).name;
  $("login-error").textContent = "";
  try {
    await request("GET", `/ns/${enc(ns)}/rooms`, { token: cred });
  } catch (err) {
    $("login-error").textContent = err instanceof ApiError && (err.status === 401 || err.status === 403)
      ? "Not accepted by namespace " + ns + ": " + err.message : "Could not check it: " + err.message;
    $("credential").focus();
    return;
  }
  state.credential = cred;
  sessionStorage.setItem(CRED_KEY, cred);
  $("credential").value = "";
  state.ns = ns;
  sessionStorage.setItem("roomcast.admin.ns", ns);
  showApp();
  announce("Signed in");
  $("server-h").setAttribute("tabindex", "-1");
  $("server-h").focus();
  refresh();
});

$("signout").addEventListener("click", () => {
  state.credential = "";
  sessionStorage.removeItem(CRED_KEY);
  stopTail();
  showLogin("Signed out.");
});

// openNote says what an open namespace means, for the one shown.
function openNote() {
  const n = state.status && state.status.namespaces.find((x) => x.name === state.ns);
  const note = $("open-note");
  if (!n || n.auth !== "open") {
    note.hidden = true;
    return;
  }
  note.hidden = false;
  note.textContent = n.credentials
    ? `Namespace ${n.name} is open: its API needs no credential, so what this page shows and does can also be done without signing in. Disconnecting a connection needs the admin rights of your credential.`
    : `Namespace ${n.name} is open and has no credentials configured (a development setup): anyone who can reach this server can read and publish everything this page shows, without signing in. Disconnecting someone else’s connection needs admin rights, which only a credential grants: configure api_keys (or jwt_keys) for the namespace to use it, and this page will ask for one.`;
}

// --- refresh --------------------------------------------------------------

async function refresh() {
  if (state.busy || (state.needsLogin && !state.credential)) return;
  state.busy = true;
  const st = $("updated");
  try {
    await renderStatus();
    const { rooms = [] } = await api("GET", "/rooms");
    fill("rooms-table", rooms.map((r) => el("tr", { dataset: { room: r.name } },
      el("th", { scope: "row", "data-label": "Room" }, r.name), cell(r.members, "Members", "num members"),
      el("td", { "data-label": "" }, el("button", { type: "button", class: "secondary small", "data-focus": "open:" + r.name,
        "aria-label": "Open room " + r.name, onclick: () => openRoom(r.name) }, "Open")))), "No room has members.", 3);

    const conns = new Map(); // id → {rooms, connected}
    await Promise.all(rooms.map(async (r) => {
      const res = await api("GET", `/rooms/${enc(r.name)}/members`).catch(() => ({ members: [] }));
      for (const m of res.members || []) {
        const c = conns.get(m.id) || { rooms: [], connected: m.connected_at };
        c.rooms.push(r.name);
        conns.set(m.id, c);
      }
    }));
    fill("conns-table", [...conns].sort((a, b) => a[1].connected.localeCompare(b[1].connected)).map(([id, c]) =>
      el("tr", { dataset: { conn: id } }, el("td", { "data-label": "Connection" }, el("code", {}, id)),
        cell(c.rooms.sort().join(", "), "Rooms", "conn-rooms"),
        el("td", { "data-label": "Connected" }, el("time", { datetime: c.connected }, new Date(c.connected).toLocaleTimeString())),
        el("td", { "data-label": "" }, disconnectButton(id)))),
    "No connection is in a room.", 4);

    const all = [...new Set([...rooms.map((r) => r.name), ...state.watched, ...(state.room ? [state.room] : [])])].sort();
    const groups = [];
    await Promise.all(all.map(async (room) => {
      const res = await api("GET", `/rooms/${enc(room)}/groups`).catch(() => ({ groups: [] }));
      groups.push(...(res.groups || []));
    }));
    groups.sort((a, b) => (a.room + "\0" + a.group).localeCompare(b.room + "\0" + b.group));
    state.groups = groups;
    fill("groups-table", groups.map((g) => el("tr", { dataset: { room: g.room, group: g.group } },
      el("th", { scope: "row", "data-label": "Group" }, el("span", {}, `${g.group} `, el("span", { class: "hint" }, `of ${g.room}`))),
      cell(g.members.length, "Members online", "num members"),
      cell(g.pending, "Waiting for a member", "num pending"), cell(g.in_flight, "With a member", "num in-flight"),
      cell(g.redelivered, "Offered again", "num redelivered"), cell(g.dead_letters, "Dead letters", "num dead"),
      cell(g.config.ack_wait, "Time to acknowledge", "ack-wait"))),
    "No consumer group in these rooms.", 7);
    await renderDead(groups);
    if (state.room) await renderRoom();
    await measure(all);
    st.dataset.state = "live";
    st.textContent = (state.paused ? "Paused at " : "Updated ") + new Date().toLocaleTimeString();
  } catch (err) {
    if (st.dataset.state !== "reconnecting") announce("Server unreachable");
    st.dataset.state = "reconnecting";
    st.textContent = "Server unreachable: " + (err.message || err) + " — retrying";
  } finally {
    state.busy = false;
  }
}

async function renderStatus() {
  const s = await request("GET", "/status");
  state.status = s;
  $("s-version").textContent = s.version;
  $("s-node").textContent = s.node;
  $("s-cluster").textContent = s.cluster || "none (a single node)";
  $("s-uptime").textContent = duration(s.uptime_seconds);
  $("s-conns").textContent = String(s.connections);
  $("nodes").replaceChildren(...s.nodes.map((n) => el("li", { dataset: { node: n.name } }, n.name, n.self ? el("span", { class: "hint" }, " (this one)") : null)));
  fill("ns-table", s.namespaces.map((n) => el("tr", { dataset: { ns: n.name } },
    el("th", { scope: "row", "data-label": "Namespace" }, n.name),
    cell(n.auth === "jwt" ? "JWT" : n.credentials ? "open (credentials set)" : "open", "Access", "auth"),
    cell(n.connections, "Connections", "num connections"), cell(n.rooms, "Rooms", "num rooms"))), "No namespace.", 4);
  const select = $("ns");
  const names = s.namespaces.map((n) => n.name);
  if (names.join() !== [...select.options].map((o) => o.value).join()) {
    select.replaceChildren(...names.map((n) => el("option", { value: n, selected: n === state.ns }, n)));
  }
  openNote();
}

function disconnectButton(id) {
  return el("button", { type: "button", class: "secondary small danger", "data-focus": "disconnect:" + id,
    "aria-label": "Disconnect " + id, onclick: () => disconnect(id) }, "Disconnect");
}

async function disconnect(id) {
  const out = $("conns-result");
  try {
    await api("DELETE", `/connections/${enc(id)}`);
    out.textContent = `Disconnected ${id}.`;
    announce(`Disconnected ${id}`);
  } catch (err) {
    out.textContent = `Not disconnected: ${err.message}` + (err.status === 401 || err.status === 403 ? " (this needs admin rights)" : "");
    announce(out.textContent);
  }
  refresh();
}

// --- a room: members and history ---------------------------------------------

function openRoom(room) {
  state.room = room;
  $("room-panel").hidden = false;
  $("room-h").textContent = "Room " + room;
  $("room-history").setAttribute("aria-label", "History of " + room);
  renderRoom();
  $("room-h").focus();
}

$("room-close").addEventListener("click", () => {
  const room = state.room;
  state.room = "";
  $("room-panel").hidden = true;
  document.querySelector(`[data-focus="open:${CSS.escape(room)}"]`)?.focus();
});
$("room-tail").addEventListener("click", () => {
  $("tail-room").value = state.room;
  startTail(state.room);
});

async function renderRoom() {
  const room = state.room;
  const [members, history] = await Promise.all([
    api("GET", `/rooms/${enc(room)}/members`).catch(() => ({ members: [] })),
    api("GET", `/rooms/${enc(room)}/messages?limit=50`).catch((err) => ({ messages: [], error: err })),
  ]);
  if (room !== state.room) return;
  fill("room-members", (members.members || []).map((m) => el("tr", { dataset: { conn: m.id } },
    el("td", { "data-label": "Connection" }, el("code", {}, m.id)),
    el("td", { "data-label": "Connected" }, el("time", { datetime: m.connected_at }, new Date(m.connected_at).toLocaleTimeString())),
    el("td", { "data-label": "" }, disconnectButton(m.id)))), "Nobody is in this room.", 3);
  const list = $("room-history");
  const items = (history.messages || []).slice().reverse().map(eventItem);
  if (history.error) items.push(el("li", { class: "error" }, "History refused: " + history.error.message));
  if (!items.length) items.push(el("li", { class: "empty" }, "No message stored in this room."));
  list.replaceChildren(...items);
}

// eventItem shows one message: time, event, sender, data.
function eventItem(env) {
  let data = JSON.stringify(env.data);
  if (data && data.length > 300) data = data.slice(0, 300) + "…";
  return el("li", { dataset: { id: env.id || "", event: env.event || "" } },
    el("time", { datetime: env.ts || "" }, timeOf(env.ts)), " ", el("strong", {}, env.event || "(no event)"),
    env.from ? el("span", { class: "hint" }, " from " + env.from.slice(0, 8)) : null,
    env.to ? el("span", { class: "hint" }, " to " + env.to.slice(0, 8)) : null,
    " ", el("code", { class: "data" }, data ?? ""));
}

// --- live tail --------------------------------------------------------------

function stopTail() {
  if (!state.tail) return;
  state.tail.abort.abort();
  state.tail = null;
  $("tail-stop").disabled = true;
  $("tail-start").disabled = false;
  $("tail-state").textContent = "Stopped.";
}

// startTail opens a stream on the room (GET /rooms/{room}/events) with the
// credential as a header and shows every event; after a drop it resumes
// from the last id. Mercure's debug UI does the same for a topic.
async function startTail(room) {
  if (!ROOM_RE.test(room)) {
    $("tail-state").textContent = "Not a valid room name.";
    return;
  }
  stopTail();
  const tail = { room, abort: new AbortController(), last: "" };
  state.tail = tail;
  $("tail-stop").disabled = false;
  $("tail-start").disabled = true;
  $("tail").replaceChildren();
  window.roomcastAdmin.tail = [];
  const url = P(`/rooms/${enc(room)}/events`);
  let attempt = 0;
  while (state.tail === tail) {
    let end = "";
    try {
      const headers = { Accept: "text/event-stream" };
      const cred = credentialFor(state.ns);
      if (cred) headers.Authorization = "Bearer " + cred;
      if (tail.last) headers["Last-Event-ID"] = tail.last;
      const res = await fetch(url, { headers, signal: tail.abort.signal, cache: "no-store" });
      if (res.status === 204 || (res.status >= 400 && res.status < 500 && res.status !== 429)) {
        let detail = `HTTP ${res.status}`;
        try { detail = (await res.json()).detail || detail; } catch { /* not JSON */ }
        $("tail-state").textContent = `The server refused the tail of ${room}: ${detail}`;
        announce($("tail-state").textContent);
        if (state.tail === tail) stopTail();
        return;
      }
      if (!res.ok) throw new Error("HTTP " + res.status);
      await readEventStream(res.body, (ev) => {
        if (ev.id) tail.last = ev.id;
        if (ev.event === "connected") {
          attempt = 0;
          $("tail-state").textContent = `Watching ${room} in namespace ${state.ns}.`;
          announce(`Watching ${room}`);
          return;
        }
        if (ev.event === "end") {
          try { end = JSON.parse(ev.data).reason; } catch { /* none */ }
          return;
        }
        let env;
        try { env = JSON.parse(ev.data); } catch { env = { event: ev.event, data: ev.data }; }
        if (ev.event === "reset") env = { event: "reset", data: env };
        addTail(env);
      });
    } catch (err) {
      if (tail.abort.signal.aborted) return;
    }
    if (state.tail !== tail) return;
    if (end === "disconnected") {
      $("tail-state").textContent = "The server disconnected the tail.";
      stopTail();
      return;
    }
    $("tail-state").textContent = `Reconnecting to ${room}…`;
    await new Promise((r) => setTimeout(r, Math.min(10000, 500 * 2 ** attempt++)));
  }
}

function addTail(env) {
  window.roomcastAdmin.tail.push({ id: env.id, event: env.event, data: env.data });
  const list = $("tail");
  const box = $("tail-box");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  list.append(eventItem(env));
  while (list.children.length > TAIL_MAX) list.firstElementChild.remove();
  if (atBottom) box.scrollTop = box.scrollHeight;
}

$("tail-form").addEventListener("submit", (e) => {
  e.preventDefault();
  startTail($("tail-room").value.trim());
});
$("tail-stop").addEventListener("click", () => {
  stopTail();
  $("tail-room").focus();
});

// --- dead letters -------------------------------------------------------------

async function renderDead(groups) {
  const rows = [];
  for (const g of groups.filter((x) => x.dead_letters > 0)) {
    const path = `/rooms/${enc(g.room)}/groups/${enc(g.group)}`;
    const res = await api("GET", `${path}/dead?limit=50`).catch(() => ({ dead_letters: [] }));
    for (const d of res.dead_letters || []) {
      const k = `${g.room}/${g.group}/${d.seq}`;
      let data = JSON.stringify(d.message.data);
      if (data && data.length > 120) data = data.slice(0, 120) + "…";
      rows.push(el("tr", { dataset: { room: g.room, group: g.group, seq: String(d.seq) } },
        el("td", { "data-label": "Group" }, el("span", {}, `${g.group} `, el("span", { class: "hint" }, `of ${g.room}`))),
        el("td", { "data-label": "Message" }, el("span", {}, el("strong", {}, d.message.event), " ", el("code", { class: "data" }, data))),
        cell(d.deliveries, "Offered", "num"),
        el("td", { "data-label": "Parked" }, el("time", { datetime: d.parked_at }, timeOf(d.parked_at))),
        cell(d.reason || "", "Why"),
        el("td", { "data-label": "" }, el("div", { class: "buttons" },
          el("button", { type: "button", class: "small replay", "data-focus": "replay:" + k, "aria-label": `Replay dead letter ${d.seq} of ${g.group}`, onclick: () => settleDead(g, d.seq, "replay") }, "Replay"),
          el("button", { type: "button", class: "secondary small danger drop", "data-focus": "drop:" + k, "aria-label": `Drop dead letter ${d.seq} of ${g.group}`, onclick: () => settleDead(g, d.seq, "drop") }, "Drop")))));
    }
  }
  fill("dead-table", rows, "No dead letter: every message was acknowledged or is still being offered.", 6);
}

// settleDead replays or drops a dead letter, then puts the focus on the same
// action of the next row (or the section's heading when none is left).
async function settleDead(g, seq, what) {
  const path = `/rooms/${enc(g.room)}/groups/${enc(g.group)}/dead/${seq}`;
  const rows = [...document.querySelectorAll("#dead-table tbody tr[data-seq]")];
  const i = rows.findIndex((r) => r.dataset.group === g.group && r.dataset.room === g.room && r.dataset.seq === String(seq));
  const next = rows[i + 1] || rows[i - 1];
  try {
    if (what === "replay") await api("POST", `${path}/replay`);
    else await api("DELETE", path);
    announce(`${what === "replay" ? "Replayed" : "Dropped"} dead letter ${seq} of ${g.group}`);
  } catch (err) {
    announce(`Not ${what === "replay" ? "replayed" : "dropped"}: ${err.message}`);
  }
  await refresh();
  const target = next && document.querySelector(`[data-focus="${what}:${next.dataset.room}/${next.dataset.group}/${next.dataset.seq}"]`);
  (target || $("dead-h")).focus();
}

// --- rate ---------------------------------------------------------------------

// The rate comes from the server's Prometheus counters when /metrics is
// there: messages published through this server, and copies handed to its
// connections, per second over the last 10 s. Without /metrics it falls back
// to the rooms' histories (see measureHistory), as ?rate=history does.
async function measure(rooms) {
  const now = Date.now();
  let text = null;
  if (state.metrics !== false) {
    try {
      const res = await fetch("/metrics");
      if (res.ok) text = await res.text();
    } catch { /* fall back */ }
  }
  const published = text && counter(text, "roomcast_messages_published_total");
  if (published === null || published === undefined) {
    state.metrics = false;
    return measureHistory(rooms, now);
  }
  state.metrics = true;
  const delivered = counter(text, "roomcast_messages_delivered_total") ?? 0;
  state.samples.push({ t: now, published, delivered });
  // The base of the deltas is the oldest sample within the window (or the
  // first one, while the page is younger than the window).
  while (state.samples.length > 2 && now - state.samples[1].t >= WINDOW) state.samples.shift();
  const base = state.samples[0];
  const span = (now - base.t) / 1000;
  const n = Math.max(0, published - base.published); // a restart resets the counters
  const d = Math.max(0, delivered - base.delivered);
  show(span > 0 ? n / span : 0, n,
    `${n} published and ${d} delivered to connections ${over(span)}` + (span > 0 ? ` (${(d / span).toFixed(1)} deliveries/s)` : ""),
    `From this server’s counters at /metrics (roomcast_messages_published_total and
     roomcast_messages_delivered_total of namespace ${state.ns}), read every 2 s: messages published through this
     server, whatever their room. In a cluster, each node counts its own publishes.`);
}

// over words the measuring span: "over the last 10 s" once the window is
// full, "since this page opened 4 s ago" before.
function over(span) {
  return span * 1000 >= WINDOW - EVERY / 2 ? `over the last ${WINDOW / 1000} s` : `since this page started measuring, ${Math.round(span)} s ago`;
}

// counter returns the value of a Prometheus counter of the shown namespace
// (undefined when the text has no such series).
function counter(text, name) {
  for (const line of text.split("\n")) {
    if (!line.startsWith(name + "{")) continue;
    const m = /^[^{]+\{([^}]*)\}\s+(\S+)/.exec(line);
    if (m && m[1].split(",").includes(`ns="${state.ns}"`)) return Number(m[2]);
  }
  return undefined;
}

function show(rate, count, detail, source) {
  $("rate").textContent = rate.toFixed(1);
  $("rate").dataset.count = String(count);
  $("rate-detail").textContent = detail;
  if ($("rate-source").dataset.text !== source) {
    $("rate-source").dataset.text = source;
    $("rate-source").textContent = source.replace(/\s+/g, " ");
  }
}

// measureHistory reads each room's history after its cursor and counts the
// messages not counted yet (a namespace-wide message is in every room's
// history, a multi-room one in each of its rooms). A room's first read is
// its starting point and counts nothing; a room whose history was empty
// then counts everything that appears in it.
const EMPTY = "";
async function measureHistory(rooms, now) {
  let fresh = 0;
  await Promise.all(rooms.map(async (room) => {
    const cursor = state.cursors.get(room);
    const query = cursor === undefined ? "limit=1" : cursor === EMPTY ? "limit=1000" : `after=${enc(cursor)}&limit=1000`;
    let page;
    try {
      page = await api("GET", `/rooms/${enc(room)}/messages?${query}`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 410) state.cursors.delete(room); // the store was recreated
      return;
    }
    for (const m of page.messages || []) {
      if (cursor === undefined) { state.counted.add(m.id); continue; } // the starting point
      if (!state.counted.has(m.id)) {
        state.counted.add(m.id);
        fresh++;
      }
    }
    state.cursors.set(room, page.last || cursor || EMPTY);
  }));
  if (state.counted.size > 20000) state.counted = new Set([...state.counted].slice(-10000));
  state.samples.push({ t: now, n: fresh });
  state.samples = state.samples.filter((s) => now - s.t <= WINDOW);
  const total = state.samples.reduce((a, s) => a + (s.n || 0), 0);
  const span = Math.min(WINDOW, Math.max(EVERY, now - state.since)) / 1000;
  show(total / span, total, `${total} message${total === 1 ? "" : "s"} ${over(span)}`,
    `Counted by polling the history of the rooms on this page
     (GET /rooms/{room}/messages?after=…, every 2 s), each message once: messages to those rooms and to the whole
     namespace. Direct messages, and rooms that have no members and are not opened by name, are not counted.`);
}

// --- watched rooms, namespace, publish, pause ----------------------------------

function renderWatched() {
  $("watched").replaceChildren(...state.watched.map((r) => el("li", {},
    el("button", { type: "button", class: "link", "data-focus": "watched:" + r, onclick: () => openRoom(r) }, r), " ",
    el("button", { type: "button", class: "secondary small", "aria-label": "Forget " + r, onclick: () => {
      state.watched = state.watched.filter((x) => x !== r);
      localStorage.setItem("roomcast.admin.watched", JSON.stringify(state.watched));
      renderWatched();
      $("watch").focus();
      refresh();
    } }, "×"))));
}

$("watch-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const room = $("watch").value.trim();
  if (!ROOM_RE.test(room)) return;
  if (!state.watched.includes(room)) state.watched.push(room);
  localStorage.setItem("roomcast.admin.watched", JSON.stringify(state.watched));
  $("watch").value = "";
  renderWatched();
  openRoom(room);
  refresh();
});

$("ns").addEventListener("change", (e) => {
  state.ns = e.target.value;
  sessionStorage.setItem("roomcast.admin.ns", state.ns);
  state.cursors.clear();
  state.samples = [];
  state.since = Date.now();
  state.room = "";
  $("room-panel").hidden = true;
  stopTail();
  openNote();
  refresh();
});

$("pause").addEventListener("click", () => {
  state.paused = !state.paused;
  $("pause").setAttribute("aria-pressed", String(state.paused));
  $("pause").textContent = state.paused ? "Resume updates" : "Pause updates";
  if (!state.paused) refresh();
});

const list = (s) => s.split(",").map((x) => x.trim()).filter(Boolean);

$("pub-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const out = $("pub-result");
  out.classList.remove("error");
  let data;
  try {
    data = JSON.parse($("pub-data").value || "null");
  } catch (err) {
    out.classList.add("error");
    out.textContent = "Data is not JSON: " + err.message;
    return;
  }
  const body = { event: $("pub-event").value.trim(), data };
  const rooms = list($("pub-rooms").value);
  const except = list($("pub-except").value);
  if (rooms.length) body.rooms = rooms;
  if (except.length) body.except = except;
  try {
    const res = await api("POST", "/messages", body);
    out.textContent = `Stored as ${res.id}, to ${rooms.length ? rooms.join(", ") : `the whole namespace ${state.ns}`}.`;
    out.dataset.id = res.id;
  } catch (err) {
    out.classList.add("error");
    const fields = err.problem && err.problem.errors ? " (" + err.problem.errors.map((f) => `${f.field}: ${f.message}`).join("; ") + ")" : "";
    out.textContent = "Not published: " + err.message + fields;
  }
});

// --- start ----------------------------------------------------------------------

async function start() {
  renderWatched();
  try {
    state.status = await request("GET", "/status");
  } catch (err) {
    $("updated").dataset.state = "reconnecting";
    $("updated").textContent = "Server unreachable: " + err.message + " — retrying";
    setTimeout(start, EVERY);
    return;
  }
  const nss = state.status.namespaces;
  state.needsLogin = nss.some((n) => n.auth === "jwt" || n.credentials);
  if (!nss.some((n) => n.name === state.ns) && nss.length) state.ns = nss[0].name;
  if (state.needsLogin && !state.credential) showLogin("");
  else showApp();
  refresh();
  setInterval(() => { if (!state.paused) refresh(); }, EVERY);
}
start();
