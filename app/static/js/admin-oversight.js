// Oversight: weekly aggregate figures (small counts suppressed), policy history, and the
// audit-chain verification. No names, no content. The figures go to the representatives'
// meetings as a CSV file or on paper (the print button; admin.css hides the rest there).
import { $, api, el, locale, mib, t, timeEl, tn, toast } from "./kit.js";

const FIGURES = [
  ["shares_made", "made", t("Shares made")],
  ["shares_revoked", "revoked", t("Revoked")],
  ["shares_expired", "expired", t("Expired")],
  ["plays", "plays", t("Plays")],
];
// In the table only: account resets by an admin or the operator (each ended someone's
// sessions and tokens), counted like the rest.
// Coaching feedback (SPEC §13): how much is sent and acknowledged, never by whom or how rated.
const COLUMNS = [
  ...FIGURES,
  ["account_resets", "resets", t("Account resets")],
  ["feedback_sent", "fsent", t("Feedback sent")],
  ["feedback_acknowledged", "fack", t("Feedback acknowledged")],
];
let below = 5;
let loadedWeeks = [];

const isHidden = (value) => value === null || value === undefined;

function shown(value) {
  return isHidden(value) ? `< ${below}` : value.toLocaleString(locale);
}

function weekLabel(iso) {
  return new Date(`${iso}T00:00:00Z`).toLocaleDateString(locale, { day: "numeric", month: "short", timeZone: "UTC" });
}

// When no figure reached the threshold the bars are only hatched stubs: say so in words.
function renderChartNote(weeks) {
  const anyShown = weeks.some((week) => FIGURES.some(([key]) => !isHidden(week[key]) && week[key] > 0));
  const note = $("chart-empty");
  note.textContent = anyShown
    ? ""
    : t("No figure reached %(below)s in these weeks, so the chart has no bars to show. Every week had fewer than %(below)s of each, or none.", { below });
  note.hidden = anyShown;
}

function renderChart(weeks) {
  renderChartNote(weeks);
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
        el("td", { text: new Date(`${week.week_start}T00:00:00Z`).toLocaleDateString(locale, { dateStyle: "medium", timeZone: "UTC" }) }),
        ...COLUMNS.map(([key]) => {
          const value = week[key];
          const suppressed = value === null || value === undefined;
          return el("td", {
            class: `right num${suppressed ? " suppressed" : ""}`,
            text: shown(value),
            title: suppressed ? t("Fewer than %(below)s: hidden so nobody can be singled out", { below }) : "",
          });
        }),
      ),
    ),
  );
  $("figures-note").textContent = t("“< %(below)s” means fewer than %(below)s: exact small numbers are hidden so that no one person's choice can be read from them — including the choice not to share.", { below });
  loadedWeeks = weeks;
  $("download-csv").disabled = false;
  $("forms-in-use").textContent = t("Forms in use now: %(count)s.", { count: summary.forms_in_use });
  renderChart(weeks);
}

async function loadHistory() {
  const { versions } = await api("GET", "/api/v1/oversight/policy-history");
  const rows = [];
  versions.forEach((v) => {
    const textRow = el("tr", { class: "consent-row hidden" }, el("td", { colSpan: 6 }, el("div", { class: "consent-text", text: v.consent_text })));
    const toggle = el("button", { type: "button", class: "link-button small", text: t("Show") });
    toggle.addEventListener("click", () => {
      const hidden = textRow.classList.toggle("hidden");
      toggle.textContent = hidden ? t("Show") : t("Hide");
    });
    rows.push(
      el(
        "tr",
        { "data-version": v.version },
        el("td", {}, el("strong", { text: t("v%(version)s", { version: v.version }) })),
        el("td", {}, timeEl(v.created_at, "day")),
        el("td", { class: "right", text: tn("%(num)s day", "%(num)s days", v.max_share_days) }),
        el("td", { class: "right", text: tn("%(num)s hour", "%(num)s hours", v.draft_lifetime_hours) }),
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
  button.textContent = t("Verifying…");
  try {
    const verdict = await api("GET", "/api/v1/oversight/audit-chain");
    box.className = `chain-result ${verdict.ok ? "ok" : "broken"}`;
    box.replaceChildren(
      el("span", { class: "chain-mark", "aria-hidden": "true", text: verdict.ok ? "✓" : "!" }),
      el(
        "div",
        {},
        el("strong", { text: verdict.ok ? t("Intact") : t("Broken") }),
        el("div", {
          class: "small",
          text: verdict.ok
            ? t("All events verified, from the first to the latest.")
            : t("The chain breaks at event %(seq)s: %(reason)s.", { seq: verdict.broken_seq, reason: verdict.reason || t("a hash does not match") }),
        }),
        el("div", { class: "small muted" }, t("Checked"), " ", timeEl(verdict.checked_at)),
      ),
    );
  } catch (error) {
    box.className = "chain-result broken";
    box.replaceChildren(el("span", { text: error.message }));
  } finally {
    button.disabled = false;
    button.textContent = t("Verify again");
  }
});

// The weekly figures as the table shows them (hidden ones as "< 5"), one row a week.
function figuresCsv(weeks) {
  const quote = (cell) => `"${String(cell).replaceAll('"', '""')}"`;
  const header = [t("Week of"), ...COLUMNS.map(([, , label]) => label)];
  const rows = weeks.map((week) => [week.week_start, ...COLUMNS.map(([key]) => (isHidden(week[key]) ? `< ${below}` : week[key]))]);
  return [header, ...rows].map((row) => row.map(quote).join(",")).join("\r\n") + "\r\n";
}

$("download-csv").addEventListener("click", () => {
  const blob = new Blob([figuresCsv(loadedWeeks)], { type: "text/csv;charset=utf-8" });
  const link = el("a", { href: URL.createObjectURL(blob), download: "oversight-figures.csv" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
});
$("print-figures").addEventListener("click", () => window.print());

loadFigures().catch((error) => toast(error.message, "error"));
loadHistory().catch((error) => toast(error.message, "error"));
