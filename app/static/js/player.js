// The coach playback page: a streamed player that stops the moment consent ends.
//
// Data comes from data-* attributes on #player (strict CSP: no inline script or style). Text is
// always set with textContent; positions and sizes are set through element.style, which CSP
// allows (only style attributes and <style> elements in the markup are refused).
(function () {
  "use strict";

  const CR = window.CR;
  const HEARTBEAT_MS = 5000;
  const POLL_MS = 3000;
  const WATERMARK_MS = 20000;
  const SEEK_STEP_S = 5;

  const $ = (id) => document.getElementById(id);
  const clock = (s) => CR.formatDuration(Math.floor(Math.max(0, s || 0)));
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

  function localizeDates() {
    document.querySelectorAll("time[data-local-date]").forEach((el) => {
      const iso = el.getAttribute("datetime");
      if (iso) el.textContent = CR.formatDate(iso);
    });
  }

  function setProgressBars() {
    document.querySelectorAll("[data-progress]").forEach((el) => {
      el.style.width = `${clamp(Number(el.dataset.progress) || 0, 0, 100)}%`;
    });
  }

  // --- a share that is still being prepared: wait, then open the player ---------------------

  function watchPreparing(section) {
    const bar = section.querySelector("[data-progress]");
    const label = $("preparing-label");
    const timer = setInterval(async () => {
      try {
        const share = await CR.api("GET", section.dataset.shareUrl);
        if (share.status !== "processing") {
          clearInterval(timer);
          window.location.reload();
          return;
        }
        bar.dataset.progress = share.progress;
        bar.style.width = `${clamp(share.progress, 0, 100)}%`;
        label.textContent = String(share.progress);
      } catch (err) {
        if (err.status === 404 || err.status === 410) {
          clearInterval(timer);
          window.location.reload();
        }
      }
    }, POLL_MS);
  }

  // --- the player -------------------------------------------------------------------------

  function Player(root) {
    const d = root.dataset;
    const isOwner = d.isOwner === "true";
    const video = $("video");
    const stage = $("stage");
    const card = stage.closest(".player-card");
    const bigPlay = $("big-play");
    const stageStatus = $("stage-status");
    const playButton = $("play");
    const timeline = $("timeline");
    const played = $("timeline-played");
    const buffered = $("timeline-buffered");
    const handle = $("timeline-handle");
    const markers = $("timeline-markers");
    const preview = $("scrub-preview");
    const previewThumb = $("scrub-thumb");
    const previewTime = $("scrub-time");
    const timeCurrent = $("time-current");
    const timeTotal = $("time-total");
    const speed = $("speed");
    const mute = $("mute");
    const volume = $("volume");
    const canvas = $("waveform");
    const waveNote = $("waveform-note");
    const watermark = $("watermark");
    const list = $("comment-list");
    const count = $("comment-count");
    const emptyNote = $("comments-empty");
    const form = $("comment-form");
    const textarea = $("comment-body");
    const stampButton = $("comment-at");
    const formError = $("comment-error");
    const submit = $("comment-submit");

    const state = {
      viewId: null,
      ended: false,
      timers: [],
      blobs: [],
      waveform: null,
      thumbs: null,
      layers: null,
      hoverT: null,
      watchedMs: 0,
      playingSince: null,
      stamp: 0,
      stampFrozen: false,
      polling: false,
      dragging: null,
      raf: 0,
    };

    // --- time and position ---

    function duration() {
      if (Number.isFinite(video.duration) && video.duration > 0) return video.duration;
      const fromData = parseFloat(d.duration);
      if (fromData > 0) return fromData;
      return state.waveform ? state.waveform.duration_s || 0 : 0;
    }

    function seek(t) {
      if (state.ended) return;
      const total = duration();
      if (!total) return;
      video.currentTime = clamp(t, 0, Math.max(0, total - 0.05));
      render();
    }

    function fractionAt(event, element) {
      const box = element.getBoundingClientRect();
      return clamp((event.clientX - box.left) / box.width, 0, 1);
    }

    function render() {
      const total = duration();
      const t = video.currentTime || 0;
      const fraction = total ? clamp(t / total, 0, 1) : 0;
      played.style.width = `${fraction * 100}%`;
      handle.style.left = `${fraction * 100}%`;
      timeCurrent.textContent = clock(t);
      if (total) timeTotal.textContent = clock(total);
      timeline.setAttribute("aria-valuenow", t.toFixed(1));
      timeline.setAttribute("aria-valuemax", total.toFixed(1));
      timeline.setAttribute("aria-valuetext", `${clock(t)} of ${clock(total)}`);
      if (!state.stampFrozen) setStamp(t);
      paintWaveform();
      highlightComments(t);
    }

    function renderBuffered() {
      const total = duration();
      if (!total || !video.buffered.length) return;
      let end = 0;
      for (let i = 0; i < video.buffered.length; i += 1) {
        if (video.buffered.start(i) <= video.currentTime + 0.5) end = Math.max(end, video.buffered.end(i));
      }
      buffered.style.width = `${clamp(end / total, 0, 1) * 100}%`;
    }

    function loop() {
      render();
      state.raf = video.paused || state.ended ? 0 : requestAnimationFrame(loop);
    }

    function syncPlayButton() {
      const paused = video.paused || video.ended;
      card.classList.toggle("is-playing", !paused);
      playButton.setAttribute("aria-label", paused ? "Play" : "Pause");
      playButton.title = paused ? "Play (space)" : "Pause (space)";
    }

    function togglePlay() {
      if (state.ended || !video.getAttribute("src")) return;
      if (video.paused || video.ended) {
        const attempt = video.play();
        if (attempt && attempt.catch) attempt.catch(() => {});
      } else {
        video.pause();
      }
    }

    function showStatus(text) {
      stageStatus.textContent = text || "";
      stageStatus.hidden = !text;
    }

    // --- watched time, for the heartbeat ---

    function startWatching() {
      if (state.playingSince === null) state.playingSince = performance.now();
    }

    function stopWatching() {
      if (state.playingSince !== null) {
        state.watchedMs += performance.now() - state.playingSince;
        state.playingSince = null;
      }
    }

    function takeWatched() {
      let ms = state.watchedMs;
      if (state.playingSince !== null) {
        const now = performance.now();
        ms += now - state.playingSince;
        state.playingSince = now;
      }
      state.watchedMs = 0;
      return Math.min(120, Math.round(ms) / 1000);
    }

    // --- the session with the server: view, heartbeat, poll, end ---

    const heartbeatUrl = () => `${d.viewsUrl}/${encodeURIComponent(state.viewId)}/heartbeat`;
    const withView = (url) => `${url}?view=${encodeURIComponent(state.viewId)}`;

    async function heartbeat() {
      if (!state.viewId || state.ended) return;
      if (video.paused && state.watchedMs <= 0) return;
      const watched = takeWatched();
      try {
        await CR.api("POST", heartbeatUrl(), {
          watched_s: watched,
          position_s: Math.round((video.currentTime || 0) * 1000) / 1000,
        });
      } catch (err) {
        if (err.status === 410) return end(null);
        if (err.status === 404) return end("gone");
        if (err.status === 401) return end("signed-out");
        state.watchedMs += watched * 1000; // try again with the next beat
      }
    }

    function finalBeat() {
      // Leaving the page: report the last seconds watched without waiting for an answer.
      if (!state.viewId || state.ended) return;
      stopWatching();
      const watched = takeWatched();
      if (watched <= 0) return;
      try {
        fetch(heartbeatUrl(), {
          method: "POST",
          keepalive: true,
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRFToken": CR.csrf() },
          body: JSON.stringify({ watched_s: watched, position_s: video.currentTime || 0 }),
        }).catch(() => {});
      } catch (err) {
        /* the page is going away */
      }
    }

    function endedBy(share) {
      if (share.status === "revoked") return "revoked";
      if (share.status === "expired" || new Date(share.expires_at) <= new Date()) return "expired";
      if (!share.media) return "gone";
      return null;
    }

    async function poll() {
      if (state.ended || state.polling) return;
      state.polling = true;
      try {
        const reason = endedBy(await CR.api("GET", d.shareUrl));
        if (reason) end(reason);
      } catch (err) {
        if (err.status === 404 || err.status === 410) end("gone");
        else if (err.status === 401) end("signed-out");
        // Anything else (the network, a restart) is not the end of consent: keep trying.
      } finally {
        state.polling = false;
      }
    }

    async function reasonFromServer() {
      try {
        return endedBy(await CR.api("GET", d.shareUrl)) || "gone";
      } catch (err) {
        return err.status === 401 ? "signed-out" : "gone";
      }
    }

    function stopPlayback() {
      // Pause, drop the source and reload so the element fetches nothing more and frees what
      // it buffered; release the decrypted images too.
      try {
        video.pause();
      } catch (err) {
        /* nothing to pause */
      }
      video.removeAttribute("src");
      video.removeAttribute("poster");
      video.load();
      previewThumb.style.backgroundImage = "none";
      state.blobs.forEach((url) => URL.revokeObjectURL(url));
      state.blobs = [];
      state.waveform = null;
      state.layers = null;
      const ctx = canvas.getContext("2d");
      ctx.clearRect(0, 0, canvas.width, canvas.height);
    }

    const MESSAGES = {
      revoked: () =>
        `${isOwner ? "You" : d.employeeName} withdrew consent for this recording. It has been deleted.`,
      expired: () => "This share reached its end date. The recording has been deleted.",
      gone: () => "This recording is no longer shared with you.",
      "signed-out": () => "You were signed out, so playback stopped.",
    };

    function showEnded(reason) {
      const notice = $("ended-notice");
      $("ended-title").textContent = (MESSAGES[reason] || MESSAGES.gone)();
      if (reason === "signed-out") {
        $("ended-text").textContent = "Sign in again to keep watching.";
      } else if (reason === "gone") {
        $("ended-text").textContent = "Playback has stopped.";
      }
      // The title was sealed under the destroyed key: it goes with the recording.
      $("share-title").textContent = "Recording deleted";
      const crumb = $("crumb-title");
      if (crumb) crumb.textContent = "Recording deleted";
      ["share-facts", "share-length"].forEach((id) => {
        const el = $(id);
        if (el) el.hidden = true;
      });
      notice.hidden = false;
      document.title = `${reason === "revoked" ? "Consent withdrawn" : "Playback ended"} · consent-replay`;
      const heading = $("ended-title");
      heading.setAttribute("tabindex", "-1");
      heading.focus({ preventScroll: true });
      window.scrollTo({ top: 0 });
    }

    function end(reason) {
      if (state.ended) return;
      state.ended = true;
      state.timers.forEach((timer) => clearInterval(timer));
      state.timers = [];
      if (state.raf) cancelAnimationFrame(state.raf);
      stopPlayback();
      root.hidden = true;
      // The comments were sealed under the destroyed key: take them off the page as well.
      list.replaceChildren();
      markers.replaceChildren();
      if (reason) showEnded(reason);
      else reasonFromServer().then(showEnded);
    }

    function scheduleExpiryCheck() {
      const left = new Date(d.expiresAt) - new Date();
      if (Number.isFinite(left) && left < 2 ** 31 - 1) {
        state.timers.push(setTimeout(poll, Math.max(0, left) + 250));
      }
    }

    // --- media that is not the video: poster, thumbnail sprite, waveform ---

    async function blobUrl(url) {
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) {
        const error = new Error(`HTTP ${response.status}`);
        error.status = response.status;
        throw error;
      }
      const objectUrl = URL.createObjectURL(await response.blob());
      if (state.ended) {
        URL.revokeObjectURL(objectUrl);
        throw new Error("ended");
      }
      state.blobs.push(objectUrl);
      return objectUrl;
    }

    async function loadPoster() {
      try {
        const url = await blobUrl(withView(d.posterUrl));
        if (!video.currentTime) video.poster = url;
      } catch (err) {
        if (err.status === 410) poll();
      }
    }

    async function loadWaveform() {
      let data;
      try {
        data = await CR.api("GET", withView(d.waveformUrl));
      } catch (err) {
        if (err.status === 410) return poll();
        waveNote.textContent = "The waveform is not available.";
        return;
      }
      if (state.ended) return;
      state.waveform = data;
      const peaks = Array.isArray(data.peaks) ? data.peaks : [];
      const loud = peaks.some((row) => row.some((v) => v > 0.002));
      waveNote.textContent = loud ? "" : "No sound in this recording.";
      waveNote.hidden = loud;
      buildWaveform();
      render();
      if (data.thumbnails && data.thumbnails.count > 0) loadThumbnails(data.thumbnails);
    }

    async function loadThumbnails(info) {
      try {
        const url = await blobUrl(withView(d.thumbnailsUrl));
        state.thumbs = info;
        previewThumb.style.width = `${info.width}px`;
        previewThumb.style.height = `${info.height}px`;
        previewThumb.style.backgroundImage = `url("${url}")`;
        previewThumb.style.backgroundSize = `${info.width * info.columns}px ${info.height * info.rows}px`;
        preview.classList.add("has-thumb");
      } catch (err) {
        if (err.status === 410) poll();
      }
    }

    // --- the waveform canvas ---

    const WAVE = { base: "#3a4557", played: "#6fcbac", head: "#ffffff", hover: "rgba(255,255,255,.4)" };

    function buildWaveform() {
      const data = state.waveform;
      const width = canvas.clientWidth;
      const height = canvas.clientHeight;
      if (!data || !width || !height) return;
      const ratio = window.devicePixelRatio || 1;
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
      const peaks = (data.peaks || []).slice(0, 2);
      const perBucket = data.seconds_per_bucket || (data.duration_s || 1) / ((peaks[0] || [1]).length || 1);
      const total = duration() || data.duration_s || 1;
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
      state.layers = { base: layer(WAVE.base), played: layer(WAVE.played) };
      paintWaveform();
    }

    function paintWaveform() {
      if (!state.layers) return;
      const ctx = canvas.getContext("2d");
      const { width, height } = canvas;
      const total = duration();
      const x = total ? Math.round(clamp(video.currentTime / total, 0, 1) * width) : 0;
      ctx.clearRect(0, 0, width, height);
      ctx.drawImage(state.layers.base, 0, 0);
      if (x > 0) ctx.drawImage(state.layers.played, 0, 0, x, height, 0, 0, x, height);
      const ratio = window.devicePixelRatio || 1;
      if (state.hoverT !== null && total) {
        ctx.fillStyle = WAVE.hover;
        ctx.fillRect(Math.round((state.hoverT / total) * width), 0, ratio, height);
      }
      ctx.fillStyle = WAVE.head;
      ctx.fillRect(Math.min(width - 2 * ratio, x), 0, 2 * ratio, height);
    }

    // --- hovering and dragging on the timeline and the waveform ---

    function showPreview(fraction) {
      const total = duration();
      if (!total) return;
      const t = fraction * total;
      state.hoverT = t;
      previewTime.textContent = clock(t);
      if (state.thumbs) {
        const info = state.thumbs;
        const index = clamp(Math.floor(t / info.interval_s), 0, info.count - 1);
        const col = index % info.columns;
        const row = Math.floor(index / info.columns);
        previewThumb.style.backgroundPosition = `-${col * info.width}px -${row * info.height}px`;
      }
      preview.hidden = false;
      const width = timeline.clientWidth;
      const half = preview.offsetWidth / 2;
      preview.style.left = `${clamp(fraction * width, half, Math.max(half, width - half))}px`;
      paintWaveform();
    }

    function hidePreview() {
      preview.hidden = true;
      state.hoverT = null;
      paintWaveform();
    }

    function scrubbable(element) {
      element.addEventListener("pointermove", (event) => {
        const fraction = fractionAt(event, element);
        showPreview(fraction);
        if (state.dragging === element) seek(fraction * duration());
      });
      element.addEventListener("pointerleave", () => {
        if (state.dragging !== element) hidePreview();
      });
      element.addEventListener("pointerdown", (event) => {
        if (event.button !== 0 || state.ended) return;
        state.dragging = element;
        element.setPointerCapture(event.pointerId);
        seek(fractionAt(event, element) * duration());
      });
      const release = (event) => {
        if (state.dragging !== element) return;
        state.dragging = null;
        if (element.hasPointerCapture(event.pointerId)) element.releasePointerCapture(event.pointerId);
        if (event.type === "pointercancel") hidePreview();
      };
      element.addEventListener("pointerup", release);
      element.addEventListener("pointercancel", release);
    }

    // --- the watermark: the viewer's name, moving now and then so cropping it out is harder ---

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

    // --- comments ---

    function setStamp(t) {
      state.stamp = Math.max(0, t);
      stampButton.textContent = `at ${clock(state.stamp)}`;
    }

    function commentItem(comment) {
      const li = document.createElement("li");
      li.className = "comment";
      li.dataset.at = String(comment.at_s);
      li.dataset.id = comment.id;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "comment-jump";
      button.setAttribute("aria-label", `Jump to ${clock(comment.at_s)}`);
      const chip = document.createElement("span");
      chip.className = "time-chip";
      chip.textContent = clock(comment.at_s);
      const main = document.createElement("span");
      main.className = "comment-main";
      const meta = document.createElement("span");
      meta.className = "comment-meta";
      const author = document.createElement("span");
      author.className = "comment-author";
      author.textContent = comment.author ? comment.author.name : "";
      const when = document.createElement("time");
      when.className = "muted";
      if (comment.created_at) {
        when.setAttribute("datetime", comment.created_at);
        when.textContent = CR.formatDate(comment.created_at);
      }
      meta.append(author, " ", when);
      const body = document.createElement("span");
      body.className = "comment-body";
      body.textContent = comment.body;
      main.append(meta, body);
      button.append(chip, main);
      li.append(button);
      return li;
    }

    function comments() {
      return Array.from(list.querySelectorAll("li.comment"));
    }

    function refreshComments() {
      const items = comments();
      count.textContent = String(items.length);
      emptyNote.hidden = items.length > 0;
      const total = duration();
      markers.replaceChildren();
      if (!total) return;
      items.forEach((li) => {
        const at = parseFloat(li.dataset.at);
        const marker = document.createElement("button");
        marker.type = "button";
        marker.className = "marker";
        marker.tabIndex = -1;
        marker.style.left = `${clamp(at / total, 0, 1) * 100}%`;
        const body = li.querySelector(".comment-body");
        marker.title = `${clock(at)} · ${body ? body.textContent : ""}`;
        marker.setAttribute("aria-label", `Comment at ${clock(at)}`);
        marker.addEventListener("pointerdown", (event) => event.stopPropagation());
        marker.addEventListener("click", (event) => {
          event.stopPropagation();
          seek(at);
          li.scrollIntoView({ block: "nearest", behavior: "smooth" });
        });
        markers.append(marker);
      });
    }

    function highlightComments(t) {
      comments().forEach((li) => {
        const at = parseFloat(li.dataset.at);
        li.classList.toggle("current", t >= at - 0.25 && t < at + 3);
      });
    }

    function insertComment(comment) {
      const li = commentItem(comment);
      const after = comments().find((other) => parseFloat(other.dataset.at) > comment.at_s);
      list.insertBefore(li, after || null);
      refreshComments();
      li.scrollIntoView({ block: "nearest" });
      li.classList.add("fresh");
      return li;
    }

    async function postComment(event) {
      event.preventDefault();
      if (state.ended) return;
      const body = textarea.value.trim();
      formError.hidden = true;
      if (!body) {
        formError.textContent = "Write something first.";
        formError.hidden = false;
        textarea.focus();
        return;
      }
      submit.disabled = true;
      try {
        const comment = await CR.api("POST", d.commentsUrl, {
          at_s: Math.round(state.stamp * 1000) / 1000,
          body,
        });
        insertComment(comment);
        textarea.value = "";
        state.stampFrozen = false;
        setStamp(video.currentTime || 0);
      } catch (err) {
        if (err.status === 410) return end(null);
        formError.textContent = err.message || "The comment could not be saved.";
        formError.hidden = false;
      } finally {
        submit.disabled = false;
      }
    }

    // --- wiring ---

    function wire() {
      const block = (event) => event.preventDefault();
      stage.addEventListener("contextmenu", block);
      video.addEventListener("contextmenu", block);
      video.addEventListener("dragstart", block);

      video.addEventListener("click", togglePlay);
      video.addEventListener("dblclick", toggleFullscreen);
      bigPlay.addEventListener("click", togglePlay);
      playButton.addEventListener("click", togglePlay);
      $("back").addEventListener("click", () => seek(video.currentTime - SEEK_STEP_S));
      $("forward").addEventListener("click", () => seek(video.currentTime + SEEK_STEP_S));
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
      mute.addEventListener("click", () => {
        video.muted = !video.muted;
      });
      video.addEventListener("volumechange", () => {
        card.classList.toggle("is-muted", video.muted || video.volume === 0);
        mute.setAttribute("aria-label", video.muted ? "Unmute" : "Mute");
        volume.value = video.muted ? "0" : String(video.volume);
      });
      video.addEventListener("ratechange", () => {
        const option = Array.from(speed.options).find((o) => parseFloat(o.value) === video.playbackRate);
        if (option) speed.value = option.value;
      });

      video.addEventListener("play", syncPlayButton);
      video.addEventListener("playing", () => {
        syncPlayButton();
        showStatus("");
        startWatching();
        if (!state.raf) state.raf = requestAnimationFrame(loop);
      });
      video.addEventListener("pause", () => {
        syncPlayButton();
        stopWatching();
        heartbeat();
        render();
      });
      video.addEventListener("waiting", () => {
        stopWatching();
        if (!video.paused) showStatus("Loading…");
      });
      video.addEventListener("ended", () => {
        syncPlayButton();
        stopWatching();
        heartbeat();
      });
      video.addEventListener("seeked", render);
      video.addEventListener("timeupdate", () => {
        if (video.paused) render();
      });
      video.addEventListener("progress", renderBuffered);
      video.addEventListener("loadedmetadata", () => {
        render();
        refreshComments();
        buildWaveform();
      });
      video.addEventListener("error", () => {
        if (state.ended || !video.getAttribute("src")) return;
        showStatus("The video stopped loading. Checking access…");
        poll().then(() => {
          if (!state.ended) showStatus("The video could not be loaded. Reload the page to try again.");
        });
      });

      scrubbable(timeline);
      scrubbable(canvas);
      timeline.addEventListener("keydown", (event) => {
        const steps = { ArrowLeft: -SEEK_STEP_S, ArrowRight: SEEK_STEP_S, PageDown: -30, PageUp: 30 };
        if (event.key in steps) seek(video.currentTime + steps[event.key]);
        else if (event.key === "Home") seek(0);
        else if (event.key === "End") seek(duration());
        else return;
        event.preventDefault();
      });

      document.addEventListener("keydown", (event) => {
        if (state.ended || event.ctrlKey || event.metaKey || event.altKey) return;
        const target = event.target instanceof Element ? event.target : document.body;
        if (target.closest("input, textarea, select, [contenteditable]")) return;
        if ((event.key === " " || event.key === "Enter") && target.closest("button, a")) return;
        if (event.key.startsWith("Arrow") && target.closest("[role=slider]")) return;
        const keys = {
          " ": togglePlay,
          k: togglePlay,
          ArrowLeft: () => seek(video.currentTime - SEEK_STEP_S),
          ArrowRight: () => seek(video.currentTime + SEEK_STEP_S),
          m: () => (video.muted = !video.muted),
          f: toggleFullscreen,
        };
        if (keys[event.key]) {
          event.preventDefault();
          keys[event.key]();
        }
      });

      list.addEventListener("click", (event) => {
        const li = event.target.closest("li.comment");
        if (li) seek(parseFloat(li.dataset.at));
      });
      form.addEventListener("submit", postComment);
      textarea.addEventListener("input", () => {
        if (textarea.value.trim() && !state.stampFrozen) {
          state.stampFrozen = true;
          if (!video.paused) video.pause(); // keep the moment on screen while writing
        } else if (!textarea.value.trim()) {
          state.stampFrozen = false;
        }
      });
      textarea.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
      });
      stampButton.addEventListener("click", () => {
        setStamp(video.currentTime || 0);
        state.stampFrozen = Boolean(textarea.value.trim());
      });

      if (window.ResizeObserver) new ResizeObserver(() => buildWaveform()).observe(canvas);
      else window.addEventListener("resize", buildWaveform);
      document.addEventListener("fullscreenchange", () => {
        card.classList.toggle("is-fullscreen", document.fullscreenElement === card);
        setTimeout(moveWatermark, 50);
      });
      window.addEventListener("pagehide", finalBeat);
      // Timers slow down in hidden tabs: look again as soon as the page is back in view.
      document.addEventListener("visibilitychange", () => {
        if (document.visibilityState === "visible") poll();
      });
    }

    function toggleFullscreen() {
      if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
      else if (card.requestFullscreen) card.requestFullscreen().catch(() => {});
    }

    async function start() {
      wire();
      refreshComments();
      render();
      moveWatermark();
      try {
        const view = await CR.api("POST", d.viewsUrl);
        state.viewId = view.id;
      } catch (err) {
        if (err.status === 410 || err.status === 404) return end(null);
        if (err.status === 401) return end("signed-out");
        showStatus(`Playback could not start: ${err.message}`);
        return;
      }
      video.src = withView(d.videoUrl);
      loadPoster();
      loadWaveform();
      state.timers.push(setInterval(heartbeat, HEARTBEAT_MS));
      state.timers.push(setInterval(poll, POLL_MS));
      state.timers.push(setInterval(moveWatermark, WATERMARK_MS));
      scheduleExpiryCheck();
      root.classList.add("is-ready");
    }

    return { start, end };
  }

  localizeDates();
  setProgressBars();
  const preparing = $("preparing");
  if (preparing) watchPreparing(preparing);
  const root = $("player");
  if (root) {
    Player(root).start();
  }
})();
