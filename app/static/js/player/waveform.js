// The waveform under the seek bar: two layers drawn once per size (all of it, and the played
// colour), then on every frame the played part, the play head and the hover line on top.
// Clicking and dragging on it seeks (the timeline makes it scrubbable).
import { $, api, clamp, t } from "../kit.js";
import { drawPeaks } from "../peaks.js";

const COLOURS = { base: "#3a4557", played: "#6fcbac", head: "#ffffff", hover: "rgba(255,255,255,.4)" };

export function createWaveform(player) {
  const { video } = player;
  const canvas = $("waveform");
  const note = $("waveform-note");
  let data = null; // waveform.json: peaks per channel, seconds per bucket, thumbnails
  let layers = null;
  let hoverT = null;

  const duration = () => (data ? data.duration_s || 0 : 0);

  async function load() {
    let body;
    try {
      body = await api("GET", player.withView(player.data.waveformUrl));
    } catch (err) {
      if (err.status === 410) return player.watch.poll();
      note.textContent = t("The waveform is not available.");
      return;
    }
    if (player.ended) return;
    data = body;
    const peaks = Array.isArray(data.peaks) ? data.peaks : [];
    const loud = peaks.some((row) => row.some((v) => v > 0.002));
    note.textContent = loud ? "" : t("No sound in this recording.");
    note.hidden = loud;
    build();
    player.render();
    if (data.thumbnails && data.thumbnails.count > 0) player.timeline.loadThumbnails(data.thumbnails);
  }

  function build() {
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!data || !width || !height) return;
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const peaks = (data.peaks || []).slice(0, 2);
    const perBucket = data.seconds_per_bucket || (data.duration_s || 1) / ((peaks[0] || [1]).length || 1);
    const total = player.duration() || data.duration_s || 1;
    const layer = (color) => {
      const off = document.createElement("canvas");
      off.width = canvas.width;
      off.height = canvas.height;
      drawPeaks(off, { peaks, perBucket, total, color, ratio });
      return off;
    };
    layers = { base: layer(COLOURS.base), played: layer(COLOURS.played) };
    paint();
  }

  function paint() {
    if (!layers) return;
    const ctx = canvas.getContext("2d");
    const { width, height } = canvas;
    const total = player.duration();
    const x = total ? Math.round(clamp(video.currentTime / total, 0, 1) * width) : 0;
    ctx.clearRect(0, 0, width, height);
    ctx.drawImage(layers.base, 0, 0);
    if (x > 0) ctx.drawImage(layers.played, 0, 0, x, height, 0, 0, x, height);
    const ratio = window.devicePixelRatio || 1;
    if (hoverT !== null && total) {
      ctx.fillStyle = COLOURS.hover;
      ctx.fillRect(Math.round((hoverT / total) * width), 0, ratio, height);
    }
    ctx.fillStyle = COLOURS.head;
    ctx.fillRect(Math.min(width - 2 * ratio, x), 0, 2 * ratio, height);
  }

  // The time under the pointer (a thin line), or null when the pointer left.
  function hover(at) {
    hoverT = at;
    paint();
  }

  function clear() {
    data = null;
    layers = null;
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  }

  if (window.ResizeObserver) new ResizeObserver(() => build()).observe(canvas);
  else window.addEventListener("resize", build);

  return { canvas, duration, load, build, paint, hover, clear };
}
