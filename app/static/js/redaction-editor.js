// The redaction editor of the share dialog (SPEC §12): boxes to cover or blur drawn on the
// preview, mute spans per channel, the worker's suggestions to accept or dismiss, and a still
// of the redacted picture at the playhead. Times are in the recording's own timeline.
//
// Keyboard: "Add a box" puts a box in the middle and focuses it; on a focused box the arrow
// keys move it, Alt+arrow keys resize it (Shift: in bigger steps), Delete removes it. Mute
// spans are marked on the draft's waveform (mute-track.js), by drag or by keyboard.
import { $, api, clamp, clock, el, sleep, t, tn } from "./kit.js";
import { MuteTrack } from "./mute-track.js";

const KIND_WORDS = { cover: t("Cover"), blur: t("Blur"), mute: t("Mute") };
const REASON_WORDS = {
  national_id: t("National identity number"),
  card_number: t("Card number"),
  account_number: t("Account number"),
  email: t("E-mail address"),
  phone: t("Phone number"),
};
const CHANNEL_WORDS = { all: t("both voices"), agent: t("your voice"), customer: t("the customer's voice") };
const MIN_SIZE = 0.02; // the smallest box, as a fraction of the frame
const round = (value) => Math.round(value * 1000) / 1000;

export function summary(items) {
  if (!items.length) return t("Nothing is hidden.");
  const counts = new Map();
  for (const item of items) {
    const key = `${item.kind} ${item.kind === "mute" ? item.channel : "all"}`;
    counts.set(key, (counts.get(key) || 0) + 1);
  }
  const parts = [...counts].map(([key, count]) => {
    const [kind, channel] = key.split(" ");
    const words = {
      cover: () => tn("%(num)s covered area", "%(num)s covered areas", count),
      blur: () => tn("%(num)s blurred area", "%(num)s blurred areas", count),
      mute: () => tn("%(num)s muted span", "%(num)s muted spans", count),
    }[kind]();
    return channel === "all" ? words : `${words} (${CHANNEL_WORDS[channel]})`;
  });
  return t("Hidden from the coach: %(parts)s.", { parts: parts.join(", ") });
}

export class RedactionEditor {
  // video: the preview's picture (boxes are drawn over it); playhead: the element that plays
  // (the video, or the audio of a call without a screen).
  constructor({ video, onChange, playhead }) {
    this.video = video;
    this.playhead = playhead || (() => video);
    this.onChange = onChange || (() => {});
    this.layer = $("redaction-layer");
    this.list = $("redaction-list");
    this.suggestionList = $("suggestion-list");
    this.muteTrack = new MuteTrack(this);
    this.waveFor = null;
    this.status = $("suggestion-status");
    this.items = [];
    this.suggestions = [];
    this.drawing = false;
    this.recording = null;
    this.serial = 0;
    $("redaction-draw").addEventListener("click", (event) => this.toggleDraw(event));
    $("redaction-add-mute").addEventListener("click", () => this.addMute());
    $("suggestion-find").addEventListener("click", () => this.findSuggestions());
    $("redaction-preview-button").addEventListener("click", () => this.preview());
    this.layer.addEventListener("pointerdown", (event) => this.startDraw(event));
    this.video.addEventListener("timeupdate", () => this.renderLayer());
    this.video.addEventListener("seeked", () => this.renderLayer());
    for (const media of [this.video, $("share-audio")]) {
      media.addEventListener("timeupdate", () => this.muteTrack.playhead());
      media.addEventListener("seeked", () => this.muteTrack.playhead());
      media.addEventListener("loadedmetadata", () => this.muteTrack.render());
    }
    this.video.addEventListener("loadedmetadata", () => this.fitLayer());
    window.addEventListener("resize", () => this.fitLayer());
  }

  // --- the recording -----------------------------------------------------------------------

