// Helpers for the admin and oversight pages: text-only element building, a confirm dialog,
// and local formatting of <time> elements.
(function () {
  "use strict";
  const CR = window.CR;

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

  function upgradeTimes(root) {
    (root || document).querySelectorAll("time[data-format]").forEach((node) => {
      const iso = node.getAttribute("datetime");
      if (iso) node.textContent = node.dataset.format === "day"
        ? new Date(iso).toLocaleDateString(undefined, { dateStyle: "medium" })
        : CR.formatDate(iso);
    });
  }

  function timeEl(iso, format) {
    if (!iso) return document.createTextNode("–");
    const node = el("time", { dateTime: iso, "data-format": format || "date" });
    node.textContent = iso;
    upgradeTimes(el("div", {}, node));
    return node;
  }

  function confirmDialog({ title, body, confirmLabel, danger }) {
    return new Promise((resolve) => {
      const ok = el("button", { type: "button", class: `button ${danger ? "danger" : "primary"}`, text: confirmLabel || "Confirm", "data-confirm": true });
      const cancel = el("button", { type: "button", class: "button", text: "Cancel" });
      const dialog = el(
        "dialog",
        { class: "confirm-dialog", "aria-labelledby": "confirm-title" },
        el("div", { class: "dialog-body" }, el("h2", { id: "confirm-title", text: title }),
          ...(Array.isArray(body) ? body : [body]).map((line) => el("p", { text: line }))),
        el("div", { class: "dialog-actions" }, cancel, ok),
      );
      let answered = false;
      const finish = (value) => {
        if (answered) return;
        answered = true;
        if (dialog.open) dialog.close();
        dialog.remove();
        resolve(value);
      };
      ok.addEventListener("click", () => finish(true));
      cancel.addEventListener("click", () => finish(false));
      dialog.addEventListener("cancel", () => finish(false));
      dialog.addEventListener("close", () => finish(false));
      document.body.appendChild(dialog);
      dialog.showModal();
      ok.focus();
    });
  }

  function mib(bytes) {
    return `${Math.round(bytes / (1024 * 1024)).toLocaleString()} MiB`;
  }

  upgradeTimes(document);
  window.CRA = { el, timeEl, upgradeTimes, confirmDialog, mib };
})();
