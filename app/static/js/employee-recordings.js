// My recordings: probe status, delete, and the opt-in (the share dialog with trim).
import { $, api, clock, confirmDialog, el, locale, openModal, showError, sleep, t, tn, toast, upgradeTimes } from "./kit.js";
import { decodeJwt, downloadReadable, downloadToken } from "./receipts.js";
import { RedactionEditor, summary } from "./redaction-editor.js";

upgradeTimes(document);

const list = $("recording-list");
const empty = $("recordings-empty");
const dialog = $("share-dialog");
const form = $("share-form");
const done = $("share-done");
const video = $("share-video");
const audio = $("share-audio");
const audioTile = $("share-audio-tile");
const trimStart = $("trim-start");
const trimEnd = $("trim-end");
const daysInput = $("share-days");
const errorBox = $("share-error");
const confirmButton = $("share-confirm");

let coachesPromise = null;
let current = null; // the recording the dialog is open for
let main = video; // the element the trim handles are bound to
let playingSelection = false;
let policy = null;
const redactions = new RedactionEditor({
  video,
  playhead: () => main,
  onChange: (items) => {
    $("redaction-summary").textContent = summary(items);
  },
});

// --- cards ------------------------------------------------------------------------------

function readCard(card) {
  const duration = parseFloat(card.dataset.duration);
  return {
    card,
    id: card.dataset.recordingId,
    title: card.dataset.title,
    duration: Number.isFinite(duration) && duration > 0 ? duration : null,
    customerInformed: card.dataset.customerInformed === "true",
    parts: (card.dataset.parts || "").split(",").filter(Boolean),
    mainPart: card.dataset.mainPart,
    probeStatus: card.dataset.probeStatus,
    channels: parseInt(card.dataset.channels, 10) || 0,
    agentChannel: card.dataset.agentChannel,
  };
}

function applyRecording(card, rec) {
  card.dataset.probeStatus = rec.probe_status || "pending";
  if (rec.audio_channels) card.dataset.channels = String(rec.audio_channels);
  if (rec.duration_s) {
    card.dataset.duration = String(rec.duration_s);
    card.querySelector('[data-field="duration"]').textContent = clock(rec.duration_s);
  }
  const probe = card.querySelector('[data-field="probe"]');
  probe.className = `probe probe-${rec.probe_status || "pending"}`;
  if (rec.probe_status === "failed") {
    probe.textContent = t("This file cannot be shared: %(reason)s", { reason: rec.probe_error || t("it could not be read.") });
    card.querySelector('[data-action="share"]').disabled = true;
  } else if (rec.probe_status === "ok") {
    probe.textContent = t("Checked and ready to share.");
  }
  if (current && current.id === rec.id) {
    current.duration = rec.duration_s || current.duration;
    current.channels = rec.audio_channels || current.channels;
    setupTrim();
    redactions.configure();
  }
}

async function pollProbe(card) {
  for (let attempt = 0; attempt < 120; attempt += 1) {
    if (!document.body.contains(card)) return;
    if (!["pending", "", "running", "queued"].includes(card.dataset.probeStatus || "")) return;
    await sleep(attempt < 10 ? 1000 : 3000);
    try {
      applyRecording(card, await api("GET", `/api/v1/recordings/${card.dataset.recordingId}`));
    } catch (error) {
      if (error.status === 404) return;
    }
  }
}

function markShared(card) {
  const count = parseInt(card.dataset.shares || "0", 10) + 1;
  card.dataset.shares = String(count);
  const badge = card.querySelector('[data-field="badge"]');
  badge.className = "badge ready";
  badge.textContent = t("Shared");
  const keep = card.querySelector('[data-field="keep"]');
  keep.classList.remove("soon");
  keep.textContent = tn("Kept while shared (%(num)s active share)", "Kept while shared (%(num)s active shares)", count);
}

