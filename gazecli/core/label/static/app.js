// gaze label: the page. Every action is sent to the server at once (which journals it) and
// queued, so fast typing keeps its order. Coordinates sent are full-resolution image pixels.
"use strict";

const COLOURS = ["#ffd400", "#ff4fd8", "#4dff88", "#ff9a3c", "#4fc3ff", "#c58bff"];
const SUGGESTION = "#00e5ff";
const DRAG_PX = 4; // a press that moves less than this (screen px) is a click

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const ctx = canvas.getContext("2d");
const stage = $("stage");
const tab = (window.crypto && crypto.randomUUID) ? crypto.randomUUID() : String(Math.random()).slice(2);

const S = {
  images: [], cursor: 0, progress: null, suggestions: false, order: "file",
  img: null, labels: null, zoom: 1, fit: true,
  suggested: new Map(), // key -> suggested persons
  waitingSuggestion: null, // the model's gaze for the person whose head box is drawn
  drag: null, ready: false, readOnly: false,
};
let queue = Promise.resolve();
const enqueue = (fn) => { queue = queue.then(fn).catch((e) => showError(e.message || String(e))); return queue; };

function showError(text) { const m = $("message"); m.className = "error"; m.textContent = text; }
function showInfo(text) { const m = $("message"); m.className = "info"; m.textContent = text; }
function clearMessage() { const m = $("message"); m.className = ""; m.textContent = ""; }

async function api(method, url, data) {
  const options = { method, headers: {} };
  if (data !== undefined) { options.headers["Content-Type"] = "application/json"; options.body = JSON.stringify({ tab, ...data }); }
  const response = await fetch(url, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = { error: `the server answered ${response.status}` }; }
  if (!response.ok) throw new Error(body.error || `the server answered ${response.status}`);
  return body;
}

const key = () => S.images[S.cursor].key;
const persons = () => (S.labels ? S.labels.persons : []);
const waiting = () => persons().find((p) => p.inout === null);

