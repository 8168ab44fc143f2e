// The seek bar: the played and buffered parts, the handle, the clock beside the buttons, the
// preview (time and thumbnail) under the pointer, dragging — on the bar and on the waveform —
// and the bar's keys as a slider.
import { $, clamp, clock, t } from "../kit.js";

export const SEEK_STEP_S = 5;

export function createTimeline(player) {
  const { video } = player;
  const bar = $("timeline");
  const played = $("timeline-played");
  const buffered = $("timeline-buffered");
  const handle = $("timeline-handle");
  const preview = $("scrub-preview");
  const previewThumb = $("scrub-thumb");
  const previewTime = $("scrub-time");
  const timeCurrent = $("time-current");
  const timeTotal = $("time-total");
  let thumbs = null; // the sprite's layout, once it is loaded
  let dragging = null; // the element a pointer is dragging on

  function render(at, total) {
    const fraction = total ? clamp(at / total, 0, 1) : 0;
    played.style.width = `${fraction * 100}%`;
    handle.style.left = `${fraction * 100}%`;
    timeCurrent.textContent = clock(at);
    if (total) timeTotal.textContent = clock(total);
    bar.setAttribute("aria-valuenow", at.toFixed(1));
    bar.setAttribute("aria-valuemax", total.toFixed(1));
    bar.setAttribute("aria-valuetext", t("%(time)s of %(total)s", { time: clock(at), total: clock(total) }));
  }

  function renderBuffered() {
    const total = player.duration();
    if (!total || !video.buffered.length) return;
    let end = 0;
    for (let i = 0; i < video.buffered.length; i += 1) {
      if (video.buffered.start(i) <= video.currentTime + 0.5) end = Math.max(end, video.buffered.end(i));
    }
    buffered.style.width = `${clamp(end / total, 0, 1) * 100}%`;
  }

  // --- the preview under the pointer ---

  function showPreview(fraction) {
    const total = player.duration();
    if (!total) return;
    const at = fraction * total;
    previewTime.textContent = clock(at);
    if (thumbs) {
      const index = clamp(Math.floor(at / thumbs.interval_s), 0, thumbs.count - 1);
      const col = index % thumbs.columns;
      const row = Math.floor(index / thumbs.columns);
      previewThumb.style.backgroundPosition = `-${col * thumbs.width}px -${row * thumbs.height}px`;
    }
    preview.hidden = false;
    const width = bar.clientWidth;
    const half = preview.offsetWidth / 2;
    preview.style.left = `${clamp(fraction * width, half, Math.max(half, width - half))}px`;
    player.waveform.hover(at);
  }

  function hidePreview() {
    preview.hidden = true;
    player.waveform.hover(null);
  }

  async function loadThumbnails(info) {
    try {
      const url = await player.media.blobUrl(player.withView(player.data.thumbnailsUrl));
      thumbs = info;
      previewThumb.style.width = `${info.width}px`;
      previewThumb.style.height = `${info.height}px`;
      previewThumb.style.backgroundImage = `url("${url}")`;
      previewThumb.style.backgroundSize = `${info.width * info.columns}px ${info.height * info.rows}px`;
      preview.classList.add("has-thumb");
    } catch (err) {
      if (err.status === 410) player.watch.poll();
    }
  }

  function clear() {
    previewThumb.style.backgroundImage = "none";
  }

  // --- hovering and dragging: on the bar, and on anything else laid out along the time ---

  function fractionAt(event, element) {
    const box = element.getBoundingClientRect();
    return clamp((event.clientX - box.left) / box.width, 0, 1);
  }

  function scrubbable(element) {
    element.addEventListener("pointermove", (event) => {
      const fraction = fractionAt(event, element);
      showPreview(fraction);
      if (dragging === element) player.seek(fraction * player.duration());
    });
    element.addEventListener("pointerleave", () => {
      if (dragging !== element) hidePreview();
    });
    element.addEventListener("pointerdown", (event) => {
      if (event.button !== 0 || player.ended) return;
      dragging = element;
      element.setPointerCapture(event.pointerId);
      player.seek(fractionAt(event, element) * player.duration());
    });
    const release = (event) => {
      if (dragging !== element) return;
      dragging = null;
      if (element.hasPointerCapture(event.pointerId)) element.releasePointerCapture(event.pointerId);
      if (event.type === "pointercancel") hidePreview();
    };
    element.addEventListener("pointerup", release);
    element.addEventListener("pointercancel", release);
  }

  scrubbable(bar);
  bar.addEventListener("keydown", (event) => {
    const steps = { ArrowLeft: -SEEK_STEP_S, ArrowRight: SEEK_STEP_S, PageDown: -30, PageUp: 30 };
    if (event.key in steps) player.seek(video.currentTime + steps[event.key]);
    else if (event.key === "Home") player.seek(0);
    else if (event.key === "End") player.seek(player.duration());
    else return;
    event.preventDefault();
  });

  return { render, renderBuffered, scrubbable, loadThumbnails, clear };
}
