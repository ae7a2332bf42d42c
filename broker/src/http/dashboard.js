// The zhub dashboard: polls /api/... every second and redraws. Tables draw at most ROWS rows
// (filter to find the rest), so a broker with thousands of services stays quick to show.
"use strict";

const ROWS = 100;
const HISTORY = 120; // seconds of rates kept for the charts
const KV_EVERY = 5; // ticks between key-value listings (up to 1000 keys each)
const GROUPS_EVERY = 2; // ticks between group listings (up to 100 groups each)
// Upper bounds of the latency histogram's buckets, in microseconds (LATENCY_BOUNDS_US).
const LATENCY_BOUNDS_US = [100, 250, 500, 1e3, 2.5e3, 5e3, 1e4, 2.5e4, 5e4, 1e5, 2.5e5, 5e5, 1e6, 2.5e6, 5e6, 1e7];

const state = {
  prev: null, prevAt: 0, ticks: 0,
  bus: [], req: [],
  services: [], servedBefore: new Map(), rates: new Map(),
  streams: [], sort: { key: "name", desc: false },
};

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
const num = (n) => Number(n).toLocaleString("en-US");
const rate = (r) => (r >= 100 ? Math.round(r).toLocaleString("en-US") : r.toFixed(r >= 10 ? 1 : 2));
function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}
// The bound of the bucket holding quantile q of a latency histogram, in microseconds; null
// with no replies, Infinity past the last bound.
function quantile(latency, q) {
  const counts = (latency && latency.counts) || [];
  const total = counts.reduce((a, b) => a + b, 0);
  if (!total) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i];
    if (seen >= rank) return i < LATENCY_BOUNDS_US.length ? LATENCY_BOUNDS_US[i] : Infinity;
  }
  return Infinity;
}
function duration(us) {
  if (us == null) return "–";
  if (us === Infinity) return "> 10 s";
  if (us < 1000) return us + " µs";
  if (us < 1e6) return us / 1000 + " ms";
  return us / 1e6 + " s";
}
async function get(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

function push(series, point) {
  series.push(point);
  if (series.length > HISTORY) series.shift();
}

function drawChart(canvas, series) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w * dpr) { canvas.width = w * dpr; canvas.height = h * dpr; }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const max = Math.max(1, ...series.map((p) => Math.max(p[0], p[1])));
  const css = getComputedStyle(document.documentElement);
  const top = 14, bottom = h - 4, left = 0;
  g.strokeStyle = css.getPropertyValue("--line");
  g.lineWidth = 1;
  g.fillStyle = css.getPropertyValue("--muted");
  g.font = "11px system-ui, sans-serif";
  for (const f of [0, 0.5, 1]) {
    const y = Math.round(bottom - (bottom - top) * f) + 0.5;
    g.beginPath(); g.moveTo(left, y); g.lineTo(w, y); g.stroke();
  }
  g.fillText(rate(max) + "/s", 2, 10);
  const x = (i) => left + (w - left) * (i + HISTORY - series.length) / (HISTORY - 1);
  const y = (v) => bottom - (bottom - top) * v / max;
  if (series.length < 2) return;
  // The first series as a shaded area, the second as a line over it: equal rates (every
  // message out as it came in) still show both.
  const path = (k) => {
    g.beginPath();
    series.forEach((p, i) => (i ? g.lineTo(x(i), y(p[k])) : g.moveTo(x(i), y(p[k]))));
  };
  path(0);
  g.lineTo(x(series.length - 1), bottom);
  g.lineTo(x(0), bottom);
  g.closePath();
  g.fillStyle = css.getPropertyValue("--a-soft");
  g.fill();
  path(0);
  g.strokeStyle = css.getPropertyValue("--a");
  g.lineWidth = 1.2;
  g.stroke();
  path(1);
  g.strokeStyle = css.getPropertyValue("--b");
  g.lineWidth = 1.6;
  g.setLineDash([4, 3]);
  g.stroke();
  g.setLineDash([]);
}

