// "Shared with me": local dates, progress bars, and a light poll while something is preparing.
(function () {
  "use strict";

  const CR = window.CR;
  const POLL_MS = 3000;
  const list = document.getElementById("shares");

  // Dates in the reader's own time zone and language; the full time stays in the tooltip.
  document.querySelectorAll("time[data-local-date]").forEach((el) => {
    const iso = el.getAttribute("datetime");
    if (!iso) return;
    const date = new Date(iso);
    el.title = CR.formatDate(iso);
    el.textContent =
      el.dataset.localDate === "day" ? date.toLocaleDateString(undefined, { dateStyle: "medium" }) : el.title;
  });

  function setBar(bar, progress) {
    const value = Math.min(100, Math.max(0, Number(progress) || 0));
    bar.style.width = `${value}%`;
    const track = bar.parentElement;
    if (track) track.setAttribute("aria-valuenow", String(value));
    const label = track && track.parentElement.querySelector(".progress-label");
    if (label) label.textContent = `${value}%`;
  }

  document.querySelectorAll("[data-progress]").forEach((bar) => setBar(bar, bar.dataset.progress));

  if (!list || list.dataset.poll !== "true") return;

  const timer = setInterval(async () => {
    let data;
    try {
      data = await CR.api("GET", list.dataset.api);
    } catch (err) {
      if (err.status === 401) clearInterval(timer);
      return;
    }
    const byId = new Map(data.shares.map((share) => [share.id, share]));
    let changed = false;
    list.querySelectorAll("tr.share-row[data-status=processing]").forEach((row) => {
      const share = byId.get(row.dataset.shareId);
      if (!share || share.status !== "processing") {
        changed = true;
        return;
      }
      const bar = row.querySelector("[data-progress]");
      if (bar) setBar(bar, share.progress);
    });
    if (changed || data.shares.some((share) => !document.querySelector(`tr[data-share-id="${CSS.escape(share.id)}"]`))) {
      clearInterval(timer);
      window.location.reload();
    }
  }, POLL_MS);
})();
