/*! consent-replay opt-in button — send the current call to consent-replay as a private draft
 * and open the share dialog for it. The agent still decides there: nothing is shared by
 * sending. See docs/EMBED.md.
 *
 * No API token belongs in the host page: on each click the script asks the agent's signed-in
 * consent-replay session (same browser, same origin) for a short-lived credential that can only
 * upload a private draft of theirs — not read, list, share or revoke anything.
 *
 *   <script src="https://consent-replay.example/static/embed/optin.js"></script>
 *   <button data-consent-replay-optin data-screen-input="#screen" data-audio-input="#audio">
 *     Share this call for coaching</button>
 *
 * Or from the host page's own code, with File/Blob objects it already has:
 *
 *   ConsentReplayOptIn.optIn({ screen: blob, audio: blob, title: "Call 4711" });
 *
 * The files go with the tus resumable-upload protocol (tus-js-client, loaded from the same
 * place as this script): a dropped connection resumes by itself; then one JSON request makes
 * the draft. Same-origin only: the API answers without CORS headers, so the host page must be
 * served from the consent-replay origin (or a reverse proxy that puts both under one origin).
 */
(function () {
  "use strict";
  if (window.ConsentReplayOptIn) return;

  const script = document.currentScript;
  const origin = script && script.src ? new URL(script.src, location.href).origin : location.origin;
  const defaults = {
    openIn: (script && script.dataset.open) || "tab", // "tab" or "none"
  };

  // Its words in the host page's language (data-lang on the script, else <html lang>, else the
  // browser's): Norwegian (nb) or English, from the catalog the app's own pages use.
  const wanted = ((script && script.dataset.lang) || document.documentElement.lang || navigator.language || "en").toLowerCase();
  const language = /^(nb|no|nn)\b/.test(wanted) ? "nb" : "en";
  let catalog = {};
  if (language !== "en") {
    fetch(`${origin}/i18n/${language}.json`, { credentials: "omit" })
      .then((response) => (response.ok ? response.json() : { messages: {} }))
      .then((body) => {
        catalog = body.messages || {};
      })
      .catch(() => {}); // the English words still work
  }
  function t(message, values) {
    const text = typeof catalog[message] === "string" ? catalog[message] : message;
    return text.replace(/%\((\w+)\)s/g, (whole, name) => (values && name in values ? String(values[name]) : whole));
  }
  const SIGN_IN_FIRST = () =>
    t("Sign in to consent-replay in this browser first (the new tab shows the sign-in page), then press the button again.");

  function pick(selector) {
    return selector ? document.querySelector(selector) : null;
  }

  function fileFrom(selector) {
    const input = pick(selector);
    if (!input) return null;
    if (input.files && input.files.length) return input.files[0];
    return null;
  }

  function valueFrom(selector) {
    const input = pick(selector);
    if (!input) return undefined;
    if (input.type === "checkbox") return input.checked;
    return input.value;
  }

  async function json(response) {
    const type = response.headers.get("Content-Type") || "";
    return type.includes("application/json") ? response.json() : null;
  }

  /** A short-lived upload-only credential from the agent's signed-in session. */
  async function credential() {
    const get = { credentials: "same-origin", headers: { Accept: "application/json" } };
    const me = await fetch(`${origin}/api/v1/me`, get);
    const who = await json(me);
    if (me.status === 401 || !who || !who.csrf_token) {
      const error = new Error(SIGN_IN_FIRST());
      error.signIn = true; // the tab opened for the share dialog shows the sign-in page: keep it
      throw error;
    }
    const made = await fetch(`${origin}/api/v1/me/upload-credentials`, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": who.csrf_token },
    });
    const body = await json(made);
    if (made.status !== 201 || !body || !body.credential) {
      throw new Error(body && body.error ? body.error.message : t("No upload credential (HTTP %(status)s).", { status: made.status }));
    }
    return body.credential;
  }

  // The headers every request of the button carries: the upload-only credential, never an
  // API token (it would sit in the host page).
  async function credentials(opts) {
    if (opts.token) {
      throw new Error(t("The button no longer takes an API token (it would sit in the host page). Remove it, revoke it on your account page, and sign in to consent-replay in this browser instead."));
    }
    return { Authorization: `Bearer ${opts.credential || (await credential())}` };
  }

  // tus-js-client, vendored beside this script (/static/vendor/tus-js-client), loaded once.
  let tusLoading = null;
  function loadTus() {
    if (window.tus && window.tus.Upload) return Promise.resolve(window.tus);
    if (!tusLoading) {
      tusLoading = new Promise((resolve, reject) => {
        const tag = document.createElement("script");
        tag.src = `${origin}/static/vendor/tus-js-client/tus.min.js`;
        tag.addEventListener("load", () => resolve(window.tus));
        tag.addEventListener("error", () => {
          tusLoading = null;
          reject(new Error(t("The upload component could not be loaded from consent-replay.")));
        });
        document.head.append(tag);
      });
    }
    return tusLoading;
  }

  function failure(error) {
    const response = error && error.originalResponse;
    if (!response) return new Error(t("The upload broke off (network error) and could not resume."));
    let body = null;
    try {
      body = JSON.parse(response.getBody());
    } catch (parseError) {
      body = null;
    }
    const failed = new Error(body && body.error ? body.error.message : t("The upload failed (HTTP %(status)s).", { status: response.getStatus() }));
    failed.status = response.getStatus();
    return failed;
  }

  // One file through tus (resumable: a dropped connection resumes by itself, and the same File
  // picked again after a reload continues where it stopped). Resolves with the upload's id.
  function sendFile(tus, field, file, headers, progress) {
    const named = typeof file.name === "string" && file.lastModified !== undefined;
    return new Promise((resolve, reject) => {
      const upload = new tus.Upload(file, {
        endpoint: `${origin}/api/v1/uploads`,
        headers,
        chunkSize: 16 * 1024 * 1024,
        metadata: {
          filename: file.name || (field === "screen" ? "screen.webm" : "call.wav"),
          filetype: file.type || "application/octet-stream",
        },
        retryDelays: [0, 1000, 3000, 5000, 10000, 10000, 10000, 20000, 30000, 30000],
        // Only a File can be told apart from another of the same size; a Blob starts afresh.
        storeFingerprintForResuming: named,
        removeFingerprintOnSuccess: true,
        onProgress: (sent) => progress(field, sent),
        onSuccess: () => resolve(upload.url.split("/").pop()),
        onError: (error) => reject(failure(error)),
      });
      if (!named) {
        upload.start();
        return;
      }
      upload
        .findPreviousUploads()
        .then((previous) => {
          if (previous.length) upload.resumeFromPreviousUpload(previous[0]);
          upload.start();
        })
        .catch(() => upload.start());
    });
  }

  /** Upload the call: resolves with the new draft recording (JSON). */
  async function send(options) {
    const opts = options || {};
    if (!opts.screen && !opts.audio) {
      throw new Error(t("Nothing to send: give the call's screen video and/or its audio."));
    }
    const headers = await credentials(opts);
    const tus = await loadTus();
    const files = [["screen", opts.screen], ["audio", opts.audio]].filter(([, file]) => file);
    const total = files.reduce((sum, [, file]) => sum + file.size, 0) || 1;
    const sent = {};
    const progress = (field, bytes) => {
      sent[field] = bytes;
      const done = Object.values(sent).reduce((a, b) => a + b, 0);
      if (typeof opts.onProgress === "function") opts.onProgress(Math.min(100, Math.round((done / total) * 100)));
    };
    const ids = {};
    await Promise.all(
      files.map(([field, file]) => sendFile(tus, field, file, headers, progress).then((id) => {
        ids[field] = id;
      })),
    );
    const response = await fetch(`${origin}/api/v1/recordings`, {
      method: "POST",
      headers: { ...headers, "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({
        upload_ids: ids,
        title: opts.title ? String(opts.title).slice(0, 200) : null,
        agent_channel: opts.agentChannel || null,
        customer_informed: Boolean(opts.customerInformed),
      }),
    });
    const body = await response.json().catch(() => null);
    if (response.status === 201 && body && body.id) return body;
    const error = new Error(body && body.error ? body.error.message : t("The upload failed (HTTP %(status)s).", { status: response.status }));
    error.status = response.status;
    throw error;
  }

  function shareUrl(recordingId) {
    return `${origin}/recordings?share=${encodeURIComponent(recordingId)}`;
  }

  /** Open the share dialog for a draft; reuses a window opened earlier if given one. */
  function open(recordingId, win) {
    const url = shareUrl(recordingId);
    if (win && !win.closed) {
      try {
        win.location.href = url;
        return win;
      } catch (error) {
        /* a window we can no longer steer: open a fresh one below */
      }
    }
    return window.open(url, "_blank");
  }

  /** Send, then open the share dialog. The window is opened at once (while the click still
   *  counts as the user's action, so popup blockers allow it) and steered when the draft exists. */
  async function optIn(options) {
    const opts = options || {};
    const openIn = opts.openIn || defaults.openIn;
    let win = null;
    if (openIn !== "none") win = window.open(`${origin}/recordings#awaiting-upload`, "_blank");
    try {
      const recording = await send(opts);
      if (openIn !== "none") {
        const opened = open(recording.id, win);
        recording.shareWindowOpened = Boolean(opened);
      }
      recording.shareUrl = shareUrl(recording.id);
      return recording;
    } catch (error) {
      if (win && !win.closed && !error.signIn) win.close();
      throw error;
    }
  }

  function statusFor(button) {
    const target = pick(button.dataset.status);
    if (target) return target;
    let node = button.nextElementSibling;
    if (!node || !node.classList.contains("cr-optin-status")) {
      node = document.createElement("span");
      node.className = "cr-optin-status";
      node.setAttribute("role", "status");
      button.insertAdjacentElement("afterend", node);
    }
    return node;
  }

  function say(node, text, isError, link) {
    node.textContent = text;
    node.classList.toggle("error", Boolean(isError));
    if (link) {
      const a = document.createElement("a");
      a.href = link;
      a.target = "_blank";
      a.rel = "opener";
      a.textContent = ` ${t("Open the share dialog")}`;
      node.append(a);
    }
  }

  /** Wire a button: data-screen-input / data-audio-input / data-title-input /
   *  data-informed-input / data-channel-input are CSS selectors of inputs on the host page;
   *  button.consentReplayFiles = {screen, audio} also works. */
  function bind(button) {
    if (button.dataset.crBound) return;
    button.dataset.crBound = "1";
    button.addEventListener("click", async (event) => {
      event.preventDefault();
      const status = statusFor(button);
      const given = button.consentReplayFiles || {};
      const options = {
        screen: given.screen || fileFrom(button.dataset.screenInput),
        audio: given.audio || fileFrom(button.dataset.audioInput),
        title: given.title || valueFrom(button.dataset.titleInput),
        customerInformed: given.customerInformed ?? valueFrom(button.dataset.informedInput),
        agentChannel: given.agentChannel || valueFrom(button.dataset.channelInput),
        onProgress: (percent) => say(status, t("Sending the call… %(percent)s", { percent: `${percent}%` })),
      };
      if (!options.screen && !options.audio) {
        say(status, t("Pick the call's screen video or audio first."), true);
        return;
      }
      button.disabled = true;
      say(status, t("Sending the call…"));
      try {
        const recording = await optIn(options);
        if (recording.shareWindowOpened) {
          say(status, t("Sent as a private draft. Choose the coach and confirm in the new tab."));
        } else {
          say(status, t("Sent as a private draft."), false, recording.shareUrl);
        }
        button.dispatchEvent(new CustomEvent("consent-replay:sent", { detail: recording, bubbles: true }));
      } catch (error) {
        say(status, error.message, true);
      } finally {
        button.disabled = false;
      }
    });
  }

  function bindAll() {
    document.querySelectorAll("[data-consent-replay-optin]").forEach(bind);
  }

  window.ConsentReplayOptIn = { send, open, optIn, bind, bindAll, origin };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", bindAll);
  else bindAll();
})();
