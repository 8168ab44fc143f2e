// My recordings: the upload form (resumable tus uploads with a progress bar per file) and the
// list of unfinished uploads (keep what arrived as a draft, or delete it). See ./tus.js.
import { $, api, confirmDialog, el, formatDate, locale, t, toast } from "./kit.js";
import { cancelUpload, finishHere, makeRecording, markFailed, startUpload, uploadIdOf } from "./tus.js";

const card = $("upload-card");
const maxUpload = () => parseInt(card.dataset.maxUpload, 10) || Infinity;
const FIELDS = ["screen", "audio"];
let running = []; // tus uploads of the form in progress
let paused = false;

function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return "–";
  const number = (value, digits) => value.toLocaleString(locale, { maximumFractionDigits: digits });
  if (bytes < 1024 * 1024) return `${number(Math.max(1, Math.round(bytes / 1024)), 0)} KB`;
  if (bytes < 1024 ** 3) return `${number(bytes / (1024 * 1024), 1)} MB`;
  return `${number(bytes / 1024 ** 3, 2)} GB`;
}

function showError(text) {
  const box = $("upload-error");
  box.textContent = text || "";
  box.classList.toggle("hidden", !text);
  if (text) box.focus(); // said by a screen reader, and where the eye goes
}

// A file too large for the limit: say so before sending a byte, with what to do instead.
function tooLarge(file) {
  return (
    t("%(name)s is %(size)s, larger than the upload limit of %(limit)s.", { name: file.name, size: formatBytes(file.size), limit: formatBytes(maxUpload()) }) +
    " " +
    t("Trim it to the part of the call you want coaching on (any video editor, or ffmpeg -ss START -to END), or record the call in parts — or ask an admin whether the limit can be raised.")
  );
}

function progressLine(field, file) {
  const bar = el("span", {});
  const progress = el("div", {
    class: "progress",
    role: "progressbar",
    "aria-valuemin": "0",
    "aria-valuemax": "100",
    "aria-valuenow": "0",
    "aria-label": t("Upload of %(name)s", { name: file.name }),
  }, bar);
  const text = el("span", { class: "small muted", text: t("Starting…") });
  const line = el("div", { class: "upload-file", "data-field": field },
    el("span", { class: "name", text: `${field === "screen" ? t("Screen") : t("Audio")}: ${file.name}` }), progress, text);
  return { line, bar, progress, text };
}

function sendFile(field, file, view) {
  return new Promise((resolve, reject) => {
    const upload = startUpload(file, {
      resume: true,
      chunkSize: 16 * 1024 * 1024,
      metadata: { filename: file.name, filetype: file.type || "application/octet-stream" },
      onProgress: (sent, total) => {
        const percent = total ? Math.floor((sent / total) * 100) : 0;
        view.bar.style.width = `${percent}%`;
        view.progress.setAttribute("aria-valuenow", String(percent));
        view.text.textContent = t("%(percent)s · %(sent)s of %(total)s", { percent: `${percent}%`, sent: formatBytes(sent), total: formatBytes(total) });
      },
      onSuccess: (done) => {
        view.bar.style.width = "100%";
        view.progress.setAttribute("aria-valuenow", "100");
        view.text.textContent = t("Arrived, encrypted.");
        resolve(uploadIdOf(done));
      },
      onError: (error) => {
        if (error.status && error.status < 500 && ![409, 423, 429].includes(error.status)) {
          reject(error);
          return;
        }
        markFailed(upload); // offline for long: it starts again when the browser is back online
        view.text.textContent = error.message;
      },
    });
    running.push(upload);
  });
}

