// Stylecast camera page: webcam (or a dropped image or video) → WebSocket → stylised canvas.
// Plain ES module, no build step, nothing from elsewhere. The wire format is documented in
// serving/web/protocol.py: a hello, then binary frames [u32 header length][JSON header][image].
// At most `maxInFlight` frames (the server's hello says 2) are unanswered at once, so a slow
// model drops frames instead of queueing them.

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("server-status"), tokenForm: $("token-form"), token: $("token"),
  model: $("model"), strength: $("strength"), strengthValue: $("strength-value"),
  preserve: $("preserve-color"), maxSide: $("max-side"), format: $("format"),
  start: $("start"), stop: $("stop"), file: $("file"), snapshot: $("snapshot"),
  mix: $("mix"), error: $("error"), stage: $("stage"), original: $("original"),
  stylised: $("stylised"), overlay: $("overlay"), video: $("video"),
};
const MIME = { jpeg: "image/jpeg", webp: "image/webp", png: "image/png" };
const CAPTURE_QUALITY = 0.9;
const FPS_WINDOW_MS = 2000;
const MAX_RTTS = 50000; // round trips kept for window.stylecast (a long session stays small)

// Figures a test or benchmark can read (window.stylecast).
const stats = { frames: 0, errors: 0, rtts: [], lastError: null, lastHeader: null, fps: 0 };
window.stylecast = stats;

const state = {
  info: null, models: [], token: sessionStorage.getItem("stylecast-token") || "",
  socket: null, ready: false, maxInFlight: 2, seq: 0, inFlight: new Map(),
  source: null, // a <video> playing (camera or file) or an ImageBitmap (a still image)
  running: false, replyTimes: [],
};

// -- the error line and the status ---------------------------------------------------------

function showError(message, code = "") {
  ui.error.textContent = message;
  ui.error.dataset.code = code;
  ui.error.title = code ? `${code}: ${message}` : message;
  ui.error.hidden = false;
  stats.lastError = { code, message };
  stats.errors += 1;
}

function clearError() {
  ui.error.hidden = true;
  ui.error.textContent = "";
}

function authHeaders() {
  return state.token ? { Authorization: `Bearer ${state.token}` } : {};
}

// -- models, styles and options -----------------------------------------------------------

async function loadModels() {
  const response = await fetch("/api/models", { headers: authHeaders() });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = body.error || { code: String(response.status), message: response.statusText };
    if (error.code === "UNAUTHENTICATED") ui.tokenForm.hidden = false;
    showError(error.message, error.code);
    return false;
  }
  state.models = body.models;
  const wanted = new URLSearchParams(location.search).get("model") || ui.model.value;
  ui.model.replaceChildren(...state.models.map((m) => new Option(`${m.name} v${m.version}`, m.name)));
  if (state.models.some((m) => m.name === wanted)) ui.model.value = wanted;
  if (!state.models.length) showError("the server has no model loaded", "NOT_FOUND");
  buildMix();
  return state.models.length > 0;
}

function currentModel() {
  return state.models.find((m) => m.name === ui.model.value);
}

// Mix sliders for a multi-style model; hidden when the model lists no styles.
function buildMix() {
  const styles = currentModel()?.styles || [];
  ui.mix.hidden = styles.length === 0;
  ui.mix.replaceChildren(...styles.map((style, i) => {
    const label = document.createElement("label");
    const slider = Object.assign(document.createElement("input"), {
      type: "range", min: "0", max: "1", step: "0.05", value: i === 0 ? "1" : "0",
    });
    slider.dataset.style = style;
    label.append(style, slider);
    return label;
  }));
}

function frameHeader(seq) {
  const header = {
    seq, model: ui.model.value, strength: Number(ui.strength.value),
    preserve_color: ui.preserve.checked, max_side: Number(ui.maxSide.value),
    format: ui.format.value,
  };
  const sliders = [...ui.mix.querySelectorAll("input[data-style]")];
  if (sliders.length && sliders.some((s) => Number(s.value) > 0)) {
    header.mix = Object.fromEntries(sliders.map((s) => [s.dataset.style, Number(s.value)]));
  }
  return header;
}

