// inpaintlab page: open an image, paint the hole (white = hole in the mask sent), inpaint via the API.
// The mask lives in an off-screen canvas at the image's own resolution; it is binarised after every
// stroke so what the page shows in red is exactly what the server receives.
"use strict";

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const view = canvas.getContext("2d");
const maskCanvas = document.createElement("canvas");
const mask = maskCanvas.getContext("2d", { willReadFrequently: true });
const overlayCanvas = document.createElement("canvas");
const overlay = overlayCanvas.getContext("2d", { willReadFrequently: true });
const beforeCanvas = document.createElement("canvas"); // the mask before the stroke in progress
const before = beforeCanvas.getContext("2d", { willReadFrequently: true });
const UNDO_DEPTH = 30;
const TINT = "rgba(255, 0, 0, 0.55)"; // how the hole shows on the picture

let picture = null; // HTMLImageElement of the image being edited
let pictureFile = null; // its file, sent as-is (the opened file, or a render being edited further)
let inputName = "image"; // stem of the opened file: downloads are named after it
let undoStack = []; // mask edits: {rect, data} = the pixels of ``rect`` before the edit
let renders = []; // earlier pictures ({picture, file}) when editing a result further: Undo steps back to them
let redoStack = []; // what Undo took back, newest last: {rect, data} mask edits or {picture, file} renders
let previousResult = null; // the result before the latest one ({url, label}): hold Compare to see it
let lastPoint = null;
let dirty = null; // image-pixel box {x0, y0, x1, y1} the stroke in progress touched
let redrawPending = false;
let showOriginal = false; // while held: the picture without the red overlay
let maxPixels = Infinity; // the server's per-image limit (/api/models)
let running = null; // AbortController of the request in flight
let selectStart = null; // select mode: where the box drag began (image pixels)
let selectRect = null; // and the box so far {x0, y0, x1, y1}

function setStatus(text, isError = false) {
  // one live region: read out politely, or at once (role=alert) for an error
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
  $("status").setAttribute("role", isError ? "alert" : "status");
}

function loadImageFile(file) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`${file.name} is not an image the browser can open`));
    img.src = URL.createObjectURL(file);
  });
}

async function loadOrSay(file) {
  // the opened image, or null after saying in the status line why it did not open
  try {
    return await loadImageFile(file);
  } catch (err) {
    setStatus(err.message, true);
    return null;
  }
}

async function failure(response) {
  // an Error carrying the server's reason for a refused request
  const body = await response.json().catch(() => ({}));
  const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  return new Error(`${response.status}: ${detail || response.statusText}`);
}

function resetMask() {
  mask.fillStyle = "black";
  mask.fillRect(0, 0, maskCanvas.width, maskCanvas.height);
  overlay.clearRect(0, 0, overlayCanvas.width, overlayCanvas.height);
}

function wholeImage() {
  return { x: 0, y: 0, w: maskCanvas.width, h: maskCanvas.height };
}

function binariseMask(rect = wholeImage()) {
  // binarise the mask in ``rect`` and rebuild the red overlay there from it: what is shown is what is sent
  if (rect.w <= 0 || rect.h <= 0) return;
  const data = mask.getImageData(rect.x, rect.y, rect.w, rect.h);
  const tint = overlay.createImageData(rect.w, rect.h);
  const px = data.data;
  for (let i = 0; i < px.length; i += 4) {
    const luma = 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
    const v = luma > 127 ? 255 : 0;
    px[i] = px[i + 1] = px[i + 2] = v;
    px[i + 3] = 255;
    if (v) {
      tint.data[i] = 255;
      tint.data[i + 3] = 140;
    }
  }
  mask.putImageData(data, rect.x, rect.y);
  overlay.putImageData(tint, rect.x, rect.y);
}

function redraw() {
  // two blits: the picture, then the overlay kept up to date stroke by stroke (no per-frame pixel loop)
  redrawPending = false;
  if (!picture) return;
  view.drawImage(picture, 0, 0);
  if (showOriginal) return;
  view.drawImage(overlayCanvas, 0, 0);
  if (selectRect) {
    view.strokeStyle = "#00e5ff";
    view.lineWidth = Math.max(2, canvas.width / canvas.clientWidth);
    view.setLineDash([8, 6]);
    view.strokeRect(selectRect.x0, selectRect.y0, selectRect.x1 - selectRect.x0, selectRect.y1 - selectRect.y0);
    view.setLineDash([]);
  }
}

