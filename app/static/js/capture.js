// Capture in the browser: screen (getDisplayMedia) + microphone (getUserMedia) into one WebM
// with MediaRecorder, sent to the server while it records (SPEC §16): every second's piece
// goes into a resumable tus upload (./tus.js), encrypted on arrival. So a lost connection or a
// closed tab loses at most the last few seconds, and the browser never holds the whole
// recording — only what the server has not acknowledged yet. Until Save the upload is
// unfinished and private (My recordings lists it); Discard deletes it on the server.
import { $, clock, confirmDialog, el, locale, t, toast } from "./kit.js";
import { RecordingSource, cancelUpload, finishHere, makeRecording, markFailed, startUpload, uploadIdOf } from "./tus.js";

const root = $("capture");
const live = $("live");
const maxUpload = parseInt(root.dataset.maxUpload, 10) || Infinity;

let streams = [];
let recorder = null;
let recording = null; // {id, kind: "screen" | "audio", seconds, size, sources}
let startedAt = 0;
let timerHandle = null;
let saving = false;
let sources = [];
// The upload that follows the recorder: what was recorded, and what the server has stored.
let live_upload = null;
let source = null;
let recorded = 0;
let accepted = 0;
let uploadError = null;
let ended = null; // resolves when the upload has all of the recording

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
    const error = new Error(t("Screen capture is not available in this browser."));
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
    message(t("This browser cannot record. Try a current Chrome, Edge or Firefox."), "error");
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
        message(t("No screen was picked (or screen sharing is blocked here), so nothing is being recorded. Choose “Microphone only” to record sound alone."), "info");
        return;
      }
      // Screen capture is not possible here: fall back to the camera, and say so.
      try {
        video = await navigator.mediaDevices.getUserMedia({ video: true });
        sources.push("camera");
        note = t("Screen capture is not available here, so your camera is recorded instead.");
      } catch (cameraError) {
        note = t("Neither screen nor camera capture is available here: recording your microphone only.");
      }
    }
  }
  const mic = await getMicrophone();
  if (mic) sources.push("microphone");
  if (!video && !mic) {
    message(t("No microphone or screen could be opened, so nothing is being recorded. Check the browser's permissions."), "error");
    return;
  }
  if (video && !mic) note = `${note} ${t("The microphone could not be opened: recording without sound.")}`.trim();
  streams = [video, mic].filter(Boolean);
  const tracks = streams.flatMap((stream) => stream.getTracks());
  const kind = video ? "screen" : "audio";
  const mime = pickMime(kind);
  try {
    recorder = new MediaRecorder(new MediaStream(tracks), mime ? { mimeType: mime } : undefined);
  } catch (error) {
    stopStreams();
    message(t("The browser refused to record: %(reason)s", { reason: error.message }), "error");
    return;
  }
  recorded = 0;
  accepted = 0;
  uploadError = null;
  source = new RecordingSource(recorder.mimeType || mime);
  const type = (recorder.mimeType || mime || (kind === "audio" ? "audio/webm" : "video/webm")).split(";")[0];
  ended = new Promise((resolve, reject) => {
    live_upload = startUpload(source, {
      source,
      deferred: true,
      chunkSize: 8 * 1024 * 1024,
      metadata: { filename: `recording-${kind}.webm`, filetype: type },
      onAccepted: (offset) => {
        accepted = offset;
        uploadError = null;
        showSent();
      },
      onSuccess: () => resolve(),
      onError: (error) => {
        markFailed(live_upload);
        uploadError = error;
        showSent();
        if (error.status && error.status < 500 && ![409, 423, 429].includes(error.status)) {
          // Refused for good: the upload limit (what arrived is kept), or no upload at all.
          stop();
          reject(error);
        }
      },
    });
  });
  recorder.addEventListener("dataavailable", (event) => {
    if (event.data && event.data.size) {
      recorded += event.data.size;
      source.push(event.data);
      showSent();
    }
  });
  recorder.addEventListener("stop", () => finish(kind));
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
      el("strong", { text: t("Recording sound only") }),
      el("span", { text: t("Your microphone is being recorded.") }),
    );
  }
  show("live", Boolean(video));
  show("indicator", true);
  show("controls-idle", false);
  show("controls-recording", true);
  show("save-card", false);
  show("done-card", false);
  show("sent", true);
  showSent();
  const stageNote = $("stage-note");
  stageNote.textContent = note;
  show("stage-note", Boolean(note));
  if (note) message(note, "info");
  document.title = `● ${t("Recording")} · consent-replay`;
}

function tick() {
  $("timer").textContent = clock((performance.now() - startedAt) / 1000);
}

// "Sent 1.2 MB of 1.3 MB recorded": what the server has stored (encrypted) so far.
function showSent() {
  const line = $("sent");
  if (!line) return;
  const behind = recorded - accepted;
  let text = t("Sent %(sent)s of %(recorded)s recorded", { sent: formatBytes(accepted), recorded: formatBytes(recorded) });
  if (uploadError && uploadError.status !== 413) {
    text += ` · ${uploadError.status ? uploadError.message : t("connection lost: it goes on by itself when it is back")}`;
  } else if (behind > 512 * 1024) {
    text += ` · ${t("catching up")}`;
  }
  line.textContent = text;
  line.classList.toggle("behind", Boolean(uploadError));
}

function stop() {
  if (recorder && recorder.state !== "inactive") recorder.stop();
}