  open(recording) {
    this.recording = recording;
    this.items = [];
    this.suggestions = [];
    this.setDrawing(false);
    $("redaction-preview").hidden = true;
    this.status.textContent = "";
    this.waveFor = null;
    this.muteTrack.open(null);
    this.configure();
    this.renderSuggestions();
    this.render();
    this.fitLayer();
  }

  // What the recording allows (called again once its check tells the length and channels).
  configure() {
    const recording = this.recording;
    const hasVideo = recording.parts.includes("screen");
    const stereo = recording.channels >= 2 && recording.agentChannel !== "mono";
    $("redaction-boxes").hidden = !hasVideo;
    $("redaction-suggest").hidden = !hasVideo;
    $("redaction-mute").hidden = !(recording.channels >= 1);
    for (const id of ["mute-wave", "mute-wave-help", "mute-wave-note"]) $(id).hidden = !(recording.channels >= 1);
    if (recording.channels >= 1 && this.waveFor !== recording.id) {
      // The draft's own audio: the call file, else the screen's sound.
      this.waveFor = recording.id;
      const part = recording.parts.includes("audio") ? "audio" : "screen";
      this.muteTrack.open(`/media/recordings/${encodeURIComponent(recording.id)}/${part}`);
    }
    $("redaction").hidden = !hasVideo && !(recording.channels >= 1);
    const channel = $("mute-channel");
    channel.value = "all";
    [...channel.options].forEach((option) => {
      option.disabled = option.value !== "all" && !stereo;
    });
  }

  duration() {
    const known = this.recording && this.recording.duration;
    if (known) return known;
    return Number.isFinite(this.video.duration) ? this.video.duration : null;
  }

  now() {
    return this.playhead().currentTime || 0;
  }

  seek(time) {
    this.playhead().currentTime = time;
    this.muteTrack.playhead();
  }

  mutes() {
    return this.items.filter((item) => item.kind === "mute");
  }

  channelWords(channel) {
    return CHANNEL_WORDS[channel];
  }

  // The waveform's lane of a channel: 0 the left (drawn on top), 1 the right.
  lane(channel) {
    const agentLeft = this.recording.agentChannel !== "right";
    return (channel === "agent") === agentLeft ? 0 : 1;
  }

  value() {
    return this.items.map(({ id, ...item }) => {
      const out = { ...item };
      if (out.box) out.box = { x: round(out.box.x), y: round(out.box.y), w: round(out.box.w), h: round(out.box.h) };
      out.start_s = round(out.start_s);
      out.end_s = round(out.end_s);
      return out;
    });
  }

  changed() {
    this.render();
    this.onChange(this.items);
  }

  // --- the layer over the picture ------------------------------------------------------------

  // The layer covers the picture itself, not the letterbox around it.
  fitLayer() {
    const { videoWidth, videoHeight, clientWidth, clientHeight } = this.video;
    if (!videoWidth || !clientWidth) return;
    const scale = Math.min(clientWidth / videoWidth, clientHeight / videoHeight);
    const width = videoWidth * scale;
    const height = videoHeight * scale;
    Object.assign(this.layer.style, {
      left: `${this.video.offsetLeft + (clientWidth - width) / 2}px`,
      top: `${this.video.offsetTop + (clientHeight - height) / 2}px`,
      width: `${width}px`,
      height: `${height}px`,
    });
  }

  setDrawing(on) {
    this.drawing = on;
    this.layer.classList.toggle("drawing", on);
    const button = $("redaction-draw");
    button.setAttribute("aria-pressed", String(on));
    button.textContent = on ? t("Drawing: drag over the picture") : t("Draw a box");
  }

  toggleDraw(event) {
    if (event.detail === 0) {
      // From the keyboard: a box in the middle, ready to be moved and sized with the keys.
      this.addBox({ x: 0.35, y: 0.4, w: 0.3, h: 0.15 });
      return;
    }
    this.setDrawing(!this.drawing);
  }

