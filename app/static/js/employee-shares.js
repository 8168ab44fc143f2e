// My shares: live progress, receipts and certificates, the access log, comments, and Revoke.
import { api, clock, confirmDialog, el, sleep, t, timeEl, toast, upgradeTimes } from "./kit.js";
import { downloadReadable, downloadToken } from "./receipts.js";

upgradeTimes(document);

const ACTIVE = ["processing", "ready", "failed"];
const LABELS = { processing: t("Preparing"), ready: t("Ready"), failed: t("Failed"), revoked: t("Withdrawn"), expired: t("Expired") };
const ACTIONS = {
  "share.created": t("Shared it"),
  "share.ready": t("The coaching copy was ready"),
  "share.failed": t("Preparing the coaching copy failed"),
  "share.revoked": t("Withdrew it; the key was destroyed"),
  "share.expired": t("It expired; the key was destroyed"),
  "share.objects_deleted": t("The stored copies were deleted and their absence checked"),
  "share.objects_pending": t("Deleting the stored copies (retrying)"),
  "media.play": t("Started watching"),
  "comment.added": t("Added a comment"),
  "recording.deleted": t("Deleted the recording"),
};

const cards = () => [...document.querySelectorAll(".share-card")];

function stateNodes(share, coaches) {
  switch (share.status) {
    case "processing": {
      const percent = Math.max(0, Math.min(100, share.progress || 0));
      const fill = el("span");
      fill.style.width = `${percent}%`;
      return [
        el(
          "div",
          { class: "progress-line" },
          el(
            "div",
            { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": percent, "aria-label": t("Preparing the coaching copy") },
            fill,
          ),
          el("span", { class: "percent", text: `${percent}%` }),
        ),
        el("p", { class: "muted small", text: t("Preparing the coaching copy: cutting, scaling and encrypting it under its own key.") }),
      ];
    }
    case "ready":
      return [el("p", { class: "alert alert-success", text: t("Ready — %(coaches)s can watch it.", { coaches }) })];
    case "failed":
      return [
        el(
          "p",
          { class: "alert alert-error" },
          el("strong", { text: t("This share could not be prepared.") }),
          " ",
          share.error || t("Something went wrong while preparing the coaching copy."),
          " ",
          t("You can revoke it and share the recording again."),
        ),
      ];
    default:
      return [
        el(
          "p",
          { class: "withdrawn" },
          el("span", { class: "lock", "aria-hidden": "true", text: "✓" }),
          share.status === "expired" ? t("Expired — key destroyed") : t("Withdrawn — key destroyed"),
        ),
      ];
  }
}

function apply(card, share) {
  card.dataset.status = share.status;
  card.dataset.progress = String(share.progress || 0);
  const badge = card.querySelector('[data-field="badge"]');
  badge.className = `badge ${share.status}`;
  badge.textContent = LABELS[share.status] || share.status;
  card.querySelector('[data-field="state"]').replaceChildren(...stateNodes(share, card.dataset.coaches));
  if (share.status === "ready" && !card.querySelector('[data-action-link="watch"]')) {
    const href = `/coach/shares/${encodeURIComponent(card.dataset.shareId)}`;
    const watch = el("a", { class: "button small primary", href, "data-action-link": "watch", text: t("Watch the coaching copy") });
    card.querySelector('[data-field="actions"]').prepend(watch);
  }
  const ended = !ACTIVE.includes(share.status);
  card.querySelector('[data-action="certificate"]').classList.toggle("hidden", !ended);
  const revoke = card.querySelector('[data-action="revoke"]');
  if (revoke && ended) revoke.remove();
  const comments = card.querySelector('details[data-panel="comments"]');
  if (comments && ended) comments.remove();
  // The receipt is shredded with the share; the certificate takes its place.
  if (ended) {
    card.querySelectorAll('[data-action="receipt"], [data-action="receipt-json"], [data-action-link="receipt-page"], [data-action-link="watch"]').forEach((b) => b.remove());
  }
}

async function poll(card) {
  const id = card.dataset.shareId;
  let failures = 0;
  while (card.dataset.status === "processing" && document.body.contains(card)) {
    await sleep(1500);
    if (card.dataset.status !== "processing") return;
    try {
      const share = await api("GET", `/api/v1/shares/${id}`);
      failures = 0;
      if (card.dataset.status === "processing") apply(card, share);
      if (share.status === "ready") toast(t("Ready: %(coaches)s can now watch it.", { coaches: card.dataset.coaches }));
    } catch (error) {
      failures += 1;
      if (error.status === 404 || failures > 20) return;
    }
  }
}

async function tokenOf(card, kind) {
  const share = await api("GET", `/api/v1/shares/${card.dataset.shareId}`);
  const token = kind === "certificate" ? share.certificate : share.receipt;
  if (!token) throw new Error(kind === "certificate" ? t("The certificate is not ready yet.") : t("The receipt was shredded with the share."));
  return token;
}

async function revoke(card) {
  const ok = await confirmDialog({
    title: t("Revoke this share?"),
    body: [
      t("Access ends at once for %(coaches)s, even in the middle of watching.", { coaches: card.dataset.coaches }),
      t("The coaching copy's key is destroyed and its files are deleted. You get a signed deletion certificate."),
    ],
    confirmLabel: t("Revoke now"),
    danger: true,
  });
  if (!ok) return;
  try {
    const result = await api("POST", `/api/v1/shares/${card.dataset.shareId}/revoke`);
    apply(card, { status: result.status, progress: 100 });
    card.dataset.certificate = result.certificate || "";
    card.querySelector('[data-field="end-label"]').textContent = t("Ended");
    card.querySelector('[data-field="end-value"]').replaceChildren(timeEl(result.revoked_at));
    const access = card.querySelector('details[data-panel="access"]');
    if (access.open) loadAccess(card, access.querySelector(".details-body")).catch(() => {});
    toast(t("Withdrawn — key destroyed. Your deletion certificate is ready to download."));
    moveToEnded(card);
    const certificate = card.querySelector('[data-action="certificate"]');
    certificate.classList.add("primary");
    certificate.focus();
  } catch (error) {
    toast(error.message, "error");
  }
}

// A withdrawn share leaves the active list at once (not at the next reload).
function moveToEnded(card) {
  let ended = document.querySelector(".ended-list");
  if (!ended) {
    const title = el("div", { class: "section-title" }, el("h2", { text: t("Ended") }));
    ended = el("div", { class: "ended-list" });
    document.querySelector("#share-list").after(title, ended);
  }
  ended.prepend(card);
  const active = document.querySelector("#share-list");
  if (!active.querySelector(".share-card") && !document.querySelector("#shares-empty")) {
    active.append(el("p", { class: "muted", id: "shares-empty", text: t("Nothing is shared right now") }));
  }
}

// --- access log --------------------------------------------------------------------------

async function loadAccess(card, body) {
  const log = await api("GET", `/api/v1/shares/${card.dataset.shareId}/access-log`);
  const nodes = [];
  const views = log.views || [];
  if (views.length) {
    const rows = views.map((view) =>
      el(
        "tr",
        {},
        el("td", { text: view.viewer_name || t("Someone") }),
        el("td", {}, timeEl(view.started_at)),
        el("td", { text: clock(view.seconds_watched) }),
        el("td", {}, timeEl(view.last_seen_at)),
      ),
    );
    nodes.push(
      el(
        "table",
        {},
        el("thead", {}, el("tr", {}, [t("Who watched"), t("Started"), t("Time watched"), t("Last seen")].map((h) => el("th", { text: h })))),
        el("tbody", {}, rows),
      ),
    );
  } else {
    nodes.push(el("p", { class: "muted small", text: t("Nobody has watched it yet.") }));
  }
  const events = log.events || [];
  if (events.length) {
    nodes.push(el("h3", { text: t("Every event") }));
    nodes.push(
      el(
        "ul",
        { class: "event-list" },
        events.map((event) =>
          el(
            "li",
            {},
            timeEl(event.at),
            el("span", {}, event.actor_name ? el("strong", { text: `${event.actor_name}: ` }) : null, ACTIONS[event.action] || event.action),
          ),
        ),
      ),
    );
  }
  body.replaceChildren(...nodes);
}

// --- comments ------------------------------------------------------------------------------

function commentNode(comment) {
  return el(
    "div",
    { class: "comment" },
    el("div", { class: "meta" }, t("%(name)s at %(time)s", { name: comment.author ? comment.author.name : t("Someone"), time: clock(comment.at_s) }), " · ", timeEl(comment.created_at)),
    el("div", { class: "body", text: comment.body }),
  );
}

async function loadComments(card, body) {
  const { comments } = await api("GET", `/api/v1/shares/${card.dataset.shareId}/comments`);
  const listNode = el("div", { class: "stack tight" });
  if (comments.length) comments.forEach((comment) => listNode.append(commentNode(comment)));
  else listNode.append(el("p", { class: "muted small", text: t("No comments yet.") }));

  const at = el("input", { type: "text", name: "at", value: "0:00", inputMode: "numeric", "aria-label": t("At (m:ss)") });
  const text = el("textarea", { name: "body", maxLength: 2000, rows: 1, required: true, placeholder: t("Add a comment for your coach…"), "aria-label": t("Comment") });
  const send = el("button", { type: "submit", class: "button small", text: t("Comment") });
  const formNode = el(
    "form",
    { class: "comment-form" },
    el("label", {}, t("At"), at),
    el("label", {}, t("Comment"), text),
    send,
  );
  formNode.addEventListener("submit", async (event) => {
    event.preventDefault();
    const seconds = parseClock(at.value);
    if (seconds === null) return toast(t("Give the time as m:ss, e.g. 1:05."), "error");
    if (!text.value.trim()) return;
    send.disabled = true;
    try {
      const comment = await api("POST", `/api/v1/shares/${card.dataset.shareId}/comments`, { at_s: seconds, body: text.value.trim() });
      if (listNode.querySelector("p.muted")) listNode.replaceChildren();
      listNode.append(commentNode(comment));
      text.value = "";
    } catch (error) {
      toast(error.message, "error");
    } finally {
      send.disabled = false;
    }
  });
  body.replaceChildren(listNode, formNode);
}

function parseClock(value) {
  const parts = String(value).trim().split(":").map((p) => p.trim());
  if (!parts.length || parts.some((p) => p === "" || !/^\d+(\.\d+)?$/.test(p))) return null;
  return parts.reduce((total, part) => total * 60 + parseFloat(part), 0);
}

// --- wiring --------------------------------------------------------------------------------

document.addEventListener("click", async (event) => {
  const button = event.target.closest(".share-card [data-action]");
  if (!button) return;
  const card = button.closest(".share-card");
  const id = card.dataset.shareId;
  try {
    switch (button.dataset.action) {
      case "revoke":
        await revoke(card);
        break;
      case "receipt":
        downloadToken("receipt", id, await tokenOf(card, "receipt"));
        break;
      case "receipt-json":
        downloadReadable("receipt", id, await tokenOf(card, "receipt"));
        break;
      case "certificate":
        downloadToken("certificate", id, card.dataset.certificate || (await tokenOf(card, "certificate")));
        break;
      default:
    }
  } catch (error) {
    toast(error.message, "error");
  }
});

document.querySelectorAll(".share-card details[data-panel]").forEach((panel) => {
  panel.addEventListener("toggle", async () => {
    if (!panel.open) return;
    const card = panel.closest(".share-card");
    const body = panel.querySelector(".details-body");
    try {
      if (panel.dataset.panel === "access") await loadAccess(card, body);
      else await loadComments(card, body);
    } catch (error) {
      body.replaceChildren(el("p", { class: "alert alert-error", text: error.message }));
    }
  });
});

cards().forEach((card) => {
  apply(card, {
    status: card.dataset.status,
    progress: parseInt(card.dataset.progress || "0", 10),
    error: card.dataset.error,
  });
  if (card.dataset.status === "processing") poll(card);
});
