// The admin's feedback forms: propose one (or a new version of one), see every version with
// its status and a rejection's reason, retire an approved one. The representative decides.
import { $, api, confirmDialog, el, showError, t, timeEl, toast } from "./kit.js";
import { criteriaList, statusBadge } from "./feedback-forms.js";

const DEFAULT_LABELS = {
  3: t("Not yet, Sometimes, Consistently"),
  4: t("Not yet, Sometimes, Often, Always"),
  5: t("Not yet, Rarely, Sometimes, Often, Always"),
};
const editor = $("criteria-editor");
const proposal = $("form-proposal");
let replaces = null;

function slug(text, taken) {
  const base = (text.toLowerCase().normalize("NFKD").replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "") || "criterion").slice(0, 36);
  let id = base;
  for (let n = 2; taken.has(id); n += 1) id = `${base}-${n}`;
  taken.add(id);
  return id;
}

function addRow(criterion) {
  const row = $("criterion-template").content.firstElementChild.cloneNode(true);
  const field = (name) => row.querySelector(`[data-field="${name}"]`);
  const scale = field("scale");
  const labels = field("labels");
  scale.addEventListener("change", () => {
    labels.disabled = scale.value === "yes_no";
    labels.value = DEFAULT_LABELS[scale.value] || "";
  });
  if (criterion) {
    row.dataset.id = criterion.id;
    field("title").value = criterion.title;
    field("description").value = criterion.description || "";
    if (criterion.scale === "yes_no") scale.value = "yes_no";
    else scale.value = String(criterion.scale.max);
    labels.value = criterion.scale === "yes_no" ? "" : criterion.scale.labels.join(", ");
  } else {
    labels.value = DEFAULT_LABELS[4];
  }
  labels.disabled = scale.value === "yes_no";
  row.querySelector('[data-action="remove"]').addEventListener("click", () => row.remove());
  editor.append(row);
  return row;
}

function criteria() {
  const taken = new Set(Array.from(editor.children).map((row) => row.dataset.id).filter(Boolean));
  return Array.from(editor.children).map((row) => {
    const field = (name) => row.querySelector(`[data-field="${name}"]`).value.trim();
    const steps = field("scale");
    const title = field("title");
    return {
      // A criterion keeps its id across versions, so the representative sees it as changed.
      id: row.dataset.id || slug(title, taken),
      title,
      description: field("description"),
      scale:
        steps === "yes_no"
          ? "yes_no"
          : { min: 1, max: Number(steps), labels: field("labels").split(",").map((l) => l.trim()) },
    };
  });
}

function startOver(form) {
  replaces = form ? form.id : null;
  editor.replaceChildren();
  proposal.reset();
  showError($("proposal-error"), "");
  if (form) {
    $("form-name").value = form.name;
    $("form-language").value = form.language;
    form.criteria.forEach(addRow);
  } else addRow();
  const note = $("replaces-note");
  note.hidden = !form;
  note.textContent = form
    ? t("A new version of “%(name)s” (now version %(version)s). The representative approves it before coaches can use it.", form)
    : "";
  $("cancel-change").hidden = !form;
  $("propose").textContent = form ? t("Propose this version") : t("Propose");
}

function row(form) {
  const actions = el("td", { class: "right nowrap" });
  const change = el("button", { type: "button", class: "button small", text: t("Propose a change") });
  change.addEventListener("click", () => {
    startOver(form);
    $("form-name").focus();
  });
  actions.append(change);
  if (form.status === "approved") {
    const retire = el("button", { type: "button", class: "button small danger-outline", text: t("Retire") });
    retire.addEventListener("click", async () => {
      const sure = await confirmDialog({
        title: t("Retire “%(name)s”?", form),
        body: t("Coaches can no longer choose it. Feedback already written on it stays readable for the employees."),
        confirmLabel: t("Retire"),
        danger: true,
      });
      if (!sure) return;
      try {
        await api("POST", `/api/v1/admin/feedback-forms/${form.id}/retire`);
        load();
      } catch (err) {
        toast(err.message, "error");
      }
    });
    actions.append(" ", retire);
  }
  return el(
    "tr",
    { "data-form-id": form.id },
    el(
      "td",
      {},
      el("strong", { text: form.name }),
      el("span", { class: "muted small", text: ` · ${t("version %(version)s", form)} · ${form.language}` }),
      criteriaList(form.criteria),
      form.reason ? el("p", { class: "small change-removed", text: t("Reason for rejection: %(reason)s", form) }) : null,
    ),
    el("td", {}, statusBadge(form)),
    el("td", {}, timeEl(form.created_at, "day")),
    actions,
  );
}

async function load() {
  const { forms } = await api("GET", "/api/v1/admin/feedback-forms");
  $("form-rows").replaceChildren(
    ...(forms.length ? forms.map(row) : [el("tr", {}, el("td", { colSpan: 4, class: "muted", text: t("No forms yet.") }))]),
  );
}

proposal.addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("proposal-error");
  showError(error, "");
  try {
    await api("POST", "/api/v1/admin/feedback-forms", {
      name: $("form-name").value,
      language: $("form-language").value,
      criteria: criteria(),
      ...(replaces ? { replaces } : {}),
    });
    toast(t("Proposed. The representative decides whether it can be used."));
    startOver(null);
    load();
  } catch (err) {
    showError(error, err.message);
  }
});
$("add-criterion").addEventListener("click", () => addRow().querySelector("input").focus());
$("cancel-change").addEventListener("click", () => startOver(null));
startOver(null);
load().catch((err) => toast(err.message, "error"));
