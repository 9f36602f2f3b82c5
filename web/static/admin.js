// Admin view: polls the REST API every 2 s (namespaces, rooms, members,
// consumer groups), measures the message rate from room histories, and
// publishes to any room.
import { ApiError, request } from "/sdk/roomcast.js";
import { ROOM_RE, el, enc } from "./ui.js";

const EVERY = 2000;
const WINDOW = 10000; // the rate is averaged over this
const $ = (id) => document.getElementById(id);

const state = {
  ns: "default",
  watched: loadWatched(),
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
};

function loadWatched() {
  try {
    const w = JSON.parse(localStorage.getItem("roomcast.admin.watched") || "null");
    if (Array.isArray(w)) return w.filter((r) => ROOM_RE.test(r));
  } catch { /* default */ }
  return ["pickups"];
}

const P = (path) => `/ns/${enc(state.ns)}${path}`;

function cell(text, cls) {
  return el("td", { class: cls }, String(text));
}

function fill(table, rows, emptyText, cols) {
  const body = $(table).tBodies[0];
  body.replaceChildren(...rows);
  if (!rows.length) body.append(el("tr", {}, el("td", { colspan: cols, class: "empty" }, emptyText)));
}

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  try {
    const { namespaces = [] } = await request("GET", "/ns");
    fill("ns-table", namespaces.map((n) => el("tr", { dataset: { ns: n.name } },
      el("th", { scope: "row" }, n.name), cell(n.connections, "num connections"), cell(n.rooms, "num rooms"))), "No namespace.", 3);
    const select = $("ns");
    const names = namespaces.map((n) => n.name);
    if (names.join() !== [...select.options].map((o) => o.value).join()) {
      select.replaceChildren(...names.map((n) => el("option", { value: n, selected: n === state.ns }, n)));
    }

    const { rooms = [] } = await request("GET", P("/rooms"));
    fill("rooms-table", rooms.map((r) => el("tr", { dataset: { room: r.name } },
      el("th", { scope: "row" }, r.name), cell(r.members, "num members"))), "No room has members.", 2);

    const conns = new Map(); // id → {rooms, connected}
    await Promise.all(rooms.map(async (r) => {
      const res = await request("GET", P(`/rooms/${enc(r.name)}/members`)).catch(() => ({ members: [] }));
      for (const m of res.members || []) {
        const c = conns.get(m.id) || { rooms: [], connected: m.connected_at };
        c.rooms.push(r.name);
        conns.set(m.id, c);
      }
    }));
    fill("conns-table", [...conns].sort((a, b) => a[1].connected.localeCompare(b[1].connected)).map(([id, c]) =>
      el("tr", { dataset: { conn: id } }, el("td", {}, el("code", {}, id)), cell(c.rooms.sort().join(", "), "conn-rooms"),
        el("td", {}, el("time", { datetime: c.connected }, new Date(c.connected).toLocaleTimeString())))),
    "No connection is in a room.", 3);

    const all = [...new Set([...rooms.map((r) => r.name), ...state.watched])].sort();
    const groups = [];
    await Promise.all(all.map(async (room) => {
      const res = await request("GET", P(`/rooms/${enc(room)}/groups`)).catch(() => ({ groups: [] }));
      groups.push(...(res.groups || []));
    }));
    groups.sort((a, b) => (a.room + "\0" + a.group).localeCompare(b.room + "\0" + b.group));
    fill("groups-table", groups.map((g) => el("tr", { dataset: { room: g.room, group: g.group } },
      el("td", {}, g.room), el("th", { scope: "row" }, g.group), cell(g.members.length, "num members"),
      cell(g.pending, "num pending"), cell(g.in_flight, "num in-flight"), cell(g.redelivered, "num redelivered"),
      cell(g.dead_letters, "num dead"), el("td", {}, el("code", {}, g.ack_floor)), cell(g.config.ack_wait, "ack-wait"))),
    "No consumer group in these rooms.", 9);

    await measure(all);
    const st = $("updated");
    st.dataset.state = "live";
    st.textContent = "Updated " + new Date().toLocaleTimeString();
  } catch (err) {
    const st = $("updated");
    st.dataset.state = "reconnecting";
    st.textContent = "Server unreachable: " + (err.message || err) + " — retrying";
  } finally {
    state.busy = false;
  }
}

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
  // Keep the newest sample at least WINDOW old as the base of the deltas.
  while (state.samples.length > 2 && now - state.samples[1].t >= WINDOW) state.samples.shift();
  const base = state.samples[0];
  const span = (now - base.t) / 1000;
  const n = Math.max(0, published - base.published); // a restart resets the counters
  const d = Math.max(0, delivered - base.delivered);
  show(span > 0 ? n / span : 0, n, span,
    `${n} published and ${d} delivered to connections in the last ${Math.round(span)} s` +
    (span > 0 ? ` (${(d / span).toFixed(1)} deliveries/s)` : ""),
    `From this server’s counters at /metrics (roomcast_messages_published_total and
     roomcast_messages_delivered_total of namespace ${state.ns}), read every 2 s: messages published through this
     server, whatever their room. In a cluster, each node counts its own publishes.`);
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

function show(rate, count, span, detail, source) {
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
      page = await request("GET", P(`/rooms/${enc(room)}/messages?${query}`));
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
  show(total / span, total, span, `${total} message${total === 1 ? "" : "s"} in the last ${Math.round(span)} s`,
    `Counted by polling the history of the rooms on this page
     (GET /rooms/{room}/messages?after=…, every 2 s), each message once: messages to those rooms and to the whole
     namespace. Direct messages, and rooms that have no members and are not watched below, are not counted.`);
}

function renderWatched() {
  $("watched").replaceChildren(...state.watched.map((r) => el("li", {},
    el("code", {}, r), " ",
    el("button", { type: "button", class: "secondary", "aria-label": "Stop watching " + r, onclick: () => {
      state.watched = state.watched.filter((x) => x !== r);
      localStorage.setItem("roomcast.admin.watched", JSON.stringify(state.watched));
      renderWatched();
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
  refresh();
});

$("ns").addEventListener("change", (e) => {
  state.ns = e.target.value;
  state.cursors.clear();
  state.samples = [];
  state.since = Date.now();
  refresh();
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
    const res = await request("POST", P("/messages"), { body });
    out.textContent = `Stored as ${res.id}, to ${rooms.length ? rooms.join(", ") : `the whole namespace ${state.ns}`}.`;
    out.dataset.id = res.id;
  } catch (err) {
    out.classList.add("error");
    const fields = err.problem && err.problem.errors ? " (" + err.problem.errors.map((f) => `${f.field}: ${f.message}`).join("; ") + ")" : "";
    out.textContent = "Not published: " + err.message + fields;
  }
});

$("live").addEventListener("change", () => { if ($("live").checked) refresh(); });
setInterval(() => { if ($("live").checked) refresh(); }, EVERY);
renderWatched();
refresh();
