// "Shared with me": local dates, progress bars, and a light poll while something is preparing.
import { $, api, setProgress, upgradeTimes } from "./kit.js";

const POLL_MS = 3000;

function pollPreparing(list) {
  const timer = setInterval(async () => {
    let data;
    try {
      data = await api("GET", list.dataset.api);
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
      if (bar) setProgress(bar, share.progress);
    });
    if (changed || data.shares.some((share) => !document.querySelector(`tr[data-share-id="${CSS.escape(share.id)}"]`))) {
      clearInterval(timer);
      window.location.reload();
    }
  }, POLL_MS);
}

upgradeTimes(document);
document.querySelectorAll("[data-progress]").forEach((bar) => setProgress(bar, bar.dataset.progress));
const list = $("shares");
if (list && list.dataset.poll === "true") pollPreparing(list);
