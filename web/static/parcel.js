// Parcel service demo. A vendor publishes pickups to room "pickups" and
// listens to room "vendor-<name>"; drivers consume "pickups" as consumer
// group "drivers" (each pickup to one of them), acknowledge what they pick
// up and publish "in-transit" and "delivered" to the vendor's room. All of
// it through the SDK: a socket per page, and a group member per driver tab.
import { connect, position, request as rest } from "/sdk/roomcast.js";
import { ROOM_RE, el, enc, randomId, statusText, timeOf } from "./ui.js";

const NS = "/ns/default";
const PICKUPS = "pickups";
const GROUP = "drivers";
const RANK = { requested: 0, "in-transit": 1, delivered: 2 };
const $ = (id) => document.getElementById(id);

// Observable state for debugging (and the browser tests).
window.roomcastParcel = { notices: [], delivered: [] };

const params = new URLSearchParams(location.search);
const vendorName = params.get("vendor");
const driverName = params.get("driver");

// showStatus shows the state of a socket or group on the status line.
function showStatus(source, who) {
  const st = $("status");
  st.hidden = false;
  const render = (s) => { st.dataset.state = s; st.textContent = statusText(s, who); };
  render("connecting");
  source.on("connect", () => render("live"));
  source.on("reconnecting", () => render("reconnecting"));
  source.on("disconnect", () => render("reconnecting"));
  return render;
}

function load(key, fallback) {
  try {
    const v = JSON.parse(localStorage.getItem(key) || "null");
    return v ?? fallback;
  } catch {
    return fallback;
  }
}

// --- vendor -------------------------------------------------------------

const CUSTOMERS = ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov",
  "Ken Thompson", "Margaret Hamilton", "Dennis Ritchie", "Frances Allen", "Donald Knuth"];
const STREETS = ["Analytical Way", "Compiler Lane", "Enigma Road", "Semaphore Street", "Abstraction Ave"];

