// Shared helpers for the pages: JSON API calls with the session cookie and CSRF token.
(function () {
  "use strict";
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

  async function api(method, url, body) {
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
    if (!response.ok) {
      const message = data && data.error ? data.error.message : `Request failed (${response.status})`;
      const error = new Error(message);
      error.status = response.status;
      error.code = data && data.error ? data.error.code : null;
      throw error;
    }
    return data;
  }

  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
    const s = Math.max(0, Math.round(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const mm = String(m).padStart(h ? 2 : 1, "0"), ss = String(r).padStart(2, "0");
    return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
  }

  function formatDate(iso) {
    if (!iso) return "–";
    return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  function relative(iso) {
    if (!iso) return "";
    const diff = (new Date(iso) - new Date()) / 1000;
    const abs = Math.abs(diff);
    const unit = abs < 3600 ? ["minute", 60] : abs < 86400 ? ["hour", 3600] : ["day", 86400];
    const value = Math.round(diff / unit[1]);
    return new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }).format(value, unit[0]);
  }

  function toast(message, kind) {
    let host = document.getElementById("toasts");
    if (!host) {
      host = document.createElement("div");
      host.id = "toasts";
      host.className = "toasts";
      host.setAttribute("role", "status");
      document.body.appendChild(host);
    }
    const item = document.createElement("div");
    item.className = `toast ${kind || ""}`;
    item.textContent = message;
    host.appendChild(item);
    setTimeout(() => item.remove(), 6000);
  }

  window.CR = { api, csrf, formatDuration, formatDate, relative, toast };
})();
