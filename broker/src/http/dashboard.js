// The zhub dashboard: polls /api/... every second and redraws. Tables draw at most ROWS rows
// (filter to find the rest), so a broker with thousands of services stays quick to show.
"use strict";

const ROWS = 100;
const HISTORY = 120; // seconds of rates kept for the charts
const KV_EVERY = 5; // ticks between key-value listings (up to 1000 keys each)
const GROUPS_EVERY = 2; // ticks between group listings (up to 100 groups each)
// Upper bounds of the latency histogram's buckets, in microseconds (LATENCY_BOUNDS_US).
const LATENCY_BOUNDS_US = [100, 250, 500, 1e3, 2.5e3, 5e3, 1e4, 2.5e4, 5e4, 1e5, 2.5e5, 5e5, 1e6, 2.5e6, 5e6, 1e7];

// Zone colours, this broker's zone first; none of them is a link state's colour.
const ZONE_COLOURS = ["#3a6ea5", "#7d5fb2", "#5f7d8c", "#a8508f", "#6b7a2a", "#2c3e70"];
const PEERS_DRAWN = 16; // peers in the picture; the table lists every one

const state = {
  info: null, prev: null, prevAt: 0, ticks: 0,
  bus: [], req: [],
  services: [], servedBefore: new Map(), rates: new Map(),
  streams: [], sort: { key: "name", desc: false },
  // Peers this page has seen in session, by name (their zone), and the names behind the
  // endpoints of outgoing links: a peer that goes away is then shown down, not forgotten.
  seen: new Map(), endpointNames: new Map(),
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
// A round trip in microseconds; 0 is "not measured yet".
function rtt(us) {
  if (!us) return "–";
  if (us < 1000) return us + " µs";
  if (us < 1e6) return (us / 1000).toFixed(us < 1e4 ? 1 : 0) + " ms";
  return (us / 1e6).toFixed(1) + " s";
}
function since(ms) {
  if (!ms) return "–";
  if (ms < 60e3) return (ms / 1000).toFixed(1) + " s";
  if (ms < 3600e3) return Math.floor(ms / 60e3) + " min";
  if (ms < 86400e3) return (ms / 3600e3).toFixed(1) + " h";
  return (ms / 86400e3).toFixed(1) + " d";
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
    // Served by peers too: no local worker is then no alarm.
    const peers = s.peers || [];
    const also = peers.length ? ` <span class="muted small" title="also served by ${esc(peers.map((p) => p.broker).join(", "))}">` +
      `+${peers.length} peer${peers.length > 1 ? "s" : ""}</span> ` : "";
    return `<tr data-service="${esc(s.name)}" data-served="${s.served}" data-workers="${s.workers}">` +
      `<td title="${esc(s.name)}">${esc(s.name)}</td>` +
      `<td class="num${s.workers || peers.length ? "" : " hot"}">${also}${s.workers}</td>` +
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

const STATE_RANK = { up: 0, standby: 1, connecting: 2, down: 3 };
// An endpoint in few characters, for the picture: host and port, or an ipc socket's file.
const shortEndpoint = (e) => e.replace(/^tcp:\/\//, "").replace(/^ipc:\/\/.*\//, "");

// The peers as nodes: a peer's links (two when both brokers list each other) grouped under
// its name. A link not yet greeted is a node of its own, named by its endpoint, unless this
// page saw that endpoint's peer before: that peer is then down, its link reconnecting. A
// peer seen before that has no link left is down too.
function peerNodes(peers) {
  const nodes = new Map();
  for (const l of peers.links) {
    const name = l.broker || (l.outgoing && state.endpointNames.get(l.endpoint)) || "";
    const key = name || "@" + l.endpoint;
    if (!nodes.has(key)) nodes.set(key, { name, label: name || l.endpoint, short: name || shortEndpoint(l.endpoint), endpoint: l.endpoint, links: [] });
    nodes.get(key).links.push(l);
    if (l.broker) {
      state.seen.set(l.broker, l.zone);
      if (l.outgoing) state.endpointNames.set(l.endpoint, l.broker);
    }
  }
  for (const name of state.seen.keys()) {
    if (!nodes.has(name)) nodes.set(name, { name, label: name, short: name, endpoint: "", links: [] });
  }
  const list = [...nodes.values()];
  for (const n of list) {
    n.links.sort((a, b) => STATE_RANK[a.state] - STATE_RANK[b.state]);
    const best = n.links.length ? n.links[0].state : "down";
    n.state = best === "connecting" && n.name ? "down" : best;
    n.zone = n.links.find((l) => l.broker)?.zone ?? state.seen.get(n.name) ?? "";
    const carrying = n.links.find((l) => l.state === "up") || n.links.find((l) => l.rtt_us);
    n.rtt = carrying ? carrying.rtt_us : 0;
    n.up = Math.max(0, ...n.links.map((l) => l.up_ms));
  }
  return list;
}

// Zones in the order they are drawn and coloured: this broker's first, then by name.
function zoneColours(home, nodes) {
  const zones = [...new Set(nodes.map((n) => n.zone).filter((z) => z && z !== home))].sort();
  const colours = new Map([[home, ZONE_COLOURS[0]]]);
  zones.forEach((z, i) => colours.set(z, ZONE_COLOURS[(i + 1) % ZONE_COLOURS.length]));
  return colours;
}

// The picture: this broker in the middle, its peers on an ellipse around it, those of one
// zone side by side on a band of the zone's colour, one line per link styled by its state
// and labelled with its round trip.
function drawPeers(svg, home, name, nodes, colours) {
  const w = svg.clientWidth || 480, h = svg.clientHeight || 230;
  const drawn = nodes.slice(0, PEERS_DRAWN);
  const n = drawn.length;
  // Around (0, 0), centred in the box at the end.
  const rx = Math.min(w / 2 - 80, 230), ry = Math.min(h / 2 - 44, 40 + 8 * n);
  const at = (a) => [rx * Math.cos(a), ry * Math.sin(a)];
  // One peer sits to the right; more start so that the picture is symmetric.
  const angle = (i) => 2 * Math.PI * i / n - Math.PI / 2 + (n % 2 ? 0 : Math.PI / n);
  drawn.forEach((node, i) => { node.a = angle(i); [node.x, node.y] = at(node.a); node.above = n > 2 && node.y < -1; });
  let self = [0, 0];
  if (n === 1) { self = [-rx / 2, 0]; [drawn[0].x, drawn[0].y] = [rx / 2, 0]; }
  const top = Math.min(self[1] - 24, ...drawn.map((d) => d.y - (d.above ? 36 : 18)));
  const bottom = Math.max(self[1] + 44, ...drawn.map((d) => d.y + (d.above ? 18 : 36)));
  const out = [`<g transform="translate(${w / 2},${Math.round(h / 2 - (top + bottom) / 2)})">`];
  const colour = (zone) => colours.get(zone) || "#9aa5b1";
  // Zone bands: runs of neighbours that share a zone.
  for (let i = 0, j; i < n; i = j + 1) {
    j = i;
    while (j + 1 < n && drawn[j + 1].zone === drawn[i].zone) j++;
    const c = colour(drawn[i].zone), title = `<title>zone ${esc(drawn[i].zone || "unknown")}</title>`;
    if (j - i + 1 === n && n > 2) {
      out.push(`<ellipse class="band" rx="${rx}" ry="${ry}" stroke="${c}">${title}</ellipse>`);
    } else if (i === j || n <= 2) {
      for (let k = i; k <= j; k++) out.push(`<circle cx="${drawn[k].x}" cy="${drawn[k].y}" r="23" fill="${c}" fill-opacity=".12">${title}</circle>`);
    } else {
      const [x0, y0] = at(drawn[i].a), [x1, y1] = at(drawn[j].a);
      const large = drawn[j].a - drawn[i].a > Math.PI ? 1 : 0;
      out.push(`<path class="band" d="M${x0},${y0} A${rx},${ry} 0 ${large} 1 ${x1},${y1}" stroke="${c}">${title}</path>`);
    }
  }
  // Links under the nodes; two links to one peer bow apart so that both show.
  const labels = [];
  for (const node of drawn) {
    const links = node.links.length ? node.links : [{ state: "down", rtt_us: 0 }];
    const dx = node.x - self[0], dy = node.y - self[1], len = Math.hypot(dx, dy) || 1;
    const px = -dy / len, py = dx / len;
    links.forEach((l, k) => {
      const off = (k - (links.length - 1) / 2) * 28;
      const mx = (self[0] + node.x) / 2 + px * off, my = (self[1] + node.y) / 2 + py * off;
      const qx = 2 * mx - (self[0] + node.x) / 2, qy = 2 * my - (self[1] + node.y) / 2;
      const shown = node.state === "down" ? "down" : l.state;
      const what = l.outgoing === undefined ? "no link" : `${l.outgoing ? "out" : "in"} link, ${l.state}`;
      out.push(`<path class="link ${shown}" data-link="${esc(node.label)}" data-state="${shown}" ` +
        `d="M${self[0]},${self[1]} Q${qx},${qy} ${node.x},${node.y}"><title>${esc(node.label)}: ${what}</title></path>`);
      if (l.rtt_us) {
        const text = rtt(l.rtt_us), width = 6.2 * text.length + 10;
        labels.push(`<g class="rtt"><rect x="${mx - width / 2}" y="${my - 8}" width="${width}" height="16" rx="8"/>` +
          `<text x="${mx}" y="${my + 4}">${text}</text></g>`);
      }
    });
  }
  out.push(...labels);
  out.push(`<g class="self"><title>this broker: ${esc(name)}, zone ${esc(home)}</title>` +
    `<circle cx="${self[0]}" cy="${self[1]}" r="22" fill="${colour(home)}"/>` +
    `<circle cx="${self[0]}" cy="${self[1]}" r="16" fill="none" stroke="#fff" stroke-opacity=".6"/>` +
    `<text class="name" x="${self[0]}" y="${self[1] + 38}">${esc(name)}</text></g>`);
  for (const node of drawn) {
    const c = colour(node.zone);
    out.push(`<g class="peer ${node.state}" data-peer="${esc(node.name)}" data-state="${node.state}" transform="translate(${node.x},${node.y})">` +
      `<title>${esc(node.label)} · zone ${esc(node.zone || "unknown")} · ${node.state}</title>` +
      `<circle class="node" r="15" fill="${c}" fill-opacity=".18" stroke="${c}" stroke-width="2"/>` +
      `<circle class="dot ${node.state}" r="5"/>` +
      `<text class="name" y="${node.above ? -23 : 32}">${esc(node.short)}</text></g>`);
  }
  out.push("</g>");
  // Zones named in the corner, with their colours.
  let y = 13;
  for (const [zone, c] of colours) {
    if (zone !== home && !drawn.some((d) => d.zone === zone)) continue;
    out.push(`<rect x="1" y="${y - 9}" width="10" height="10" rx="2" fill="${c}"/>` +
      `<text x="16" y="${y}">zone ${esc(zone)}${zone === home ? " (this broker)" : ""}</text>`);
    y += 16;
  }
  if (nodes.length > n) out.push(`<text x="${w - 4}" y="${h - 4}" text-anchor="end">${nodes.length - n} more in the table</text>`);
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.innerHTML = out.join("");
}

function renderPeers(peers) {
  const nodes = peerNodes(peers);
  const none = $("peers-none"), body = $("peers-body");
  if (!nodes.length) {
    const cluster = state.info && state.info.cluster;
    none.innerHTML = cluster
      ? `no peers yet: this broker takes peer links at <code>${esc(cluster)}</code>; start another with <code>--peer ${esc(cluster)}</code> (README, “Brokers that peer”)`
      : `no peers: start with <code>--peer</code>/<code>--cluster</code>, see the README (“Brokers that peer”)`;
    none.hidden = false; body.hidden = true; $("peers-legend").hidden = true;
    $("peers-count").textContent = "";
    return;
  }
  none.hidden = true; body.hidden = false; $("peers-legend").hidden = false;
  const home = peers.zone;
  const colours = zoneColours(home, nodes);
  // By zone as coloured, peers whose zone is not known yet last.
  const order = [...colours.keys(), ""];
  nodes.sort((a, b) => order.indexOf(a.zone) - order.indexOf(b.zone) || a.label.localeCompare(b.label));
  drawPeers($("peers-map"), home, peers.name, nodes, colours);
  // What each peer serves for this broker, from the services table.
  const serving = new Map();
  for (const s of state.services) {
    for (const p of s.peers || []) {
      const v = serving.get(p.broker) || { services: 0, credit: 0, in_flight: 0 };
      v.services++; v.credit += p.credit; v.in_flight += p.in_flight;
      serving.set(p.broker, v);
    }
  }
  $("peers").tBodies[0].innerHTML = nodes.map((n) => {
    const v = serving.get(n.name) || { services: 0, credit: 0, in_flight: 0 };
    const links = n.links.map((l) => `${l.outgoing ? "out" : "in"} ${l.state}`).join(", ") || "none";
    const zone = n.zone ? `<i class="swatch" style="background:${colours.get(n.zone)}"></i>${esc(n.zone)}` : "–";
    return `<tr data-peer="${esc(n.name)}" data-state="${n.state}"><td title="${esc(n.endpoint || n.label)}">${esc(n.label)}</td>` +
      `<td>${zone}</td>` +
      `<td><span class="state ${n.state}">${n.state}</span></td><td class="muted">${esc(links)}</td>` +
      `<td class="num">${rtt(n.rtt)}</td><td class="num">${since(n.up)}</td>` +
      `<td class="num${v.services ? "" : " zero"}">${num(v.services)}</td>` +
      `<td class="num${v.credit ? "" : " zero"}">${num(v.credit)}</td>` +
      `<td class="num${v.in_flight ? "" : " zero"}">${num(v.in_flight)}</td></tr>`;
  }).join("");
  const up = nodes.filter((n) => n.state === "up").length;
  $("peers-count").textContent = `${up} up of ${nodes.length} · ${peers.name}, zone ${home}`;
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
    const [stats, services, streams, peers] = await Promise.all(
      [get("/api/stats"), get("/api/services"), get("/api/streams"), get("/api/peers")]);
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
    renderServices(); renderStreams(); renderHealth(stats); renderPeers(peers);
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
    state.info = info;
    $("broker").textContent = `${info.name} · version ${info.version} · ${info.main}`;
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
