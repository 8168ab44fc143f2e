// Oversight: weekly aggregate figures (small counts suppressed), policy history, and the
// audit-chain verification. No names, no content.
import { $, api, el, mib, t, timeEl, toast } from "./kit.js";

const FIGURES = [
  ["shares_made", "made", "Shares made"],
  ["shares_revoked", "revoked", "Revoked"],
  ["shares_expired", "expired", "Expired"],
  ["plays", "plays", "Plays"],
];
// In the table only: account resets by an admin or the operator (each ended someone's
// sessions and tokens), counted like the rest.
// Coaching feedback (SPEC §13): how much is sent and acknowledged, never by whom or how rated.
const COLUMNS = [
  ...FIGURES,
  ["account_resets", "resets", "Account resets"],
  ["feedback_sent", "fsent", t("Feedback sent")],
  ["feedback_acknowledged", "fack", t("Feedback acknowledged")],
];
let below = 5;

function shown(value) {
  return value === null || value === undefined ? `< ${below}` : value.toLocaleString();
}

function weekLabel(iso) {
  return new Date(`${iso}T00:00:00Z`).toLocaleDateString(undefined, { day: "numeric", month: "short", timeZone: "UTC" });
}

function renderChart(weeks) {
  const chart = $("chart");
  // A suppressed figure is drawn as a short hatched stub: "something under the threshold".
  const max = Math.max(below, ...weeks.flatMap((w) => FIGURES.map(([key]) => w[key] || 0)));
  chart.replaceChildren(
    ...weeks.map((week) => {
      const bars = FIGURES.map(([key, cls, label]) => {
        const value = week[key];
        const bar = el("span", {
          class: `bar ${cls}${value === null || value === undefined ? " suppressed" : ""}`,
          title: `${label}: ${shown(value)}`,
        });
        const height = value === null || value === undefined ? 0.06 : value / max;
        bar.style.height = `${Math.max(value ? 2 : 0, height * 100)}%`;
        return bar;
      });
      return el(
        "div",
        { class: "week" },
        el("div", { class: "bars" }, bars),
        el("span", { class: "week-label", text: weekLabel(week.week_start) }),
      );
    }),
  );
}

async function loadFigures() {
  const summary = await api("GET", "/api/v1/oversight/summary?weeks=12");
  below = summary.suppressed_below;
  const weeks = summary.weeks;
  $("figure-rows").replaceChildren(
    ...[...weeks].reverse().map((week) =>
      el(
        "tr",
        {},
        el("td", { text: new Date(`${week.week_start}T00:00:00Z`).toLocaleDateString(undefined, { dateStyle: "medium", timeZone: "UTC" }) }),
        ...COLUMNS.map(([key]) => {
          const value = week[key];
          const suppressed = value === null || value === undefined;
          return el("td", {
            class: `right num${suppressed ? " suppressed" : ""}`,
            text: shown(value),
            title: suppressed ? `Fewer than ${below}: hidden so nobody can be singled out` : "",
          });
        }),
      ),
    ),
  );
  $("figures-note").textContent = `“< ${below}” means fewer than ${below}: exact small numbers are hidden so that no one person's choice can be read from them — including the choice not to share.`;
  $("forms-in-use").textContent = t("Forms in use now: %(count)s.", { count: summary.forms_in_use });
  renderChart(weeks);
}

async function loadHistory() {
  const { versions } = await api("GET", "/api/v1/oversight/policy-history");
  const rows = [];
  versions.forEach((v) => {
    const textRow = el("tr", { class: "consent-row hidden" }, el("td", { colSpan: 6 }, el("div", { class: "consent-text", text: v.consent_text })));
    const toggle = el("button", { type: "button", class: "link-button small", text: "Show" });
    toggle.addEventListener("click", () => {
      const hidden = textRow.classList.toggle("hidden");
      toggle.textContent = hidden ? "Show" : "Hide";
    });
    rows.push(
      el(
        "tr",
        { "data-version": v.version },
        el("td", {}, el("strong", { text: `v${v.version}` })),
        el("td", {}, timeEl(v.created_at, "day")),
        el("td", { class: "right", text: `${v.max_share_days} days` }),
        el("td", { class: "right", text: `${v.draft_lifetime_hours} h` }),
        el("td", { class: "right", text: mib(v.max_upload_bytes) }),
        el("td", { class: "right" }, toggle),
      ),
      textRow,
    );
  });
  $("history-rows").replaceChildren(...rows);
}

$("verify-chain").addEventListener("click", async () => {
  const button = $("verify-chain");
  const box = $("chain-result");
  button.disabled = true;
  button.textContent = "Verifying…";
  try {
    const verdict = await api("GET", "/api/v1/oversight/audit-chain");
    box.className = `chain-result ${verdict.ok ? "ok" : "broken"}`;
    box.replaceChildren(
      el("span", { class: "chain-mark", "aria-hidden": "true", text: verdict.ok ? "✓" : "!" }),
      el(
        "div",
        {},
        el("strong", { text: verdict.ok ? "Intact" : "Broken" }),
        el("div", {
          class: "small",
          text: verdict.ok
            ? "All events verified, from the first to the latest."
            : `The chain breaks at event ${verdict.broken_seq}: ${verdict.reason || "a hash does not match"}.`,
        }),
        el("div", { class: "small muted" }, "Checked ", timeEl(verdict.checked_at)),
      ),
    );
  } catch (error) {
    box.className = "chain-result broken";
    box.replaceChildren(el("span", { text: error.message }));
  } finally {
    button.disabled = false;
    button.textContent = "Verify again";
  }
});

loadFigures().catch((error) => toast(error.message, "error"));
loadHistory().catch((error) => toast(error.message, "error"));
