// Capture in the browser: screen (getDisplayMedia) + microphone (getUserMedia) into one WebM
// with MediaRecorder. Nothing is sent until Save; Discard drops the blob. The upload is a
// multipart POST with XMLHttpRequest so that its progress can be shown.
import { $, clock, confirmDialog, csrf, el, toast } from "./kit.js";

const root = $("capture");
const live = $("live");
const review = $("review");
const maxUpload = parseInt(root.dataset.maxUpload, 10) || Infinity;

let streams = [];
let recorder = null;
let chunks = [];
let recording = null; // {blob, kind: "screen" | "audio", seconds, sources}
let startedAt = 0;
let timerHandle = null;
let xhr = null;
let sources = [];

function show(id, visible) {
  $(id).classList.toggle("hidden", !visible);
}

function message(text, kind) {
  const box = $("capture-message");
  box.textContent = text || "";
  box.className = `alert alert-${kind || "warn"}${text ? "" : " hidden"}`;
}

function setSource(name, state) {
  const badge = document.querySelector(`[data-source="${name}"]`);
  if (badge) badge.className = `badge ${state}`;
}

function pickMime(kind) {
  const candidates = kind === "audio"
    ? ["audio/webm;codecs=opus", "audio/webm"]
    : ["video/webm;codecs=vp9,opus", "video/webm;codecs=vp8,opus", "video/webm"];
  return candidates.find((type) => window.MediaRecorder && MediaRecorder.isTypeSupported(type)) || "";
}

function stopStreams() {
  streams.forEach((stream) => stream.getTracks().forEach((track) => track.stop()));
  streams = [];
  live.srcObject = null;
}

async function getScreen() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getDisplayMedia) {
    const error = new Error("Screen capture is not available in this browser.");
    error.name = "NotSupportedError";
    throw error;
  }
  return navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 15 }, audio: false });
}

async function getMicrophone() {
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
  } catch (error) {
    return null;
  }
}

async function start() {
  message("");
  if (!window.MediaRecorder || !navigator.mediaDevices) {
    message("This browser cannot record. Try a current Chrome, Edge or Firefox.", "error");
    return;
  }
  const mode = document.querySelector('input[name="mode"]:checked').value;
  let video = null;
  let note = "";
  sources = [];
  if (mode === "screen") {
    try {
      video = await getScreen();
      sources.push("screen");
    } catch (error) {
      if (error.name === "NotAllowedError" || error.name === "AbortError") {
        message("No screen was picked (or screen sharing is blocked here), so nothing is being recorded. Choose “Microphone only” to record sound alone.", "info");
        return;
      }
      // Screen capture is not possible here: fall back to the camera, and say so.
      try {
        video = await navigator.mediaDevices.getUserMedia({ video: true });
        sources.push("camera");
        note = "Screen capture is not available here, so your camera is recorded instead.";
      } catch (cameraError) {
        note = "Neither screen nor camera capture is available here: recording your microphone only.";
      }
    }
  }
  const mic = await getMicrophone();
  if (mic) sources.push("microphone");
  if (!video && !mic) {
    message("No microphone or screen could be opened, so nothing is being recorded. Check the browser's permissions.", "error");
    return;
  }
  if (video && !mic) note = `${note} ${"The microphone could not be opened: recording without sound."}`.trim();
  streams = [video, mic].filter(Boolean);
  const tracks = streams.flatMap((stream) => stream.getTracks());
  const kind = video ? "screen" : "audio";
  const mime = pickMime(kind);
  try {
    recorder = new MediaRecorder(new MediaStream(tracks), mime ? { mimeType: mime } : undefined);
  } catch (error) {
    stopStreams();
    message(`The browser refused to record: ${error.message}`, "error");
    return;
  }
  chunks = [];
  recorder.addEventListener("dataavailable", (event) => {
    if (event.data && event.data.size) chunks.push(event.data);
  });
  recorder.addEventListener("stop", () => finish(kind, recorder.mimeType || mime));
  if (video) {
    video.getVideoTracks()[0].addEventListener("ended", stop);
    live.srcObject = video;
    live.play().catch(() => {});
  }
  recorder.start(1000);
  startedAt = performance.now();
  timerHandle = setInterval(tick, 250);
  tick();

  setSource("screen", sources.includes("screen") || sources.includes("camera") ? "live" : "");
  setSource("mic", sources.includes("microphone") ? "live" : "");
  show("placeholder", !video);
  if (!video) {
    $("placeholder").replaceChildren(
      el("strong", { text: "Recording sound only" }),
      el("span", { text: "Your microphone is being recorded." }),
    );
  }
  show("live", Boolean(video));
  show("review", false);
  show("indicator", true);
  show("controls-idle", false);
  show("controls-recording", true);
  show("save-card", false);
  show("done-card", false);
  const stageNote = $("stage-note");
  stageNote.textContent = note;
  show("stage-note", Boolean(note));
  if (note) message(note, "info");
  document.title = "● Recording · consent-replay";
}

function tick() {
  $("timer").textContent = clock((performance.now() - startedAt) / 1000);
}

function stop() {
  if (recorder && recorder.state !== "inactive") recorder.stop();
}

