// The revocation watch: consent can end at any moment, and then the player stops within
// seconds. A viewing session is opened; a heartbeat reports the seconds watched and a poll
// reads the share — a 410 (withdrawn or expired), 404 (gone) or 401 (signed out) from either
// ends playback and says why in the ended notice. The end date itself is checked on time.
import { $, api, csrf, t } from "../kit.js";

const HEARTBEAT_MS = 5000;
export const POLL_MS = 3000;
// While playing, the share is read every second: the player buffers ahead, so a revoke would
// otherwise show only when the buffer runs dry. One small GET per viewer per second.
const END_POLL_MS = 1000;

export function createWatch(player) {
  const { video, data } = player;
  let watchedMs = 0;
  let playingSince = null;
  let polling = false;

  // --- watched time, for the heartbeat ---

  function startWatching() {
    if (playingSince === null) playingSince = performance.now();
  }

  function stopWatching() {
    if (playingSince !== null) {
      watchedMs += performance.now() - playingSince;
      playingSince = null;
    }
  }

  function takeWatched() {
    let ms = watchedMs;
    if (playingSince !== null) {
      const now = performance.now();
      ms += now - playingSince;
      playingSince = now;
    }
    watchedMs = 0;
    return Math.min(120, Math.round(ms) / 1000);
  }

  // --- the session with the server: view, heartbeat, poll ---

  const heartbeatUrl = () => `${data.viewsUrl}/${encodeURIComponent(player.viewId)}/heartbeat`;

  // Open the viewing session; false (and the player ended, or a status shown) if it cannot.
  async function begin() {
    try {
      const view = await api("POST", data.viewsUrl);
      player.viewId = view.id;
      return true;
    } catch (err) {
      if (err.status === 410 || err.status === 404) player.end(null);
      else if (err.status === 401) player.end("signed-out");
      else player.controls.showStatus(t("Playback could not start: %(reason)s", { reason: err.message }));
      return false;
    }
  }

  async function heartbeat() {
    if (!player.viewId || player.ended) return;
    if (video.paused && watchedMs <= 0) return;
    const watched = takeWatched();
    try {
      await api("POST", heartbeatUrl(), {
        watched_s: watched,
        position_s: Math.round((video.currentTime || 0) * 1000) / 1000,
      });
    } catch (err) {
      if (err.status === 410) return player.end(null);
      if (err.status === 404) return player.end("gone");
      if (err.status === 401) return player.end("signed-out");
      watchedMs += watched * 1000; // try again with the next beat
    }
  }

  function finalBeat() {
    // Leaving the page: report the last seconds watched without waiting for an answer.
    if (!player.viewId || player.ended) return;
    stopWatching();
    const watched = takeWatched();
    if (watched <= 0) return;
    try {
      fetch(heartbeatUrl(), {
        method: "POST",
        keepalive: true,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
        body: JSON.stringify({ watched_s: watched, position_s: video.currentTime || 0 }),
      }).catch(() => {});
    } catch (err) {
      /* the page is going away */
    }
  }

  function endedBy(share) {
    // A coach is told only that the share ended, never whether it was withdrawn.
    if (share.status === "ended") return "ended";
    if (share.status === "revoked") return "revoked";
    if (share.status === "expired" || new Date(share.expires_at) <= new Date()) return "expired";
    if (!share.media) return "gone";
    return null;
  }

  async function poll() {
    if (player.ended || polling) return;
    polling = true;
    try {
      const reason = endedBy(await api("GET", data.shareUrl));
      if (reason) player.end(reason);
    } catch (err) {
      if (err.status === 410) player.end("ended");
      else if (err.status === 404) player.end("gone");
      else if (err.status === 401) player.end("signed-out");
      // Anything else (the network, a restart) is not the end of consent: keep trying.
    } finally {
      polling = false;
    }
  }

  async function reasonFromServer() {
    try {
      return endedBy(await api("GET", data.shareUrl)) || "gone";
    } catch (err) {
      if (err.status === 410) return "ended";
      return err.status === 401 ? "signed-out" : "gone";
    }
  }

  // The heartbeat and the poll while the page is open, and one more look at the end date.
  function keepWatching() {
    player.every(heartbeat, HEARTBEAT_MS);
    player.every(poll, END_POLL_MS);
    const left = new Date(data.expiresAt) - new Date();
    if (Number.isFinite(left) && left < 2 ** 31 - 1) player.after(poll, Math.max(0, left) + 250);
  }

  // --- the ended notice ---

  const MESSAGES = {
    revoked: () =>
      data.isOwner === "true"
        ? t("You withdrew consent for this recording. It has been deleted.")
        : t("%(name)s withdrew consent for this recording. It has been deleted.", { name: data.employeeName }),
    expired: () => t("This share reached its end date. The recording has been deleted."),
    ended: () => t("This share has ended. The recording is no longer available to you."),
    gone: () => t("This recording is no longer shared with you."),
    "signed-out": () => t("You were signed out, so playback stopped."),
  };

  function showEnded(reason) {
    const notice = $("ended-notice");
    const heading = $("ended-title");
    heading.textContent = (MESSAGES[reason] || MESSAGES.gone)();
    if (reason === "signed-out") {
      $("ended-text").textContent = t("Sign in again to keep watching.");
    } else if (reason === "gone" || reason === "ended") {
      $("ended-text").textContent = t("Playback has stopped.");
    }
    // The title was sealed under the destroyed key: it goes with the recording.
    $("share-title").textContent = t("Recording deleted");
    const crumb = $("crumb-title");
    if (crumb) crumb.textContent = t("Recording deleted");
    ["share-facts", "share-length"].forEach((id) => {
      const el = $(id);
      if (el) el.hidden = true;
    });
    notice.hidden = false;
    const pageTitle = reason === "revoked" ? t("Consent withdrawn") : t("Playback ended");
    document.title = `${pageTitle} · consent-replay`;
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
    window.scrollTo({ top: 0 });
  }

  window.addEventListener("pagehide", finalBeat);
  // Timers slow down in hidden tabs: look again as soon as the page is back in view.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") poll();
  });

  return {
    begin,
    keepWatching,
    startWatching,
    stopWatching,
    heartbeat,
    poll,
    reasonFromServer,
    showEnded,
  };
}
