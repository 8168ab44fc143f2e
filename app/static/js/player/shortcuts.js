// The page's keyboard shortcuts: space or k plays and pauses, ← and → step 5 s, m mutes,
// f toggles full screen. Not while typing, not with a modifier, and not where the focused
// control has its own use for the key (a button's space and enter, the seek bar's arrows).
import { SEEK_STEP_S } from "./timeline.js";

export function bindShortcuts(player) {
  const { video, controls } = player;
  const keys = {
    " ": controls.togglePlay,
    k: controls.togglePlay,
    ArrowLeft: () => player.seek(video.currentTime - SEEK_STEP_S),
    ArrowRight: () => player.seek(video.currentTime + SEEK_STEP_S),
    m: controls.toggleMute,
    f: controls.toggleFullscreen,
  };

  document.addEventListener("keydown", (event) => {
    if (player.ended || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target instanceof Element ? event.target : document.body;
    if (target.closest("input, textarea, select, [contenteditable]")) return;
    if ((event.key === " " || event.key === "Enter") && target.closest("button, a")) return;
    if (event.key.startsWith("Arrow") && target.closest("[role=slider]")) return;
    if (Object.prototype.hasOwnProperty.call(keys, event.key)) {
      event.preventDefault();
      keys[event.key]();
    }
  });
}
