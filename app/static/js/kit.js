// The page kit: the one place for what every page script needs. An ES module (strict CSP:
// `script-src 'self'`, no build step): `import { api, clock } from "./kit.js";`.
//
// - Language (SPEC §14): t() and tn() give a script's text in the page's language, from the
//   catalog the page names in <meta name="i18n-catalog"> (made by scripts/i18n.sh from the
//   t("…") and tn("…", "…", n) calls: write the English text literally there, never a variable);
//   `locale` is the page's <html lang>, for every Intl format.
// - JSON API calls with the session cookie and the CSRF token from <meta name="csrf-token">;
//   a failed call throws an Error carrying the one error shape {"error": {"code", "message"}}.
// - Formatting: clock() for every time shown (positions and lengths alike), dates, sizes.
// - DOM: text-only element building (never HTML), error boxes, toasts, a confirm dialog, and
//   local formatting of <time> elements the server rendered in UTC.

// --- small things ---------------------------------------------------------------------------

export const $ = (id) => document.getElementById(id);
export const clamp = (value, lo, hi) => Math.min(hi, Math.max(lo, value));
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// --- language ------------------------------------------------------------------------------

export const locale = document.documentElement.lang || "en";

async function loadCatalog() {
  const meta = document.querySelector('meta[name="i18n-catalog"]');
  if (!meta || locale === "en") return {};
  try {
    const response = await fetch(meta.content, { credentials: "same-origin" });
    return response.ok ? (await response.json()).messages || {} : {};
  } catch {
    return {}; // the English text is still a working page
  }
}

// Every page script imports this module, so the catalog is there before any of them runs.
const catalog = await loadCatalog();
const plurals = new Intl.PluralRules(locale);