function renderServices() {
  const filter = $("services-filter").value.trim().toLowerCase();
  const { key, desc } = state.sort;
  let rows = state.services;
  if (filter) rows = rows.filter((s) => s.name.toLowerCase().includes(filter));
  const value = (s) => {
    if (key === "rate") return state.rates.get(s.name) || 0;
    if (key === "p50" || key === "p99") return quantile(s.latency, key === "p50" ? 0.5 : 0.99) ?? -1;
    return s[key];
  };
  rows = rows.slice().sort((a, b) => {
    const va = value(a), vb = value(b);
    const c = typeof va === "string" ? va.localeCompare(vb) : va - vb;
    return desc ? -c : c;
  });
  const shown = rows.slice(0, ROWS);
  const html = shown.map((s) => {
    const r = state.rates.get(s.name) || 0;
    return `<tr data-service="${esc(s.name)}" data-served="${s.served}" data-workers="${s.workers}">` +
      `<td title="${esc(s.name)}">${esc(s.name)}</td>` +
      `<td class="num${s.workers ? "" : " hot"}">${s.workers}</td>` +
      `<td class="num">${s.idle}</td>` +
      `<td class="num${s.queued ? " hot" : " zero"}">${num(s.queued)}</td>` +
      `<td class="num">${num(s.in_flight)}</td>` +
      `<td class="num">${num(s.served)}</td>` +
      `<td class="num${r ? "" : " zero"}">${rate(r)}</td>` +
      `<td class="num">${duration(quantile(s.latency, 0.5))}</td>` +
      `<td class="num">${duration(quantile(s.latency, 0.99))}</td></tr>`;
  });
  if (rows.length > shown.length) {
    html.push(`<tr class="more"><td colspan="9">${num(rows.length - shown.length)} more: filter or sort to see them</td></tr>`);
  }
  if (!rows.length) html.push(`<tr class="more"><td colspan="9">${filter ? "no service matches" : "no services yet"}</td></tr>`);
  $("services").tBodies[0].innerHTML = html.join("");
  $("services-count").textContent = filter ? `${num(rows.length)} of ${num(state.services.length)}` : num(state.services.length);
  document.querySelectorAll("#services th").forEach((th) => th.classList.toggle("sorted", th.dataset.sort === key));
}

function renderStreams() {
  const filter = $("streams-filter").value.trim().toLowerCase();
  let rows = state.streams;
  if (filter) rows = rows.filter((s) => s.name.toLowerCase().includes(filter));
  const html = rows.slice(0, ROWS).map((s) =>
    `<tr data-stream="${esc(s.name)}" data-next="${s.next_offset}"><td title="${esc(s.name)}">${esc(s.name)}</td>` +
    `<td class="num">${num(s.first_offset)}</td><td class="num">${num(s.next_offset)}</td>` +
    `<td class="num">${num(s.records)}</td><td class="num">${bytes(s.size_bytes)}</td></tr>`);
  if (rows.length > ROWS) html.push(`<tr class="more"><td colspan="5">${num(rows.length - ROWS)} more: filter to see them</td></tr>`);
  if (!rows.length) html.push(`<tr class="more"><td colspan="5">${filter ? "no stream matches" : "no streams yet"}</td></tr>`);
  $("streams").tBodies[0].innerHTML = html.join("");
  $("streams-count").textContent = num(state.streams.length);
}

function renderHealth(stats) {
  const b = stats.bus, r = stats.requests;
  const rows = [
    ["subscribers", b.subscribers], ["subscriptions", b.subscriptions],
    ["dropped: slow subscriber", b.dropped.slow_subscriber],
    ["dropped: slow plain subscriber", b.dropped.slow_plain_subscriber],
    ["dropped: malformed", b.dropped.malformed],
    ["requests busy", r.busy], ["requests timed out", r.timed_out],
    ["worker failed", r.worker_failed], ["requeued", r.requeued],
    ["workers expired", r.workers_expired], ["unroutable replies", r.unroutable],
  ];
  const warn = (name, v) => v > 0 && /dropped|busy|timed|failed|expired|unroutable/.test(name);
  $("health").tBodies[0].innerHTML = rows.map(([name, v]) =>
    `<tr><td>${name}</td><td class="num${warn(name, v) ? " hot" : v ? "" : " zero"}">${num(v)}</td></tr>`).join("");
}

