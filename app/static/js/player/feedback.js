// Feedback beside the player (SPEC §13): the approved form's criteria with their scale labels,
// a comment and linked moments per criterion ("Link this moment" adds the playhead's time),
// strengths, one next step, a summary. Saved as a draft while the coach writes (created with
// the first change, then PATCHed), sent with one button. It goes with the player when the
// share ends: the coach loses it then.
import { $, api, clock, showError, t } from "../kit.js";

const SAVE_DELAY_MS = 1200;

export function createFeedback(player) {
  const root = $("feedback-panel");
  const form = $("feedback-form");
  if (!root || !form) return { clear: () => root && root.remove() };
  const state = $("feedback-state");
  const error = $("feedback-error");
  const picker = $("feedback-form-id");
  const sendButton = $("feedback-send");
  let feedbackId = root.dataset.feedbackId || "";
  let timer = 0;
  let saving = Promise.resolve();

  const block = () => form.querySelector(`.form-criteria[data-form-id="${picker.value}"]`);
  const url = (suffix) => `${root.dataset.feedbackUrl}/${feedbackId}${suffix || ""}`;

  function ratings() {
    const out = [];
    block()
      .querySelectorAll("fieldset.criterion")
      .forEach((set) => {
        const chosen = set.querySelector("input[type=radio]:checked");
        if (!chosen) return; // a rating needs a value; the rest waits for it
        const yesNo = set.dataset.yesNo === "true";
        out.push({
          criterion_id: set.dataset.criterionId,
          value: yesNo ? chosen.value === "true" : parseInt(chosen.value, 10),
          comment: set.querySelector(".criterion-comment").value,
          at_s: Array.from(set.querySelectorAll(".moment")).map((m) => parseFloat(m.dataset.at)),
        });
      });
    return out;
  }

  function content() {
    return {
      ratings: ratings(),
      strengths: form.elements.strengths.value,
      next_step: form.elements.next_step.value,
      summary: form.elements.summary.value,
    };
  }

  async function save() {
    clearTimeout(timer);
    timer = 0;
    state.textContent = t("Saving…");
    try {
      if (!feedbackId) {
        const created = await api("POST", root.dataset.createUrl, { form_id: picker.value, ...content() });
        feedbackId = created.id;
        picker.disabled = true; // the draft is written on this form now
      } else {
        await api("PATCH", url(), content());
      }
      showError(error, "");
      state.textContent = t("Draft saved at %(time)s", {
        time: new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
      });
    } catch (err) {
      state.textContent = t("Not saved");
      showError(error, err.message);
      if (err.status === 404 || err.status === 410) player.end();
      throw err;
    }
  }

  function later() {
    clearTimeout(timer);
    state.textContent = t("Unsaved changes");
    timer = setTimeout(() => {
      saving = saving.then(save).catch(() => {});
    }, SAVE_DELAY_MS);
  }

  function moment(at) {
    const wrap = document.createElement("span");
    wrap.className = "moment";
    wrap.dataset.at = String(at);
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "time-chip";
    chip.dataset.action = "seek";
    chip.textContent = clock(at);
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "link-button remove";
    remove.dataset.action = "unlink";
    remove.textContent = t("remove");
    remove.setAttribute("aria-label", t("Remove the moment %(time)s", { time: clock(at) }));
    wrap.append(chip, remove);
    return wrap;
  }

  function linkMoment(set) {
    const at = Math.round((player.video.currentTime || 0) * 10) / 10;
    const list = set.querySelector(".moment-list");
    if (Array.from(list.children).some((m) => parseFloat(m.dataset.at) === at)) return;
    list.append(moment(at));
    later();
  }

  form.addEventListener("input", later);
  form.addEventListener("change", (event) => {
    if (event.target !== picker) return later();
    form.querySelectorAll(".form-criteria").forEach((b) => {
      b.hidden = b.dataset.formId !== picker.value;
    });
  });
  form.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const set = button.closest("fieldset.criterion");
    if (button.dataset.action === "link-moment") linkMoment(set);
    if (button.dataset.action === "seek") player.seek(parseFloat(button.closest(".moment").dataset.at));
    if (button.dataset.action === "unlink") {
      button.closest(".moment").remove();
      later();
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    sendButton.disabled = true;
    try {
      await (saving = saving.then(save));
      await api("POST", url("/send"));
      form.replaceWith(sentNotice());
      state.textContent = t("Sent");
    } catch (err) {
      showError(error, err.message);
      sendButton.disabled = false;
    }
  });

  function sentNotice() {
    const notice = document.createElement("p");
    notice.className = "alert alert-success";
    notice.id = "feedback-sent";
    notice.textContent = t("Sent to %(name)s. They are told by e-mail (if they want that) and can reply.", {
      name: player.data.employeeName,
    });
    return notice;
  }

  return {
    clear: () => {
      clearTimeout(timer);
      root.remove();
    },
  };
}
