// The waveform under the seek bar: two layers drawn once per size (all of it, and the played
// colour), then on every frame the played part, the play head and the hover line on top.
// Clicking and dragging on it seeks (the timeline makes it scrubbable).
import { $, api, clamp, t } from "../kit.js";

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
    const bar = 2 * ratio;
    const gap = 1 * ratio;
    const bars = Math.max(1, Math.floor(canvas.width / (bar + gap)));
    let loudest = 0.05;
    peaks.forEach((row) => row.forEach((v) => (loudest = Math.max(loudest, v))));

    const layer = (color) => {
      const off = document.createElement("canvas");
      off.width = canvas.width;
      off.height = canvas.height;
      const ctx = off.getContext("2d");
      ctx.fillStyle = color;
      const mid = off.height / 2;
      for (let i = 0; i < bars; i += 1) {
        const from = Math.floor(((i / bars) * total) / perBucket);
        const to = Math.max(from + 1, Math.floor((((i + 1) / bars) * total) / perBucket));
        const x = i * (bar + gap);
        peaks.forEach((row, channel) => {
          let peak = 0;
          for (let k = from; k < to && k < row.length; k += 1) peak = Math.max(peak, row[k]);
          const amp = Math.max(ratio, (peak / loudest) * (mid - 2 * ratio));
          if (peaks.length === 1) ctx.fillRect(x, mid - amp, bar, amp * 2);
          else if (channel === 0) ctx.fillRect(x, mid - amp - ratio / 2, bar, amp);
          else ctx.fillRect(x, mid + ratio / 2, bar, amp);
        });
      }
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