async function deleteRecording(card) {
  const info = readCard(card);
  const shares = parseInt(card.dataset.shares || "0", 10);
  const ok = await confirmDialog({
    title: t("Delete this recording?"),
    body: [
      t("“%(title)s” is shredded at once: its key is destroyed and its files are deleted. This cannot be undone.", { title: info.title }),
      shares
        ? tn("It is shared right now; deleting it also withdraws that share.", "It is shared right now; deleting it also withdraws those %(num)s shares.", shares)
        : t("You will find its deletion certificate in My data."),
    ],
    confirmLabel: t("Delete for good"),
    danger: true,
  });
  if (!ok) return;
  try {
    card.querySelectorAll("video, audio").forEach((media) => {
      media.pause();
      media.removeAttribute("src");
      media.load();
    });
    await api("DELETE", `/api/v1/recordings/${info.id}`);
    card.remove();
    toast(t("Deleted. The deletion certificate is in My data."));
    if (!list.querySelector(".recording")) empty.classList.remove("hidden");
  } catch (error) {
    toast(error.message, "error");
  }
}

list.addEventListener("click", (event) => {
  const button = event.target.closest("[data-action]");
  if (!button) return;
  const card = button.closest(".recording");
  if (button.dataset.action === "share") openShare(card);
  else if (button.dataset.action === "delete") deleteRecording(card);
});

// A preview card with a separate call-audio file: keep the two players together.
list.querySelectorAll(".recording").forEach((card) => {
  const screen = card.querySelector("video.preview");
  const call = card.querySelector("audio.preview-audio");
  if (screen && call) linkPlayers(screen, call);
  pollProbe(card);
});

function linkPlayers(leader, follower) {
  leader.addEventListener("play", () => {
    follower.currentTime = leader.currentTime;
    follower.play().catch(() => {});
  });
  leader.addEventListener("pause", () => follower.pause());
  leader.addEventListener("seeked", () => {
    follower.currentTime = leader.currentTime;
  });
}

// --- the share dialog -------------------------------------------------------------------

function loadCoaches() {
  if (!coachesPromise) coachesPromise = api("GET", "/api/v1/coaches").then((body) => body.coaches);
  return coachesPromise;
}

function renderCoaches(coaches) {
  const host = $("coach-list");
  host.replaceChildren();
  if (!coaches.length) {
    host.append(el("p", { class: "muted small", text: t("No coaches are set up yet. Ask an admin to add one.") }));
    return;
  }
  // Told apart by login and team, so an account made with a known coach's name cannot pass
  // as that coach; a recently made account, and a name two coaches share, are marked.
  coaches.forEach((coach) => {
    const box = el("input", { type: "checkbox", name: "coach_ids", value: coach.id, "data-name": coach.name, "data-login": coach.login });
    const who = [coach.login, coach.team || t("no team")].join(" · ");
    host.append(
      el(
        "label",
        { class: `check coach${coach.new_account ? " is-new" : ""}` },
        box,
        el(
          "span",
          { class: "coach-who" },
          el("span", { class: "coach-name", text: coach.name }),
          coach.new_account ? el("span", { class: "badge new-account", text: t("new account"), title: t("Made in the last 14 days") }) : null,
          coach.name_shared ? el("span", { class: "badge same-name", text: t("same name as another coach") }) : null,
          el("span", { class: "coach-meta mono", text: who }),
        ),
      ),
    );
  });
}

function renderPolicy(current) {
  policy = current;
  // The text in the page's language is the one shown, and the one the receipt names.
  const texts = current.consent_texts || { en: current.consent_text };
  const shown = texts[locale];
  $("consent-text").textContent = shown || t("There is no consent text in this language yet, so nothing can be shared in it. Switch the language at the top of the page, or ask an admin to add the text.");
  $("consent-text").classList.toggle("missing", !shown);
  confirmButton.disabled = !shown;
  $("consent-version").textContent = t("version %(version)s", { version: current.version });
  daysInput.max = String(current.max_share_days);
  if (Number(daysInput.value) > current.max_share_days) daysInput.value = String(current.max_share_days);
  setDateBounds(current.max_share_days);
  updateDaysHint();
}