  point(event) {
    const rect = this.layer.getBoundingClientRect();
    return {
      x: clamp((event.clientX - rect.left) / rect.width, 0, 1),
      y: clamp((event.clientY - rect.top) / rect.height, 0, 1),
    };
  }

  startDraw(event) {
    if (!this.drawing || event.target !== this.layer) return;
    event.preventDefault();
    const origin = this.point(event);
    const ghost = el("div", { class: "redaction-box ghost" });
    this.layer.append(ghost);
    const place = (to) => {
      const box = {
        x: Math.min(origin.x, to.x),
        y: Math.min(origin.y, to.y),
        w: Math.abs(to.x - origin.x),
        h: Math.abs(to.y - origin.y),
      };
      Object.assign(ghost.style, boxStyle(box));
      return box;
    };
    let box = place(origin);
    const move = (e) => {
      box = place(this.point(e));
    };
    const up = () => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
      ghost.remove();
      this.setDrawing(false);
      if (box.w >= MIN_SIZE && box.h >= MIN_SIZE) this.addBox(box);
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  }

  addBox(box, extra) {
    const duration = this.duration() || 0;
    const item = {
      id: ++this.serial,
      kind: $("redaction-kind").value,
      box,
      start_s: 0,
      end_s: duration,
      ...extra,
    };
    this.items.push(item);
    this.changed();
    const node = this.layer.querySelector(`[data-item="${item.id}"]`);
    if (node) node.focus();
  }

  addMute() {
    const duration = this.duration();
    if (!duration) return;
    const start = clamp(this.now(), 0, Math.max(0, duration - 0.5));
    this.markMute(start, Math.min(duration, start + 2));
  }

  // A mute span of the chosen channel (from the button, or marked on the waveform).
  markMute(start, end) {
    this.items.push({ id: ++this.serial, kind: "mute", start_s: start, end_s: end, channel: $("mute-channel").value });
    this.changed();
  }

  active(item) {
    const t = this.now();
    return item.start_s <= t && t <= item.end_s;
  }

  renderLayer() {
    this.layer.replaceChildren();
    for (const suggestion of this.suggestions) {
      const node = el("div", {
        class: `redaction-box suggestion${this.active(suggestion) ? "" : " inactive"}`,
        title: t("Suggested: %(reason)s", { reason: REASON_WORDS[suggestion.reason] }),
        "aria-hidden": "true",
      });
      Object.assign(node.style, boxStyle(suggestion.box));
      this.layer.append(node);
    }
    this.items.filter((item) => item.box).forEach((item, index) => {
      const node = el(
        "div",
        {
          class: `redaction-box ${item.kind}${this.active(item) ? "" : " inactive"}`,
          tabIndex: 0,
          role: "button",
          "data-item": item.id,
          "aria-label": t("%(box)s: arrow keys move it, Alt and arrow keys resize it, Delete removes it", { box: label(item, index) }),
        },
        el("span", { class: "redaction-handle", "aria-hidden": "true" }),
      );
      Object.assign(node.style, boxStyle(item.box));
      node.addEventListener("pointerdown", (event) => this.drag(event, item, node));
      node.addEventListener("keydown", (event) => this.key(event, item));
      this.layer.append(node);
    });
  }

  drag(event, item, node) {
    event.preventDefault();
    event.stopPropagation();
    node.focus();
    const resizing = event.target.classList.contains("redaction-handle");
    const start = this.point(event);
    const from = { ...item.box };
    const move = (e) => {
      const to = this.point(e);
      const dx = to.x - start.x;
      const dy = to.y - start.y;
      if (resizing) {
        item.box.w = clamp(from.w + dx, MIN_SIZE, 1 - from.x);
        item.box.h = clamp(from.h + dy, MIN_SIZE, 1 - from.y);
      } else {
        item.box.x = clamp(from.x + dx, 0, 1 - from.w);
        item.box.y = clamp(from.y + dy, 0, 1 - from.h);
      }
      Object.assign(node.style, boxStyle(item.box));
    };
    const up = () => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
      this.changed();
      const again = this.layer.querySelector(`[data-item="${item.id}"]`);
      if (again) again.focus();
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  }

