// Comments: the list beside the player (the one at the current time highlighted), a marker
// for each on the seek bar, and adding one at a moment — the time stamp follows playback
// until the coach starts writing, then stays where the comment belongs. Each comment is also
// a cue of a "Comments" captions track, and is read out (a polite live region) when playback
// reaches it, so a screen-reader user hears them where a sighted one sees the highlight.
import { $, api, clamp, clock, formatDate, showError, t } from "../kit.js";

export function createComments(player) {
  const { video } = player;
  const list = $("comment-list");
  const count = $("comment-count");
  const emptyNote = $("comments-empty");
  const markers = $("timeline-markers");
  const form = $("comment-form");
  const textarea = $("comment-body");
  const stampButton = $("comment-at");
  const formError = $("comment-error");
  const submit = $("comment-submit");
  const spoken = $("comment-live");
  const track = video.addTextTrack("captions", t("Comments"), document.documentElement.lang);
  track.mode = "hidden"; // drawn by the list beside the picture; the cues feed the live region
  const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");
  let stamp = 0;
  let stampFrozen = false;

  function setStamp(at) {
    stamp = Math.max(0, at);
    stampButton.textContent = t("at %(time)s", { time: clock(stamp) });
  }

  function commentItem(comment) {
    const li = document.createElement("li");
    li.className = "comment";
    li.dataset.at = String(comment.at_s);
    li.dataset.id = comment.id;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "comment-jump";
    button.setAttribute("aria-label", t("Jump to %(time)s", { time: clock(comment.at_s) }));
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
      when.textContent = formatDate(comment.created_at);
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

  const items = () => Array.from(list.querySelectorAll("li.comment"));

  // The count, the "no comments yet" note, and the markers on the seek bar.
  function refresh() {
    const all = items();
    count.textContent = String(all.length);
    emptyNote.hidden = all.length > 0;
    const total = player.duration();
    markers.replaceChildren();
    renderCues(all);
    if (!total) return;
    all.forEach((li) => {
      const at = parseFloat(li.dataset.at);
      // Not a button: it sits inside the seek bar (a slider), and the list beside the player
      // is how a keyboard reaches each comment.
      const marker = document.createElement("span");
      marker.className = "marker";
      marker.setAttribute("role", "img");
      marker.style.left = `${clamp(at / total, 0, 1) * 100}%`;
      const body = li.querySelector(".comment-body");
      marker.title = `${clock(at)} · ${body ? body.textContent : ""}`;
      marker.setAttribute("aria-label", t("Comment at %(time)s", { time: clock(at) }));
      marker.addEventListener("pointerdown", (event) => event.stopPropagation());
      marker.addEventListener("click", (event) => {
        event.stopPropagation();
        player.seek(at);
        li.scrollIntoView({ block: "nearest", behavior: reducedMotion.matches ? "auto" : "smooth" });
      });
      markers.append(marker);
    });
  }

  // One cue a comment, shown for a few seconds from its moment.
  function renderCues(all) {
    Array.from(track.cues || []).forEach((cue) => track.removeCue(cue));
    all.forEach((li) => {
      const at = parseFloat(li.dataset.at);
      const author = li.querySelector(".comment-author");
      const body = li.querySelector(".comment-body");
      const text = t("Comment by %(name)s at %(time)s: %(text)s", {
        name: author ? author.textContent : "",
        time: clock(at),
        text: body ? body.textContent : "",
      });
      const cue = new VTTCue(at, at + 4, text);
      cue.addEventListener("enter", () => {
        if (!video.paused) spoken.textContent = text;
      });
      track.addCue(cue);
    });
  }

  // "C": a comment at this moment — the picture stops, the stamp stays, the box takes focus.
  function commentHere() {
    if (player.ended) return;
    if (!video.paused) video.pause();
    setStamp(video.currentTime || 0);
    stampFrozen = true;
    textarea.focus();
  }

  // Playback moved to `now`: the stamp follows (unless a comment is being written) and the
  // comment at that moment is highlighted.
  function follow(now) {
    if (!stampFrozen) setStamp(now);
    items().forEach((li) => {
      const at = parseFloat(li.dataset.at);
      li.classList.toggle("current", now >= at - 0.25 && now < at + 3);
    });
  }

  function insert(comment) {
    const li = commentItem(comment);
    const after = items().find((other) => parseFloat(other.dataset.at) > comment.at_s);
    list.insertBefore(li, after || null);
    refresh();
    li.scrollIntoView({ block: "nearest" });
    li.classList.add("fresh");
    return li;
  }

  async function post(event) {
    event.preventDefault();
    if (player.ended) return;
    const body = textarea.value.trim();
    showError(formError, "");
    if (!body) {
      showError(formError, t("Write something first."));
      textarea.focus();
      return;
    }
    submit.disabled = true;
    try {
      const comment = await api("POST", player.data.commentsUrl, {
        at_s: Math.round(stamp * 1000) / 1000,
        body,
      });
      insert(comment);
      textarea.value = "";
      stampFrozen = false;
      setStamp(video.currentTime || 0);
    } catch (err) {
      if (err.status === 410) return player.end(null);
      showError(formError, err.message || t("The comment could not be saved."));
    } finally {
      submit.disabled = false;
    }
  }

  // The comments were sealed under the key: when it is destroyed they leave the page too.
  function clear() {
    list.replaceChildren();
    markers.replaceChildren();
    renderCues([]);
    spoken.textContent = "";
  }

  list.addEventListener("click", (event) => {
    const li = event.target.closest("li.comment");
    if (li) player.seek(parseFloat(li.dataset.at));
  });
  form.addEventListener("submit", post);
  textarea.addEventListener("input", () => {
    if (textarea.value.trim() && !stampFrozen) {
      stampFrozen = true;
      if (!video.paused) video.pause(); // keep the moment on screen while writing
    } else if (!textarea.value.trim()) {
      stampFrozen = false;
    }
  });
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });
  stampButton.addEventListener("click", () => {
    setStamp(video.currentTime || 0);
    stampFrozen = Boolean(textarea.value.trim());
  });

  return { refresh, follow, clear, commentHere };
}
