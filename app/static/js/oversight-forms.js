// The representative's feedback forms: proposals to approve or reject (with a reason), each
// showing what changed since its previous version; and every version with its decision.
import { $, api, el, showError, t, timeEl, toast } from "./kit.js";
import { changesList, criteriaList, statusBadge } from "./feedback-forms.js";

function proposal(form) {
  const reasonId = `reason-${form.id}`;
  const reason = el("textarea", { id: reasonId, rows: 2, maxLength: 1000 });
  const error = el("p", { class: "form-error small", role: "alert", hidden: true });
  const decide = async (verb) => {
    showError(error, "");
    try {
      const body = verb === "reject" ? { reason: reason.value } : undefined;
      await api("POST", `/api/v1/oversight/feedback-forms/${form.id}/${verb}`, body);
      toast(verb === "approve" ? t("Approved: coaches can use it now.") : t("Rejected. The admin sees your reason."));
      load();
    } catch (err) {
      showError(error, err.message);
    }
  };
  const approve = el("button", { type: "button", class: "button primary", text: t("Approve") });
  const reject = el("button", { type: "button", class: "button danger-outline", text: t("Reject") });
  approve.addEventListener("click", () => decide("approve"));
  reject.addEventListener("click", () => decide("reject"));
  return el(
    "article",
    { class: "proposal", "data-form-id": form.id },
    el("h3", {}, el("span", { class: "user-text", lang: form.language, text: form.name }), ` · ${t("version %(version)s", form)}`),
    changesList(form.changes),
    criteriaList(form.criteria),
    el(
      "label",
      { htmlFor: reasonId },
      t("Reason, if you reject it"),
      el("span", { class: "hint", text: t("The admin who proposed it reads this.") }),
      reason,
    ),
    error,
    el("div", { class: "row" }, approve, reject),
  );
}

function historyRow(form) {
  return el(
    "tr",
    {},
    el(
      "td",
      {},
      el("strong", { class: "user-text", lang: form.language, text: form.name }),
      el("span", { class: "muted small", text: ` · ${t("version %(version)s", form)}` }),
      // The reason is the representative's own words (the whole line is left out of word checks).
      form.reason ? el("p", { class: "small muted user-text", text: t("Reason: %(reason)s", form) }) : null,
    ),
    el("td", {}, statusBadge(form)),
    el("td", {}, timeEl(form.created_at, "day")),
    el("td", {}, form.decided_at ? timeEl(form.decided_at, "day") : "–"),
  );
}

async function load() {
  const { forms } = await api("GET", "/api/v1/oversight/feedback-forms");
  const waiting = forms.filter((f) => f.status === "proposed");
  $("form-proposals").replaceChildren(
    ...(waiting.length ? waiting.map(proposal) : [el("p", { class: "proposal muted", text: t("No proposal waits for you.") })]),
  );
  $("form-history").replaceChildren(...forms.map(historyRow));
}

load().catch((err) => toast(err.message, "error"));