async function submit(event) {
  event.preventDefault();
  if (running.length) return;
  showError("");
  const files = FIELDS.map((field) => [field, $(`upload-${field}`).files[0]]).filter(([, file]) => file);
  if (!files.length) {
    showError(t("Pick a screen video and/or the call's audio first."));
    return;
  }
  const big = files.find(([, file]) => file.size > maxUpload());
  if (big) {
    showError(tooLarge(big[1]));
    return;
  }
  const empty = files.find(([, file]) => file.size === 0);
  if (empty) {
    showError(t("%(name)s is empty.", { name: empty[1].name }));
    return;
  }
  const list = $("upload-files");
  list.replaceChildren();
  list.classList.remove("hidden");
  $("upload-start").disabled = true;
  $("upload-pause").classList.remove("hidden");
  try {
    const ids = {};
    await Promise.all(
      files.map(([field, file]) => {
        const view = progressLine(field, file);
        list.append(view.line);
        return sendFile(field, file, view).then((id) => {
          ids[field] = id;
        });
      }),
    );
    const recording = await makeRecording(ids, {
      title: $("upload-title").value.trim(),
      agent_channel: $("upload-channel").value,
      customer_informed: $("upload-informed").checked,
    });
    toast(t("Uploaded: a new private draft."));
    window.location.assign(`/recordings?highlight=${encodeURIComponent(recording.id)}`);
  } catch (error) {
    running.forEach((upload) => upload.abort());
    const message = error.status === 413 && files.length ? `${error.message}` : error.message;
    showError(message || t("The upload failed."));
    $("upload-start").disabled = false;
    $("upload-pause").classList.add("hidden");
    running = [];
    refreshUnfinished();
  }
}

function togglePause() {
  paused = !paused;
  running.forEach((upload) => (paused ? upload.abort() : upload.start()));
  $("upload-pause").textContent = paused ? t("Resume") : t("Pause");
}

// --- unfinished uploads ---------------------------------------------------------------------

function describe(item) {
  const arrived = formatBytes(item.offset);
  if (item.complete) return t("%(arrived)s · arrived whole, not yet a recording", { arrived });
  if (item.length === null) return t("%(arrived)s arrived · the recording was cut off (the tab was closed or the connection lost)", { arrived });
  return t("%(arrived)s of %(total)s arrived · pick the same file in the form above to continue", { arrived, total: formatBytes(item.length) });
}

async function keep(item) {
  try {
    if (!item.complete) await finishHere(item.id);
    const field = (item.filetype || "").startsWith("audio/") ? "audio" : "screen";
    const recording = await makeRecording({ [field]: item.id }, {
      title: (item.filename || "").replace(/\.[a-z0-9]+$/i, "").slice(0, 200),
      agent_channel: "mono",
    });
    window.location.assign(`/recordings?highlight=${encodeURIComponent(recording.id)}`);
  } catch (error) {
    toast(error.message, "error");
  }
}

async function remove(item) {
  const ok = await confirmDialog({
    title: t("Delete this unfinished upload?"),
    body: t("What arrived is deleted from the server at once."),
    confirmLabel: t("Delete"),
    danger: true,
  });
  if (!ok) return;
  try {
    await cancelUpload(item.id);
    toast(t("Deleted."));
  } catch (error) {
    toast(error.message, "error");
  }
  refreshUnfinished();
}

function row(item) {
  const keepable = item.complete || item.length === null;
  const actions = el("div", { class: "row" });
  if (keepable && item.offset > 0) {
    const button = el("button", { class: "button primary", type: "button", text: t("Keep as a draft") });
    button.addEventListener("click", () => keep(item));
    actions.append(button);
  }
  const del = el("button", { class: "button danger-outline", type: "button", text: t("Delete") });
  del.addEventListener("click", () => remove(item));
  actions.append(del);
  return el("li", { "data-upload-id": item.id },
    el("div", { class: "what" },
      el("strong", { text: item.filename || t("Untitled upload") }),
      el("span", { class: "small muted", text: describe(item) }),
      el("span", { class: "small muted", text: t("Started %(started)s · deleted %(ends)s unless kept", { started: formatDate(item.created_at), ends: formatDate(item.expires_at) }) })),
    actions);
}

async function refreshUnfinished() {
  try {
    const { uploads } = await api("GET", "/api/v1/uploads");
    const mine = new Set(running.map(uploadIdOf));
    const shown = uploads.filter((item) => !mine.has(item.id));
    $("unfinished-list").replaceChildren(...shown.map(row));
    $("unfinished").classList.toggle("hidden", !shown.length);
  } catch (error) {
    /* the list is a convenience; the form works without it */
  }
}

$("upload-form").addEventListener("submit", submit);
$("upload-pause").addEventListener("click", togglePause);
refreshUnfinished();
