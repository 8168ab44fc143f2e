// Small helpers shared by the employee pages: element building (text only, never HTML),
// Blob downloads of receipts and certificates, JWT claim decoding, a confirm dialog, and
// local formatting of <time> elements rendered by the server in UTC.
(function () {
  "use strict";
  const CR = window.CR;

  // el("p", {class: "muted"}, "text", child) — children are strings (as text) or nodes.
  function el(tag, attrs, ...children) {
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

  function download(filename, text, type) {
    const blob = new Blob([text], { type: type || "application/octet-stream" });
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: filename, class: "hidden" });
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 30000);
  }

  function base64urlJson(part) {
    const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  }

  function decodeJwt(token) {
    const parts = String(token || "").split(".");
    if (parts.length !== 3) throw new Error("not a JWT");
    return { header: base64urlJson(parts[0]), claims: base64urlJson(parts[1]) };
  }

  const TIME_CLAIMS = ["iat", "exp", "destroyed_at"];

  function readable(token, kind) {
    const { header, claims } = decodeJwt(token);
    const times = {};
    for (const name of TIME_CLAIMS) {
      if (typeof claims[name] === "number") times[name] = new Date(claims[name] * 1000).toISOString();
    }
    return JSON.stringify(
      {
        what: kind === "certificate"
          ? "consent-replay deletion certificate (readable copy; the .jwt file is the signed original)"
          : "consent-replay consent receipt (readable copy; the .jwt file is the signed original)",
        verify_with: `${location.origin}/.well-known/jwks.json`,
        header,
        claims,
        times_utc: times,
      },
      null,
      2,
    );
  }

  function downloadToken(kind, id, token) {
    const name = kind === "certificate" ? "certificate" : "receipt";
    download(`${name}-${id}.jwt`, token, "application/jwt");
  }

  function downloadReadable(kind, id, token) {
    const name = kind === "certificate" ? "certificate" : "receipt";
    download(`${name}-${id}.json`, readable(token, kind), "application/json");
  }

  function upgradeTimes(root) {
    (root || document).querySelectorAll("time[data-format]").forEach((node) => {
      const iso = node.getAttribute("datetime");
      if (!iso) return;
      const absolute = CR.formatDate(iso);
      if (node.dataset.format === "relative") {
        node.textContent = CR.relative(iso);
        node.title = absolute;
      } else if (node.dataset.format === "day") {
        node.textContent = new Date(iso).toLocaleDateString(undefined, { dateStyle: "medium" });
        node.title = absolute;
      } else {
        node.textContent = absolute;
      }
    });
  }

  function timeEl(iso, format) {
    const node = el("time", { dateTime: iso || "", "data-format": format || "date" });
    node.textContent = iso ? CR.formatDate(iso) : "–";
    if (iso) upgradeTimes(el("div", {}, node));
    return node;
  }

  // A small modal "are you sure?" — resolves true on confirm, false on cancel/escape.
  function confirmDialog({ title, body, confirmLabel, danger }) {
    return new Promise((resolve) => {
      const confirmButton = el("button", {
        type: "button",
        class: `button ${danger ? "danger" : "primary"}`,
        text: confirmLabel || "Confirm",
        "data-confirm": true,
      });
      const cancelButton = el("button", { type: "button", class: "button", text: "Cancel" });
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

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  upgradeTimes(document);
  window.CRK = {
    el,
    download,
    decodeJwt,
    readable,
    downloadToken,
    downloadReadable,
    upgradeTimes,
    timeEl,
    confirmDialog,
    sleep,
  };
})();