async function vendor(name) {
  const room = "vendor-" + name;
  const key = (k) => `roomcast.parcel.vendor.${name}.${k}`;
  document.title = `Vendor ${name} · roomcast`;
  $("title").textContent = `Vendor ${name}`;
  $("vendor").hidden = false;
  $("vendor-room").textContent = room;

  // Orders survive a reload in localStorage; their statuses after a reload
  // come from the notices replayed from the stored position.
  const orders = new Map(load(key("orders"), []).map((o) => [o.order, o]));
  const seen = new Set(); // notice message ids handled on this page
  const openedAt = Date.now();
  const save = () => localStorage.setItem(key("orders"), JSON.stringify([...orders.values()]));

  function render() {
    const rows = [...orders.values()].map((o) =>
      el("tr", { dataset: { order: o.order, status: o.status } },
        el("td", {}, el("code", {}, o.order)),
        el("td", {}, o.customer || "—"),
        el("td", {}, el("span", { class: "pill " + o.status }, o.status.replace("-", " ")), o.error ? el("span", { class: "error" }, " " + o.error) : null),
        el("td", {}, o.driver || "—")));
    $("orders").tBodies[0].replaceChildren(...rows);
    if (!rows.length) $("orders").tBodies[0].append(el("tr", {}, el("td", { colspan: 4, class: "empty" }, "No orders yet.")));
    let r = 0, t = 0, d = 0;
    for (const o of orders.values()) {
      if (o.status === "delivered") d++;
      else if (o.status === "in-transit") t++;
      else r++;
    }
    $("n-requested").textContent = String(r);
    $("n-transit").textContent = String(t);
    $("n-delivered").textContent = String(d);
  }

  function onNotice(env) {
    if (seen.has(env.id)) return;
    seen.add(env.id);
    const d = env.data || {};
    if (!d.order) return;
    const o = orders.get(d.order) || { order: d.order, status: "requested" };
    if ((RANK[env.event] ?? -1) >= (RANK[o.status] ?? 0)) {
      o.status = env.event;
      o.driver = d.driver || o.driver;
    }
    orders.set(o.order, o);
    save();
    render();
    window.roomcastParcel.notices.push({ id: env.id, event: env.event, order: d.order });
    const away = Date.parse(env.ts) < openedAt;
    $("notices").prepend(el("li", { dataset: { order: d.order, event: env.event } },
      el("time", { datetime: env.ts }, timeOf(env.ts)), " ",
      el("code", {}, d.order), ` ${env.event === "delivered" ? "delivered" : "in transit"} by ${d.driver || "a driver"}`,
      away ? el("span", { class: "hint" }, " (while you were away)") : null));
  }

  async function loadHistory() {
    const page = await rest("GET", `${NS}/rooms/${enc(room)}/messages?limit=1000`).catch(() =>
      rest("GET", `${NS}/rooms/${enc(room)}/messages`));
    for (const env of page.messages || []) {
      if (env.event === "in-transit" || env.event === "delivered") onNotice(env);
    }
    return page.last || "";
  }

  // Resume from the stored position (without the token, so it also works
  // after the recovery window); a first visit starts from the room's
  // history and resumes right after its last message: no gap either way.
  // The page keeps its own position, so its socket is its own (not shared
  // with other tabs).
  let from = localStorage.getItem(key("last")) || "";
  if (!from) from = await loadHistory().catch(() => "");
  render();
  const socket = connect(NS, { rooms: [room], lastEventId: from, shared: false });
  const notice = (d, env) => {
    onNotice(env);
    localStorage.setItem(key("last"), position(socket.lastEventId));
  };
  socket.on("in-transit", notice).on("delivered", notice);
  socket.on("reset", () => { loadHistory().catch(() => {}); });
  showStatus(socket, "vendor " + name);

  let counter = Number(localStorage.getItem(key("counter")) || "0");
  async function request(customer, address) {
    counter++;
    localStorage.setItem(key("counter"), String(counter));
    const order = `${name}-${counter}-${randomId().slice(0, 4)}`;
    const o = { order, customer, address, status: "requested" };
    orders.set(order, o);
    save();
    render();
    // The order id is the idempotency key: the SDK's retries (after a
    // drop, a restart) cannot store it twice.
    try {
      await socket.to(PICKUPS).emit("pickup", { order, vendor: name, customer, address }, { id: order });
      delete o.error;
    } catch (err) {
      o.error = "not requested: " + err.message;
    }
    save();
    render();
  }

  $("request-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    await request($("customer").value.trim(), $("address").value.trim());
    $("customer").value = "";
    $("address").value = "";
    $("customer").focus();
  });
  $("demo").addEventListener("click", async () => {
    $("demo").disabled = true;
    try {
      for (let i = 0; i < 10; i++) {
        await request(CUSTOMERS[i % CUSTOMERS.length], `${10 + i * 7} ${STREETS[i % STREETS.length]}`);
      }
    } finally {
      $("demo").disabled = false;
    }
  });
}

// --- driver -------------------------------------------------------------

