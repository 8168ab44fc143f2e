// The employee's Feedback page: acknowledge (with an optional reply and whether they agree),
// and delete (shredded: the key is destroyed). The page is rendered by the server; after a
// change it is loaded again.
import { api, confirmDialog, showError, t, toast, upgradeTimes } from "./kit.js";

function agreeOf(form) {
  const chosen = form.querySelector('input[name="agree"]:checked');
  if (!chosen || chosen.value === "") return null;
  return chosen.value === "true";
}

async function acknowledge(item, form) {
  const error = form.querySelector(".form-error");
  const button = form.querySelector("button[type=submit]");
  showError(error, "");
  button.disabled = true;
  try {
    await api("POST", item.dataset.ackUrl, {
      reply: form.elements.reply.value,
      agree: agreeOf(form),
    });
    window.location.reload();
  } catch (err) {
    showError(error, err.message);
    button.disabled = false;
  }
}

async function remove(button) {
  const sure = await confirmDialog({
    title: t("Delete this feedback?"),
    body: [
      t("It is deleted for good: the key that protects it is destroyed, so nobody can read it again."),
      t("Download your data first if you want to keep a copy."),
    ],
    confirmLabel: t("Delete"),
    danger: true,
  });
  if (!sure) return;
  try {
    await api("DELETE", button.dataset.deleteUrl);
    window.location.reload();
  } catch (err) {
    toast(err.message, "error");
  }
}

document.querySelectorAll(".feedback-item").forEach((item) => {
  const form = item.querySelector('form[data-action="acknowledge"]');
  if (form) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      acknowledge(item, form);
    });
  }
  const del = item.querySelector('[data-action="delete"]');
  if (del) del.addEventListener("click", () => remove(del));
});
upgradeTimes(document);