async function finish(kind) {
  clearInterval(timerHandle);
  const seconds = (performance.now() - startedAt) / 1000;
  stopStreams();
  recorder = null;
  source.end();
  document.title = `${t("Record")} · consent-replay`;
  show("indicator", false);
  show("live", false);
  show("stage-note", false);
  show("controls-recording", false);
  show("controls-idle", false);
  setSource("screen", "");
  setSource("mic", "");
  const upload = live_upload;
  const id = uploadIdOf(upload);
  $("placeholder").replaceChildren(
    el("strong", { text: t("Sending the last seconds…") }),
    el("span", { text: t("Everything before them is already on the server, encrypted.") }),
  );
  show("placeholder", true);
  let limited = null;
  try {
    await ended;
  } catch (error) {
    if (error.status !== 413 || !uploadIdOf(upload)) {
      if (upload && upload.cr_stopListening) upload.cr_stopListening();
      source = null;
      reset();
      message(t("The recording could not be sent: %(reason)s", { reason: error.message }), "error");
      return;
    }
    limited = error; // the upload limit: what arrived is kept
    await finishHere(uploadIdOf(upload)).catch(() => {});
  }
  if (upload && upload.cr_stopListening) upload.cr_stopListening();
  source.close();
  source = null;
  recording = { id: id || uploadIdOf(upload), kind, seconds, size: recorded, sources: [...sources] };
  $("placeholder").replaceChildren(
    el("strong", { text: kind === "audio" ? t("Sound recording sent") : t("Recording sent") }),
    el("span", { text: t("Encrypted on the server, visible to nobody but you. Save it as a draft, or discard it.") }),
  );
  const what = recording.sources.includes("screen")
    ? t("Screen")
    : recording.sources.includes("camera")
      ? t("Camera")
      : t("Sound");
  const withMic = recording.sources.includes("microphone") && kind === "screen" ? ` + ${t("microphone")}` : "";
  $("review-facts").textContent = `${what}${withMic} · ${clock(seconds)} · ${formatBytes(recorded)} · ${t("sent, not yet saved")}`;
  if (!$("title").value) {
    $("title").value = t("Recording %(date)s", { date: new Date().toLocaleString(locale, { dateStyle: "medium", timeStyle: "short" }) });
  }
  show("save-card", true);
  show("about-card", false);
  message(limited ? `${limited.message} ${t("The recording stopped there; what was sent until then is kept.")}` : "", "error");
  $("save").disabled = false;
}

function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return "–";
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024)).toLocaleString(locale)} KB`;
  return `${(bytes / (1024 * 1024)).toLocaleString(locale, { maximumFractionDigits: 1 })} MB`;
}

function reset() {
  recording = null;
  show("sent", false);
  $("title").value = "";
  $("customer-informed").checked = false;
  show("save-card", false);
  show("done-card", false);
  show("about-card", true);
  show("upload-progress", false);
  show("controls-idle", true);
  $("placeholder").replaceChildren(
    el("strong", { text: t("Nothing is being recorded") }),
    el("span", { text: t("Press Start recording. Your browser will ask which screen, window or tab to share, and for your microphone.") }),
  );
  show("placeholder", true);
  message("");
}

async function discard() {
  if (saving || !recording) return;
  const ok = await confirmDialog({
    title: t("Discard this recording?"),
    body: t("What was sent is deleted from the server at once. It was never a recording anyone could see."),
    confirmLabel: t("Discard"),
    danger: true,
  });
  if (!ok) return;
  try {
    await cancelUpload(recording.id);
  } catch (error) {
    if (error.status !== 404) {
      message(`${t("It could not be deleted just now: %(reason)s", { reason: error.message })} ${t("It is deleted automatically after the draft lifetime, or from My recordings.")}`, "error");
      return;
    }
  }
  reset();
  toast(t("Discarded and deleted from the server."));
}

async function save(event) {
  event.preventDefault();
  if (!recording || saving) return;
  saving = true;
  $("save").disabled = true;
  $("discard").disabled = true;
  show("upload-progress", true);
  $("upload-bar").style.width = "100%";
  $("upload-text").textContent = t("Saving as a private draft…");
  try {
    const field = recording.kind === "screen" ? "screen" : "audio";
    const saved_recording = await makeRecording(
      { [field]: recording.id },
      {
        title: $("title").value.trim(),
        agent_channel: "mono",
        customer_informed: $("customer-informed").checked,
      },
    );
    $("upload-text").textContent = t("Saved.");
    saved(saved_recording);
  } catch (error) {
    failed(error.message);
  } finally {
    saving = false;
  }
}

function failed(reason) {
  message(reason, "error");
  show("upload-progress", false);
  $("save").disabled = false;
  $("discard").disabled = false;
}

function saved(rec) {
  recording = null;
  show("save-card", false);
  show("done-card", true);
  $("done-share").href = `/recordings?share=${encodeURIComponent(rec.id)}`;
  $("done-open").href = `/recordings?highlight=${encodeURIComponent(rec.id)}`;
  $("placeholder").replaceChildren(
    el("strong", { text: t("Saved as a private draft") }),
    el("span", { text: rec.title || t("Untitled recording") }),
  );
  show("placeholder", true);
  $("discard").disabled = false;
  toast(t("Saved to My recordings."));
}

$("start").addEventListener("click", start);
$("stop").addEventListener("click", stop);
$("save-form").addEventListener("submit", save);
$("discard").addEventListener("click", discard);
$("again").addEventListener("click", reset);
window.addEventListener("beforeunload", (event) => {
  if (recorder || recording || saving) {
    event.preventDefault();
    event.returnValue = "";
  }
});
