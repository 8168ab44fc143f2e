// Resumable uploads for the pages: tus-js-client (vendored in /static/vendor/tus-js-client,
// loaded by a classic <script> before the page module, so it is window.tus) against
// /api/v1/uploads, with the session cookie and the CSRF header like every other API call.
//
// - startUpload(): a file (the upload form) or a growing recording (the recorder, through a
//   RecordingSource) sent with tus. It retries by itself after a lost connection — also while
//   the browser says it is offline, and again as soon as it is back online — and a file picked
//   again after a reload resumes where it stopped (tus-js-client's fingerprint in localStorage).
// - The server acknowledges only whole 16 KiB chunks until the last request (it stores nothing
//   partial, SPEC §16); tus-js-client then sends the rest again from the offset answered.
// - makeRecording(), finishHere(), cancelUpload(): the API calls around an upload.
import { api, apiError, csrf, t } from "./kit.js";

export const ENDPOINT = "/api/v1/uploads";
export const TUS_JS_CLIENT = "4.3.1";
const CHUNK = 16384;
// The recorder's requests: at least BATCH bytes, or whatever whole chunks have waited WAIT_MS.
const BATCH = 256 * 1024;
const WAIT_MS = 4000;
// Keep trying for about ten minutes; a page that is still open then offers "Try again".
const RETRY_DELAYS = [0, 1000, 2000, 4000, 8000, ...Array(60).fill(10000)];

function tusLibrary() {
  if (!window.tus || !window.tus.Upload) {
    throw new Error(t("The upload component did not load. Reload the page and try again."));
  }
  return window.tus;
}

// The error of a failed tus request, as the API's error shape when the server answered.
export function uploadError(error) {
  const response = error && error.originalResponse;
  if (!response) {
    const lost = new Error(t("The connection to the server is lost. The upload goes on by itself when it is back."));
    lost.status = 0;
    return lost;
  }
  let body = null;
  try {
    body = JSON.parse(response.getBody());
  } catch (parseError) {
    body = null;
  }
  return apiError(response.getStatus(), body);
}

function worthRetrying(error) {
  const status = error.originalResponse ? error.originalResponse.getStatus() : 0;
  // No answer (offline, a server restarting), a server error, or "busy"/"other offset" (409:
  // tus-js-client asks for the offset again and resumes from there).
  return status === 0 || status >= 500 || status === 409 || status === 423 || status === 429;
}

export function uploadIdOf(upload) {
  return upload && upload.url ? upload.url.split("/").pop() : null;
}

/**
 * Start (or resume) a tus upload. options: metadata, chunkSize, deferred (length unknown:
 * the recorder), source (a RecordingSource), resume (look for an earlier upload of the same
 * file), and the callbacks onProgress(sent, total), onAccepted(offset), onSuccess(upload),
 * onError(error). Returns the tus.Upload.
 */
export function startUpload(input, options) {
  const tus = tusLibrary();
  const opts = options || {};
  const settings = {
    endpoint: ENDPOINT,
    headers: { "X-CSRFToken": csrf(), Accept: "application/json" },
    metadata: opts.metadata || {},
    chunkSize: opts.chunkSize || Infinity,
    uploadLengthDeferred: Boolean(opts.deferred),
    retryDelays: RETRY_DELAYS,
    onShouldRetry: (error) => worthRetrying(error),
    storeFingerprintForResuming: Boolean(opts.resume),
    removeFingerprintOnSuccess: true,
    onProgress: (sent, total) => opts.onProgress && opts.onProgress(sent, total),
    onChunkComplete: (_size, accepted) => opts.onAccepted && opts.onAccepted(accepted),
    onSuccess: () => opts.onSuccess && opts.onSuccess(upload),
    onError: (error) => opts.onError && opts.onError(uploadError(error)),
  };
  // (An option given as undefined would replace tus-js-client's default: set it only if used.)
  if (opts.source) settings.fileReader = { openFile: () => Promise.resolve(opts.source) };
  const upload = new tus.Upload(input, settings);
  const begin = () => upload.start();
  if (opts.resume) {
    upload
      .findPreviousUploads()
      .then((previous) => {
        if (previous.length) upload.resumeFromPreviousUpload(previous[0]);
        begin();
      })
      .catch(begin);
  } else {
    begin();
  }
  // Back online: an upload that gave up is started again (it asks for the offset first).
  const again = () => {
    if (upload.cr_failed) {
      upload.cr_failed = false;
      begin();
    }
  };
  window.addEventListener("online", again);
  upload.cr_stopListening = () => window.removeEventListener("online", again);
  return upload;
}

/** Mark an upload as given up, so that coming back online restarts it. */
export function markFailed(upload) {
  if (upload) upload.cr_failed = true;
}