function finish(kind, mime) {
  clearInterval(timerHandle);
  const seconds = (performance.now() - startedAt) / 1000;
  stopStreams();
  const type = (mime || (kind === "audio" ? "audio/webm" : "video/webm")).split(";")[0];
  recording = { blob: new Blob(chunks, { type }), kind, seconds, sources: [...sources] };
  chunks = [];
  recorder = null;
  document.title = "Record · consent-replay";
  show("indicator", false);
  show("live", false);
  show("stage-note", false);
  show("controls-recording", false);
  show("controls-idle", false);
  show("placeholder", kind === "audio");
  if (kind === "audio") {
    $("placeholder").replaceChildren(
      el("strong", { text: "Sound recording ready to review" }),
      el("span", { text: "Use the player below the title to listen." }),
    );
  }
  review.src = URL.createObjectURL(recording.blob);
  show("review", true);
  setSource("screen", "");
  setSource("mic", "");
  const what = recording.sources.includes("screen")
    ? "Screen"
    : recording.sources.includes("camera")
      ? "Camera"
      : "Sound";
  const withMic = recording.sources.includes("microphone") && kind === "screen" ? " + microphone" : "";
  $("review-facts").textContent = `${what}${withMic} · ${clock(seconds)} · ${formatBytes(recording.blob.size)} · still only in this browser`;
  if (!$("title").value) {
    $("title").value = `Recording ${new Date().toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" })}`;
  }
  show("save-card", true);
  show("about-card", false);
  message(recording.blob.size > maxUpload ? `This recording (${formatBytes(recording.blob.size)}) is larger than the upload limit of ${formatBytes(maxUpload)}.` : "", "error");
  $("save").disabled = recording.blob.size > maxUpload || recording.blob.size === 0;
}

function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return "–";
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

function reset() {
  if (review.src) URL.revokeObjectURL(review.src);
  review.removeAttribute("src");
  review.load();
  recording = null;
  $("title").value = "";
  $("customer-informed").checked = false;
  show("review", false);
  show("save-card", false);
  show("done-card", false);
  show("about-card", true);
  show("upload-progress", false);
  show("controls-idle", true);
  $("placeholder").replaceChildren(
    el("strong", { text: "Nothing is being recorded" }),
    el("span", { text: "Press Start recording. Your browser will ask which screen, window or tab to share, and for your microphone." }),
  );
  show("placeholder", true);
  message("");
}

async function discard() {
  if (xhr) return;
  const ok = await confirmDialog({
    title: "Discard this recording?",
    body: "It has not been sent anywhere and is simply dropped from this browser.",
    confirmLabel: "Discard",
    danger: true,
  });
  if (ok) {
    reset();
    toast("Discarded. Nothing was sent.");
  }
}

function save(event) {
  event.preventDefault();
  if (!recording || xhr) return;
  const data = new FormData();
  data.append("title", $("title").value.trim());
  data.append("agent_channel", "mono");
  data.append("customer_informed", $("customer-informed").checked ? "true" : "false");
  const field = recording.kind === "screen" ? "screen" : "audio";
  data.append(field, recording.blob, `recording.webm`);

  xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/v1/recordings");
  xhr.setRequestHeader("X-CSRFToken", csrf());
  xhr.setRequestHeader("Accept", "application/json");
  xhr.responseType = "json";
  const bar = $("upload-bar");
  const text = $("upload-text");
  const progress = document.querySelector("#upload-progress .progress");
  show("upload-progress", true);
  $("save").disabled = true;
  $("discard").disabled = true;
  bar.style.width = "0%";
  xhr.upload.addEventListener("progress", (e) => {
    if (!e.lengthComputable) return;
    const percent = Math.round((e.loaded / e.total) * 100);
    bar.style.width = `${percent}%`;
    progress.setAttribute("aria-valuenow", String(percent));
    text.textContent = `Uploading… ${percent}% (${formatBytes(e.loaded)} of ${formatBytes(e.total)})`;
  });
  xhr.upload.addEventListener("load", () => {
    text.textContent = "Uploaded — encrypting and storing…";
  });
  xhr.addEventListener("load", () => {
    const body = xhr.response;
    const status = xhr.status;
    xhr = null;
    if (status !== 201) {
      const reason = body && body.error ? body.error.message : `The upload failed (${status || "error"}).`;
      failed(reason);
      return;
    }
    bar.style.width = "100%";
    text.textContent = "Saved.";
    saved(body);
  });
  xhr.addEventListener("error", () => {
    xhr = null;
    failed("The connection broke off during the upload. Nothing was kept; try again.");
  });
  xhr.send(data);
}

function failed(reason) {
  message(reason, "error");
  show("upload-progress", false);
  $("save").disabled = false;
  $("discard").disabled = false;
}

function saved(rec) {
  if (review.src) URL.revokeObjectURL(review.src);
  review.removeAttribute("src");
  review.load();
  show("review", false);
  recording = null;
  show("save-card", false);
  show("done-card", true);
  $("done-share").href = `/recordings?share=${encodeURIComponent(rec.id)}`;
  $("done-open").href = `/recordings?highlight=${encodeURIComponent(rec.id)}`;
  $("placeholder").replaceChildren(
    el("strong", { text: "Saved as a private draft" }),
    el("span", { text: rec.title || "Untitled recording" }),
  );
  show("placeholder", true);
  $("discard").disabled = false;
  toast("Saved to My recordings.");
}

$("start").addEventListener("click", start);
$("stop").addEventListener("click", stop);
$("save-form").addEventListener("submit", save);
$("discard").addEventListener("click", discard);
$("again").addEventListener("click", reset);
window.addEventListener("beforeunload", (event) => {
  if (recorder || recording || xhr) {
    event.preventDefault();
    event.returnValue = "";
  }
});
