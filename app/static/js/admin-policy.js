// Policy: save the changed limits and consent text as a new version.
import { $, api, showError, t, timeEl, toast, upgradeTimes } from "./kit.js";

upgradeTimes(document);

const form = $("policy-form");
const MIB = 1024 * 1024;

function current() {
  return {
    max_share_days: parseInt(form.dataset.maxShareDays, 10),
    draft_lifetime_hours: parseInt(form.dataset.draftLifetimeHours, 10),
    max_upload_mib: parseInt(form.dataset.uploadMib, 10),
    consent_text: $("consent-text").defaultValue.trim(),
    consent_text_nb: $("consent-text-nb").defaultValue.trim(),
  };
}

function fail(message) {
  showError($("policy-error"), message);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  fail("");
  const was = current();
  const days = parseInt($("max-share-days").value, 10);
  const hours = parseInt($("draft-hours").value, 10);
  const upload = parseInt($("upload-mib").value, 10);
  const text = $("consent-text").value.trim();
  const textNb = $("consent-text-nb").value.trim();
  const hardLimit = parseInt(form.dataset.hardLimitMib, 10);
  if (!Number.isInteger(days) || days < 1 || days > 365) return fail(t("The longest share must be 1 to 365 days."));
  if (!Number.isInteger(hours) || hours < 1 || hours > 720) return fail(t("The draft lifetime must be 1 to 720 hours."));
  if (!Number.isInteger(upload) || upload < 1 || upload > hardLimit) return fail(t("The upload limit must be 1 to %(limit)s MiB.", { limit: hardLimit }));
  if (text.length < 20) return fail(t("The consent text needs at least 20 characters."));
  if (textNb && textNb.length < 20) return fail(t("The Norwegian consent text needs at least 20 characters (or leave it empty)."));
  const body = {};
  if (days !== was.max_share_days) body.max_share_days = days;
  if (hours !== was.draft_lifetime_hours) body.draft_lifetime_hours = hours;
  if (upload !== was.max_upload_mib) body.max_upload_bytes = upload * MIB;
  if (text !== was.consent_text) body.consent_text = text;
  if (textNb !== was.consent_text_nb) body.consent_texts = { nb: textNb || null };
  if (!Object.keys(body).length) {
    toast(t("Nothing changed."));
    return;
  }
  $("policy-save").disabled = true;
  try {
    const saved = await api("PUT", "/api/v1/admin/policy", body);
    form.dataset.version = saved.version;
    form.dataset.maxShareDays = saved.max_share_days;
    form.dataset.draftLifetimeHours = saved.draft_lifetime_hours;
    form.dataset.uploadMib = Math.floor(saved.max_upload_bytes / MIB);
    $("consent-text").defaultValue = saved.consent_text;
    $("consent-text-nb").defaultValue = saved.consent_texts.nb || "";
    $("policy-version").textContent = t("Version %(version)s", { version: saved.version });
    $("policy-changed").replaceChildren(
      t("Version %(version)s", { version: saved.version }),
      ", ",
      t("in force since"),
      " ",
      timeEl(saved.created_at),
      ".",
    );
    toast(t("Saved as version %(version)s.", { version: saved.version }));
  } catch (error) {
    fail(error.message);
  } finally {
    $("policy-save").disabled = false;
  }
});