async function tusRequest(method, id, headers) {
  const response = await fetch(`${ENDPOINT}/${encodeURIComponent(id)}`, {
    method,
    credentials: "same-origin",
    headers: { "Tus-Resumable": "1.0.0", "X-CSRFToken": csrf(), Accept: "application/json", ...(headers || {}) },
  });
  if (!response.ok) {
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = null;
    }
    throw apiError(response.status, body);
  }
  return response;
}

/** Cancel an upload (tus termination): the server deletes what arrived. */
export function cancelUpload(id) {
  return tusRequest("DELETE", id);
}

/** Keep what has arrived of an upload whose end never came (a recorder tab that was closed):
 *  its length becomes its offset. Resolves with that length. */
export async function finishHere(id) {
  const head = await tusRequest("HEAD", id);
  const offset = head.headers.get("Upload-Offset");
  if (head.headers.get("Upload-Length") === offset) return Number(offset);
  await tusRequest("PATCH", id, {
    "Upload-Offset": offset,
    "Upload-Length": offset,
    "Content-Type": "application/offset+octet-stream",
  });
  return Number(offset);
}

/** A draft from finished uploads: ids {screen, audio}; fields title, agent_channel, customer_informed. */
export function makeRecording(ids, fields) {
  return api("POST", "/api/v1/recordings", { upload_ids: ids, ...(fields || {}) });
}

/**
 * What the recorder feeds to tus-js-client (its `fileReader` option): the MediaRecorder's
 * pieces as they come. tus-js-client asks for bytes [start, end); the answer comes once
 * `batch` bytes past `start` have been recorded, or a chunk's worth has waited `waitMs`, or
 * the recording has ended — so a PATCH goes out every few seconds, not every second.
 *
 * Each piece is read into the page's own memory at once and its Blob let go, as a page that
 * uploads nothing lets it go: a Blob the page still refers to when V8 next collects lives on
 * (with its bytes in the browser process) until a full collection, which may be many minutes
 * away while the JS heap stays small — bench/upload.py measured +190 MiB over 30 minutes.
 * Bytes in ArrayBuffers are counted by V8, and a request's body is copied out of them.
 * Pieces before `start` — acknowledged by the server — are dropped: the page holds only what
 * has not been stored yet.
 */
export class RecordingSource {
  constructor(type, options) {
    const opts = options || {};
    this.type = type || "";
    this.batch = opts.batch || BATCH;
    this.waitMs = opts.waitMs === undefined ? WAIT_MS : opts.waitMs;
    this.answeredAt = Date.now();
    this.parts = []; // Uint8Arrays, in order
    this.base = 0; // offset of parts[0]
    this.total = 0;
    this.done = false;
    this.closed = false;
    this.failed = null;
    this.reading = Promise.resolve(); // pieces are read in the order they came
    this.waiting = null;
    this.size = null; // unknown until the end (tus: Upload-Defer-Length)
  }

  push(blob) {
    if (!blob || !blob.size) return;
    this.reading = this.reading.then(async () => {
      try {
        const bytes = new Uint8Array(await blob.arrayBuffer());
        if (this.closed) return;
        this.parts.push(bytes);
        this.total += bytes.length;
      } catch (error) {
        this.failed = this.failed || error; // a piece missing: the upload stops, with a reason
      }
      this._wake();
    });
  }

  end() {
    this.reading = this.reading.then(() => {
      this.done = true;
      this._wake();
    });
  }

  get held() {
    return this.total - this.base;
  }

  _wake() {
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve();
    }
  }

  _drop(before) {
    while (this.parts.length && this.base + this.parts[0].length <= before) {
      this.base += this.parts[0].length;
      this.parts.shift();
    }
  }

  _ready(start) {
    const ready = this.total - start;
    if (this.done || ready >= this.batch) return true;
    return ready >= CHUNK && Date.now() - this.answeredAt >= this.waitMs;
  }

  async slice(start, end) {
    this._drop(start);
    while (!this.failed && !this._ready(start)) {
      const left = this.total - start >= CHUNK ? this.waitMs - (Date.now() - this.answeredAt) : null;
      await new Promise((resolve) => {
        this.waiting = resolve;
        if (left !== null) setTimeout(() => this._wake(), Math.max(left, 0));
      });
    }
    if (this.failed) throw this.failed;
    this.answeredAt = Date.now();
    const stop = Math.min(end, this.total);
    return { value: this._bytes(start, stop), done: this.done && stop === this.total };
  }

  // Bytes [start, stop) in one Uint8Array of their own (the request's body; tus-js-client
  // reads its length as `size`, as of a Blob).
  _bytes(start, stop) {
    const bytes = new Uint8Array(Math.max(stop - start, 0));
    let offset = this.base;
    for (const part of this.parts) {
      const from = Math.max(start - offset, 0);
      const to = Math.min(stop - offset, part.length);
      if (to > from) bytes.set(part.subarray(from, to), offset + from - start);
      offset += part.length;
      if (offset >= stop) break;
    }
    bytes.size = bytes.length;
    return bytes;
  }

  close() {
    this.closed = true;
    this.parts = [];
  }
}