function updateDaysHint() {
  const max = policy ? policy.max_share_days : parseInt(daysInput.max, 10);
  const days = wholeDays();
  const hint = $("share-days-hint");
  if (!Number.isInteger(days) || days < 1 || days > max) {
    hint.textContent = t("Choose 1 to %(max)s days (the organisation's maximum is %(max)s).", { max });
    hint.classList.add("invalid");
    return;
  }
  hint.classList.remove("invalid");
  const end = new Date(Date.now() + days * 86400000);
  if (document.activeElement !== endDate) endDate.value = isoDay(end);
  hint.textContent = t("Access ends on %(date)s. At most %(max)s days (organisation policy).", { date: end.toLocaleDateString(locale, { dateStyle: "full" }), max });
}
daysInput.addEventListener("input", updateDaysHint);

// The end as a date too (the policy's bounds as min and max); it and the days agree.
const endDate = $("share-end-date");
const isoDay = (date) => `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`;
function setDateBounds(max) {
  endDate.min = isoDay(new Date(Date.now() + 86400000));
  endDate.max = isoDay(new Date(Date.now() + max * 86400000));
}
endDate.addEventListener("change", () => {
  const [y, m, d] = endDate.value.split("-").map(Number);
  if (!y) return;
  const today = new Date();
  const chosen = Date.UTC(y, m - 1, d);
  const base = Date.UTC(today.getFullYear(), today.getMonth(), today.getDate());
  daysInput.value = String(Math.round((chosen - base) / 86400000));
  updateDaysHint();
});

// A whole number of days, or NaN: "2.5" is refused, not read as 2.
function wholeDays() {
  const value = Number(daysInput.value);
  return daysInput.value.trim() !== "" && Number.isInteger(value) ? value : NaN;
}
form.addEventListener("input", () => {
  if (!errorBox.classList.contains("hidden")) shareError("");
});

function mediaUrl(id, part) {
  return `/media/recordings/${encodeURIComponent(id)}/${part}`;
}

// Shown where the eye is and focused, so a screen reader says it and nothing seems silent.
function shareError(message) {
  showError(errorBox, message);
  if (message) {
    errorBox.scrollIntoView({ block: "nearest" });
    errorBox.focus();
  }
}

async function openShare(card) {
  current = readCard(card);
  form.hidden = false;
  done.hidden = true;
  form.reset();
  updateDaysHint();
  shareError("");
  confirmButton.disabled = false;
  confirmButton.textContent = t("Confirm and share");
  $("share-recording-title").textContent = current.title;

  const hasScreen = current.parts.includes("screen");
  const hasAudio = current.parts.includes("audio");
  video.classList.toggle("hidden", !hasScreen);
  audioTile.classList.toggle("hidden", hasScreen);
  audio.controls = !hasScreen;
  audio.classList.toggle("hidden", hasScreen);
  main = hasScreen ? video : audio;
  if (hasScreen) video.src = mediaUrl(current.id, "screen");
  if (hasAudio) audio.src = mediaUrl(current.id, "audio");

  $("customer-choice").classList.toggle("hidden", !current.customerInformed);
  $("customer-excluded").classList.toggle("hidden", current.customerInformed);
  $("share-customer").checked = false;
  trimStart.value = "0";
  trimEnd.value = trimEnd.max; // "the whole recording" until the handles move
  setupTrim();
  redactions.open(current);
  $("redaction-summary").textContent = summary([]);

  openModal(dialog);
  $("share-purpose").focus();
  try {
    const [coaches, currentPolicy] = await Promise.all([loadCoaches(), api("GET", "/api/v1/policy")]);
    renderCoaches(coaches);
    renderPolicy(currentPolicy);
  } catch (error) {
    coachesPromise = null;
    shareError(t("Could not load the choices: %(reason)s", { reason: error.message }));
  }
}

function closeShare() {
  playingSelection = false;
  [video, audio].forEach((media) => {
    media.pause();
    media.removeAttribute("src");
    media.load();
  });
  if (dialog.open) dialog.close();
  current = null;
}

// Closed only on purpose (Cancel, ×, Escape): a stray click beside it keeps what was typed.
dialog.addEventListener("click", (event) => {
  if (event.target.closest("[data-close]")) closeShare();
});
dialog.addEventListener("cancel", (event) => {
  event.preventDefault();
  closeShare();
});