function fill(text, values) {
  if (!values) return text;
  return text.replace(/%\((\w+)\)s/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

// t("Saved %(name)s", {name}) — the text in the page's language, values filled in.
export function t(message, values) {
  const found = catalog[message];
  return fill(typeof found === "string" ? found : message, values);
}

// tn("%(num)s file", "%(num)s files", n) — the form for n (both languages have one and other);
// %(num)s is n written the local way.
export function tn(singular, plural, n, values) {
  const one = plurals.select(n) === "one";
  const forms = catalog[singular];
  const text = Array.isArray(forms) ? forms[one ? 0 : 1] : one ? singular : plural;
  return fill(text, { num: Number(n).toLocaleString(locale), ...values });
}

// --- the JSON API ---------------------------------------------------------------------------

export const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

// An Error from a failed response: its message, code and status from the error shape.
export function apiError(status, body) {
  const shaped = body && body.error ? body.error : null;
  const error = new Error(
    shaped ? shaped.message : t("Request failed (%(status)s)", { status: status || t("network error") }),
  );
  error.status = status;
  error.code = shaped ? shaped.code : null;
  return error;
}

export async function api(method, url, body) {
  const options = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (method !== "GET" && method !== "HEAD") options.headers["X-CSRFToken"] = csrf();
  if (body instanceof FormData) options.body = body;
  else if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(url, options);
  let data = null;
  const type = response.headers.get("Content-Type") || "";
  if (type.includes("application/json")) data = await response.json();
  if (!response.ok) throw apiError(response.status, data);
  return data;
}

// --- formatting -----------------------------------------------------------------------------

// A time in m:ss or h:mm:ss; an en dash when unknown. One rule for positions and lengths
// alike: whole seconds, counted down, after rounding to the millisecond (so 6.9999999 stays
// 7). 9.6 s reads 0:09 everywhere. app/pages/formatting.py:clock() is the same on the server.
export function clock(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return "–";
  const s = Math.floor(Math.max(0, Math.round(Number(seconds) * 1000)) / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  const mm = String(m).padStart(h ? 2 : 1, "0");
  const ss = String(r).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

export function formatDate(iso) {
  if (!iso) return "–";
  return new Date(iso).toLocaleString(locale, { dateStyle: "medium", timeStyle: "short" });
}

export function formatDay(iso) {
  if (!iso) return "–";
  return new Date(iso).toLocaleDateString(locale, { dateStyle: "medium" });
}

export function relative(iso) {
  if (!iso) return "";
  const diff = (new Date(iso) - new Date()) / 1000;
  const abs = Math.abs(diff);
  const unit = abs < 3600 ? ["minute", 60] : abs < 86400 ? ["hour", 3600] : ["day", 86400];
  const value = Math.round(diff / unit[1]);
  return new Intl.RelativeTimeFormat(locale, { numeric: "auto" }).format(value, unit[0]);
}

export function mib(bytes) {
  return `${Math.round(bytes / (1024 * 1024)).toLocaleString(locale)} MiB`;
}

// --- the DOM --------------------------------------------------------------------------------

// el("p", {class: "muted"}, "text", child) — children are strings (as text) or nodes.
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role") {
      node.setAttribute(key, value === true ? "" : String(value));
    } else node[key] = value;
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// <time datetime="…" data-format="date|day|relative"> (or data-local-date="…", the coach
// pages' name for it) in the reader's own time zone and language; where the text is shorter
// than the full moment (a day, "in 3 days"), the full moment is the tooltip.
export function upgradeTimes(root) {
  (root || document).querySelectorAll("time[data-format], time[data-local-date]").forEach((node) => {
    const iso = node.getAttribute("datetime");
    if (!iso) return;
    const format = node.dataset.format || node.dataset.localDate;
    const absolute = formatDate(iso);
    if (format === "relative") node.textContent = relative(iso);
    else if (format === "day") node.textContent = formatDay(iso);
    else node.textContent = absolute;
    if (node.textContent !== absolute) node.title = absolute;
  });
}

export function timeEl(iso, format) {
  const node = el("time", { dateTime: iso || "", "data-format": format || "date" });
  node.textContent = iso ? formatDate(iso) : "–";
  if (iso) upgradeTimes(el("div", {}, node));
  return node;
}

// A progress bar's fill: its width, the track's aria-valuenow, and a ".progress-label" next
// to the track, where there is one.
export function setProgress(bar, progress) {
  const value = clamp(Number(progress) || 0, 0, 100);
  bar.style.width = `${value}%`;
  const track = bar.parentElement;
  if (!track) return;
  track.setAttribute("aria-valuenow", String(value));
  const label = track.parentElement && track.parentElement.querySelector(".progress-label");
  if (label) label.textContent = `${value}%`;
}

// An error box (an element with the .hidden class or the hidden attribute): the message as
// text, shown; an empty message hides it.
export function showError(box, message) {
  box.textContent = message || "";
  box.classList.toggle("hidden", !message);
  box.hidden = !message;
}

export function toast(message, kind) {
  let host = $("toasts");
  if (!host) {
    host = el("div", { id: "toasts", class: "toasts", role: "status" });
    document.body.appendChild(host);
  }
  const item = el("div", { class: `toast ${kind || ""}`, text: message });
  host.appendChild(item);
  setTimeout(() => item.remove(), 6000);
}

// A small modal "are you sure?" — resolves true on confirm, false on cancel/escape.
export function confirmDialog({ title, body, confirmLabel, danger }) {
  return new Promise((resolve) => {
    const confirmButton = el("button", {
      type: "button",
      class: `button ${danger ? "danger" : "primary"}`,
      text: confirmLabel || t("Confirm"),
      "data-confirm": true,
    });
    const cancelButton = el("button", { type: "button", class: "button", text: t("Cancel") });
    const dialog = el(
      "dialog",
      { class: "confirm-dialog", "aria-labelledby": "confirm-title" },
      el(
        "div",
        { class: "dialog-body" },
        el("h2", { id: "confirm-title", text: title }),
        ...(Array.isArray(body) ? body : [body]).map((line) => el("p", { text: line })),
      ),
      el("div", { class: "dialog-actions" }, cancelButton, confirmButton),
    );
    let answered = false;
    const finish = (value) => {
      if (answered) return;
      answered = true;
      if (dialog.open) dialog.close();
      dialog.remove();
      resolve(value);
    };
    confirmButton.addEventListener("click", () => finish(true));
    cancelButton.addEventListener("click", () => finish(false));
    dialog.addEventListener("cancel", () => finish(false));
    dialog.addEventListener("close", () => finish(false));
    document.body.appendChild(dialog);
    dialog.showModal();
    confirmButton.focus();
  });
}
