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
const overlay = overlayCanvas.getContext("2d");
const UNDO_DEPTH = 30;

let picture = null; // HTMLImageElement of the opened image
let pictureFile = null; // the original file, sent as-is
let undoStack = [];
let lastPoint = null;
let redrawPending = false;

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function loadImageFile(file) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`${file.name} is not an image the browser can open`));
    img.src = URL.createObjectURL(file);
  });
}

function resetMask() {
  mask.fillStyle = "black";
  mask.fillRect(0, 0, maskCanvas.width, maskCanvas.height);
}

function binariseMask() {
  const data = mask.getImageData(0, 0, maskCanvas.width, maskCanvas.height);
  const px = data.data;
  for (let i = 0; i < px.length; i += 4) {
    const luma = 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
    const v = luma > 127 ? 255 : 0;
    px[i] = px[i + 1] = px[i + 2] = v;
    px[i + 3] = 255;
  }
  mask.putImageData(data, 0, 0);
}

function redraw() {
  redrawPending = false;
  if (!picture) return;
  view.drawImage(picture, 0, 0);
  const data = mask.getImageData(0, 0, maskCanvas.width, maskCanvas.height);
  const tint = overlay.createImageData(data.width, data.height);
  for (let i = 0; i < data.data.length; i += 4) {
    if (data.data[i] > 127) {
      tint.data[i] = 255;
      tint.data[i + 3] = 140;
    }
  }
  overlay.putImageData(tint, 0, 0);
  view.drawImage(overlayCanvas, 0, 0);
}

function scheduleRedraw() {
  if (!redrawPending) {
    redrawPending = true;
    requestAnimationFrame(redraw);
  }
}

function pushUndo() {
  undoStack.push(mask.getImageData(0, 0, maskCanvas.width, maskCanvas.height));
  if (undoStack.length > UNDO_DEPTH) undoStack.shift();
  $("undo").disabled = false;
}

function imagePoint(event) {
  // CSS may scale the canvas; map the pointer from its content box (inside the border) to image pixels.
  const rect = canvas.getBoundingClientRect();
  return {
    x: ((event.clientX - rect.left - canvas.clientLeft) * canvas.width) / canvas.clientWidth,
    y: ((event.clientY - rect.top - canvas.clientTop) * canvas.height) / canvas.clientHeight,
  };
}

function paintTo(point) {
  mask.strokeStyle = mask.fillStyle = "white";
  mask.lineWidth = Number($("brush-size").value);
  mask.lineCap = mask.lineJoin = "round";
  mask.beginPath();
  mask.moveTo(lastPoint.x, lastPoint.y);
  mask.lineTo(point.x, point.y);
  mask.stroke();
  lastPoint = point;
  scheduleRedraw();
}

canvas.addEventListener("pointerdown", (event) => {
  if (!picture) return;
  canvas.setPointerCapture(event.pointerId);
  pushUndo();
  lastPoint = imagePoint(event);
  paintTo(lastPoint);
});

canvas.addEventListener("pointermove", (event) => {
  if (lastPoint) paintTo(imagePoint(event));
});

function endStroke() {
  if (!lastPoint) return;
  lastPoint = null;
  binariseMask();
  redraw();
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

$("brush-size").addEventListener("input", () => {
  $("brush-value").textContent = $("brush-size").value;
});

$("undo").addEventListener("click", () => {
  if (undoStack.length) mask.putImageData(undoStack.pop(), 0, 0);
  $("undo").disabled = undoStack.length === 0;
  redraw();
});

$("clear").addEventListener("click", () => {
  pushUndo();
  resetMask();
  redraw();
});

$("image-file").addEventListener("change", async () => {
  const file = $("image-file").files[0];
  if (!file) return;
  try {
    picture = await loadImageFile(file);
  } catch (err) {
    setStatus(err.message, true);
    return;
  }
  pictureFile = file;
  for (const c of [canvas, maskCanvas, overlayCanvas]) {
    c.width = picture.naturalWidth;
    c.height = picture.naturalHeight;
  }
  resetMask();
  undoStack = [];
  $("undo").disabled = true;
  for (const id of ["clear", "run"]) $(id).disabled = false;
  redraw();
  setStatus(`${file.name}: ${picture.naturalWidth}x${picture.naturalHeight}. Paint the hole.`);
});

$("mask-file").addEventListener("change", async () => {
  const file = $("mask-file").files[0];
  if (!file) return;
  if (!picture) {
    setStatus("Open the image first, then its mask.", true);
    return;
  }
  let img;
  try {
    img = await loadImageFile(file);
  } catch (err) {
    setStatus(err.message, true);
    return;
  }
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

$("run").addEventListener("click", async () => {
  if (!picture) return;
  $("run").disabled = true;
  setStatus("Inpainting...");
  try {
    const maskBlob = await new Promise((resolve) => maskCanvas.toBlob(resolve, "image/png"));
    const form = new FormData();
    form.append("image", pictureFile, pictureFile.name);
    form.append("mask", maskBlob, "mask.png");
    form.append("model", $("model").value);
    form.append("strategy", $("strategy").value);
    const response = await fetch("/api/inpaint", { method: "POST", body: form });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      throw new Error(`${response.status}: ${detail || response.statusText}`);
    }
    const url = URL.createObjectURL(await response.blob());
    const result = $("result");
    result.onload = () => setStatus(`Done in ${response.headers.get("X-Inpaint-Seconds")} s with ${$("model").value}.`);
    result.src = url;
    result.hidden = false;
    $("download").href = url;
    $("download").hidden = false;
  } catch (err) {
    setStatus(`Inpainting failed: ${err.message}`, true);
  } finally {
    $("run").disabled = false;
  }
});

loadModels();
