// My progress: the next-steps checklist remembers its ticks in this browser only (nothing
// about how an employee works on their next steps goes to the server).
import { upgradeTimes } from "./kit.js";

const KEY = "consent-replay:next-steps-done";

function load() {
  try {
    return new Set(JSON.parse(localStorage.getItem(KEY) || "[]"));
  } catch {
    return new Set();
  }
}

const done = load();
document.querySelectorAll("#checklist input[data-step]").forEach((box) => {
  box.checked = done.has(box.dataset.step);
  box.addEventListener("change", () => {
    if (box.checked) done.add(box.dataset.step);
    else done.delete(box.dataset.step);
    localStorage.setItem(KEY, JSON.stringify([...done]));
  });
});
upgradeTimes(document);
