// zhub sim report: draws the embedded data (see the report module's documentation) on
// canvases, only what is in view.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("zhub-report-data").textContent);
  const ops = data.ops; // [lane, f, key, call, end, outcome, argument, result, invoke]
  const LANE = 20, BAR = 12, GUTTER = 64, AXIS = 26;
  const OUTCOME = ["ok", "fail", "info", "no reply"];
  const css = getComputedStyle(document.documentElement);
  const colour = (name) => css.getPropertyValue("--" + name).trim();
  const C = {
    ok: colour("ok"), fail: colour("fail"), info: colour("info"), pending: colour("pending"),
    bad: colour("bad"), lin: colour("lin"), msg: colour("msg"), client: colour("client"),
    lost: colour("lost"), line: colour("line"), muted: colour("muted"), ink: colour("ink"),
  };
  const FILL = [C.ok, C.fail, C.info, C.pending];
  const end = Math.max(1, data.end);

  function fmt(ns) {
    const units = [[1e9, "s"], [1e6, "ms"], [1e3, "µs"]];
    for (const [scale, unit] of units) {
      if (Math.abs(ns) >= scale) return (ns / scale).toFixed(3).replace(/0+$/, "").replace(/\.$/, "") + unit;
    }
    return Math.round(ns) + "ns";
  }
  const opEnd = (op) => (op[4] === null ? end : op[4]);

  // ---- header -------------------------------------------------------------------------------
  document.getElementById("stats").textContent = data.stats;
  const reg = data.register;
  const badge = document.getElementById("verdict");
  const inViolation = new Set();
  let culprit = -1;
  if (reg) {
    badge.textContent = reg.verdict;
    badge.className = "badge " + ({ "linearizable": "good", "not linearizable": "bad" }[reg.verdict] || "unknown");
    document.getElementById("summary").textContent = reg.summary;
    if (reg.violation) {
      reg.violation.forEach((i) => inViolation.add(i));
      culprit = reg.culprit === null ? -1 : reg.culprit;
      document.getElementById("violation").hidden = false;
      document.getElementById("violation-title").textContent = "Violation on key " + reg.key;
      document.getElementById("explanation").textContent = reg.explanation;
    }
  }

  // Linearization points: the earliest times consistent with the order (each point no
  // earlier than the operation's invoke nor than the previous point).
  const linRank = new Map(), linPoint = new Map();
  const linOrders = reg && reg.linearization ? reg.linearization : {};
  for (const key of Object.keys(linOrders)) {
    let t = 0;
    linOrders[key].forEach((i, rank) => {
      t = Math.max(t, ops[i][3]);
      linRank.set(i, rank + 1);
      linPoint.set(i, Math.min(t, opEnd(ops[i])));
    });
  }

  // ---- controls -----------------------------------------------------------------------------
  const keys = [...new Set(ops.map((op) => op[2]).filter((k) => k !== null))].sort((a, b) => a - b);
  const keySelect = document.getElementById("key");
  for (const k of keys) {
    const option = document.createElement("option");
    option.value = String(k);
    option.textContent = "key " + k;
    keySelect.appendChild(option);
  }
  const showLin = document.getElementById("show-lin");
  // A linearizable history opens on its first key, so that its order is drawn at once.
  let selectedKey = reg && reg.verdict === "linearizable" && keys.length ? keys[0] : null;
  keySelect.value = selectedKey === null ? "" : String(selectedKey);
  keySelect.addEventListener("change", () => {
    selectedKey = keySelect.value === "" ? null : Number(keySelect.value);
    draw();
  });
  showLin.addEventListener("change", () => draw());

  const view = { t0: 0, t1: end };
  function setView(t0, t1) {
    const span = Math.max(10, t1 - t0);
    t0 = Math.max(-span * 0.02, Math.min(t0, end - span * 0.02));
    view.t0 = t0;
    view.t1 = t0 + span;
    draw();
  }
  function zoom(factor, at) {
    const span = view.t1 - view.t0;
    const centre = at === undefined ? view.t0 + span / 2 : at;
    const ratio = (centre - view.t0) / span;
    const next = span * factor;
    setView(centre - ratio * next, centre - ratio * next + next);
  }
  document.getElementById("zoom-in").addEventListener("click", () => zoom(0.5));
  document.getElementById("zoom-out").addEventListener("click", () => zoom(2));
  document.getElementById("fit").addEventListener("click", () => setView(0, end));

  // ---- canvases -----------------------------------------------------------------------------
  const overview = document.getElementById("overview");
  const timeline = document.getElementById("timeline");
  const lanes = document.getElementById("lanes");
  const spacer = document.getElementById("spacer");
  const lamport = document.getElementById("lamport");
  const tip = document.getElementById("tip");
  const dpr = window.devicePixelRatio || 1;

  function prepare(canvas, height) {
    const width = canvas.clientWidth;
    canvas.style.height = height + "px";
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    return [ctx, width];
  }
  const lanesHeight = () => AXIS + data.processes.length * LANE + 6;
  function timelineHeight() {
    return Math.min(lanesHeight(), Math.max(220, Math.round(window.innerHeight * 0.5)));
  }

  function ticks(t0, t1, pixels) {
    const span = t1 - t0, target = span / Math.max(2, pixels / 110);
    const base = Math.pow(10, Math.floor(Math.log10(target)));
    const step = [1, 2, 5, 10].map((m) => m * base).find((s) => s >= target) || base * 10;
    const out = [];
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) out.push(t);
    return out;
  }

  function drawOverview() {
    const [ctx, width] = prepare(overview, 34);
    const columns = new Array(Math.max(1, Math.floor(width))).fill(0);
    const troubled = new Array(columns.length).fill(0);
    for (const op of ops) {
      const c = Math.min(columns.length - 1, Math.floor((op[3] / end) * columns.length));
      columns[c]++;
      if (op[5] !== 0) troubled[c]++;
    }
    const top = Math.max(1, ...columns);
    for (let c = 0; c < columns.length; c++) {
      if (!columns[c]) continue;
      const h = 4 + (26 * columns[c]) / top;
      ctx.fillStyle = troubled[c] ? "#e9b27a" : "#c3c9d6";
      ctx.fillRect(c, 32 - h, 1, h);
    }
    ctx.fillStyle = C.bad;
    for (const i of inViolation) ctx.fillRect(Math.floor((ops[i][3] / end) * width), 0, 2, 34);
    const x0 = (view.t0 / end) * width, x1 = (view.t1 / end) * width;
    ctx.fillStyle = "rgba(57, 73, 171, 0.12)";
    ctx.strokeStyle = C.lin;
    ctx.lineWidth = 1.5;
    const w = Math.max(3, x1 - x0);
    ctx.fillRect(x0, 1, w, 32);
    ctx.strokeRect(x0 + 0.5, 1.5, w - 1, 31);
  }

  let barsDrawn = []; // [x0, y0, x1, y1, op index] for hovering
  function opLabel(op) {
    const key = op[2] === null ? "" : " " + op[2];
    if (op[1] === "read") return "r" + key + (op[5] === 0 ? " → " + op[7] : "");
    if (op[1] === "write") return "w" + key + " ← " + op[6];
    return op[1] + key + " " + op[6] + (op[5] === 0 && op[7] !== null && op[7] !== "null" ? " → " + op[7] : "");
  }

  function drawTimeline() {
    const height = timelineHeight();
    spacer.style.height = Math.max(0, lanesHeight() - height) + "px";
    lanes.style.height = height + 2 + "px";
    const [ctx, width] = prepare(timeline, height);
    const first = Math.floor(lanes.scrollTop / LANE);
    const offset = lanes.scrollTop - first * LANE;
    const visibleLanes = Math.ceil((height - AXIS) / LANE) + 1;
    const plotW = width - GUTTER - 8;
    const x = (t) => GUTTER + ((t - view.t0) / (view.t1 - view.t0)) * plotW;
    const laneY = (lane) => AXIS + (lane - first) * LANE - offset;

    ctx.font = "11px system-ui, sans-serif";
    // Lanes.
    for (let lane = first; lane < Math.min(data.processes.length, first + visibleLanes); lane++) {
      const y = laneY(lane);
      if (lane % 2 === 0) {
        ctx.fillStyle = "#f8f9fb";
        ctx.fillRect(GUTTER, y, plotW, LANE);
      }
      ctx.fillStyle = C.muted;
      ctx.textBaseline = "middle";
      ctx.textAlign = "right";
      ctx.fillText("p" + data.processes[lane], GUTTER - 8, y + LANE / 2);
    }
    // Bars.
    barsDrawn = [];
    const lastLane = first + visibleLanes;
    const points = [];
    ctx.textAlign = "left";
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i];
      if (op[0] < first || op[0] > lastLane) continue;
      const t1 = opEnd(op);
      if (t1 < view.t0 || op[3] > view.t1) continue;
      const x0 = Math.max(GUTTER - 2, x(op[3])), x1 = Math.min(width + 2, x(t1));
      const w = Math.max(2, x1 - x0);
      const y = laneY(op[0]) + (LANE - BAR) / 2;
      const dim = selectedKey !== null && op[2] !== selectedKey;
      ctx.globalAlpha = dim ? 0.18 : 1;
      // The culprit is filled in the violation's colour, so that it is the first thing seen.
      ctx.fillStyle = i === culprit ? C.bad : FILL[op[5]];
      ctx.fillRect(x0, y, w, BAR);
      if (inViolation.has(i)) {
        ctx.globalAlpha = 1;
        ctx.strokeStyle = C.bad;
        ctx.lineWidth = i === culprit ? 3 : 2;
        ctx.strokeRect(x0 - 1, y - 1, w + 2, BAR + 2);
      }
      if (w > 46 && !dim) {
        ctx.fillStyle = op[5] === 3 ? "#6b4a12" : "#ffffff";
        ctx.save();
        ctx.beginPath();
        ctx.rect(x0, y, w, BAR);
        ctx.clip();
        ctx.fillText(opLabel(op), x0 + 4, y + BAR / 2 + 0.5);
        ctx.restore();
      }
      ctx.globalAlpha = 1;
      barsDrawn.push([x0, y - 2, x0 + w, y + BAR + 2, i]);
      if (showLin.checked && linPoint.has(i) && (selectedKey === null || op[2] === selectedKey)) {
        points.push([linOrders[String(op[2])] ? op[2] : null, linRank.get(i), x(linPoint.get(i)), y + BAR / 2, i]);
      }
    }
    // Linearization: a line through each key's points in order, when few enough to read.
    if (points.length && points.length <= 600 && selectedKey !== null) {
      points.sort((a, b) => (a[0] - b[0]) || (a[1] - b[1]));
      ctx.strokeStyle = C.lin;
      ctx.lineWidth = 1.4;
      ctx.globalAlpha = 0.75;
      for (let j = 1; j < points.length; j++) {
        const [k0, r0, px0, py0] = points[j - 1], [k1, r1, px1, py1] = points[j];
        if (k0 !== k1 || r1 !== r0 + 1) continue;
        ctx.beginPath();
        ctx.moveTo(px0, py0);
        ctx.lineTo(px1, py1);
        ctx.stroke();
      }
      ctx.globalAlpha = 1;
      ctx.fillStyle = C.lin;
      for (const [, , px, py] of points) {
        ctx.beginPath();
        ctx.arc(px, py, 3, 0, 2 * Math.PI);
        ctx.fill();
      }
    }
    // Axis, drawn last so that it stays above the lanes.
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, width, AXIS);
    ctx.strokeStyle = C.line;
    ctx.beginPath();
    ctx.moveTo(GUTTER, AXIS - 0.5);
    ctx.lineTo(width, AXIS - 0.5);
    ctx.stroke();
    ctx.fillStyle = C.muted;
    ctx.textAlign = "center";
    ctx.textBaseline = "alphabetic";
    for (const t of ticks(view.t0, view.t1, plotW)) {
      const tx = x(t);
      if (tx < GUTTER) continue;
      ctx.fillRect(tx, AXIS - 5, 1, 5);
      ctx.fillText(fmt(t), tx, AXIS - 9);
      ctx.fillStyle = "rgba(0,0,0,0.04)";
      ctx.fillRect(tx, AXIS, 1, height - AXIS);
      ctx.fillStyle = C.muted;
    }
    document.getElementById("window").textContent =
      "showing " + fmt(Math.max(0, view.t0)) + " – " + fmt(view.t1) + " of " + fmt(end);
  }

  // ---- Lamport diagram ----------------------------------------------------------------------
  const M = data.messages;
  let arrowsDrawn = []; // [x0, y0, x1, y1, message index]
  const MAX_ARROWS = 4000;
  function drawLamport() {
    const height = 520;
    const [ctx, width] = prepare(lamport, height);
    const note = document.getElementById("message-note");
    const parts = M.participants;
    arrowsDrawn = [];
    if (!parts.length) {
      ctx.fillStyle = C.muted;
      ctx.font = "13px system-ui, sans-serif";
      ctx.fillText("No messages were recorded for this run.", 16, 30);
      note.textContent = "";
      return;
    }
    const TOP = 34, LEFT = 70, RIGHT = 40;
    const column = (p) => LEFT + (parts.length === 1 ? 0.5 : p / (parts.length - 1)) * (width - LEFT - RIGHT);
    const y = (t) => TOP + ((t - view.t0) / (view.t1 - view.t0)) * (height - TOP - 10);
    ctx.font = "12px system-ui, sans-serif";
    ctx.textAlign = "center";
    for (let p = 0; p < parts.length; p++) {
      const cx = column(p);
      ctx.strokeStyle = "#d5d9e2";
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(cx + 0.5, TOP);
      ctx.lineTo(cx + 0.5, height);
      ctx.stroke();
      ctx.fillStyle = C.ink;
      ctx.fillText(parts[p], cx, 18);
    }
    ctx.textAlign = "left";
    ctx.fillStyle = C.muted;
    for (const t of ticks(view.t0, view.t1, height - TOP)) {
      ctx.fillText(fmt(t), 8, y(t) + 4);
      ctx.fillStyle = "rgba(0,0,0,0.04)";
      ctx.fillRect(LEFT - 20, y(t), width, 1);
      ctx.fillStyle = C.muted;
    }
    // A lost message points toward its receiver for a typical delay and ends in a cross.
    const delays = M.list.filter((m) => m[3] !== null).slice(0, 2000).map((m) => m[3] - m[2]).sort((a, b) => a - b);
    const typical = delays.length ? delays[delays.length >> 1] : (view.t1 - view.t0) / 50;
    let inView = 0;
    // Messages sent before the window start above it: keep them off the names.
    ctx.save();
    ctx.beginPath();
    ctx.rect(0, TOP - 4, width, height - TOP + 4);
    ctx.clip();
    for (let i = 0; i < M.list.length; i++) {
      const m = M.list[i];
      const arrival = m[3] === null ? m[2] + typical * 0.6 : m[3];
      if (arrival < view.t0 || m[2] > view.t1) continue;
      inView++;
      if (arrowsDrawn.length >= MAX_ARROWS) continue;
      const x0 = column(m[0]), y0 = y(m[2]);
      let x1 = column(m[1]), y1 = y(arrival);
      const lost = m[3] === null;
      if (lost) x1 = x0 + (x1 - x0) * 0.6;
      const clientSide = parts[m[0]][0] === "c" || parts[m[1]][0] === "c";
      const stroke = lost ? C.lost : clientSide ? C.client : C.msg;
      ctx.strokeStyle = stroke;
      ctx.fillStyle = stroke;
      ctx.globalAlpha = 0.85;
      ctx.lineWidth = 1.2;
      ctx.beginPath();
      ctx.moveTo(x0, y0);
      ctx.lineTo(x1, y1);
      ctx.stroke();
      const angle = Math.atan2(y1 - y0, x1 - x0);
      if (lost) {
        ctx.lineWidth = 2;
        ctx.beginPath();
        ctx.moveTo(x1 - 4, y1 - 4); ctx.lineTo(x1 + 4, y1 + 4);
        ctx.moveTo(x1 + 4, y1 - 4); ctx.lineTo(x1 - 4, y1 + 4);
        ctx.stroke();
      } else {
        ctx.beginPath();
        ctx.moveTo(x1, y1);
        ctx.lineTo(x1 - 8 * Math.cos(angle - 0.4), y1 - 8 * Math.sin(angle - 0.4));
        ctx.lineTo(x1 - 8 * Math.cos(angle + 0.4), y1 - 8 * Math.sin(angle + 0.4));
        ctx.closePath();
        ctx.fill();
      }
      ctx.globalAlpha = 1;
      arrowsDrawn.push([x0, y0, x1, y1, i]);
    }
    // Labels, when there is room for them.
    if (arrowsDrawn.length <= 150) {
      ctx.font = "11px system-ui, sans-serif";
      ctx.fillStyle = "#4b5563";
      const taken = [];
      for (const [x0, y0, x1, y1, i] of arrowsDrawn) {
        const label = M.labels[M.list[i][4]];
        // Skip a label that would overlap one already written.
        const mx = (x0 + x1) / 2, my = (y0 + y1) / 2, half = Math.min(label.length, 28) * 3;
        if (taken.some(([ax, ay, ah]) => Math.abs(ax - mx) < ah + half && Math.abs(ay - my) < 11)) continue;
        taken.push([mx, my, half]);
        ctx.save();
        ctx.translate((x0 + x1) / 2, (y0 + y1) / 2);
        let angle = Math.atan2(y1 - y0, x1 - x0);
        if (angle > Math.PI / 2) angle -= Math.PI;
        if (angle < -Math.PI / 2) angle += Math.PI;
        ctx.rotate(angle);
        ctx.textAlign = "center";
        ctx.fillText(label.length > 28 ? label.slice(0, 27) + "…" : label, 0, -4);
        ctx.restore();
      }
    }
    ctx.restore();
    let text = inView > arrowsDrawn.length
      ? "showing " + arrowsDrawn.length + " of " + inView + " messages in view; zoom in for the rest" : "";
    if (M.dropped) text += (text ? " · " : "") + M.dropped + " later messages were not embedded";
    note.textContent = text;
  }

  function draw() {
    drawOverview();
    drawTimeline();
    drawLamport();
  }

  // ---- interaction --------------------------------------------------------------------------
  function showTip(event, text) {
    tip.textContent = text;
    tip.hidden = false;
    const pad = 14;
    let left = event.clientX + pad, top = event.clientY + pad;
    const box = tip.getBoundingClientRect();
    if (left + box.width > window.innerWidth - 8) left = event.clientX - box.width - pad;
    if (top + box.height > window.innerHeight - 8) top = event.clientY - box.height - pad;
    tip.style.left = left + "px";
    tip.style.top = top + "px";
  }
  const hideTip = () => { tip.hidden = true; };

  function describeOp(i) {
    const op = ops[i];
    const lines = [
      op[1] + (op[2] === null ? "" : " on key " + op[2]) + " by process " + data.processes[op[0]],
      "argument: " + op[6],
      "outcome:  " + OUTCOME[op[5]] + (op[5] === 0 && op[7] !== null ? ", returned " + op[7] : ""),
      "invoked:  " + fmt(op[3]),
      op[4] === null ? "no completion" : "completed: " + fmt(op[4]) + " (" + fmt(op[4] - op[3]) + ")",
      "event:    #" + op[8] + " of the history",
    ];
    if (linRank.has(i)) lines.push("took effect " + ordinal(linRank.get(i)) + " on key " + op[2]);
    if (i === culprit) lines.push("the operation that cannot have happened as seen");
    else if (inViolation.has(i)) lines.push("part of the violation");
    return lines.join("\n");
  }
  function ordinal(n) {
    const s = ["th", "st", "nd", "rd"], v = n % 100;
    return n + (s[(v - 20) % 10] || s[v] || s[0]);
  }

  function dragPan(canvas, horizontal) {
    let start = null;
    canvas.addEventListener("mousedown", (event) => {
      start = { x: event.clientX, y: event.clientY, t0: view.t0, t1: view.t1, size: horizontal ? canvas.clientWidth - GUTTER : canvas.clientHeight - 44 };
      canvas.classList.add("dragging");
    });
    window.addEventListener("mouseup", () => { start = null; canvas.classList.remove("dragging"); });
    window.addEventListener("mousemove", (event) => {
      if (!start) return;
      const moved = horizontal ? event.clientX - start.x : event.clientY - start.y;
      const dt = (-moved / start.size) * (start.t1 - start.t0);
      setView(start.t0 + dt, start.t1 + dt);
    });
    canvas.addEventListener("wheel", (event) => {
      const rect = canvas.getBoundingClientRect();
      if (event.ctrlKey || event.metaKey) {
        event.preventDefault();
        const along = horizontal ? (event.clientX - rect.left - GUTTER) / (rect.width - GUTTER - 8) : (event.clientY - rect.top - 34) / (rect.height - 44);
        zoom(event.deltaY > 0 ? 1.25 : 0.8, view.t0 + Math.max(0, Math.min(1, along)) * (view.t1 - view.t0));
      } else if (horizontal && Math.abs(event.deltaX) > Math.abs(event.deltaY)) {
        event.preventDefault();
        const dt = (event.deltaX / rect.width) * (view.t1 - view.t0);
        setView(view.t0 + dt, view.t1 + dt);
      } else if (!horizontal) {
        event.preventDefault();
        const dt = (event.deltaY / rect.height) * (view.t1 - view.t0);
        setView(view.t0 + dt, view.t1 + dt);
      }
    }, { passive: false });
  }
  dragPan(timeline, true);
  dragPan(lamport, false);
  lanes.addEventListener("scroll", () => drawTimeline());

  timeline.addEventListener("mousemove", (event) => {
    const rect = timeline.getBoundingClientRect();
    const mx = event.clientX - rect.left, my = event.clientY - rect.top;
    const hit = barsDrawn.find(([x0, y0, x1, y1]) => mx >= x0 - 1 && mx <= x1 + 1 && my >= y0 && my <= y1);
    if (hit) showTip(event, describeOp(hit[4])); else hideTip();
  });
  timeline.addEventListener("mouseleave", hideTip);
  lamport.addEventListener("mousemove", (event) => {
    const rect = lamport.getBoundingClientRect();
    const mx = event.clientX - rect.left, my = event.clientY - rect.top;
    let best = null, bestDistance = 6;
    for (const [x0, y0, x1, y1, i] of arrowsDrawn) {
      const dx = x1 - x0, dy = y1 - y0, length = dx * dx + dy * dy || 1;
      const u = Math.max(0, Math.min(1, ((mx - x0) * dx + (my - y0) * dy) / length));
      const distance = Math.hypot(mx - (x0 + u * dx), my - (y0 + u * dy));
      if (distance < bestDistance) { best = i; bestDistance = distance; }
    }
    if (best === null) { hideTip(); return; }
    const m = M.list[best];
    showTip(event, [
      M.labels[m[4]],
      M.participants[m[0]] + " → " + M.participants[m[1]],
      "sent:      " + fmt(m[2]),
      m[3] === null ? "lost" : "delivered: " + fmt(m[3]) + " (" + fmt(m[3] - m[2]) + ")",
    ].join("\n"));
  });
  lamport.addEventListener("mouseleave", hideTip);

  function jump(event) {
    const rect = overview.getBoundingClientRect();
    const t = ((event.clientX - rect.left) / rect.width) * end;
    const span = view.t1 - view.t0;
    setView(t - span / 2, t + span / 2);
  }
  let jumping = false;
  overview.addEventListener("mousedown", (event) => { jumping = true; jump(event); });
  window.addEventListener("mouseup", () => { jumping = false; });
  overview.addEventListener("mousemove", (event) => { if (jumping) jump(event); });

  function showViolation() {
    if (!reg || !reg.violation || !reg.violation.length) return;
    selectedKey = reg.key;
    keySelect.value = String(reg.key);
    let t0 = Infinity, t1 = 0, lane = Infinity;
    for (const i of reg.violation) {
      t0 = Math.min(t0, ops[i][3]);
      t1 = Math.max(t1, ops[i][4] === null ? ops[i][3] : ops[i][4]);
      lane = Math.min(lane, ops[i][0]);
    }
    const margin = Math.max((t1 - t0) * 0.15, 1);
    lanes.scrollTop = Math.max(0, (lane - 2) * LANE);
    setView(t0 - margin, t1 + margin);
  }
  document.getElementById("show-violation").addEventListener("click", showViolation);
  window.addEventListener("resize", () => draw());
  window.addEventListener("keydown", (event) => {
    if (event.target.tagName === "SELECT") return;
    if (event.key === "+" || event.key === "=") zoom(0.5);
    else if (event.key === "-") zoom(2);
    else if (event.key === "ArrowLeft") setView(view.t0 - (view.t1 - view.t0) * 0.2, view.t1 - (view.t1 - view.t0) * 0.2);
    else if (event.key === "ArrowRight") setView(view.t0 + (view.t1 - view.t0) * 0.2, view.t1 + (view.t1 - view.t0) * 0.2);
  });

  // Start where there is something to see: the violation, or the first few hundred
  // operations of a long history.
  if (reg && reg.violation && reg.violation.length) showViolation();
  else if (ops.length > 400) setView(0, Math.max(10, ops[300][3]));
  else draw();
})();
