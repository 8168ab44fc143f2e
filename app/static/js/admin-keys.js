// Keys: KEK versions with how many data keys each wraps; rotate and retire.
import { $, api, confirmDialog, el, t, timeEl, tn, toast } from "./kit.js";

const STATES = { active: t("Active"), retired: t("Retired — kept while it wraps keys"), destroyed: t("Destroyed") };

function result(text, kind) {
  const box = $("key-result");
  box.textContent = text;
  box.className = `alert alert-${kind || "success"}`;
}

// Whether a version still wraps any data key (the API gives no counts on purpose).
const inUse = (v) => (typeof v.in_use === "boolean" ? v.in_use : v.data_keys > 0);

async function load() {
  const { versions } = await api("GET", "/api/v1/admin/keys");
  const sorted = [...versions].sort((a, b) => b.version - a.version);
  $("key-rows").replaceChildren(
    ...sorted.map((v) =>
      el(
        "tr",
        { "data-version": v.version },
        el("td", {}, el("strong", { text: t("v%(version)s", { version: v.version }) }), v.current ? el("span", { class: "badge ok current-badge", text: t("current") }) : null),
        el("td", {}, el("span", { class: `badge ${v.state === "active" ? "ready" : "deleted"}`, text: STATES[v.state] || v.state })),
        el("td", {}, v.created_at ? timeEl(String(v.created_at)) : "–"),
        el("td", { class: "right in-use", text: inUse(v) ? t("Yes") : t("No") }),
      ),
    ),
  );
  if (!sorted.length) $("key-rows").replaceChildren(el("tr", {}, el("td", { colSpan: 4, class: "muted", text: t("No key versions.") })));
  const currentVersion = sorted.find((v) => v.current);
  $("stat-current").textContent = currentVersion ? t("v%(version)s", { version: currentVersion.version }) : "–";
  $("stat-keys").textContent = String(sorted.filter(inUse).length);
  $("stat-versions").textContent = String(sorted.filter((v) => v.state !== "destroyed").length);
}

$("rotate").addEventListener("click", async () => {
  const ok = await confirmDialog({
    title: t("Rotate the key-encryption key?"),
    body: t("A new KEK version is created and every live data key is rewrapped under it. Nothing is decrypted and nobody loses access. It can take a moment with many keys."),
    confirmLabel: t("Rotate now"),
  });
  if (!ok) return;
  const button = $("rotate");
  button.disabled = true;
  button.textContent = t("Rotating…");
  try {
    const report = await api("POST", "/api/v1/admin/keys/rotate");
    result(t("Rotated: version %(version)s is current, and every live data key is rewrapped under it. Retire the old version when it no longer wraps any key.", { version: report.new_version }));
    await load();
  } catch (error) {
    result(error.message, "error");
  } finally {
    button.disabled = false;
    button.textContent = t("Rotate now");
  }
});

$("retire").addEventListener("click", async () => {
  const ok = await confirmDialog({
    title: t("Retire unused versions?"),
    body: t("KEK versions that no data key uses any more are destroyed for good. Old backups wrapped under them can then never be unwrapped."),
    confirmLabel: t("Retire"),
    danger: true,
  });
  if (!ok) return;
  try {
    const { destroyed } = await api("POST", "/api/v1/admin/keys/retire");
    const names = destroyed.map((v) => `v${v}`).join(", ");
    result(destroyed.length ? tn("Destroyed version %(names)s.", "Destroyed versions %(names)s.", destroyed.length, { names }) : t("Nothing to retire: every version still wraps data keys, or only the current one is left."), destroyed.length ? "success" : "info");
    await load();
  } catch (error) {
    result(error.message, "error");
  }
});

load().catch((error) => toast(error.message, "error"));
