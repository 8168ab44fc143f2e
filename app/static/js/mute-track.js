// The share dialog's mute track (SPEC §12): the draft's waveform with the muted spans shaded
// on it, where the employee marks a span to mute by dragging across it or with the keyboard
// (the arrow keys move the playhead, Enter marks the start and Enter again the end, Escape
// cancels).
//
// The waveform is measured here, in the browser, from the preview's own audio (the employee's
// draft, which they may already play): fetched, decoded with Web Audio and reduced to peaks in
// memory. No waveform of the unredacted draft is made or kept on the server.
import { $, clamp, clock, t } from "./kit.js";
import { drawPeaks, measurePeaks } from "./peaks.js";

const MAX_BYTES = 64 * 1024 * 1024; // larger files: the bar without the waveform
const DECODE_RATE = 4000; // samples a second kept while decoding (peaks need no more)
const MIN_SPAN_S = 0.2; // a shorter drag is a click: it moves the playhead
const COLOUR = "#7c8698";

export class MuteTrack {
  // editor: duration(), now(), seek(t), markMute(start, end), mutes() (the mute items).
  constructor(editor) {
    this.editor = editor;
    this.track = $("mute-wave");
    this.canvas = $("mute-wave-canvas");
    this.bar = $("mute-bar");
    this.cursor = $("mute-cursor");
    this.note = $("mute-wave-note");
    this.data = null;
    this.loading = null;
    this.mark = null; // the start of a span being marked with the keyboard, in seconds
    this.ghost = null;
    this.track.addEventListener("pointerdown", (event) => this.drag(event));
    this.track.addEventListener("keydown", (event) => this.key(event));
    if (window.ResizeObserver) new ResizeObserver(() => this.draw()).observe(this.track);
  }

  // --- the waveform --------------------------------------------------------------------------

  open(url) {
    this.data = null;
    this.mark = null;
    this.note.textContent = "";
    this.canvas.getContext("2d").clearRect(0, 0, this.canvas.width, this.canvas.height);
    if (this.loading) this.loading.abort();
    this.loading = null;
    if (url) this.load(url);
    this.render();
  }

  async load(url) {
    const controller = new AbortController();
    this.loading = controller;
    this.note.textContent = t("Drawing the waveform…");
    let words = "";
    try {
      const response = await fetch(url, { credentials: "same-origin", signal: controller.signal });
      const size = parseInt(response.headers.get("Content-Length") || "0", 10);
      if (!response.ok) throw new Error(String(response.status));
      if (size > MAX_BYTES) {
        controller.abort();
        words = t("This recording is too long to draw its waveform here; mark the spans on the bar.");
      } else {
        const bytes = await response.arrayBuffer();
        const context = new OfflineAudioContext(1, 1, DECODE_RATE);
        const buffer = await context.decodeAudioData(bytes);
        if (this.loading !== controller) return;
        this.data = measurePeaks(buffer, 4000);
        const loud = this.data.peaks.some((row) => row.some((v) => v > 0.002));
        words = loud ? "" : t("No sound in this recording.");
      }
    } catch (error) {
      if (this.loading !== controller) return;
      words = t("The waveform is not available; mark the spans on the bar.");
    }
    if (this.loading !== controller) return;
    this.loading = null;
    this.note.textContent = words;
    this.draw();
  }

  draw() {
    const { clientWidth: width, clientHeight: height } = this.track;
    if (!width || !height) return;
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(width * ratio);
    this.canvas.height = Math.round(height * ratio);
    if (!this.data) return;
    const total = this.editor.duration() || this.data.duration || 1;
    drawPeaks(this.canvas, { peaks: this.data.peaks, perBucket: this.data.perBucket, total, color: COLOUR, ratio });
  }

  // --- the shaded spans, the playhead --------------------------------------------------------