function scheduleRedraw() {
  if (!redrawPending) {
    redrawPending = true;
    requestAnimationFrame(redraw);
  }
}

function pushUndo(rect = wholeImage(), from = mask) {
  // keep only the pixels a change touches: a stroke's box, not a full-size copy of the mask
  undoStack.push({ rect, data: from.getImageData(rect.x, rect.y, rect.w, rect.h) });
  if (undoStack.length > UNDO_DEPTH) undoStack.shift();
  redoStack = []; // a new edit: what was undone can no longer be redone
  updateHistoryButtons();
}

function updateHistoryButtons() {
  $("undo").disabled = undoStack.length === 0 && renders.length === 0;
  $("redo").disabled = redoStack.length === 0;
}

function imagePoint(event) {
  // CSS may scale the canvas; map the pointer from its content box (inside the border) to image pixels.
  const rect = canvas.getBoundingClientRect();
  return {
    x: ((event.clientX - rect.left - canvas.clientLeft) * canvas.width) / canvas.clientWidth,
    y: ((event.clientY - rect.top - canvas.clientTop) * canvas.height) / canvas.clientHeight,
  };
}

function screenScale() {
  return canvas.clientWidth / canvas.width || 1; // screen px per image px
}

function applyZoom() {
  if (!picture) return;
  const choice = $("zoom").value;
  const fit = ($("stage").clientWidth - 2) / picture.naturalWidth; // the whole width of the stage
  const zoom = choice === "fit" ? fit : Number(choice);
  canvas.style.width = `${Math.max(1, Math.round(picture.naturalWidth * zoom))}px`;
}

function zoomBy(factor) {
  const zoom = screenScale() * factor;
  const option = [...$("zoom").options].find((o) => o.value === "custom") || new Option("", "custom");
  option.textContent = `${Math.round(zoom * 100)} %`;
  option.value = "custom";
  if (!option.parentNode) $("zoom").add(option);
  $("zoom").value = "custom";
  canvas.style.width = `${Math.max(1, Math.round(picture.naturalWidth * Math.min(16, Math.max(0.05, zoom))))}px`;
}

$("zoom").addEventListener("change", applyZoom);
window.addEventListener("resize", () => $("zoom").value === "fit" && applyZoom());
$("stage").addEventListener(
  "wheel",
  (event) => {
    if (!picture || !(event.ctrlKey || event.metaKey)) return;
    event.preventDefault();
    zoomBy(event.deltaY < 0 ? 1.25 : 0.8);
  },
  { passive: false },
);

let spaceHeld = false;
let panFrom = null;
function startPan(event) {
  panFrom = { x: event.clientX, y: event.clientY, left: $("stage").scrollLeft, top: $("stage").scrollTop };
  $("stage").classList.add("panning");
}
function panTo(event) {
  $("stage").scrollLeft = panFrom.left - (event.clientX - panFrom.x);
  $("stage").scrollTop = panFrom.top - (event.clientY - panFrom.y);
}

function showBrushCursor(event) {
  const cursor = $("brush-cursor");
  const size = Number($("brush-size").value);
  const painting = picture && !$("select-mode").checked && !spaceHeld && !panFrom;
  cursor.style.display = painting ? "block" : "none";
  cursor.style.width = cursor.style.height = `${size}px`;
  cursor.style.left = `${event.clientX - size / 2}px`;
  cursor.style.top = `${event.clientY - size / 2}px`;
}
canvas.addEventListener("pointerleave", () => ($("brush-cursor").style.display = "none"));

function paintTo(point) {
  // the segment goes into the mask and, tinted, into the overlay: only the new segment is drawn
  const width = Number($("brush-size").value) / screenScale(); // the brush is sized on screen
  const erase = $("eraser").checked;
  for (const [ctx, colour] of [[mask, erase ? "black" : "white"], [overlay, TINT]]) {
    ctx.globalCompositeOperation = ctx === overlay && erase ? "destination-out" : "source-over";
    ctx.strokeStyle = colour;
    ctx.lineWidth = width;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(lastPoint.x, lastPoint.y);
    ctx.lineTo(point.x, point.y);
    ctx.stroke();
  }
  overlay.globalCompositeOperation = "source-over";
  const r = width / 2 + 2;
  dirty = {
    x0: Math.min(dirty ? dirty.x0 : Infinity, lastPoint.x - r, point.x - r),
    y0: Math.min(dirty ? dirty.y0 : Infinity, lastPoint.y - r, point.y - r),
    x1: Math.max(dirty ? dirty.x1 : -Infinity, lastPoint.x + r, point.x + r),
    y1: Math.max(dirty ? dirty.y1 : -Infinity, lastPoint.y + r, point.y + r),
  };
  lastPoint = point;
  scheduleRedraw();
}