  key(event, item) {
    const steps = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (event.key === "Delete" || event.key === "Backspace") {
      event.preventDefault();
      this.remove(item);
      return;
    }
    const step = steps[event.key];
    if (!step) return;
    event.preventDefault();
    const size = event.shiftKey ? 0.05 : 0.01;
    const box = item.box;
    if (event.altKey) {
      box.w = clamp(box.w + step[0] * size, MIN_SIZE, 1 - box.x);
      box.h = clamp(box.h + step[1] * size, MIN_SIZE, 1 - box.y);
    } else {
      box.x = clamp(box.x + step[0] * size, 0, 1 - box.w);
      box.y = clamp(box.y + step[1] * size, 0, 1 - box.h);
    }
    this.changed();
    this.layer.querySelector(`[data-item="${item.id}"]`).focus();
  }

  remove(item) {
    this.items = this.items.filter((other) => other !== item);
    this.changed();
    $("redaction-draw").focus();
  }

  // --- the list ------------------------------------------------------------------------------

  render() {
    this.renderLayer();
    this.list.replaceChildren(
      ...this.items.map((item, index) => {
        const name = label(item, index);
        const span = el("span", { class: "redaction-span", text: spanText(item, this.duration()) });
        const button = (text, action) =>
          el("button", { type: "button", class: "link-button small", text, "aria-label": `${text}: ${name}`, onclick: action });
        const set = (changes) => () => {
          Object.assign(item, changes());
          if (item.end_s <= item.start_s) item.end_s = Math.min(this.duration(), item.start_s + 0.5);
          this.changed();
        };
        const controls = [
          button(t("From here"), set(() => ({ start_s: Math.min(this.now(), this.duration() - 0.1) }))),
          button(t("To here"), set(() => ({ end_s: Math.max(this.now(), item.start_s + 0.1) }))),
          button(t("Whole recording"), set(() => ({ start_s: 0, end_s: this.duration() }))),
        ];
        if (item.kind === "mute") {
          const select = el(
            "select",
            { "aria-label": t("Channel of %(name)s", { name }) },
            ...Object.entries(CHANNEL_WORDS).map(([value, text]) =>
              el("option", { value, text, selected: value === item.channel, disabled: $("mute-channel").querySelector(`[value="${value}"]`).disabled }),
            ),
          );
          select.addEventListener("change", () => {
            item.channel = select.value;
            this.changed();
          });
          controls.push(select);
        }
        controls.push(button(t("Delete"), () => this.remove(item)));
        return el(
          "li",
          { class: `redaction-item ${item.kind}`, "data-kind": item.kind },
          el("strong", { text: name }),
          item.reason ? el("span", { class: "muted small", text: ` (${REASON_WORDS[item.reason]})` }) : null,
          " ",
          span,
          el("span", { class: "redaction-controls" }, ...controls),
        );
      }),
    );
    $("redaction-empty").hidden = this.items.length > 0;
    this.muteTrack.render();
  }

  // --- suggestions ---------------------------------------------------------------------------

  async findSuggestions() {
    const url = `/api/v1/recordings/${encodeURIComponent(this.recording.id)}/redaction-suggestions`;
    const button = $("suggestion-find");
    const recording = this.recording;
    button.disabled = true;
    this.status.textContent = t("Reading the screen for personal data…");
    try {
      let answer = await api("POST", url);
      while (answer.status === "pending" && this.recording === recording) {
        await sleep(1000);
        answer = await api("GET", url);
      }
      if (this.recording !== recording) return;
      if (answer.status === "failed") {
        this.status.textContent = t("No suggestions: %(reason)s", { reason: answer.error });
        return;
      }
      this.suggestions = answer.suggestions.map((s) => ({ ...s, id: ++this.serial }));
      this.renderSuggestions();
    } catch (error) {
      this.status.textContent = t("No suggestions: %(reason)s", { reason: error.message });
    } finally {
      button.disabled = false;
    }
  }

