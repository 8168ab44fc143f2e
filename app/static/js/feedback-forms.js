// What the admin's and the representative's pages both show of a feedback form: its criteria
// with their scales, its status, and what changed since its previous version.
import { el, t } from "./kit.js";

export const STATUS = {
  proposed: t("Awaiting approval"),
  approved: t("Approved"),
  rejected: t("Rejected"),
  retired: t("Retired"),
};

function scaleText(scale) {
  if (scale === "yes_no") return t("yes or no");
  return `${scale.min}–${scale.max}: ${scale.labels.join(", ")}`;
}

export function statusBadge(form) {
  return el("span", { class: `badge ${form.status}`, text: STATUS[form.status] || form.status });
}

export function criteriaList(criteria) {
  return el(
    "ul",
    { class: "form-criteria-list" },
    criteria.map((c) => el("li", {}, el("strong", { text: c.title }), ` (${scaleText(c.scale)})`)),
  );
}

// The difference from the previous version, in words: what the representative approves.
export function changesList(changes) {
  if (!changes) return el("p", { class: "muted small", text: t("A new form (no earlier version).") });
  const lines = [];
  if (changes.name) lines.push(["changed", t("Name: “%(before)s” → “%(after)s”", changes.name)]);
  if (changes.language) lines.push(["changed", t("Language: %(before)s → %(after)s", changes.language)]);
  changes.added.forEach((c) => lines.push(["added", t("Added: %(title)s (%(scale)s)", { title: c.title, scale: scaleText(c.scale) })]));
  changes.removed.forEach((c) => lines.push(["removed", t("Removed: %(title)s", c)]));
  changes.changed.forEach((c) => {
    const parts = c.fields.map((field) =>
      field === "scale"
        ? t("scale %(before)s → %(after)s", { before: scaleText(c.before.scale), after: scaleText(c.after.scale) })
        : t("%(field)s “%(before)s” → “%(after)s”", {
            field: field === "title" ? t("title") : t("description"),
            before: c.before[field] || "",
            after: c.after[field] || "",
          }),
    );
    lines.push(["changed", t("Changed %(title)s: %(what)s", { title: c.after.title, what: parts.join("; ") })]);
  });
  if (!lines.length) lines.push(["changed", t("Nothing differs from the previous version.")]);
  return el(
    "div",
    { class: "changes" },
    el("strong", { class: "small", text: t("Changes since version %(version)s", { version: changes.previous_version }) }),
    lines.map(([kind, text]) => el("span", { class: `change-${kind}`, text })),
  );
}
