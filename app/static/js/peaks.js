// Loudness peaks as bars on a canvas: the coach's player draws a share's waveform.json with it,
// the share dialog's mute track the employee's own draft, measured here in the browser from
// the preview's audio (nothing is written anywhere: the peaks live in the page).

/** Bars for ``peaks`` (one row per channel, one value 0..1 per bucket of ``perBucket``
 *  seconds) over ``total`` seconds, across the whole of ``canvas``, in ``color``. One channel:
 *  bars round the middle; two: the first above it, the second below. */
export function drawPeaks(canvas, { peaks, perBucket, total, color, ratio = 1 }) {
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = color;
  const rows = peaks.slice(0, 2);
  const bar = 2 * ratio;
  const gap = 1 * ratio;
  const bars = Math.max(1, Math.floor(canvas.width / (bar + gap)));
  const mid = canvas.height / 2;
  let loudest = 0.05;
  rows.forEach((row) => row.forEach((v) => (loudest = Math.max(loudest, v))));
  for (let i = 0; i < bars; i += 1) {
    const from = Math.floor(((i / bars) * total) / perBucket);
    const to = Math.max(from + 1, Math.floor((((i + 1) / bars) * total) / perBucket));
    const x = i * (bar + gap);
    rows.forEach((row, channel) => {
      let peak = 0;
      for (let k = from; k < to && k < row.length; k += 1) peak = Math.max(peak, row[k]);
      const amp = Math.max(ratio, (peak / loudest) * (mid - 2 * ratio));
      if (rows.length === 1) ctx.fillRect(x, mid - amp, bar, amp * 2);
      else if (channel === 0) ctx.fillRect(x, mid - amp - ratio / 2, bar, amp);
      else ctx.fillRect(x, mid + ratio / 2, bar, amp);
    });
  }
}

/** The peaks of decoded audio (an AudioBuffer): at most two channels, ``buckets`` a channel. */
export function measurePeaks(buffer, buckets) {
  const channels = Math.min(2, buffer.numberOfChannels);
  const per = Math.max(1, Math.ceil(buffer.length / buckets));
  const peaks = [];
  for (let channel = 0; channel < channels; channel += 1) {
    const samples = buffer.getChannelData(channel);
    const row = new Array(Math.ceil(samples.length / per)).fill(0);
    for (let i = 0; i < samples.length; i += 1) {
      const v = Math.abs(samples[i]);
      const k = (i / per) | 0;
      if (v > row[k]) row[k] = v;
    }
    peaks.push(row);
  }
  return { peaks, perBucket: per / buffer.sampleRate, duration: buffer.duration };
}
