// My data: deletion certificates of deleted recordings, as files.
import { upgradeTimes } from "./kit.js";
import { downloadReadable, downloadToken } from "./receipts.js";

upgradeTimes(document);

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-action^='certificate']");
  if (!button) return;
  const row = button.closest("[data-recording-id]");
  const token = row.dataset.certificate;
  if (!token) return;
  if (button.dataset.action === "certificate") downloadToken("certificate", row.dataset.recordingId, token);
  else downloadReadable("certificate", row.dataset.recordingId, token);
});