// Audio alongside a screen video plays in step with it.
video.addEventListener("play", () => {
  if (current && current.parts.includes("audio") && main === video) {
    audio.currentTime = video.currentTime;
    audio.play().catch(() => {});
  }
});
video.addEventListener("pause", () => {
  if (main === video) audio.pause();
});
video.addEventListener("seeked", () => {
  if (main === video && audio.src) audio.currentTime = video.currentTime;
});

// --- trim -------------------------------------------------------------------------------

function knownDuration() {
  if (current && current.duration) return current.duration;
  if (Number.isFinite(main.duration) && main.duration > 0) return main.duration;
  return null;
}

function setupTrim() {
  const duration = knownDuration();
  const ready = duration !== null;
  $("trim-wait").classList.toggle("hidden", ready);
  [trimStart, trimEnd].forEach((input) => {
    input.disabled = !ready;
  });
  document.querySelectorAll("[data-set]").forEach((button) => {
    button.disabled = !ready;
  });
  $("play-selection").disabled = !ready;
  if (!ready) {
    $("trim-length").textContent = t("the whole recording");
    return;
  }
  const fullBefore = parseFloat(trimEnd.value) >= parseFloat(trimEnd.max) - 0.05;
  const max = (Math.floor(duration * 10) / 10).toFixed(1);
  trimStart.max = max;
  trimEnd.max = max;
  if (fullBefore || parseFloat(trimEnd.value) > parseFloat(max)) trimEnd.value = max;
  if (parseFloat(trimStart.value) > parseFloat(max) - 1) trimStart.value = "0";
  updateTrim();
}

function trimValues() {
  return { start: parseFloat(trimStart.value) || 0, end: parseFloat(trimEnd.value) || 0 };
}

function updateTrim() {
  const duration = parseFloat(trimEnd.max) || 1;
  const { start, end } = trimValues();
  $("trim-start-out").textContent = clock(start);
  $("trim-end-out").textContent = clock(end);
  $("trim-length").textContent = isWhole()
    ? t("the whole recording (%(length)s)", { length: clock(end - start) })
    : `${clock(start)} – ${clock(end)} (${clock(end - start)})`;
  const selection = $("trim-selection");
  selection.style.left = `${(start / duration) * 100}%`;
  selection.style.width = `${Math.max(0, ((end - start) / duration) * 100)}%`;
  trimStart.setAttribute("aria-valuetext", clock(start));
  trimEnd.setAttribute("aria-valuetext", clock(end));
}

function isWhole() {
  const { start, end } = trimValues();
  return start <= 0.05 && end >= parseFloat(trimEnd.max) - 0.05;
}

function seek(seconds) {
  if (Number.isFinite(seconds) && main.readyState > 0) main.currentTime = seconds;
}

trimStart.addEventListener("input", () => {
  const { end } = trimValues();
  if (parseFloat(trimStart.value) > end - 1) trimStart.value = String(Math.max(0, end - 1));
  updateTrim();
  seek(parseFloat(trimStart.value));
});
trimEnd.addEventListener("input", () => {
  const { start } = trimValues();
  if (parseFloat(trimEnd.value) < start + 1) trimEnd.value = String(Math.min(parseFloat(trimEnd.max), start + 1));
  updateTrim();
  seek(parseFloat(trimEnd.value));
});

document.querySelectorAll("[data-set]").forEach((button) => {
  button.addEventListener("click", () => {
    const now = Math.round(main.currentTime * 10) / 10;
    const { start, end } = trimValues();
    if (button.dataset.set === "start") {
      if (now > end - 1) {
        toast(t("The start must be at least one second before the end."), "error");
        return;
      }
      trimStart.value = String(now);
    } else {
      if (now < start + 1) {
        toast(t("The end must be at least one second after the start."), "error");
        return;
      }
      trimEnd.value = String(now);
    }
    updateTrim();
  });
});

$("play-selection").addEventListener("click", () => {
  const { start } = trimValues();
  seek(start);
  playingSelection = true;
  main.play().catch(() => {});
});