canvas.addEventListener("pointerdown", (event) => {
  if (!picture) return;
  canvas.setPointerCapture(event.pointerId);
  if (spaceHeld || event.button === 1) {
    event.preventDefault();
    startPan(event);
    return;
  }
  if ($("select-mode").checked) {
    selectStart = imagePoint(event);
    return;
  }
  beforeCanvas.width = maskCanvas.width; // the mask as it was: the stroke's undo box is cut from it at the end
  beforeCanvas.height = maskCanvas.height;
  before.drawImage(maskCanvas, 0, 0);
  dirty = null;
  lastPoint = imagePoint(event);
  paintTo(lastPoint);
});

canvas.addEventListener("pointermove", (event) => {
  showBrushCursor(event);
  if (panFrom) {
    panTo(event);
  } else if (selectStart) {
    const p = imagePoint(event);
    selectRect = {
      x0: Math.min(selectStart.x, p.x),
      y0: Math.min(selectStart.y, p.y),
      x1: Math.max(selectStart.x, p.x),
      y1: Math.max(selectStart.y, p.y),
    };
    scheduleRedraw();
  } else if (lastPoint) {
    paintTo(imagePoint(event));
  }
});

async function selectObject(box) {
  setStatus("Selecting the object in the box...");
  try {
    const form = new FormData();
    form.append("image", pictureFile, pictureFile.name);
    for (const [key, value] of Object.entries(box)) form.append(key, String(Math.round(value)));
    form.append("grow", $("grow").value);
    const response = await fetch("/api/select", { method: "POST", body: form });
    if (!response.ok) throw await failure(response);
    const selected = await loadImageFile(await response.blob());
    pushUndo();
    const before = mask.globalCompositeOperation;
    mask.globalCompositeOperation = "lighten"; // add the selection to what is already painted
    mask.imageSmoothingEnabled = false;
    mask.drawImage(selected, 0, 0, maskCanvas.width, maskCanvas.height);
    mask.globalCompositeOperation = before;
    binariseMask();
    setStatus("Object selected: touch it up with the brush or eraser, then Inpaint.");
  } catch (err) {
    setStatus(`Selection failed: ${err.message}`, true);
  }
  redraw();
}

async function growMask(sign) {
  // the whole hole, painted or selected, grown (sign 1) or shrunk (-1) by the px field, on the server
  const by = sign * Math.abs(Number($("grow").value) || 0);
  if (!by) return;
  try {
    const form = new FormData();
    form.append("mask", await new Promise((resolve) => maskCanvas.toBlob(resolve, "image/png")), "mask.png");
    form.append("by", String(by));
    const response = await fetch("/api/grow", { method: "POST", body: form });
    if (!response.ok) throw await failure(response);
    const grown = await loadImageFile(await response.blob());
    pushUndo();
    mask.imageSmoothingEnabled = false;
    mask.drawImage(grown, 0, 0);
    binariseMask();
    setStatus(`Hole ${by > 0 ? "grown" : "shrunk"} by ${Math.abs(by)} px (Undo takes it back).`);
  } catch (err) {
    setStatus(`Could not ${by > 0 ? "grow" : "shrink"} the hole: ${err.message}`, true);
  }
  redraw();
}
$("grow-mask").addEventListener("click", () => growMask(1));
$("shrink-mask").addEventListener("click", () => growMask(-1));

