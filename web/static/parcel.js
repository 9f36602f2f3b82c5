// Parcel service demo, on the queue's guarantees. A vendor publishes pickups
// to room "pickups" and listens to room "vendor-<name>" (and to the
// dead_letter notices of "pickups": pickups no driver took). Drivers consume
// "pickups" as consumer group "drivers": each pickup is leased to one driver
// at a time until its deadline (counted down on the card); "Pick up"
// acknowledges it, so that it is that driver's and nobody else's; "More
// time" extends the lease; an offer whose lease runs out is revoked and goes
// to another driver. All of it through the SDK.
import { connect, position, request as rest } from "/sdk/roomcast.js";
import { ROOM_RE, announce, el, enc, keepFocus, randomId, statusText, timeOf } from "./ui.js";

const NS = "/ns/default";
const PICKUPS = "pickups";
const GROUP = "drivers";
// A notice never moves an order back (a replay after a reconnect may bring
// an older one after a newer one).
const RANK = { requested: 0, unclaimed: 1, "in-transit": 2, delivered: 3 };
const LONG_OUTAGE = 10000; // ms a request may wait before the page offers "Retry now"
const $ = (id) => document.getElementById(id);

// Observable state for debugging (and the browser tests).
window.roomcastParcel = { notices: [], delivered: [], picked: [], withdrawn: [] };

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
  source.on("disconnect", (reason) => render(reason === "io server disconnect" ? "closed" : "reconnecting"));
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

const STATUS_TEXT = {
  sending: "sending…", requested: "requested", "in-transit": "in transit", delivered: "delivered",
  unclaimed: "no driver took it",
};