  render() {
    const duration = this.editor.duration();
    const stereo = this.data && this.data.peaks.length === 2;
    const spans = this.editor.mutes().filter(() => duration).map((item) => {
      const node = document.createElement("span");
      node.className = `mute-span ${item.channel}`;
      node.title = t("Muted %(start)s – %(end)s: %(channel)s", { start: clock(item.start_s), end: clock(item.end_s), channel: this.editor.channelWords(item.channel) });
      // Through the CSSOM: the pages' CSP refuses style attributes.
      node.style.left = `${(item.start_s / duration) * 100}%`;
      node.style.width = `${((item.end_s - item.start_s) / duration) * 100}%`;
      const lane = stereo && item.channel !== "all" ? this.editor.lane(item.channel) : null;
      if (lane !== null) {
        node.style.top = lane === 0 ? "0" : "50%";
        node.style.bottom = lane === 0 ? "50%" : "0";
      }
      return node;
    });
    if (this.ghost) spans.push(this.ghost);
    this.bar.replaceChildren(...spans);
    this.playhead();
  }

  playhead() {
    const duration = this.editor.duration() || 0;
    const now = clamp(this.editor.now(), 0, duration || 0);
    this.cursor.style.left = duration ? `${(now / duration) * 100}%` : "0";
    this.track.setAttribute("aria-valuemax", String(Math.round(duration * 10) / 10));
    this.track.setAttribute("aria-valuenow", String(Math.round(now * 10) / 10));
    this.track.setAttribute(
      "aria-valuetext",
      this.mark === null
        ? clock(now)
        : t("%(time)s, a span to mute marked from %(start)s: Enter ends it there", { time: clock(now), start: clock(this.mark) }),
    );
    if (this.ghost && this.mark !== null) this.shade(this.ghost, this.mark, now);
  }

  shade(node, a, b) {
    const duration = this.editor.duration() || 1;
    node.style.left = `${(Math.min(a, b) / duration) * 100}%`;
    node.style.width = `${(Math.abs(b - a) / duration) * 100}%`;
  }

  makeGhost(from) {
    this.ghost = document.createElement("span");
    this.ghost.className = "mute-span marking";
    this.shade(this.ghost, from, from);
    this.bar.append(this.ghost);
  }

  // --- marking -------------------------------------------------------------------------------

  at(event) {
    const rect = this.track.getBoundingClientRect();
    return clamp((event.clientX - rect.left) / rect.width, 0, 1) * (this.editor.duration() || 0);
  }

  drag(event) {
    if (!this.editor.duration() || event.button !== 0) return;
    event.preventDefault();
    this.track.focus();
    this.mark = null;
    const from = this.at(event);
    this.makeGhost(from);
    let to = from;
    const move = (e) => {
      to = this.at(e);
      this.shade(this.ghost, from, to);
    };
    const up = () => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
      this.ghost = null;
      if (Math.abs(to - from) >= MIN_SPAN_S) this.editor.markMute(Math.min(from, to), Math.max(from, to));
      else this.editor.seek(from);
      this.render();
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  }

  key(event) {
    const duration = this.editor.duration();
    if (!duration) return;
    const step = event.shiftKey ? 10 : 1;
    const moves = {
      ArrowLeft: -step,
      ArrowDown: -step,
      ArrowRight: step,
      ArrowUp: step,
    };
    const now = this.editor.now();
    if (event.key in moves) this.editor.seek(clamp(now + moves[event.key], 0, duration));
    else if (event.key === "Home") this.editor.seek(0);
    else if (event.key === "End") this.editor.seek(duration);
    else if (event.key === "Enter" || event.key === " ") {
      if (this.mark === null) {
        this.mark = now;
        this.makeGhost(now);
        this.note.textContent = t("A span to mute starts at %(start)s. Move to its end and press Enter.", { start: clock(now) });
      } else {
        const [start, end] = [Math.min(this.mark, now), Math.max(this.mark, now)];
        this.mark = null;
        this.ghost = null;
        if (end - start >= MIN_SPAN_S) this.editor.markMute(start, end);
        this.note.textContent = end - start >= MIN_SPAN_S ? t("Muted %(start)s – %(end)s.", { start: clock(start), end: clock(end) }) : "";
      }
    } else if (event.key === "Escape" && this.mark !== null) {
      this.mark = null;
      this.ghost = null;
      this.note.textContent = "";
      // Escape here ends the marking only, not the dialog.
    } else return;
    event.preventDefault();
    event.stopPropagation();
    this.render();
  }
}