function iou(a, b) {
  const ix = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const iy = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = ix * iy;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

// suggested persons not yet labelled (their head box overlaps no labelled head)
function pending() {
  const list = S.suggested.get(key()) || [];
  return list.filter((s) => persons().every((p) => iou(p.head_box_xyxy_px, s.head_box_xyxy_px) < 0.3));
}

// ------------------------------------------------------------------ drawing
function arrow(x1, y1, x2, y2, colour, width, dashed) {
  ctx.save();
  ctx.strokeStyle = colour; ctx.fillStyle = colour; ctx.lineWidth = width;
  if (dashed) ctx.setLineDash([6, 4]);
  ctx.beginPath(); ctx.moveTo(x1, y1); ctx.lineTo(x2, y2); ctx.stroke();
  ctx.setLineDash([]);
  const a = Math.atan2(y2 - y1, x2 - x1), h = 6 + 2 * width;
  ctx.beginPath(); ctx.moveTo(x2, y2);
  ctx.lineTo(x2 - h * Math.cos(a - 0.4), y2 - h * Math.sin(a - 0.4));
  ctx.lineTo(x2 - h * Math.cos(a + 0.4), y2 - h * Math.sin(a + 0.4));
  ctx.closePath(); ctx.fill();
  ctx.restore();
}

function label(text, x, y, colour) {
  ctx.save();
  ctx.font = "bold 13px system-ui, sans-serif";
  const w = ctx.measureText(text).width + 6;
  ctx.fillStyle = "rgba(0,0,0,0.65)"; ctx.fillRect(x, y - 16, w, 16);
  ctx.fillStyle = colour; ctx.fillText(text, x + 3, y - 4);
  ctx.restore();
}

function drawPerson(p, colour, z, dashed, text) {
  const [x1, y1, x2, y2] = p.head_box_xyxy_px.map((v) => v * z);
  ctx.save();
  ctx.strokeStyle = colour; ctx.lineWidth = 2;
  if (dashed) ctx.setLineDash([6, 4]);
  ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
  ctx.restore();
  const cx = (x1 + x2) / 2, cy = (y1 + y2) / 2;
  if (p.inout === 1 || (p.gaze_xy_px && p.inout !== 0 && p.inout !== null)) {
    const gx = p.gaze_xy_px[0] * z, gy = p.gaze_xy_px[1] * z;
    arrow(cx, cy, gx, gy, colour, 2, dashed);
    ctx.save(); ctx.strokeStyle = colour; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.arc(gx, gy, 5, 0, 2 * Math.PI); ctx.stroke(); ctx.restore();
  }
  if (text) label(text, x1, Math.max(16, y1), colour);
}

function draw() {
  if (!S.img) return;
  const entry = S.images[S.cursor];
  const z = S.zoom;
  canvas.width = Math.max(1, Math.round(entry.width * z));
  canvas.height = Math.max(1, Math.round(entry.height * z));
  ctx.imageSmoothingEnabled = z < 2;
  ctx.drawImage(S.img, 0, 0, canvas.width, canvas.height);
  pending().forEach((s, i) => {
    const sugg = { ...s, inout: s.inout === null || s.inout >= 0.5 ? 1 : 0 };
    drawPerson(sugg, SUGGESTION, z, true, i === 0 && !waiting() ? "suggestion: enter accepts" : "");
  });
  persons().forEach((p, i) => {
    const colour = COLOURS[i % COLOURS.length];
    if (p.inout === null) {
      drawPerson(p, colour, z, true, `${i + 1}: click where this person looks, or o`);
      const s = S.waitingSuggestion;
      if (s) drawPerson({ head_box_xyxy_px: p.head_box_xyxy_px, gaze_xy_px: s.gaze_xy_px, inout: s.inout === null || s.inout >= 0.5 ? 1 : 0 },
                        SUGGESTION, z, true, "");
    } else {
      drawPerson(p, colour, z, false, p.inout === 0 ? `${i + 1}: outside` : `${i + 1}`);
    }
  });
  if (S.drag && S.drag.moved) {
    const d = S.drag;
    ctx.save(); ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 1.5; ctx.setLineDash([4, 3]);
    ctx.strokeRect(Math.min(d.x0, d.x1), Math.min(d.y0, d.y1), Math.abs(d.x1 - d.x0), Math.abs(d.y1 - d.y0));
    ctx.restore();
  }
  window.gazeLabel.zoom = z;
}

function render() {
  const entry = S.images[S.cursor];
  const status = S.labels ? S.labels.status : entry.status;
  entry.status = status;
  $("name").textContent = entry.key;
  $("where").textContent = `image ${S.cursor + 1} / ${S.images.length}` + (S.order !== "file" ? ` (${S.order} order)` : "");
  $("status").textContent = status;
  $("status").className = "status " + status;
  $("zoom").textContent = `${Math.round(S.zoom * 100)}%`;
  const p = S.progress;
  if (p) {
    $("bar-fill").style.width = `${(100 * (p.done + p.skipped)) / Math.max(1, p.images)}%`;
    $("progress").textContent = `${p.done} / ${p.images} images done` + (p.skipped ? `, ${p.skipped} skipped` : "") +
      ` · ${p.persons} person${p.persons === 1 ? "" : "s"} labelled` + (p.persons_outside ? ` (${p.persons_outside} outside)` : "");
  }
  draw();
  window.gazeLabel.key = entry.key;
  window.gazeLabel.status = status;
  window.gazeLabel.persons = persons().length;
  window.gazeLabel.pending = pending().length;
  window.gazeLabel.waitingSuggestion = S.waitingSuggestion;
}

function fitZoom() {
  const entry = S.images[S.cursor];
  const z = Math.min((stage.clientWidth - 4) / entry.width, (stage.clientHeight - 4) / entry.height);
  return Math.max(0.05, Math.min(16, z));
}

function setZoom(z, fit) {
  S.fit = !!fit;
  S.zoom = Math.max(0.05, Math.min(16, z));
  render();
}

// ------------------------------------------------------------------ loading
async function refreshWaitingSuggestion() {
  S.waitingSuggestion = null;
  const w = waiting();
  if (!S.suggestions || !w) return;
  S.waitingSuggestion = await api("POST", "/api/suggest-gaze", { key: key(), head_box_xyxy_px: w.head_box_xyxy_px });
}

async function go(index) {
  index = Math.max(0, Math.min(S.images.length - 1, index));
  S.cursor = index;
  window.gazeLabel.ready = false;
  const k = key();
  const img = new Image();
  const loaded = new Promise((resolve, reject) => { img.onload = resolve; img.onerror = () => reject(new Error(`cannot load image ${k}`)); });
  img.src = `/api/image?key=${encodeURIComponent(k)}`;
  const labels = await api("GET", `/api/labels?key=${encodeURIComponent(k)}`);
  if (S.suggestions && !S.suggested.has(k)) S.suggested.set(k, (await api("GET", `/api/suggest?key=${encodeURIComponent(k)}`)).persons);
  await loaded;
  S.img = img; S.labels = labels.image; S.progress = labels.progress;
  await refreshWaitingSuggestion();
  if (S.fit) S.zoom = fitZoom();
  render();
  window.gazeLabel.ready = true;
}

async function act(op, extra) {
  const result = await api("POST", "/api/action", { op, image: key(), ...(extra || {}) });
  S.labels = result.image; S.progress = result.progress;
  clearMessage();
  await refreshWaitingSuggestion();
  render();
}

async function claim() {
  try {
    await api("POST", "/api/claim", {});
    if (S.readOnly) { S.readOnly = false; clearMessage(); }
  } catch (e) {
    S.readOnly = true;
    showError(e.message);
  }
}

// ------------------------------------------------------------------ actions
const suggestedInout = (s) => (s.inout === null || s.inout >= 0.5 ? 1 : 0);

async function next() {
  const status = S.labels.status;
  if (persons().length && status !== "done") await act("done");
  if (S.cursor + 1 < S.images.length) await go(S.cursor + 1);
  else showInfo("last image: press export when you are done");
}

async function accept() {
  const w = waiting();
  if (w) {
    const s = S.waitingSuggestion;
    if (!s) throw new Error("no suggestion for this person: click where they look, or o");
    if (suggestedInout(s)) await act("gaze", { gaze_xy_px: s.gaze_xy_px });
    else await act("outside");
    return;
  }
  const p = pending();
  if (p.length) {
    const s = p[0];
    const inout = suggestedInout(s);
    await act("person", { head_box_xyxy_px: s.head_box_xyxy_px, gaze_xy_px: inout ? s.gaze_xy_px : null, inout, source: "suggested" });
    return;
  }
  await next();
}

async function clickAt(x, y) {
  const p = pending();
  if (!waiting() && p.length) {
    await act("person", { head_box_xyxy_px: p[0].head_box_xyxy_px, gaze_xy_px: [x, y], inout: 1, source: "suggested-head" });
  } else {
    await act("gaze", { gaze_xy_px: [x, y] });
  }
}

async function outside() {
  const p = pending();
  if (!waiting() && p.length) await act("person", { head_box_xyxy_px: p[0].head_box_xyxy_px, gaze_xy_px: null, inout: 0, source: "suggested-head" });
  else await act("outside");
}

async function exportDataset() {
  showInfo("exporting...");
  const s = await api("POST", "/api/export", {});
  showInfo(`exported ${s.images} images (${s.train_images} train, ${s.test_images} test; ${s.train_persons + s.test_persons} persons) to ${s.dataset}`);
}

// ------------------------------------------------------------------ input
function imagePoint(e) {
  const rect = canvas.getBoundingClientRect();
  const entry = S.images[S.cursor];
  const x = Math.max(0, Math.min(entry.width, (e.clientX - rect.left) / S.zoom));
  const y = Math.max(0, Math.min(entry.height, (e.clientY - rect.top) / S.zoom));
  return [x, y, e.clientX - rect.left, e.clientY - rect.top];
}

canvas.addEventListener("mousedown", (e) => {
  if (e.button !== 0) return;
  const [x, y, sx, sy] = imagePoint(e);
  S.drag = { ix0: x, iy0: y, x0: sx, y0: sy, x1: sx, y1: sy, ix1: x, iy1: y, moved: false };
  e.preventDefault();
});
window.addEventListener("mousemove", (e) => {
  const d = S.drag;
  if (!d) return;
  const [x, y, sx, sy] = imagePoint(e);
  Object.assign(d, { x1: sx, y1: sy, ix1: x, iy1: y });
  if (Math.hypot(sx - d.x0, sy - d.y0) >= DRAG_PX) d.moved = true;
  if (d.moved) draw();
});
window.addEventListener("mouseup", (e) => {
  const d = S.drag;
  if (!d) return;
  S.drag = null;
  if (d.moved) {
    const box = [Math.min(d.ix0, d.ix1), Math.min(d.iy0, d.iy1), Math.max(d.ix0, d.ix1), Math.max(d.iy0, d.iy1)];
    enqueue(() => act("head", { head_box_xyxy_px: box }));
  } else {
    enqueue(() => clickAt(d.ix0, d.iy0));
  }
  draw();
});

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const k = e.key;
  const handlers = {
    ArrowRight: next, ArrowLeft: () => go(S.cursor - 1), o: outside, O: outside, u: () => act("undo"), U: () => act("undo"),
    s: async () => { await act("skip"); if (S.cursor + 1 < S.images.length) await go(S.cursor + 1); },
    Enter: accept,
    "+": () => setZoom(S.zoom * 1.5, false), "=": () => setZoom(S.zoom * 1.5, false), "-": () => setZoom(S.zoom / 1.5, false),
    0: () => setZoom(fitZoom(), true), 1: () => setZoom(1, false),
  };
  if (handlers[k]) { e.preventDefault(); enqueue(handlers[k]); }
});

$("prev").onclick = () => enqueue(() => go(S.cursor - 1));
$("next").onclick = () => enqueue(next);
$("skip").onclick = () => enqueue(async () => { await act("skip"); if (S.cursor + 1 < S.images.length) await go(S.cursor + 1); });
$("undo").onclick = () => enqueue(() => act("undo"));
$("zoomin").onclick = () => setZoom(S.zoom * 1.5, false);
$("zoomout").onclick = () => setZoom(S.zoom / 1.5, false);
$("fit").onclick = () => setZoom(S.fit ? 1 : fitZoom(), !S.fit);
$("export").onclick = () => enqueue(exportDataset);
window.addEventListener("resize", () => { if (S.fit && S.img) setZoom(fitZoom(), true); });

// for scripts and tests: the page's state, and a promise that resolves once every queued action is done
window.gazeLabel = { ready: false, zoom: 1, key: null, idle: () => queue, pendingFirst: () => pending()[0] || null };

enqueue(async () => {
  const state = await api("GET", "/api/state");
  Object.assign(S, { images: state.images, suggestions: state.suggestions, order: state.order, progress: state.progress });
  await claim();
  setInterval(claim, 5000);
  await go(state.cursor);
});
