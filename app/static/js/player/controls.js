// The stage and its controls: play/pause (button, big button, click on the picture), back and
// forward, speed, volume and mute, full screen, the status line over the picture, and the
// watermark — the viewer's name, moving now and then so cropping it out is harder. The video
// offers no download: its context menu and dragging are blocked.
import { $, clamp, t } from "../kit.js";
import { SEEK_STEP_S } from "./timeline.js";

const WATERMARK_MS = 20000;

export function createControls(player) {
  const { video, stage, card } = player;
  const playButton = $("play");
  const stageStatus = $("stage-status");
  const speed = $("speed");
  const mute = $("mute");
  const volume = $("volume");
  const watermark = $("watermark");

  function syncPlayButton() {
    const paused = video.paused || video.ended;
    card.classList.toggle("is-playing", !paused);
    playButton.setAttribute("aria-label", paused ? t("Play") : t("Pause"));
    playButton.title = paused ? t("Play (space)") : t("Pause (space)");
  }

  function togglePlay() {
    if (player.ended || !video.getAttribute("src")) return;
    if (video.paused || video.ended) {
      const attempt = video.play();
      if (attempt && attempt.catch) attempt.catch(() => {});
    } else {
      video.pause();
    }
  }

  function toggleFullscreen() {
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    else if (card.requestFullscreen) card.requestFullscreen().catch(() => {});
  }

  function toggleMute() {
    video.muted = !video.muted;
  }

  function showStatus(text) {
    stageStatus.textContent = text || "";
    stageStatus.hidden = !text;
  }

  function moveWatermark() {
    const room = stage.getBoundingClientRect();
    const box = watermark.getBoundingClientRect();
    const left = Math.random() * Math.max(0, room.width - box.width - 32) + 16;
    const top = Math.random() * Math.max(0, room.height - box.height - 80) + 16;
    watermark.classList.add("moving");
    setTimeout(() => {
      watermark.style.left = `${Math.round(left)}px`;
      watermark.style.top = `${Math.round(top)}px`;
      watermark.classList.remove("moving");
    }, 400);
  }

  function keepMovingWatermark() {
    player.every(moveWatermark, WATERMARK_MS);
  }

  const block = (event) => event.preventDefault();
  stage.addEventListener("contextmenu", block);
  video.addEventListener("contextmenu", block);
  video.addEventListener("dragstart", block);

  video.addEventListener("click", togglePlay);
  video.addEventListener("dblclick", toggleFullscreen);
  $("big-play").addEventListener("click", togglePlay);
  playButton.addEventListener("click", togglePlay);
  $("back").addEventListener("click", () => player.seek(video.currentTime - SEEK_STEP_S));
  $("forward").addEventListener("click", () => player.seek(video.currentTime + SEEK_STEP_S));
  $("fullscreen").addEventListener("click", toggleFullscreen);

  speed.addEventListener("change", () => {
    const rate = clamp(parseFloat(speed.value) || 1, 0.75, 2);
    video.playbackRate = rate;
    video.defaultPlaybackRate = rate;
  });
  volume.addEventListener("input", () => {
    video.volume = clamp(parseFloat(volume.value), 0, 1);
    video.muted = video.volume === 0;
  });
  mute.addEventListener("click", toggleMute);
  video.addEventListener("volumechange", () => {
    card.classList.toggle("is-muted", video.muted || video.volume === 0);
    mute.setAttribute("aria-label", video.muted ? t("Unmute") : t("Mute"));
    volume.value = video.muted ? "0" : String(video.volume);
  });
  video.addEventListener("ratechange", () => {
    const option = Array.from(speed.options).find((o) => parseFloat(o.value) === video.playbackRate);
    if (option) speed.value = option.value;
  });
  document.addEventListener("fullscreenchange", () => {
    card.classList.toggle("is-fullscreen", document.fullscreenElement === card);
    setTimeout(moveWatermark, 50);
  });

  return {
    syncPlayButton,
    togglePlay,
    toggleFullscreen,
    toggleMute,
    showStatus,
    moveWatermark,
    keepMovingWatermark,
  };
}