function endStroke() {
  if (panFrom) {
    panFrom = null;
    $("stage").classList.remove("panning");
    return;
  }
  if (selectStart) {
    const box = selectRect;
    selectStart = selectRect = null;
    redraw();
    if (box) selectObject(box);
    return;
  }
  if (!lastPoint) return;
  lastPoint = null;
  const x = Math.max(0, Math.floor(dirty.x0));
  const y = Math.max(0, Math.floor(dirty.y0));
  const rect = {
    x,
    y,
    w: Math.min(maskCanvas.width, Math.ceil(dirty.x1)) - x,
    h: Math.min(maskCanvas.height, Math.ceil(dirty.y1)) - y,
  };
  if (rect.w > 0 && rect.h > 0) pushUndo(rect, before);
  binariseMask(rect);
  redraw();
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

$("brush-size").addEventListener("input", () => setBrush(Number($("brush-size").value)));

function swapMask({ rect, data }) {
  // put ``data`` back into ``rect``; returns the entry that undoes this
  const now = { rect, data: mask.getImageData(rect.x, rect.y, rect.w, rect.h) };
  mask.putImageData(data, rect.x, rect.y);
  binariseMask(rect);
  return now;
}

function undo() {
  if (undoStack.length) {
    redoStack.push(swapMask(undoStack.pop()));
  } else if (renders.length) {
    redoStack.push({ picture, file: pictureFile });
    const previous = renders.pop();
    showPicture(previous.picture, previous.file);
    setStatus("Back to the previous picture (Redo returns to the result).");
  }
  updateHistoryButtons();
  redraw();
}

function redo() {
  const entry = redoStack.pop();
  if (!entry) return;
  if (entry.rect) {
    undoStack.push(swapMask(entry));
  } else {
    renders.push({ picture, file: pictureFile });
    showPicture(entry.picture, entry.file);
    setStatus("Editing the result again.");
  }
  updateHistoryButtons();
  redraw();
}
$("undo").addEventListener("click", undo);
$("redo").addEventListener("click", redo);

function setBrush(size) {
  const range = $("brush-size");
  range.value = Math.max(Number(range.min), Math.min(Number(range.max), size));
  $("brush-value").textContent = range.value;
}

function holdOriginal(on) {
  if (!picture || showOriginal === on) return;
  showOriginal = on;
  redraw();
}
$("original").addEventListener("pointerdown", () => holdOriginal(true));
for (const type of ["pointerup", "pointerleave", "pointercancel"]) {
  $("original").addEventListener(type, () => holdOriginal(false));
}

function cancelStroke() {
  // Esc: drop the box being dragged or the stroke being painted (the mask as it was before it)
  if (selectStart) {
    selectStart = selectRect = null;
  } else if (lastPoint) {
    mask.drawImage(beforeCanvas, 0, 0);
    binariseMask();
    lastPoint = dirty = null;
  } else {
    return false;
  }
  redraw();
  setStatus("Cancelled the stroke.");
  return true;
}

function toggleHelp(show = $("help").hidden) {
  $("help").hidden = !show;
}
$("help-close").addEventListener("click", () => toggleHelp(false));

document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement && !["range", "checkbox"].includes(event.target.type)) return;
  if (event.target instanceof HTMLSelectElement) return;
  const key = event.key.toLowerCase();
  if (event.key === "Escape") {
    if (!$("help").hidden) toggleHelp(false);
    else cancelStroke();
  } else if (event.key === "?") {
    toggleHelp();
  } else if (event.key === "Enter" && !(event.target instanceof HTMLButtonElement)) {
    if (!$("run").disabled) $("run").click();
  } else if ((event.ctrlKey || event.metaKey) && (key === "y" || (key === "z" && event.shiftKey))) {
    event.preventDefault();
    redo();
  } else if ((event.ctrlKey || event.metaKey) && key === "z") {
    event.preventDefault();
    undo();
  } else if (event.key === "[" || event.key === "]") {
    setBrush(Number($("brush-size").value) + (event.key === "]" ? 4 : -4));
  } else if (event.key === " " && picture) {
    event.preventDefault(); // hold Space and drag to pan
    spaceHeld = true;
    $("stage").classList.add("panning");
  } else if (event.key === "Tab" && picture) {
    event.preventDefault(); // IOPaint's key: hold Tab to see the original
    holdOriginal(true);
  } else if (event.key === "e") {
    $("eraser").checked = !$("eraser").checked;
  } else if (event.key === "s") {
    $("select-mode").checked = !$("select-mode").checked;
  }
});
document.addEventListener("keyup", (event) => {
  if (event.key === "Tab") holdOriginal(false);
  if (event.key === " ") {
    spaceHeld = false;
    if (!panFrom) $("stage").classList.remove("panning");
  }
});

