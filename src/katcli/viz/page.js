// kat viz: a dependency-free 3-D scatter of the prompt space, drawn on a 2-D canvas.
//
// Points are rotated (yaw about the vertical axis, then pitch), projected with a pinhole camera and painted
// far-to-near, so nearer points cover farther ones. Everything the page needs is inline: the data comes from
// the two JSON data blocks above (type application/json), and prompt text only ever reaches the DOM through
// textContent, never as markup.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("kat-data").textContent);
  const CONFIG = JSON.parse(document.getElementById("kat-config").textContent);
  const points = DATA.points;
  const n = points.length;
  const nTotal = DATA.n_total || n;

  // ---------------------------------------------------------------- geometry
  // Centre on the centroid and scale so the farthest point sits on the unit sphere.
  const X = new Float64Array(n), Y = new Float64Array(n), Z = new Float64Array(n);
  (function normalise() {
    let mx = 0, my = 0, mz = 0;
    for (const p of points) { mx += p.x; my += p.y; mz += p.z; }
    if (n) { mx /= n; my /= n; mz /= n; }
    let r = 0;
    for (let i = 0; i < n; i++) {
      X[i] = points[i].x - mx; Y[i] = points[i].y - my; Z[i] = points[i].z - mz;
      r = Math.max(r, Math.hypot(X[i], Y[i], Z[i]));
    }
    const s = r > 0 ? 1 / r : 1;
    for (let i = 0; i < n; i++) { X[i] *= s; Y[i] *= s; Z[i] *= s; }
  })();

  // ---------------------------------------------------------------- colour scales
  // Cool-to-warm, readable on the dark background at both ends; warm always means "rare".
  const RAMP = [[59, 76, 192], [111, 158, 248], [201, 215, 240], [244, 154, 123], [180, 4, 38]];
  const CATEGORICAL = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948",
                       "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

  function ramp(t) {
    t = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0.5));
    const f = t * (RAMP.length - 1), k = Math.min(RAMP.length - 2, Math.floor(f)), u = f - k;
    const a = RAMP[k], b = RAMP[k + 1];
    return "rgb(" + [0, 1, 2].map((j) => Math.round(a[j] + (b[j] - a[j]) * u)).join(",") + ")";
  }
  const rampCss = "linear-gradient(to right, " + [0, 0.25, 0.5, 0.75, 1].map((t) => ramp(t)).join(", ") + ")";

  // The colour range spans the 2nd to 98th percentile, so a few extreme prompts do not wash out the
  // contrast of everything else; values beyond it take the end colours and the legend says "≤" / "≥".
  function colourRange(values) {
    const v = values.filter(Number.isFinite).sort((a, b) => a - b);
    if (!v.length) return { lo: 0, hi: 1, below: "", above: "" };
    const at = (q) => v[Math.min(v.length - 1, Math.max(0, Math.round(q * (v.length - 1))))];
    let lo = at(0.02), hi = at(0.98);
    if (!(hi > lo)) { lo = v[0]; hi = v[v.length - 1]; }
    return { lo: lo, hi: hi, below: v[0] < lo ? "≤" : "", above: v[v.length - 1] > hi ? "≥" : "" };
  }
  const unit = (v, lo, hi) => (hi > lo ? (v - lo) / (hi - lo) : 0.5);

  function fmtRatio(r) {
    if (r >= 100) return r.toFixed(0) + "×";
    if (r >= 10) return r.toFixed(1) + "×";
    return r.toPrecision(2) + "×";
  }
  function fmtNum(v) {
    if (v === null || v === undefined) return "n/a";
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e4) ? v.toExponential(2) : Number(v.toPrecision(3)).toString();
  }

  const sources = Object.keys(DATA.sources || {}).sort();
  for (const p of points) if (!sources.includes(p.src)) sources.push(p.src);
  const sourceColour = {};
  sources.forEach((s, k) => { sourceColour[s] = CATEGORICAL[k % CATEGORICAL.length]; });
  const hasDensity = DATA.density && DATA.density.kind !== "none" && points.every((p) => p.density !== null);

  // Each mode: a colour per point plus what the legend shows.
  function buildMode(mode) {
    if (mode === "source") {
      return { colours: points.map((p) => sourceColour[p.src]), title: "source",
               items: sources.map((s) => [sourceColour[s], s]) };
    }
    if (mode === "density") {
      const { lo, hi, below, above } = colourRange(points.map((p) => p.density));
      const relative = DATA.density.kind === "relative";
      // Reversed ramp: low density (rare) is warm, as it is for high weight.
      return { colours: points.map((p) => ramp(1 - unit(p.density, lo, hi))),
               title: relative ? "density, relative to the densest prompt" : "density (mean k-NN cosine similarity)",
               bar: "linear-gradient(to left" + rampCss.slice(rampCss.indexOf(",")),
               ticks: [["sparse · " + below + fmtNum(lo), 0], [above + fmtNum(hi) + " · dense", 1]] };
    }
    // Weight on a log scale, in multiples of the uniform weight 1/N: 1× is "as likely as under uniform sampling".
    const logs = points.map((p) => Math.log10(p.weight * nTotal));
    const { lo, hi, below, above } = colourRange(logs);
    const ticks = [[below + fmtRatio(10 ** lo), 0], [above + fmtRatio(10 ** hi), 1]];
    const one = unit(0, lo, hi); // where "as likely as uniform" falls on the bar
    if (one > 0.2 && one < 0.8) ticks.push(["1×", one]); // not crowding the end labels
    return { colours: logs.map((v) => ramp(unit(v, lo, hi))),
             title: "density weight (× uniform 1/N, log scale)", bar: rampCss, ticks: ticks };
  }

  // ---------------------------------------------------------------- state
  const DEFAULT_VIEW = { yaw: 0.65, pitch: 0.35, zoom: 1, panX: 0, panY: 0 };
  const view = Object.assign({}, DEFAULT_VIEW);
  function resetView() {
    Object.assign(view, DEFAULT_VIEW);
    // On wide screens, centre the cloud in the space to the right of the info panel, scaled to fit it.
    const panel = document.getElementById("info").getBoundingClientRect();
    const free = width - panel.right - 12;
    if (free > 450) {
      view.panX = (panel.right + 12) / 2;
      view.zoom = Math.min(1, Math.min(free, height) / Math.min(width, height));
    }
  }
  const CAMERA = 3.2; // camera distance in units of the data radius
  let mode = ["weight", "density", "source"].includes(CONFIG.color) ? CONFIG.color : "weight";
  if (mode === "density" && !hasDensity) mode = "weight";
  let scale = buildMode(mode);
  const enabled = new Set(sources);
  let hovered = -1;

  const BACKGROUND = getComputedStyle(document.documentElement).getPropertyValue("--bg").trim() || "#14161c";
  const canvas = document.getElementById("view");
  const ctx = canvas.getContext("2d");
  let width = 0, height = 0;

  // Screen positions of the last frame, in paint order (far to near), for hover hit-testing.
  const drawnIdx = new Int32Array(n), drawnX = new Float64Array(n), drawnY = new Float64Array(n),
        drawnR = new Float64Array(n);
  let drawnCount = 0;
  const depth = new Float64Array(n), sx = new Float64Array(n), sy = new Float64Array(n),
        persp = new Float64Array(n);

  function resize() {
    const dpr = window.devicePixelRatio || 1;
    width = canvas.clientWidth || window.innerWidth;
    height = canvas.clientHeight || window.innerHeight;
    canvas.width = Math.max(1, Math.round(width * dpr));
    canvas.height = Math.max(1, Math.round(height * dpr));
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  }

  // Rotate, then perspective-project one point; returns [screenX, screenY, depth, perspective factor].
  function projector() {
    const cy = Math.cos(view.yaw), sy_ = Math.sin(view.yaw), cp = Math.cos(view.pitch), sp = Math.sin(view.pitch);
    const focal = view.zoom * Math.min(width, height) * 0.42 * CAMERA;
    const ox = width / 2 + view.panX, oy = height / 2 + view.panY;
    return function (x, y, z) {
      const x1 = cy * x + sy_ * z, z1 = -sy_ * x + cy * z;
      const y2 = cp * y - sp * z1, z2 = sp * y + cp * z1;
      const d = CAMERA - z2; // > 0: the data lies inside the unit sphere, the camera at distance CAMERA
      const f = focal / d;
      return [ox + x1 * f, oy - y2 * f, d, CAMERA / d];
    };
  }

  function drawAxes(proj) {
    const labels = axisLabels();
    const o = proj(0, 0, 0);
    ctx.lineWidth = 1;
    ctx.font = "11px system-ui, sans-serif";
    [[1, 0, 0], [0, 1, 0], [0, 0, 1]].forEach((e, k) => {
      const a = proj(e[0] * 0.9, e[1] * 0.9, e[2] * 0.9);
      ctx.strokeStyle = "rgba(154, 161, 178, 0.35)";
      ctx.beginPath(); ctx.moveTo(o[0], o[1]); ctx.lineTo(a[0], a[1]); ctx.stroke();
      ctx.fillStyle = "rgba(154, 161, 178, 0.8)";
      ctx.fillText(labels[k], a[0] + 4, a[1] - 4);
    });
  }

  function axisLabels() {
    const m = DATA.projection || {};
    const names = m.method === "umap" ? ["UMAP 1", "UMAP 2", "UMAP 3"] : ["PC1", "PC2", "PC3"];
    const evr = m.explained_variance_ratio;
    return names.map((s, k) => (evr ? s + " " + (100 * evr[k]).toFixed(1) + "%" : s));
  }

  // While the view moves, a frame that would be slow (many points, software rendering) paints squares
  // instead of circles; the full-quality frame follows once the motion pauses.
  const SLOW_FRAME_MS = 30, SETTLE_MS = 160;
  let slowFrames = false, quick = false, settleTimer = 0;

  function draw() {
    const started = performance.now();
    ctx.fillStyle = BACKGROUND;
    ctx.fillRect(0, 0, width, height);
    const proj = projector();
    if (n) drawAxes(proj);

    let m = 0;
    for (let i = 0; i < n; i++) {
      if (!enabled.has(points[i].src)) continue;
      const q = proj(X[i], Y[i], Z[i]);
      sx[i] = q[0]; sy[i] = q[1]; depth[i] = q[2]; persp[i] = q[3];
      drawnIdx[m++] = i;
    }
    const order = Array.from(drawnIdx.subarray(0, m)).sort((a, b) => depth[b] - depth[a] || a - b);
    const base = Math.max(1.6, Math.min(4, 2.6 * Math.sqrt(view.zoom)));
    for (let k = 0; k < m; k++) {
      const i = order[k];
      const r = Math.max(1, Math.min(9, base * persp[i]));
      // Depth cue: far points fade a little, so the front of the cloud reads as the front.
      ctx.globalAlpha = Math.max(0.35, Math.min(1, 0.25 + 0.75 * persp[i]));
      ctx.fillStyle = scale.colours[i];
      if (quick) ctx.fillRect(sx[i] - r, sy[i] - r, 2 * r, 2 * r);
      else { ctx.beginPath(); ctx.arc(sx[i], sy[i], r, 0, 2 * Math.PI); ctx.fill(); }
      drawnIdx[k] = i; drawnX[k] = sx[i]; drawnY[k] = sy[i]; drawnR[k] = r;
    }
    ctx.globalAlpha = 1;
    drawnCount = m;

    if (hovered >= 0 && enabled.has(points[hovered].src)) {
      const r = Math.max(1, Math.min(9, base * persp[hovered]));
      ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.arc(sx[hovered], sy[hovered], r + 3, 0, 2 * Math.PI); ctx.stroke();
    }
    document.getElementById("empty").style.display = m ? "none" : "block";
    // Machine-readable facts about the page, for tests and scripts that load it headlessly.
    document.body.dataset.points = String(n);
    document.body.dataset.drawn = String(m);
    document.body.dataset.colour = mode;
    if (!quick) slowFrames = performance.now() - started > SLOW_FRAME_MS;
  }

  let pending = false;
  function schedule(moving) {
    quick = Boolean(moving) && slowFrames;
    if (quick) {
      clearTimeout(settleTimer);
      settleTimer = setTimeout(() => schedule(false), SETTLE_MS);
    }
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  }

  // ---------------------------------------------------------------- hover tooltip
  const tooltip = document.getElementById("tooltip");
  const TOOLTIP_CHARS = 280;

  function pick(mx, my) {
    for (let k = drawnCount - 1; k >= 0; k--) { // nearest-to-camera first
      const dx = drawnX[k] - mx, dy = drawnY[k] - my, r = drawnR[k] + 3;
      if (dx * dx + dy * dy <= r * r) return drawnIdx[k];
    }
    return -1;
  }

  function showTooltip(i, mx, my) {
    if (i < 0) { tooltip.style.display = "none"; return; }
    const p = points[i];
    const meta = tooltip.querySelector(".meta");
    meta.textContent = "";
    const add = (label, value) => {
      const b = document.createElement("b"); b.textContent = value;
      meta.append(label ? label + " " : "", b, "  ");
    };
    add("weight", fmtNum(p.weight) + " (" + fmtRatio(p.weight * nTotal) + " uniform)");
    if (p.density !== null) add("density", fmtNum(p.density));
    meta.append(document.createElement("br"));
    add("", p.src);
    add("id", String(p.id));
    const text = p.text.length > TOOLTIP_CHARS ? p.text.slice(0, TOOLTIP_CHARS - 1) + "…" : p.text;
    tooltip.querySelector(".text").textContent = text;
    tooltip.style.display = "block";
    const w = tooltip.offsetWidth, h = tooltip.offsetHeight;
    tooltip.style.left = Math.min(mx + 14, width - w - 8) + "px";
    tooltip.style.top = (my + 14 + h > height ? Math.max(8, my - h - 14) : my + 14) + "px";
  }

  // ---------------------------------------------------------------- mouse: rotate, pan, zoom
  let drag = null, touched = false;
  canvas.addEventListener("pointerdown", (e) => {
    const pan = e.button === 2 || e.shiftKey;
    if (e.button !== 0 && e.button !== 2) return;
    drag = { pan: pan, x: e.clientX, y: e.clientY };
    touched = true;
    canvas.setPointerCapture(e.pointerId);
    canvas.classList.add("dragging");
    hovered = -1; showTooltip(-1);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (drag) {
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      drag.x = e.clientX; drag.y = e.clientY;
      if (drag.pan) { view.panX += dx; view.panY += dy; }
      else {
        view.yaw += dx * 0.008;
        view.pitch = Math.max(-1.55, Math.min(1.55, view.pitch + dy * 0.008));
      }
      schedule(true);
      return;
    }
    const i = pick(e.offsetX, e.offsetY);
    if (i !== hovered) { hovered = i; schedule(); }
    showTooltip(i, e.offsetX, e.offsetY);
  });
  const endDrag = () => { drag = null; canvas.classList.remove("dragging"); };
  canvas.addEventListener("pointerup", endDrag);
  canvas.addEventListener("pointercancel", endDrag);
  canvas.addEventListener("pointerleave", () => {
    if (!drag && hovered >= 0) { hovered = -1; showTooltip(-1); schedule(); }
  });
  canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  canvas.addEventListener("dblclick", () => { resetView(); schedule(); });
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    touched = true;
    const factor = Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015));
    const z = Math.max(0.2, Math.min(60, view.zoom * factor)), r = z / view.zoom;
    // Zoom about the cursor: the point under it stays under it.
    const ox = e.offsetX - width / 2 - view.panX, oy = e.offsetY - height / 2 - view.panY;
    view.panX = e.offsetX - width / 2 - ox * r; view.panY = e.offsetY - height / 2 - oy * r;
    view.zoom = z;
    hovered = -1; showTooltip(-1);
    schedule(true);
  }, { passive: false });
  window.addEventListener("resize", () => {
    resize();
    if (!touched) resetView(); // keep the initial framing fitted until the user moves the view
    schedule();
  });

  // ---------------------------------------------------------------- controls and legend
  function renderLegend() {
    document.getElementById("legend-title").textContent = scale.title;
    const bar = document.getElementById("legend-bar"), ticks = document.getElementById("legend-ticks"),
          items = document.getElementById("legend-items");
    ticks.textContent = ""; items.textContent = "";
    bar.style.display = scale.bar ? "block" : "none";
    ticks.style.display = scale.bar ? "block" : "none";
    if (scale.bar) {
      bar.style.background = scale.bar;
      for (const [label, at] of scale.ticks) {
        // Anchor each label at its value; translate by the same fraction so the end labels stay inside.
        const s = document.createElement("span");
        s.textContent = label;
        s.style.left = 100 * at + "%";
        s.style.transform = "translateX(" + -100 * at + "%)";
        ticks.append(s);
      }
    }
    for (const [colour, label] of scale.items || []) {
      const row = document.createElement("div"), sw = document.createElement("span");
      sw.className = "swatch"; sw.style.background = colour;
      row.append(sw, label);
      items.append(row);
    }
  }

  function setMode(next) {
    mode = next;
    scale = buildMode(mode);
    renderLegend();
    schedule();
  }

  for (const input of document.querySelectorAll('input[name="colour"]')) {
    input.checked = input.value === mode;
    if (input.value === "density" && !hasDensity) {
      input.disabled = true;
      input.parentElement.classList.add("disabled");
      input.parentElement.title = "the embeddings metadata records no density parameters";
    }
    input.addEventListener("change", () => { if (input.checked) setMode(input.value); });
  }

  const counts = {};
  for (const p of points) counts[p.src] = (counts[p.src] || 0) + 1;
  const boxes = [];
  const list = document.getElementById("sources");
  for (const s of sources) {
    const label = document.createElement("label"), box = document.createElement("input"),
          sw = document.createElement("span"), count = document.createElement("span");
    box.type = "checkbox"; box.checked = true; box.value = s;
    box.addEventListener("change", () => {
      if (box.checked) enabled.add(s); else enabled.delete(s);
      hovered = -1; showTooltip(-1); schedule();
    });
    sw.className = "swatch"; sw.style.background = sourceColour[s];
    count.className = "count"; count.textContent = (counts[s] || 0).toLocaleString("en-US");
    label.append(box, sw, s, count);
    list.append(label);
    boxes.push(box);
  }
  const setAll = (on) => {
    for (const b of boxes) { b.checked = on; if (on) enabled.add(b.value); else enabled.delete(b.value); }
    hovered = -1; showTooltip(-1); schedule();
  };
  document.getElementById("src-all").addEventListener("click", () => setAll(true));
  document.getElementById("src-none").addEventListener("click", () => setAll(false));

  (function summary() {
    const m = DATA.projection || {};
    const parts = [(m.method || "?").toUpperCase(),
                   n.toLocaleString("en-US") + " of " + nTotal.toLocaleString("en-US") + " prompts"];
    if (DATA.n_rare_kept) parts.push(DATA.n_rare_kept.toLocaleString("en-US") + " rarest always kept");
    if (m.explained_variance_ratio) {
      const total = m.explained_variance_ratio.reduce((a, b) => a + b, 0);
      parts.push((100 * total).toFixed(1) + "% of variance in view");
    }
    document.getElementById("summary").textContent = parts.join(" · ");
    document.title = "kat viz · " + n + " points";
  })();

  resize();
  resetView();
  renderLegend();
  draw(); // synchronously, so a headless load sees a finished first frame
})();