async function vendor(name) {
  const room = "vendor-" + name;
  const key = (k) => `roomcast.parcel.vendor.${name}.${k}`;
  document.title = `Vendor ${name} · roomcast`;
  $("title").textContent = `Vendor ${name}`;
  $("vendor").hidden = false;
  $("vendor-room").textContent = room;

  // Orders survive a reload in localStorage, those not yet stored included
  // (sent again with the same order id); their statuses after a reload come
  // from the notices replayed from the stored position.
  const orders = new Map(load(key("orders"), []).map((o) => [o.order, o]));
  const byMsg = new Map(); // pickup message id → order
  for (const o of orders.values()) if (o.msg) byMsg.set(o.msg, o.order);
  const seen = new Set(); // notice message ids handled on this page
  const openedAt = Date.now();
  const save = () => localStorage.setItem(key("orders"), JSON.stringify([...orders.values()]));

  function row(o) {
    const waiting = o.status === "sending";
    const late = waiting && Date.now() - (o.since || 0) > LONG_OUTAGE;
    const status = el("td", { "data-label": "Status" },
      el("span", { class: "pill " + o.status }, STATUS_TEXT[o.status] || o.status),
      late ? el("span", { class: "hint" }, " server unreachable: it will be sent when it is back ") : null,
      late ? el("button", { type: "button", class: "secondary small", "data-focus": "retry:" + o.order, onclick: retryNow }, "Retry now") : null,
      o.status === "unclaimed" ? el("button", { type: "button", class: "secondary small", "data-focus": "again:" + o.order, onclick: () => again(o) }, "Request again") : null,
      o.error ? el("span", { class: "error" }, " " + o.error) : null);
    return el("tr", { dataset: { order: o.order, status: o.status } },
      el("td", { "data-label": "Order" }, el("code", {}, o.order)),
      el("td", { "data-label": "Customer" }, o.customer || "—"),
      status,
      el("td", { "data-label": "Driver" }, o.driver || "—"));
  }

  function render() {
    keepFocus(() => {
      const rows = [...orders.values()].reverse().map(row);
      $("orders").tBodies[0].replaceChildren(...rows);
      if (!rows.length) $("orders").tBodies[0].append(el("tr", {}, el("td", { colspan: 4, class: "empty" }, "No orders yet.")));
    });
    const n = { requested: 0, "in-transit": 0, delivered: 0, unclaimed: 0 };
    for (const o of orders.values()) if (o.status in n) n[o.status]++; // "sending" is not counted: not stored yet
    $("n-requested").textContent = String(n.requested);
    $("n-transit").textContent = String(n["in-transit"]);
    $("n-delivered").textContent = String(n.delivered);
    $("n-unclaimed").textContent = String(n.unclaimed);
  }

  function addNotice(env, order, text) {
    window.roomcastParcel.notices.push({ id: env.id, event: env.event, order });
    const away = Date.parse(env.ts) < openedAt;
    $("notices").prepend(el("li", { dataset: { order, event: env.event } },
      el("time", { datetime: env.ts }, timeOf(env.ts)), " ", el("code", {}, order), " " + text,
      away ? el("span", { class: "hint" }, " (while you were away)") : null));
    if (!away) announce(`Order ${order} ${text}`);
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
    addNotice(env, d.order, `${env.event === "delivered" ? "delivered" : "in transit"} by ${d.driver || "a driver"}`);
  }

  // onDead: a pickup of this vendor was parked (no driver acknowledged it
  // within max_deliver offers). The admin can replay it; the vendor can
  // request it again.
  function onDead(d, env) {
    if (seen.has(env.id)) return;
    seen.add(env.id);
    const order = d && byMsg.get(d.id);
    const o = order && orders.get(order);
    if (!o) return; // another vendor's pickup
    if (RANK[o.status] < RANK.unclaimed) o.status = "unclaimed";
    save();
    render();
    addNotice(env, o.order, `was not picked up: offered ${d.deliveries} times, no driver took it`);
  }

  async function loadHistory() {
    const page = await rest("GET", `${NS}/rooms/${enc(room)}/messages?limit=1000`);
    for (const env of page.messages || []) {
      if (env.event === "in-transit" || env.event === "delivered") onNotice(env);
    }
    return page.last || "";
  }

  // Resume from the stored position: the full one (with the connection's
  // token, kept in this tab only) restores the same connection, so that a
  // request sent again after a reload is recognised by its idempotency key;
  // the position alone (kept across visits) resumes the notices. A first
  // visit starts from the room's history. No gap either way.
  let from = sessionStorage.getItem(key("resume")) || localStorage.getItem(key("last")) || "";
  if (!from) from = await loadHistory().catch(() => "");
  render();
  const socket = connect(NS, { rooms: [room, PICKUPS], lastEventId: from, shared: false });
  const keep = () => {
    sessionStorage.setItem(key("resume"), socket.lastEventId);
    localStorage.setItem(key("last"), position(socket.lastEventId));
  };
  socket.on("in-transit", (d, env) => { onNotice(env); keep(); });
  socket.on("delivered", (d, env) => { onNotice(env); keep(); });
  socket.on("dead_letter", (d, env) => { onDead(d, env); keep(); });
  socket.on("reset", () => { loadHistory().catch(() => {}); });
  let first = true;
  socket.on("connect", () => {
    if (!first) return;
    first = false;
    resend();
  });
  showStatus(socket, "vendor " + name);
  setInterval(() => { if ([...orders.values()].some((o) => o.status === "sending")) render(); }, 1000);

  // send emits a pickup through the SDK's outbox: it waits while the server
  // is unreachable and is retried with the same idempotency key (the order
  // id) until stored; only then does it count as requested.
  function send(o, id = o.order) {
    o.status = "sending";
    o.since = Date.now();
    delete o.error;
    save();
    render();
    socket.to(PICKUPS).emit("pickup", { order: o.order, vendor: name, customer: o.customer, address: o.address }, { id })
      .then((res) => {
        o.msg = res.id;
        byMsg.set(res.id, o.order);
        if (o.status === "sending") o.status = "requested";
        announce(`Order ${o.order} requested`);
      }, (err) => {
        o.status = "requested";
        o.error = "not stored: " + err.message;
      })
      .finally(() => { save(); render(); });
  }

  // resend sends again what a previous page left unsent. It first looks
  // for the order in the room's history: a try that was stored but whose
  // answer was lost (the page closed) must not make a second order.
  async function resend() {
    const unsent = [...orders.values()].filter((o) => o.status === "sending");
    if (!unsent.length) return;
    let stored = [];
    try {
      stored = (await rest("GET", `${NS}/rooms/${PICKUPS}/messages?limit=1000`)).messages || [];
    } catch { /* send them: the key still covers this connection */ }
    for (const o of unsent) {
      const env = stored.find((m) => m.event === "pickup" && m.data && m.data.order === o.order);
      if (env) {
        o.status = "requested";
        o.msg = env.id;
        byMsg.set(env.id, o.order);
        save();
        render();
      } else {
        send(o);
      }
    }
  }

  function retryNow() {
    socket.connect(); // while reconnecting: try now
  }

  function again(o) {
    o.tries = (o.tries || 1) + 1;
    send(o, `${o.order}:${o.tries}`);
    $("customer").focus();
  }

  let counter = Number(localStorage.getItem(key("counter")) || "0");
  function request(customer, address) {
    counter++;
    localStorage.setItem(key("counter"), String(counter));
    const order = `${name}-${counter}-${randomId().slice(0, 4)}`;
    const o = { order, customer, address, status: "sending" };
    orders.set(order, o);
    send(o);
  }

  $("request-form").addEventListener("submit", (e) => {
    e.preventDefault();
    request($("customer").value.trim(), $("address").value.trim());
    // Cleared at once: the request is in the outbox, shown as sending.
    $("customer").value = "";
    $("address").value = "";
    $("customer").focus();
  });
  $("demo").addEventListener("click", () => {
    for (let i = 0; i < 10; i++) {
      request(CUSTOMERS[i % CUSTOMERS.length], `${10 + i * 7} ${STREETS[i % STREETS.length]}`);
    }
  });
}