$("clear").addEventListener("click", () => {
  pushUndo();
  resetMask();
  redraw();
});

function clearResult() {
  const result = $("result");
  if (result.src) URL.revokeObjectURL(result.src);
  result.removeAttribute("src");
  delete result.dataset.url;
  $("result-label").textContent = "";
  result.hidden = true;
  $("download").hidden = true;
  $("continue").disabled = true;
}

function forgetPreviousResult() {
  if (previousResult) URL.revokeObjectURL(previousResult.url);
  previousResult = null;
  $("compare").disabled = true;
  $("compare").textContent = "Hold: previous result";
}

function holdPrevious(on) {
  // show the previous result (another model or strategy on the same picture) while held
  const result = $("result");
  if (!previousResult || !result.dataset.url) return;
  result.src = on ? previousResult.url : result.dataset.url;
  $("result-label").textContent = on ? previousResult.label : result.dataset.label;
}
$("compare").addEventListener("pointerdown", () => holdPrevious(true));
for (const type of ["pointerup", "pointerleave", "pointercancel"]) {
  $("compare").addEventListener(type, () => holdPrevious(false));
}

function showPicture(img, file) {
  picture = img;
  pictureFile = file;
  for (const c of [canvas, maskCanvas, overlayCanvas]) {
    c.width = picture.naturalWidth;
    c.height = picture.naturalHeight;
  }
  resetMask();
  undoStack = [];
  for (const id of ["clear", "run", "original", "grow-mask", "shrink-mask"]) $(id).disabled = false;
  updateHistoryButtons();
  applyZoom();
  redraw();
}

async function openImage(file) {
  const img = await loadOrSay(file);
  if (!img) return;
  const pixels = img.naturalWidth * img.naturalHeight;
  if (pixels > maxPixels) {
    setStatus(
      `${file.name} is ${img.naturalWidth}x${img.naturalHeight} = ${pixels.toLocaleString()} pixels; this server ` +
        `takes at most ${maxPixels.toLocaleString()} (inpaintlab fill takes larger photos).`,
      true,
    );
    return;
  }
  clearResult();
  forgetPreviousResult();
  renders = [];
  redoStack = [];
  inputName = file.name.replace(/\.[^.]*$/, "") || "image";
  showPicture(img, file);
  setStatus(`${file.name}: ${img.naturalWidth}x${img.naturalHeight}. Paint the hole.`);
}

$("image-file").addEventListener("change", () => {
  const file = $("image-file").files[0];
  $("image-file").value = ""; // choosing the same file again opens it again
  if (file) openImage(file);
});

for (const type of ["dragover", "drop"]) {
  document.addEventListener(type, (event) => {
    event.preventDefault();
    const file = type === "drop" && event.dataTransfer.files[0];
    if (file) openImage(file);
  });
}
document.addEventListener("paste", (event) => {
  const file = [...event.clipboardData.files].find((f) => f.type.startsWith("image/"));
  if (file) openImage(file);
});

$("continue").addEventListener("click", async () => {
  const result = $("result");
  if (!result.src) return;
  const blob = await (await fetch(result.src)).blob();
  const img = await loadImageFile(blob);
  renders.push({picture, file: pictureFile});
  redoStack = [];
  showPicture(img, new File([blob], `${inputName}-inpainted.png`, {type: "image/png"}));
  setStatus("Editing the result: paint what should go next (Undo returns to the previous picture).");
});

$("mask-file").addEventListener("change", async () => {
  const file = $("mask-file").files[0];
  $("mask-file").value = ""; // the same mask file chosen again loads again
  if (!file) return;
  if (!picture) {
    setStatus("Open the image first, then its mask.", true);
    return;
  }
  const img = await loadOrSay(file);
  if (!img) return;
  pushUndo();
  resetMask();
  mask.imageSmoothingEnabled = false;
  mask.drawImage(img, 0, 0, maskCanvas.width, maskCanvas.height);
  binariseMask();
  redraw();
  const resized = img.naturalWidth !== maskCanvas.width || img.naturalHeight !== maskCanvas.height;
  setStatus(`Mask ${file.name} loaded${resized ? " (resized to the image, nearest neighbour)" : ""}.`);
});

