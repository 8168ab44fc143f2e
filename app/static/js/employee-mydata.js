// My data: deletion certificates of deleted recordings, as files.
(function () {
  "use strict";
  const K = window.CRK;
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-action^='certificate']");
    if (!button) return;
    const row = button.closest("[data-recording-id]");
    const token = row.dataset.certificate;
    if (!token) return;
    if (button.dataset.action === "certificate") K.downloadToken("certificate", row.dataset.recordingId, token);
    else K.downloadReadable("certificate", row.dataset.recordingId, token);
  });
})();
