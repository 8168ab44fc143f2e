// The coach playback page: a streamed player that stops the moment consent ends.
//
// This module wires the parts, each a module beside it:
//   timeline.js  the seek bar: position, buffered, scrub preview, dragging, slider keys
//   waveform.js  the waveform canvas under it
//   comments.js  the comment list, its markers on the seek bar, and adding one at a time
//   watch.js     the revocation watch: viewing session, heartbeat, poll, the ended notice
//   controls.js  play, speed, volume, full screen, the watermark, the stage's status line
//   shortcuts.js the keyboard shortcuts of the page
//   media.js     the poster and thumbnail sprite as blob URLs, and stopping the video
//
// They share one `player` object: the video, the page's data-* attributes, what the others
// need to ask (duration, seek, render, end) and each part by name (player.timeline, …). A
// part reaches another only through it, and only once the page is running.
//
// Data comes from data-* attributes on #player (strict CSP: no inline script or style). Text is
// always set with textContent; positions and sizes are set through element.style, which CSP
// allows (only style attributes and <style> elements in the markup are refused).
import { $, api, clamp, setProgress, t, upgradeTimes } from "../kit.js";
import { createComments } from "./comments.js";
import { createControls } from "./controls.js";
import { createFeedback } from "./feedback.js";
import { createMedia } from "./media.js";
import { bindShortcuts } from "./shortcuts.js";
import { createTimeline } from "./timeline.js";
import { createWatch, POLL_MS } from "./watch.js";
import { createWaveform } from "./waveform.js";

// --- a share that is still being prepared: wait, then open the player ------------------------

function watchPreparing(section) {
  const bar = section.querySelector("[data-progress]");
  const label = $("preparing-label");
  const timer = setInterval(async () => {
    try {
      const share = await api("GET", section.dataset.shareUrl);
      if (share.status !== "processing") {
        clearInterval(timer);
        window.location.reload();
        return;
      }
      setProgress(bar, share.progress);
      label.textContent = String(share.progress);
    } catch (err) {
      if (err.status === 404 || err.status === 410) {
        clearInterval(timer);
        window.location.reload();
      }
    }
  }, POLL_MS);
}

// --- the player -------------------------------------------------------------------------------

function Player(root) {
  const video = $("video");
  const stage = $("stage");
  const player = {
    root,
    data: root.dataset,
    video,
    stage,
    card: stage.closest(".player-card"),
    viewId: null,
    ended: false,
    timers: [],
    raf: 0,
  };

  player.duration = () => {
    if (Number.isFinite(video.duration) && video.duration > 0) return video.duration;
    const fromData = parseFloat(player.data.duration);
    if (fromData > 0) return fromData;
    return player.waveform.duration();
  };

  player.seek = (at) => {
    if (player.ended) return;
    const total = player.duration();
    if (!total) return;
    video.currentTime = clamp(at, 0, Math.max(0, total - 0.05));
    player.render();
  };

  player.render = () => {
    const now = video.currentTime || 0;
    player.timeline.render(now, player.duration());
    player.comments.follow(now);
    player.waveform.paint();
  };

  // A media URL for this viewing session (the server counts what each session fetches).
  player.withView = (url) => `${url}?view=${encodeURIComponent(player.viewId)}`;

  // Timers that end with the player.
  player.every = (fn, ms) => player.timers.push(setInterval(fn, ms));
  player.after = (fn, ms) => player.timers.push(setTimeout(fn, ms));

  player.end = (reason) => {
    if (player.ended) return;
    player.ended = true;
    player.timers.forEach((timer) => clearInterval(timer));
    player.timers = [];
    if (player.raf) cancelAnimationFrame(player.raf);
    player.media.stop();
    player.timeline.clear();
    player.waveform.clear();
    root.hidden = true;
    // The comments were sealed under the destroyed key: take them off the page as well.
    player.comments.clear();
    player.feedback.clear();
    if (reason) player.watch.showEnded(reason);
    else player.watch.reasonFromServer().then(player.watch.showEnded);
  };

  player.media = createMedia(player);
  player.controls = createControls(player);
  player.timeline = createTimeline(player);
  player.waveform = createWaveform(player);
  player.timeline.scrubbable(player.waveform.canvas);
  player.comments = createComments(player);
  player.watch = createWatch(player);
  player.feedback = createFeedback(player);
  bindShortcuts(player);
  wireVideo(player);

  async function start() {
    player.comments.refresh();
    player.render();
    player.controls.moveWatermark();
    if (!(await player.watch.begin())) return;
    video.src = player.withView(player.data.videoUrl);
    player.media.loadPoster();
    player.waveform.load();
    player.watch.keepWatching();
    player.controls.keepMovingWatermark();
    root.classList.add("is-ready");
  }

  return { start, end: player.end };
}

// What the video element says, passed on to the parts.
function wireVideo(player) {
  const { video, controls, watch } = player;

  function loop() {
    player.render();
    player.raf = video.paused || player.ended ? 0 : requestAnimationFrame(loop);
  }

  video.addEventListener("play", controls.syncPlayButton);
  video.addEventListener("playing", () => {
    controls.syncPlayButton();
    controls.showStatus("");
    watch.startWatching();
    if (!player.raf) player.raf = requestAnimationFrame(loop);
  });
  video.addEventListener("pause", () => {
    controls.syncPlayButton();
    watch.stopWatching();
    watch.heartbeat();
    player.render();
  });
  video.addEventListener("waiting", () => {
    watch.stopWatching();
    if (!video.paused) controls.showStatus(t("Loading…"));
  });
  video.addEventListener("ended", () => {
    controls.syncPlayButton();
    watch.stopWatching();
    watch.heartbeat();
  });
  video.addEventListener("seeked", player.render);
  video.addEventListener("timeupdate", () => {
    if (video.paused) player.render();
  });
  video.addEventListener("progress", player.timeline.renderBuffered);
  video.addEventListener("loadedmetadata", () => {
    // A linked moment of feedback opens the player at its time (#t=12.5).
    const linked = /^#t=(\d+(?:\.\d+)?)$/.exec(window.location.hash);
    if (linked && !video.currentTime) player.seek(parseFloat(linked[1]));
    player.render();
    player.comments.refresh();
    player.waveform.build();
  });
  video.addEventListener("error", () => {
    if (player.ended || !video.getAttribute("src")) return;
    controls.showStatus(t("The video stopped loading. Checking access…"));
    watch.poll().then(() => {
      if (!player.ended) controls.showStatus(t("The video could not be loaded. Reload the page to try again."));
    });
  });
}

upgradeTimes(document);
document.querySelectorAll("[data-progress]").forEach((bar) => setProgress(bar, bar.dataset.progress));
const preparing = $("preparing");
if (preparing) watchPreparing(preparing);
const root = $("player");
if (root) Player(root).start();