function driver(name) {
  const key = `roomcast.parcel.driver.${name}.jobs`;
  document.title = `Driver ${name} · roomcast`;
  $("title").textContent = `Driver ${name}`;
  $("driver").hidden = false;

  // Jobs this driver picked up survive a reload; offers do not (the server
  // gives them to another member when this tab's connection ends).
  const jobs = new Map(load(key, []).map((j) => [j.order, j]));
  let offered = 0;
  const save = () => localStorage.setItem(key, JSON.stringify([...jobs.values()]
    .filter((j) => j.state !== "offered").map(({ busy, error, job, ...j }) => j)));

  function render() {
    const open = [...jobs.values()].filter((j) => j.state !== "delivered");
    $("jobs").replaceChildren(...open.map(card));
    $("no-jobs").hidden = open.length > 0;
    const done = [...jobs.values()].filter((j) => j.state === "delivered");
    $("done").replaceChildren(...done.map((j) => el("li", { dataset: { order: j.order } },
      el("code", {}, j.order), ` to ${j.customer || "the customer"} (vendor ${j.vendor})`)));
    $("n-offered").textContent = String(offered);
    $("n-picked").textContent = String([...jobs.values()].filter((j) => j.state !== "offered").length);
    $("n-done").textContent = String(done.length);
  }

  // A job goes offered → acked (ours) → picked (the vendor knows it is in
  // transit) → delivered. Buttons are disabled while a request runs, so a
  // double click cannot report twice.
  function card(j) {
    const title = el("h3", { id: "job-" + j.order }, "Order ", el("code", {}, j.order));
    const actions = el("div", { class: "actions" });
    const button = (cls, label, fn) => el("button", { type: "button", class: cls, disabled: j.busy, "aria-describedby": "job-" + j.order, onclick: fn }, label);
    if (j.state === "offered") actions.append(button("pickup", "Pick up", () => pickUp(j)));
    else if (j.state === "acked") actions.append(button("notify", "Tell the vendor it is in transit", () => inTransit(j)));
    else if (j.state === "picked") actions.append(button("deliver", "Mark delivered", () => deliver(j)));
    const offer = j.state === "offered";
    return el("li", { class: "job", dataset: { order: j.order, state: j.state } }, title,
      el("p", {}, `${j.customer || "?"}, ${j.address || "?"}`),
      el("p", { class: "hint" }, `Vendor ${j.vendor} · `,
        el("span", { class: "pill " + (offer ? "requested" : "in-transit") }, offer ? "offered" : "picked up"),
        j.delivery > 1 ? ` · delivery #${j.delivery}` : ""),
      j.error ? el("p", { class: "error", role: "alert" }, j.error) : null,
      actions);
  }

  async function step(j, fn) {
    if (j.busy) return;
    j.busy = true;
    j.error = "";
    render();
    try {
      await fn();
    } finally {
      j.busy = false;
      save();
      render();
    }
  }

  function notify(j, event) {
    return socket.to("vendor-" + j.vendor).emit(event, { order: j.order, driver: name }, { id: `${j.order}:${event}` });
  }

  // pickUp acknowledges the delivery first: once acknowledged, the pickup
  // is ours and will not go to another driver; only then is the vendor told.
  function pickUp(j) {
    return step(j, async () => {
      let mine;
      try {
        mine = await j.job.ack();
      } catch (err) {
        j.error = "Could not pick up: " + err.message;
        return;
      }
      if (!mine) { // it went to another driver
        jobs.delete(j.order);
        return;
      }
      j.state = "acked";
      await sendInTransit(j);
    });
  }

  function inTransit(j) {
    return step(j, () => sendInTransit(j));
  }

  async function sendInTransit(j) {
    try {
      await notify(j, "in-transit");
      j.state = "picked";
    } catch (err) {
      j.error = "The vendor was not told: " + err.message;
    }
  }

  function deliver(j) {
    return step(j, async () => {
      try {
        await notify(j, "delivered");
      } catch (err) {
        j.error = "Could not report the delivery: " + err.message;
        return;
      }
      j.state = "delivered";
      window.roomcastParcel.delivered.push(j.order);
    });
  }

  function onPickup(job) {
    const d = job.data || {};
    if (job.event !== "pickup" || !d.order || !d.vendor || !ROOM_RE.test("vendor-" + d.vendor)) {
      // Malformed: acknowledge it so that it does not come back forever.
      job.ack();
      return;
    }
    const known = jobs.get(d.order);
    if (known && known.state !== "offered") {
      // Already ours (our ack was lost): acknowledge again, do not show it twice.
      job.ack();
      return;
    }
    if (!known) offered++;
    jobs.set(d.order, { order: d.order, vendor: d.vendor, customer: d.customer, address: d.address, job, delivery: job.delivery, state: "offered" });
    render();
  }

  // The driver's socket sends the notices; its group member (a connection
  // of this tab's own) takes the pickups.
  const socket = connect(NS);
  const drivers = socket.group(PICKUPS, GROUP);
  drivers.on(onPickup);
  drivers.on("revoked", (job) => {
    // Redelivered to another driver, or this stream ended: not ours.
    const j = jobs.get(job.data && job.data.order);
    if (j && j.job === job && j.state === "offered") {
      jobs.delete(j.order);
      render();
    }
  });
  drivers.on("connect", () => {
    // Offers of an earlier stream were returned to the group when it ended.
    for (const [order, j] of jobs) if (j.state === "offered") jobs.delete(order);
    render();
    socket.request("GET", `/rooms/${PICKUPS}/groups/${GROUP}`).then((g) => {
      if (g && g.config && g.config.ack_wait) $("ack-wait").textContent = `the group’s ack wait (${g.config.ack_wait})`;
    }).catch(() => {});
  });
  showStatus(drivers, "driver " + name);
  render();
}

if (vendorName && /^[A-Za-z0-9_-]{1,40}$/.test(vendorName)) vendor(vendorName);
else if (driverName && driverName.trim()) driver(driverName.trim().slice(0, 40));
else $("choose").hidden = false;