function onTime() {
  const duration = parseFloat(trimEnd.max) || 1;
  $("trim-playhead").style.left = `${Math.min(100, (main.currentTime / duration) * 100)}%`;
  if (playingSelection && main.currentTime >= trimValues().end) {
    main.pause();
    playingSelection = false;
  }
}
[video, audio].forEach((media) => {
  media.addEventListener("timeupdate", () => media === main && onTime());
  media.addEventListener("loadedmetadata", () => media === main && current && !current.duration && setupTrim());
  media.addEventListener("pause", () => {
    if (media === main) playingSelection = false;
  });
});

// --- confirm ----------------------------------------------------------------------------

function chosenCoaches() {
  return [...document.querySelectorAll('#coach-list input[name="coach_ids"]:checked')].map((box) => ({
    id: box.value,
    name: box.dataset.name,
    login: box.dataset.login,
  }));
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!current) return;
  const coaches = chosenCoaches();
  const purpose = $("share-purpose").value.trim();
  const days = wholeDays();
  const max = policy ? policy.max_share_days : parseInt(daysInput.max, 10);
  if (!coaches.length) return shareError(t("Choose the coach who may watch it."));
  if (!purpose) {
    $("share-purpose").focus();
    return shareError(t("Say what the coaching is for."));
  }
  if (!Number.isInteger(days) || days < 1 || days > max) {
    daysInput.focus();
    return shareError(t("Access can last 1 to %(max)s days.", { max }));
  }
  const body = {
    coach_ids: coaches.map((coach) => coach.id),
    purpose,
    expires_in_days: days,
    include_customer_audio: current.customerInformed && $("share-customer").checked,
    language: locale, // the consent text shown is the one in the page's language
  };
  const note = $("share-note").value.trim();
  if (note) body.note = note;
  if (knownDuration() && !isWhole()) {
    const { start, end } = trimValues();
    body.trim = { start_s: Math.round(start * 10) / 10, end_s: Math.round(end * 10) / 10 };
  }
  const hidden = redactions.value();
  if (hidden.length) body.redactions = hidden;
  shareError("");
  confirmButton.disabled = true;
  confirmButton.textContent = t("Sharing…");
  try {
    const share = await api("POST", `/api/v1/recordings/${current.id}/shares`, body);
    markShared(current.card);
    showDone(share, coaches);
  } catch (error) {
    shareError(error.message);
    confirmButton.disabled = false;
    confirmButton.textContent = t("Confirm and share");
  }
});

function showDone(share, coaches) {
  [video, audio].forEach((media) => media.pause());
  form.hidden = true;
  done.hidden = false;
  $("done-coaches").textContent = coaches.map((coach) => `${coach.name} (${coach.login})`).join(", ");
  let claims = "";
  try {
    claims = JSON.stringify(decodeJwt(share.receipt).claims, null, 2);
  } catch (error) {
    claims = t("(the receipt could not be read)");
  }
  $("receipt-claims").textContent = claims;
  $("receipt-download").onclick = () => downloadToken("receipt", share.id, share.receipt);
  $("receipt-readable").onclick = () => downloadReadable("receipt", share.id, share.receipt);
  $("receipt-page").href = `/shares/${encodeURIComponent(share.id)}/receipt`;
  $("receipt-download").focus();
}

// --- arriving from the capture page or the embedded opt-in button -----------------------

if (location.hash === "#awaiting-upload") $("upload-wait").classList.remove("hidden");

const wanted = list.dataset.openShare;
if (wanted) {
  const card = document.getElementById(`rec-${wanted}`);
  history.replaceState(null, "", location.pathname);
  if (card) {
    card.scrollIntoView({ block: "center" });
    openShare(card);
  } else {
    toast(t("That recording is not among your drafts any more."), "error");
  }
}
const highlighted = list.dataset.highlight && document.getElementById(`rec-${list.dataset.highlight}`);
if (highlighted) {
  highlighted.scrollIntoView({ block: "center" });
  history.replaceState(null, "", location.pathname);
}