// -- the WebSocket ----------------------------------------------------------------------------

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/api/stream`);
  socket.binaryType = "arraybuffer";
  state.socket = socket;
  state.ready = false;
  socket.onopen = () => socket.send(JSON.stringify({ type: "hello", token: state.token }));
  socket.onmessage = (event) => {
    if (typeof event.data === "string") onText(JSON.parse(event.data));
    else onFrame(event.data);
  };
  socket.onclose = (event) => {
    if (state.socket !== socket) return;
    state.socket = null;
    state.ready = false;
    state.inFlight.clear();
    if (state.running && ui.error.hidden) {
      const why = event.code === 1009 ? "a frame was too large for the server" : event.reason;
      showError(`connection to the server closed (${event.code}${why ? `: ${why}` : ""})`, "UNAVAILABLE");
    }
    if (state.running) stop(false);
  };
}

function onText(message) {
  if (message.type === "hello") {
    state.ready = true;
    state.maxInFlight = message.max_in_flight || 2;
    ui.status.textContent = "connected";
    return;
  }
  if (message.type !== "error") return;
  if (message.seq !== null && message.seq !== undefined) forget(message.seq);
  showError(message.message, message.code);
  if (message.code === "UNAUTHENTICATED") ui.tokenForm.hidden = false;
  if (message.fatal) stop(false);
}

function forget(seq) {
  const entry = state.inFlight.get(seq);
  if (entry) entry.bitmap.close();
  state.inFlight.delete(seq);
}

async function onFrame(buffer) {
  const view = new DataView(buffer);
  const length = view.getUint32(0);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, length)));
  const entry = state.inFlight.get(header.seq);
  for (const seq of header.dropped) forget(seq);
  state.inFlight.delete(header.seq);
  const now = performance.now();
  const image = await createImageBitmap(
    new Blob([new Uint8Array(buffer, 4 + length)], { type: MIME[ui.format.value] }),
  );
  draw(ui.stylised, image);
  image.close();
  if (entry) {
    draw(ui.original, entry.bitmap);
    entry.bitmap.close();
    stats.rtts.push(now - entry.sent);
    if (stats.rtts.length > MAX_RTTS) stats.rtts.splice(0, stats.rtts.length - MAX_RTTS);
  }
  state.replyTimes.push(now);
  while (state.replyTimes[0] < now - FPS_WINDOW_MS) state.replyTimes.shift();
  const span = (now - state.replyTimes[0]) || 1;
  stats.fps = state.replyTimes.length > 1 ? ((state.replyTimes.length - 1) * 1000) / span : 0;
  stats.frames += 1;
  stats.lastHeader = header;
  const rtt = entry ? `${Math.round(now - entry.sent)} ms` : "– ms";
  ui.overlay.textContent = `${stats.fps.toFixed(1)} fps · ${rtt}`;
  ui.snapshot.disabled = false;
  clearError();
}

function draw(canvas, image) {
  if (canvas.width !== image.width || canvas.height !== image.height) {
    canvas.width = image.width;
    canvas.height = image.height;
  }
  canvas.getContext("2d").drawImage(image, 0, 0);
}

// -- sources and the send loop --------------------------------------------------------------

function sourceSize(source) {
  if (source instanceof HTMLVideoElement) return [source.videoWidth, source.videoHeight];
  return [source.width, source.height];
}

async function sendFrame() {
  const source = state.source;
  const [width, height] = sourceSize(source);
  if (!width || !height) return;
  const scale = Math.min(1, Number(ui.maxSide.value) / Math.max(width, height));
  const w = Math.max(1, Math.round(width * scale));
  const h = Math.max(1, Math.round(height * scale));
  const seq = ++state.seq;
  const entry = { sent: performance.now(), bitmap: null };
  state.inFlight.set(seq, entry); // reserved before any await: at most maxInFlight at once
  try {
    const resize = scale < 1 ? { resizeWidth: w, resizeHeight: h, resizeQuality: "medium" } : {};
    entry.bitmap = await createImageBitmap(source, resize);
    const canvas = new OffscreenCanvas(w, h);
    canvas.getContext("2d").drawImage(entry.bitmap, 0, 0);
    const blob = await canvas.convertToBlob({ type: MIME[ui.format.value], quality: CAPTURE_QUALITY });
    const header = new TextEncoder().encode(JSON.stringify(frameHeader(seq)));
    const message = new Uint8Array(4 + header.length + blob.size);
    new DataView(message.buffer).setUint32(0, header.length);
    message.set(header, 4);
    message.set(new Uint8Array(await blob.arrayBuffer()), 4 + header.length);
    entry.sent = performance.now();
    if (!state.socket || !state.ready) throw new Error("not connected");
    state.socket.send(message);
  } catch (error) {
    forget(seq);
  }
}

function tick() {
  if (!state.running) return;
  if (state.ready && state.source && state.inFlight.size < state.maxInFlight) sendFrame();
  requestAnimationFrame(tick);
}

async function begin(source) {
  stop(false);
  clearError();
  if (!state.models.length && !(await loadModels())) return;
  state.source = source;
  state.running = true;
  ui.stop.disabled = false;
  connect();
  requestAnimationFrame(tick);
}

function stop(byUser = true) {
  state.running = false;
  if (state.socket) {
    const socket = state.socket;
    state.socket = null;
    socket.close(1000, byUser ? "stopped" : "");
  }
  for (const seq of [...state.inFlight.keys()]) forget(seq);
  if (byUser) releaseCamera();
  ui.stop.disabled = true;
}

function releaseCamera() {
  const stream = ui.video.srcObject;
  if (stream) {
    stream.getTracks().forEach((track) => track.stop());
    ui.video.srcObject = null;
  }
}

async function startCamera() {
  if (!navigator.mediaDevices?.getUserMedia) {
    showError("the camera needs https or localhost; open the page so, or drop an image or video file", "UNAVAILABLE");
    return;
  }
  stop(true);
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false,
    });
    ui.video.srcObject = stream;
    await ui.video.play();
  } catch (error) {
    showError(`no camera (${error.name}): drop an image or video file instead`, "UNAVAILABLE");
    return;
  }
  begin(ui.video);
}

async function openFile(file) {
  if (!file) return;
  stop(true);
  if (file.type.startsWith("video/")) {
    ui.video.src = URL.createObjectURL(file);
    ui.video.loop = true;
    try {
      await ui.video.play();
    } catch (error) {
      showError(`cannot play ${file.name} in this browser (${error.name})`, "INVALID_ARGUMENT");
      return;
    }
    begin(ui.video);
  } else {
    try {
      begin(await createImageBitmap(file));
    } catch (error) {
      showError(`cannot read ${file.name} as an image`, "INVALID_ARGUMENT");
    }
  }
}

function snapshot() {
  ui.stylised.toBlob((blob) => {
    const link = Object.assign(document.createElement("a"), {
      href: URL.createObjectURL(blob),
      download: `stylecast-${ui.model.value}-${Date.now()}.png`,
    });
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }, "image/png");
}

// -- wiring -------------------------------------------------------------------------------------

ui.start.addEventListener("click", startCamera);
ui.stop.addEventListener("click", () => stop(true));
ui.file.addEventListener("change", () => openFile(ui.file.files[0]));
ui.snapshot.addEventListener("click", snapshot);
ui.model.addEventListener("change", buildMix);
ui.strength.addEventListener("input", () => {
  ui.strengthValue.value = Number(ui.strength.value).toFixed(2);
});
ui.stage.addEventListener("dragover", (event) => {
  event.preventDefault();
  ui.stage.classList.add("dragging");
});
ui.stage.addEventListener("dragleave", () => ui.stage.classList.remove("dragging"));
ui.stage.addEventListener("drop", (event) => {
  event.preventDefault();
  ui.stage.classList.remove("dragging");
  openFile(event.dataTransfer.files[0]);
});
ui.tokenForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  state.token = ui.token.value.trim();
  sessionStorage.setItem("stylecast-token", state.token);
  clearError();
  if (await loadModels()) ui.tokenForm.hidden = true;
});

async function init() {
  try {
    state.info = await (await fetch("/api/info")).json();
  } catch (error) {
    showError("cannot reach the Stylecast server", "UNAVAILABLE");
    return;
  }
  ui.status.textContent = `stylecast ${state.info.version}`;
  ui.maxSide.value = String(state.info.default_max_side || 640);
  if (state.info.auth && !state.token) {
    ui.tokenForm.hidden = false;
    showError("this server needs an access token: enter it above", "UNAUTHENTICATED");
    return;
  }
  await loadModels();
}

init();
