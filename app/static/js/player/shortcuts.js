// The page's keyboard shortcuts (SPEC §14): Space or K plays and pauses, J and L step 10 s,
// ← and → step 5 s, < and > change the speed, M mutes, C starts a comment at this moment,
// F toggles full screen, ? opens the list of them. Not while typing, not with Ctrl, Alt or
// Meta, and not where the focused control has its own use for the key (a button's space and
// enter, the seek bar's arrows). The help dialog is a modal <dialog>: the rest of the page is
// inert while it is open, Escape closes it, and focus goes back where it was.
import { $, t } from "../kit.js";
import { SEEK_STEP_S } from "./timeline.js";

const JUMP_S = 10;

// What the help dialog lists, in this order; a row's keys are shown as <kbd>.
const SHORTCUTS = [
  [["Space", "K"], t("Play or pause")],
  [["J"], t("Back 10 seconds")],
  [["L"], t("Forward 10 seconds")],
  [["←"], t("Back 5 seconds")],
  [["→"], t("Forward 5 seconds")],
  [["<"], t("Slower")],
  [[">"], t("Faster")],
  [["M"], t("Mute or unmute")],
  [["C"], t("Comment at this moment")],
  [["F"], t("Full screen")],
  [["?"], t("Show these shortcuts")],
];
const KEY_NAMES = { Space: t("Space") };

function stepSpeed(video, select, direction) {
  const rates = Array.from(select.options, (option) => parseFloat(option.value));
  const index = rates.indexOf(video.playbackRate);
  const next = rates[Math.min(rates.length - 1, Math.max(0, (index < 0 ? rates.indexOf(1) : index) + direction))];
  select.value = String(next);
  select.dispatchEvent(new Event("change"));
}

function fillHelp(list) {
  list.replaceChildren(
    ...SHORTCUTS.map(([keys, label]) => {
      const row = document.createElement("div");
      const term = document.createElement("dt");
      keys.forEach((key, i) => {
        if (i) term.append(` ${t("or")} `);
        const kbd = document.createElement("kbd");
        kbd.textContent = KEY_NAMES[key] || key;
        term.append(kbd);
      });
      const description = document.createElement("dd");
      description.textContent = label;
      row.append(term, description);
      return row;
    }),
  );
}

export function bindShortcuts(player) {
  const { video, controls } = player;
  const help = $("shortcuts-dialog");
  let returnFocus = null;
  fillHelp($("shortcuts-list"));

  function openHelp() {
    if (help.open) return;
    returnFocus = document.activeElement;
    help.showModal();
    $("shortcuts-close").focus();
  }
  $("shortcuts-open").addEventListener("click", openHelp);
  $("shortcuts-close").addEventListener("click", () => help.close());
  help.addEventListener("close", () => {
    if (returnFocus && returnFocus.isConnected) returnFocus.focus();
  });

  const keys = {
    " ": controls.togglePlay,
    k: controls.togglePlay,
    j: () => player.seek(video.currentTime - JUMP_S),
    l: () => player.seek(video.currentTime + JUMP_S),
    ArrowLeft: () => player.seek(video.currentTime - SEEK_STEP_S),
    ArrowRight: () => player.seek(video.currentTime + SEEK_STEP_S),
    "<": () => stepSpeed(video, $("speed"), -1),
    ">": () => stepSpeed(video, $("speed"), +1),
    m: controls.toggleMute,
    c: player.comments.commentHere,
    f: controls.toggleFullscreen,
    "?": openHelp,
  };

  document.addEventListener("keydown", (event) => {
    if (player.ended || help.open || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target instanceof Element ? event.target : document.body;
    if (target.closest("input, textarea, select, [contenteditable]")) return;
    if ((event.key === " " || event.key === "Enter") && target.closest("button, a")) return;
    if (event.key.startsWith("Arrow") && target.closest("[role=slider]")) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (Object.prototype.hasOwnProperty.call(keys, key)) {
      event.preventDefault();
      keys[key]();
    }
  });
}