async function refreshKv() {
  const page = await get("/api/kv?limit=1000");
  const groups = new Map();
  for (const k of page.keys) {
    const cut = k.key.search(/[./:]/);
    const prefix = cut > 0 ? k.key.slice(0, cut + 1) : k.key;
    const g = groups.get(prefix) || { keys: 0, bytes: 0 };
    g.keys++; g.bytes += k.value_bytes;
    groups.set(prefix, g);
  }
  const rows = [...groups].sort((a, b) => b[1].keys - a[1].keys).slice(0, 20);
  $("kv").tBodies[0].innerHTML = rows.map(([p, g]) =>
    `<tr><td title="${esc(p)}">${esc(p)}</td><td class="num">${num(g.keys)}</td><td class="num">${bytes(g.bytes)}</td></tr>`).join("") ||
    `<tr class="more"><td colspan="3">no keys</td></tr>`;
  $("kv-count").textContent = page.next ? "first 1,000 keys" : num(page.keys.length) + " keys";
}

// Members are shown by rank; the token holder by its rank, as the group's members see it.
async function refreshGroups() {
  const page = await get("/api/groups?limit=100");
  $("groups").tBodies[0].innerHTML = page.groups.slice(0, 20).map((g) => {
    const rank = g.token_holder == null ? -1 : g.members.indexOf(g.token_holder);
    const token = rank < 0 ? `<span class="muted">free</span>` : `rank ${rank}`;
    const waiting = g.waiting_locks ? ` <span class="muted small">+${g.waiting_locks} waiting</span>` : "";
    return `<tr data-group="${esc(g.group)}" data-members="${g.members.length}"><td title="${esc(g.group)}: ${esc(g.members.join(" "))}">${esc(g.group)}</td>` +
      `<td class="num">${g.members.length}</td><td class="num">v${g.version}</td><td>${token}${waiting}</td></tr>`;
  }).join("") || `<tr class="more"><td colspan="4">no groups</td></tr>`;
  $("groups-count").textContent = page.next ? "first 100" : num(page.groups.length);
}

async function tick() {
  try {
    const [stats, services, streams] = await Promise.all([get("/api/stats"), get("/api/services"), get("/api/streams")]);
    const now = performance.now();
    if (state.prev) {
      const dt = Math.max(0.001, (now - state.prevAt) / 1000);
      const d = (f) => Math.max(0, (f(stats) - f(state.prev)) / dt);
      const bin = d((s) => s.bus.messages_in), bout = d((s) => s.bus.messages_out);
      const rin = d((s) => s.requests.received), rout = d((s) => s.requests.replied);
      push(state.bus, [bin, bout]);
      push(state.req, [rin, rout]);
      $("c-in").textContent = rate(bin);
      $("c-out").textContent = rate(bout);
      $("c-req").textContent = rate(rin);
      for (const s of services) {
        const before = state.servedBefore.get(s.name);
        state.rates.set(s.name, before === undefined ? 0 : Math.max(0, (s.served - before) / dt));
      }
    }
    state.servedBefore = new Map(services.map((s) => [s.name, s.served]));
    state.prev = stats; state.prevAt = now;
    state.services = services; state.streams = streams;
    $("c-services").textContent = num(services.length);
    $("c-streams").textContent = num(streams.length);
    $("c-rss").textContent = stats.rss_bytes == null ? "–" : bytes(stats.rss_bytes);
    document.body.dataset.requestsReceived = stats.requests.received;
    renderServices(); renderStreams(); renderHealth(stats);
    drawChart($("chart-bus"), state.bus);
    drawChart($("chart-req"), state.req);
    if (state.ticks % KV_EVERY === 0) await refreshKv();
    if (state.ticks % GROUPS_EVERY === 0) await refreshGroups();
    state.ticks++;
    document.body.dataset.updates = state.ticks;
    $("status").textContent = "● live";
    $("status").classList.remove("down");
  } catch (e) {
    $("status").textContent = "● " + e.message;
    $("status").classList.add("down");
  }
}

async function start() {
  try {
    const info = await get("/api/info");
    $("broker").textContent = `version ${info.version} · ${info.main}`;
  } catch (e) { /* tick() shows the broker as down */ }
  document.querySelectorAll("#services th[data-sort]").forEach((th) => th.addEventListener("click", () => {
    const key = th.dataset.sort;
    state.sort = { key, desc: state.sort.key === key ? !state.sort.desc : key !== "name" };
    renderServices();
  }));
  $("services-filter").addEventListener("input", renderServices);
  $("streams-filter").addEventListener("input", renderStreams);
  // One poll at a time: the next is due a second after the last one ended.
  const loop = async () => { await tick(); setTimeout(loop, 1000); };
  loop();
}
start();