// --- driver -------------------------------------------------------------

function driver(name) {
  const key = `roomcast.parcel.driver.${name}.jobs`;
  document.title = `Driver ${name} · roomcast`;
  $("title").textContent = `Driver ${name}`;
  $("driver").hidden = false;
  $("driver").classList.add("driver-view");

  // Jobs this driver picked up survive a reload; offers do not (the server
  // gives them to another member when this tab's connection ends).
  const jobs = new Map(load(key, []).map((j) => [j.order, j]));
  let offered = 0;
  const save = () => localStorage.setItem(key, JSON.stringify([...jobs.values()]
    .filter((j) => j.state !== "offered" && j.state !== "withdrawn").map(({ busy, error, job, note, el: _, ...j }) => j)));

  function countdown(j) {
    if (!j.job || !j.job.deadline) return "";
    const s = Math.max(0, Math.ceil((j.job.deadline - Date.now()) / 1000));
    return s > 0 ? `Pick up within ${s} s` : "Time is up";
  }

  // card builds a job's element. Buttons are disabled while a request
  // runs, so a double click cannot act twice; data-focus lets a re-render
  // keep the focus where it was.
  function card(j) {
    const title = el("h3", { id: "job-" + j.order }, "Order ", el("code", {}, j.order));
    const actions = el("div", { class: "actions" });
    const button = (cls, label, fn) => el("button", {
      type: "button", class: cls, disabled: j.busy, "aria-describedby": "job-" + j.order,
      "data-focus": `${cls}:${j.order}`, onclick: fn,
    }, label);
    if (j.state === "offered") actions.append(button("pickup", "Pick up", () => pickUp(j)), button("more secondary", "More time", () => moreTime(j)));
    else if (j.state === "acked") actions.append(button("notify", "Tell the vendor it is in transit", () => inTransit(j)));
    else if (j.state === "picked") actions.append(button("deliver", "Mark delivered", () => deliver(j)));
    else if (j.state === "withdrawn") actions.append(button("dismiss secondary", "Dismiss", () => dismiss(j)));
    const pill = { offered: ["requested", "offered"], withdrawn: ["withdrawn", "taken by another driver"] }[j.state] || ["in-transit", "picked up"];
    return el("li", { class: "job", dataset: { order: j.order, state: j.state } }, title,
      j.state === "withdrawn" ? el("p", { class: "withdrawn-note" }, j.note) :
        el("p", {}, `${j.customer || "?"}, ${j.address || "?"}`),
      el("p", { class: "hint" }, `Vendor ${j.vendor} · `, el("span", { class: "pill " + pill[0] }, pill[1]),
        j.delivery > 1 ? ` · offer #${j.delivery}` : "",
        j.state === "offered" ? el("span", { class: "countdown" }, " · " + countdown(j)) : null),
      j.error ? el("p", { class: "error" }, j.error) : null,
      actions);
  }

  // render updates the cards in place: a card is rebuilt only when it
  // changed, and the focus stays on its control.
  function render() {
    keepFocus(() => {
      const open = [...jobs.values()].filter((j) => j.state !== "delivered");
      const list = $("jobs");
      const want = new Set(open.map((j) => j.order));
      for (const li of [...list.children]) if (!want.has(li.dataset.order)) li.remove();
      for (const j of open) {
        const fresh = card(j);
        if (!j.el) list.append(fresh);
        else if (j.el.isConnected) j.el.replaceWith(fresh);
        else list.append(fresh);
        j.el = fresh;
      }
      $("no-jobs").hidden = open.length > 0;
    });
    const done = [...jobs.values()].filter((j) => j.state === "delivered");
    $("done").replaceChildren(...done.map((j) => el("li", { dataset: { order: j.order } },
      el("code", {}, j.order), ` to ${j.customer || "the customer"} (vendor ${j.vendor})`)));
    $("n-offered").textContent = String(offered);
    $("n-picked").textContent = String([...jobs.values()].filter((j) => ["acked", "picked", "delivered"].includes(j.state)).length);
    $("n-done").textContent = String(done.length);
  }

  // The countdowns tick without rebuilding the cards (and without being
  // announced: they are not in a live region).
  setInterval(() => {
    for (const j of jobs.values()) {
      if (j.state === "offered" && j.el) {
        const c = j.el.querySelector(".countdown");
        if (c) c.textContent = " · " + countdown(j);
      }
    }
  }, 500);

  // focusAfter moves the focus when the control that had it is gone: to the
  // first control of the next card, or to the list's heading.
  function focusAfter(j) {
    if (j.el && j.el.isConnected && j.el.contains(document.activeElement)) return;
    const next = $("jobs").querySelector("button:enabled");
    (next || $("jobs-h")).focus();
  }

  async function step(j, fn) {
    if (j.busy) return;
    const hadFocus = j.el && j.el.contains(document.activeElement);
    j.busy = true;
    j.error = "";
    render();
    try {
      await fn();
    } finally {
      j.busy = false;
      save();
      render();
      if (hadFocus) {
        // The card's next action, if it has one; otherwise the next card.
        const b = j.el && j.el.isConnected && j.el.querySelector("button:enabled");
        if (b) b.focus();
        else focusAfter(j);
      }
    }
  }

  function notify(j, event) {
    return socket.to("vendor-" + j.vendor).emit(event, { order: j.order, driver: name }, { id: `${j.order}:${event}` });
  }

  // withdraw takes an offer back: its lease ran out and it went to another
  // driver (or will, once one is free).
  function withdraw(j, note) {
    if (j.state !== "offered") return;
    j.state = "withdrawn";
    j.note = note;
    window.roomcastParcel.withdrawn.push(j.order);
    render();
    announce(`Order ${j.order}: ${note}`);
    setTimeout(() => { if (jobs.get(j.order) === j && j.state === "withdrawn") dismiss(j); }, 20000);
  }

  function dismiss(j) {
    const had = j.el && j.el.contains(document.activeElement);
    jobs.delete(j.order);
    render();
    if (had) focusAfter(j);
  }

  // pickUp acknowledges the delivery: the server answers 409 unless this
  // driver still holds it (its lease may have run out), so one parcel is
  // never picked up twice. Only then is the vendor told.
  function pickUp(j) {
    return step(j, async () => {
      let mine;
      try {
        mine = await j.job.ack();
      } catch (err) {
        j.error = "Could not pick up: " + err.message;
        return;
      }
      if (!mine) {
        j.busy = false;
        withdraw(j, "Taken by another driver: the offer’s time ran out.");
        return;
      }
      j.state = "acked";
      window.roomcastParcel.picked.push(j.order);
      await sendInTransit(j);
    });
  }

  // moreTime extends the offer by the group's ack wait (progress).
  function moreTime(j) {
    return step(j, async () => {
      try {
        if (!(await j.job.progress())) {
          j.busy = false;
          withdraw(j, "Taken by another driver: the offer’s time ran out.");
        }
      } catch (err) {
        j.error = "Could not extend: " + err.message;
      }
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
      announce(`Order ${j.order} delivered`);
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
    if (known && !["offered", "withdrawn"].includes(known.state)) {
      // Already ours (our ack's answer was lost): acknowledge again, do not show it twice.
      job.ack();
      return;
    }
    offered++;
    const j = { order: d.order, vendor: d.vendor, customer: d.customer, address: d.address, job, delivery: job.delivery, state: "offered", el: known && known.el };
    jobs.set(d.order, j);
    render();
    announce(`New pickup: order ${d.order} for ${d.customer || "a customer"}`);
  }

  // The driver's socket sends the notices; its group member (a connection
  // of this tab's own) takes the pickups.
  const socket = connect(NS);
  const drivers = socket.group(PICKUPS, GROUP);
  drivers.on(onPickup);
  drivers.on("revoked", (job) => {
    // The lease ran out (the server gave it to another delivery), or this
    // tab's stream ended: no longer ours.
    const j = jobs.get(job.data && job.data.order);
    if (j && j.job === job) withdraw(j, "Taken by another driver: the offer’s time ran out.");
  });
  drivers.on("connect", () => {
    // Offers of an earlier stream were returned to the group when it ended.
    for (const [order, j] of jobs) if (j.state === "offered" || j.state === "withdrawn") jobs.delete(order);
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