async function loadModels() {
  try {
    const response = await fetch("/api/models");
    const info = await response.json();
    maxPixels = info.limits ? info.limits.max_pixels : Infinity;
    for (const model of info.models) {
      const kinds = {pretrained: "trained weights", classical: "classical, no learning", checkpoint: "your checkpoint"};
      const option = new Option(`${model.name} (${kinds[model.source] || model.source})`, model.name);
      option.selected = model.name === info.default_model;
      $("model").add(option);
    }
  } catch (err) {
    setStatus(`Could not list models: ${err.message}`, true);
  }
}

function maskIsEmpty() {
  const px = mask.getImageData(0, 0, maskCanvas.width, maskCanvas.height).data;
  for (let i = 0; i < px.length; i += 4) if (px[i] > 127) return false;
  return true;
}

function keepAsPrevious() {
  // the result on show becomes the one Compare flips to (its object URL stays alive for that)
  const result = $("result");
  if (!result.dataset.url) return;
  if (previousResult) URL.revokeObjectURL(previousResult.url);
  previousResult = { url: result.dataset.url, label: result.dataset.label };
  result.removeAttribute("src"); // clearResult must not revoke it
  delete result.dataset.url;
  $("compare").disabled = false;
  $("compare").textContent = `Hold: previous result (${previousResult.label})`;
}

async function showProgress(began) {
  // wall time since Inpaint, and what the server's queue holds now (GET /api/status)
  if (!running) return;
  const seconds = ((performance.now() - began) / 1000).toFixed(1);
  let queue = "";
  try {
    const state = await (await fetch("/api/status")).json();
    queue = state.waiting > 0 ? `queued: ${state.waiting} waiting` : state.running ? "running" : "";
  } catch (err) {
    queue = "server not answering";
  }
  if (running) setStatus(`Inpainting... ${seconds} s${queue ? ` (${queue})` : ""}. Cancel stops it.`);
}

$("cancel").addEventListener("click", () => {
  if (running) running.abort();
});

$("run").addEventListener("click", async () => {
  if (!picture) return;
  if (maskIsEmpty()) {
    setStatus("Nothing to fill: paint over what should disappear (or open a mask) first.", true);
    return;
  }
  $("run").disabled = true;
  $("cancel").hidden = false;
  running = new AbortController();
  const began = performance.now();
  const model = $("model").value;
  setStatus("Inpainting... (Cancel stops it)");
  const progress = setInterval(() => showProgress(began), 500);
  try {
    const maskBlob = await new Promise((resolve) => maskCanvas.toBlob(resolve, "image/png"));
    const form = new FormData();
    form.append("image", pictureFile, pictureFile.name);
    form.append("mask", maskBlob, "mask.png");
    form.append("model", model);
    form.append("strategy", $("strategy").value);
    const response = await fetch("/api/inpaint", { method: "POST", body: form, signal: running.signal });
    if (!response.ok) throw await failure(response);
    const blob = await response.blob();
    keepAsPrevious();
    clearResult();
    const url = URL.createObjectURL(blob);
    const result = $("result");
    const used = response.headers.get("X-Inpaint-Strategy");
    result.dataset.url = url;
    result.dataset.label = `${model}, ${used}`;
    $("result-label").textContent = result.dataset.label;
    const compute = response.headers.get("X-Inpaint-Seconds");
    const waited = response.headers.get("X-Inpaint-Queue-Seconds");
    result.onload = () => {
      if (result.src !== result.dataset.url) return; // the previous result shown while Compare is held
      const total = ((performance.now() - began) / 1000).toFixed(2);
      const queue = waited && Number(waited) > 0.05 ? `, ${Number(waited).toFixed(2)} s waiting` : "";
      setStatus(`Done in ${total} s with ${model} (server: ${Number(compute).toFixed(2)} s computing${queue}).`);
      $("continue").disabled = false;
    };
    result.src = url;
    result.hidden = false;
    $("download").href = url;
    $("download").download = `${inputName}-inpainted.png`;
    $("download").hidden = false;
  } catch (err) {
    setStatus(err.name === "AbortError" ? "Cancelled." : `Inpainting failed: ${err.message}`, err.name !== "AbortError");
  } finally {
    clearInterval(progress);
    running = null;
    $("cancel").hidden = true;
    $("run").disabled = false;
  }
});

loadModels();
