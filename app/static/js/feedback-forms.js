// What the admin's and the representative's pages both show of a feedback form: its criteria
// with their scales, its status, and what changed since its previous version.
import { el } from "./kit.js";

export const STATUS = {
  proposed: "Awaiting approval",
  approved: "Approved",
  rejected: "Rejected",
  retired: "Retired",
};

function scaleText(scale) {
  if (scale === "yes_no") return "yes or no";
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
  if (!changes) return el("p", { class: "muted small", text: "A new form (no earlier version)." });
  const lines = [];
  if (changes.name) lines.push(["changed", `Name: “${changes.name.before}” → “${changes.name.after}”`]);
  if (changes.language) lines.push(["changed", `Language: ${changes.language.before} → ${changes.language.after}`]);
  changes.added.forEach((c) => lines.push(["added", `Added: ${c.title} (${scaleText(c.scale)})`]));
  changes.removed.forEach((c) => lines.push(["removed", `Removed: ${c.title}`]));
  changes.changed.forEach((c) => {
    const parts = c.fields.map((field) =>
      field === "scale"
        ? `scale ${scaleText(c.before.scale)} → ${scaleText(c.after.scale)}`
        : `${field} “${c.before[field] || ""}” → “${c.after[field] || ""}”`,
    );
    lines.push(["changed", `Changed ${c.after.title}: ${parts.join("; ")}`]);
  });
  if (!lines.length) lines.push(["changed", "Nothing differs from the previous version."]);
  return el(
    "div",
    { class: "changes" },
    el("strong", { class: "small", text: `Changes since version ${changes.previous_version}` }),
    lines.map(([kind, text]) => el("span", { class: `change-${kind}`, text })),
  );
}
