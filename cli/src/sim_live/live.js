// zhub sim live: polls the run's state, draws nodes on a circle with the messages in flight,
// and turns clicks into the run's actions (see the sim_live module's documentation).
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const CX = 320, CY = 258, R = 212, NODE = 28;
  let state = null;        // the last /api/state
  let playing = false;
  let busy = false;        // a request is under way
  let lastWall = 0;        // when the last advance was asked, in wall ms
  let updates = 0;
  let historyAt = -1;      // the clock the history frame shows

  function fmt(ns) {
    const units = [[1e9, "s"], [1e6, "ms"], [1e3, "µs"]];
    for (const [scale, unit] of units) {
      if (Math.abs(ns) >= scale) return (ns / scale).toFixed(3).replace(/0+$/, "").replace(/\.$/, "") + " " + unit;
    }
    return Math.round(ns) + " ns";
  }
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));

  function notice(text, bad) {
    const n = $("notice");
    n.hidden = !text;
    n.textContent = text || "";
    n.className = "notice" + (bad ? " bad" : "");
  }

  async function call(method, url) {
    busy = true;
    try {
      const response = await fetch(url, { method, cache: "no-store" });
      const body = await response.json();
      if (!response.ok) {
        notice(body.error || ("HTTP " + response.status), true);
        return null;
      }
      return body;
    } catch (e) {
      notice("the simulator is gone: " + e, true);
      playing = false;
      return null;
    } finally {
      busy = false;
    }
  }

  async function load(method, url) {
    const body = await call(method, url);
    if (body) show(body);
    return body;
  }

  // ---- geometry --------------------------------------------------------------------------
  function nodeAt(i, n) {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / n;
    return [CX + R * Math.cos(a), CY + R * Math.sin(a)];
  }
  function place(name, n) {
    if (name === "gw") return [CX, CY];
    return nodeAt(parseInt(name.slice(1), 10) - 1, n);
  }

  function el(tag, attrs, parent) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  // ---- drawing ---------------------------------------------------------------------------
  function draw(snap) {
    const svg = $("stage");
    svg.textContent = "";
    const n = snap.nodes.length;
    const cut = new Set(snap.cut.map(([a, b]) => a + ">" + b));
    const links = el("g", {}, svg);
    for (let i = 0; i < n; i++) {
      const [x, y] = nodeAt(i, n);
      el("line", { x1: CX, y1: CY, x2: x, y2: y, class: "gwlink" }, links);
    }
    for (let a = 0; a < n; a++) {
      for (let b = a + 1; b < n; b++) {
        const [x1, y1] = nodeAt(a, n), [x2, y2] = nodeAt(b, n);
        const ab = cut.has(a + ">" + b), ba = cut.has(b + ">" + a);
        const g = el("g", { "data-link": "n" + (a + 1) + "-n" + (b + 1) }, links);
        const hit = el("line", { x1, y1, x2, y2, class: "hit" }, g);
        const kind = ab && ba ? " cut" : ab || ba ? " half" : "";
        el("line", { x1, y1, x2, y2, class: "link" + kind }, g);
        const title = ab && ba ? "cut both ways: click to heal"
          : ab ? "n" + (a + 1) + " → n" + (b + 1) + " cut: click to heal"
          : ba ? "n" + (b + 1) + " → n" + (a + 1) + " cut: click to heal"
          : "n" + (a + 1) + " – n" + (b + 1) + ": click to cut both ways";
        el("title", {}, hit).textContent = title;
      }
    }
    const gw = el("g", { class: "gw" }, svg);
    el("rect", { x: CX - 26, y: CY - 14, width: 52, height: 28, rx: 7 }, gw);
    el("text", { x: CX, y: CY }, gw).textContent = "gateway";
    for (const node of snap.nodes) {
      const [x, y] = nodeAt(node.id, n);
      const g = el("g", { class: "node " + node.status, "data-node": node.name }, svg);
      const c = el("circle", { cx: x, cy: y, r: NODE }, g);
      el("title", {}, c).textContent = node.name + " (" + node.status + "): " + (node.state || "") +
        "\nclick: " + (node.status === "crashed" ? "restart" : "crash") + " · shift+click: " + (node.status === "paused" ? "resume" : "pause");
      el("text", { x, y }, g).textContent = node.name;
      if (node.leader) el("text", { x: x + NODE - 2, y: y - NODE + 2, class: "crown" }, g).textContent = "★";
      const below = y > CY ? y + NODE + 14 : y - NODE - 12;
      el("text", { x, y: below, class: "under" }, g).textContent = node.status === "up" ? "" : node.status;
    }
    const now = snap.now;
    const msgs = el("g", {}, svg);
    for (const m of snap.messages) {
      // A node's message to itself never leaves it: nothing moves, nothing to click.
      if (m.from === m.to) continue;
      const [x1, y1] = place(m.from, n), [x2, y2] = place(m.to, n);
      let x, y;
      if (m.held) {
        // Waiting at a paused node: on its rim, on the side it came from.
        const dx = x1 - x2, dy = y1 - y2, d = Math.hypot(dx, dy) || 1;
        x = x2 + (dx / d) * (NODE + 9); y = y2 + (dy / d) * (NODE + 9);
      } else {
        const span = Math.max(1, m.due - m.sent);
        const p = Math.min(1, Math.max(0, (now - m.sent) / span));
        // Each way of a link has its own lane, a little to the right of its direction.
        const dx = x2 - x1, dy = y2 - y1, d = Math.hypot(dx, dy) || 1;
        const off = 5;
        x = x1 + dx * p - (dy / d) * off; y = y1 + dy * p + (dx / d) * off;
      }
      const client = m.from === "gw" || m.to === "gw";
      const g = el("g", { class: "msg" + (client ? " client" : "") + (m.held ? " held" : ""), "data-message": m.number }, msgs);
      el("circle", { cx: x, cy: y, r: 11, class: "hitdot" }, g);
      const dot = el("circle", { cx: x, cy: y, r: 6.5, class: "dot" }, g);
      el("title", {}, dot).textContent = "#" + m.number + " " + m.from + " → " + m.to + ": " + m.label +
        "\nsent " + fmt(m.sent) + (m.held ? ", held by a paused node" : ", due " + fmt(m.due)) + "\nclick to drop it";
    }
  }

  function rows(id, list, row) {
    $(id).innerHTML = list.map(row).join("");
  }

  function show(body) {
    state = body;
    const snap = body.snapshot;
    updates += 1;
    document.body.dataset.updates = updates;
    document.body.dataset.now = snap.now;
    $("title").textContent = body.algorithm + " · seed " + body.seed + " · " + body.nodes + " nodes, " +
      body.clients + " clients, " + body.workload + " · latency " + body.latency + (body.loss ? ", loss " + body.loss : "");
    $("clock").textContent = fmt(snap.now);
    $("phase").textContent = snap.phase;
    const s = snap.stats;
    $("counts").textContent = snap.issued + "/" + snap.ops + " ops · " + s.ops_ok + " ok, " + s.ops_fail + " fail, " + s.ops_info +
      " info · " + s.sent + " messages, " + s.dropped + " lost · " + snap.messages.length + " in flight" +
      (snap.more_messages ? " (+" + snap.more_messages + " not drawn)" : "");
    draw(snap);
    rows("nodes", snap.nodes, (n) => "<tr><td>" + n.name + (n.leader ? " ★" : "") + "</td><td class=\"" + n.status + "\">" + n.status +
      (n.skew ? " (skew " + fmt(n.skew) + ")" : "") + "</td><td class=\"state\" title=\"" + esc(n.state) + "\">" + esc(n.state) + "</td></tr>");
    rows("clients", snap.clients, (c) => "<tr><td>c" + c.id + " <span class=\"muted\">p" + c.process + "</span></td><td title=\"" +
      esc(c.current || "") + "\">" + esc(c.current ? c.current + " since " + fmt(c.since) : "–") + "</td><td title=\"" + esc(c.last || "") + "\">" +
      esc(c.last || "–") + "</td></tr>");
    const item = (f) => "<li><span class=\"t\">" + fmt(f.time) + "</span> " + esc(f.fault) + "</li>";
    rows("actions", snap.actions, item);
    rows("faults", snap.faults.slice().reverse(), item);
    const badge = $("verdict");
    if (body.verdict) {
      badge.textContent = body.verdict.ok ? "passed" : "failed";
      badge.className = "badge " + (body.verdict.ok ? "good" : "bad");
      badge.title = body.verdict.text;
    } else {
      badge.textContent = snap.phase;
      badge.className = "badge";
    }
    if (snap.over) {
      playing = false;
      for (const id of ["play", "step", "tick", "end"]) $(id).disabled = true;
    }
    // Paused (or over), the history beside shows the clock's instant, checked.
    if (!playing && historyAt !== snap.now) refreshHistory();
    $("play").textContent = playing ? "❚❚ Pause" : "▶ Play";
  }

  function refreshHistory() {
    if (!state) return;
    historyAt = state.snapshot.now;
    $("history").src = "/report?at=" + historyAt;
    $("history-note").textContent = (state.snapshot.over ? "the whole run" : "as of " + fmt(historyAt)) + ", checked";
  }

  // ---- playing ---------------------------------------------------------------------------
  function frame(wall) {
    if (playing && !busy && state && !state.snapshot.over) {
      const dt = Math.min(100, Math.max(0, wall - lastWall));
      lastWall = wall;
      const nsPerMs = Number($("speed").value) * 1000;
      const to = Math.round(state.snapshot.now + nsPerMs * dt);
      load("POST", "/api/advance?to=" + to);
    }
    requestAnimationFrame(frame);
  }

  function setPlaying(on) {
    playing = on && !(state && state.snapshot.over);
    lastWall = performance.now();
    $("play").textContent = playing ? "❚❚ Pause" : "▶ Play";
    if (!playing && state && historyAt !== state.snapshot.now) refreshHistory();
  }

  $("play").addEventListener("click", () => setPlaying(!playing));
  $("step").addEventListener("click", () => { setPlaying(false); load("POST", "/api/advance?step=1"); });
  $("tick").addEventListener("click", () => { setPlaying(false); load("POST", "/api/advance?by=1000000"); });
  $("end").addEventListener("click", async () => { setPlaying(false); notice("running to the end…"); await load("POST", "/api/advance?end=1"); notice(""); });
  $("refresh").addEventListener("click", refreshHistory);
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "SELECT") return;
    if (e.key === " ") { e.preventDefault(); setPlaying(!playing); }
    if (e.key === "s") $("step").click();
  });

  // Actions fire on pointer down, so that a message moving on (the stage is redrawn as the
  // clock advances) is still the one under the pointer.
  $("stage").addEventListener("pointerdown", async (e) => {
    if (!state || state.snapshot.over || e.button !== 0) return;
    const target = e.target.closest("[data-message],[data-node],[data-link]");
    if (!target) return;
    e.preventDefault();
    let url = null;
    if (target.dataset.message !== undefined) {
      url = "/api/action?do=drop&message=" + target.dataset.message;
    } else if (target.dataset.node !== undefined) {
      const node = state.snapshot.nodes.find((n) => n.name === target.dataset.node);
      const act = e.shiftKey ? (node.status === "paused" ? "resume" : "pause") : (node.status === "crashed" ? "restart" : "crash");
      url = "/api/action?do=" + act + "&node=" + node.name;
    } else {
      const [a, b] = target.dataset.link.split("-");
      const ia = parseInt(a.slice(1), 10) - 1, ib = parseInt(b.slice(1), 10) - 1;
      const anyCut = state.snapshot.cut.some(([x, y]) => (x === ia && y === ib) || (x === ib && y === ia));
      url = "/api/action?do=" + (anyCut ? "heal" : "cut") + "&a=" + a + "&b=" + b;
    }
    const body = await call("POST", url);
    if (body) {
      show(body);
      notice("at " + fmt(body.snapshot.now) + ": " + body.applied.join(", "));
    }
  });

  load("GET", "/api/state").then(() => requestAnimationFrame(frame));
})();