  renderSuggestions() {
    const count = this.suggestions.length;
    if (this.status.textContent) this.status.textContent = count
      ? tn("%(num)s suggestion: a dashed box on the picture. Accept it to hide it.", "%(num)s suggestions: dashed boxes on the picture. Accept the ones to hide.", count)
      : t("No (more) suggestions. Look over the recording yourself too: the app can miss things.");
    this.suggestionList.replaceChildren(
      ...this.suggestions.map((suggestion) => {
        const reason = REASON_WORDS[suggestion.reason];
        const settle = (accept) => () => {
          this.suggestions = this.suggestions.filter((other) => other !== suggestion);
          if (accept) {
            const { id, kind, ...rest } = suggestion;
            this.items.push({ id, kind: "cover", ...rest });
          }
          this.renderSuggestions();
          this.changed();
        };
        return el(
          "li",
          { class: "suggestion-item" },
          el("span", { text: t("%(reason)s, %(start)s – %(end)s", { reason, start: clock(suggestion.start_s), end: clock(suggestion.end_s) }) }),
          el("button", { type: "button", class: "button small", text: t("Accept"), "aria-label": t("Accept: cover the %(reason)s", { reason: reason.toLowerCase() }), onclick: settle(true) }),
          el("button", { type: "button", class: "link-button small", text: t("Dismiss"), "aria-label": t("Dismiss the %(reason)s", { reason: reason.toLowerCase() }), onclick: settle(false) }),
        );
      }),
    );
    this.renderLayer();
  }

  // --- the still -----------------------------------------------------------------------------

  // The picture at the playhead with the boxes active there applied as the worker will: an
  // opaque fill, or a coarse mosaic.
  preview() {
    const { videoWidth: width, videoHeight: height } = this.video;
    if (!width) return;
    const canvas = $("redaction-preview");
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext("2d");
    context.drawImage(this.video, 0, 0, width, height);
    const active = this.items.filter((item) => item.box && this.active(item));
    for (const item of active.filter((i) => i.kind === "blur")) {
      const [x, y, w, h] = pixels(item.box, width, height);
      const cells = Math.max(1, Math.round(Math.max(w, h) / 32));
      const small = document.createElement("canvas");
      small.width = Math.max(1, Math.round((w / Math.max(w, h)) * cells));
      small.height = Math.max(1, Math.round((h / Math.max(w, h)) * cells));
      small.getContext("2d").drawImage(canvas, x, y, w, h, 0, 0, small.width, small.height);
      context.imageSmoothingEnabled = false;
      context.drawImage(small, 0, 0, small.width, small.height, x, y, w, h);
    }
    context.fillStyle = "#000";
    for (const item of active.filter((i) => i.kind === "cover")) context.fillRect(...pixels(item.box, width, height));
    canvas.hidden = false;
    canvas.setAttribute("aria-label", tn("The redacted picture at %(time)s: %(num)s box applied", "The redacted picture at %(time)s: %(num)s boxes applied", active.length, { time: clock(this.now()) }));
  }
}

function label(item, index) {
  return `${KIND_WORDS[item.kind]} ${index + 1}`;
}

function spanText(item, duration) {
  if (item.start_s <= 0 && duration && item.end_s >= duration - 0.01) return t("the whole recording");
  return `${clock(item.start_s)} – ${clock(item.end_s)}`;
}

function boxStyle(box) {
  return { left: `${box.x * 100}%`, top: `${box.y * 100}%`, width: `${box.w * 100}%`, height: `${box.h * 100}%` };
}

function pixels(box, width, height) {
  return [box.x * width, box.y * height, box.w * width, box.h * height].map(Math.round);
}
