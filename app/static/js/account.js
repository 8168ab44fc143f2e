// My account: API tokens (made here, shown once, revoked here), password, e-mail settings,
// where I am signed in ("sign out everywhere") and my security log. All of it is mine only.
import { $, api, confirmDialog, el, showError, t, timeEl, toast } from "./kit.js";

// --- API tokens -----------------------------------------------------------------------------

function tokenRow(token) {
  return el(
    "tr",
    { "data-token-id": token.id },
    el("td", {}, el("strong", { text: token.label || t("(no label)") })),
    el("td", {}, timeEl(token.created_at)),
    el("td", {}, token.last_used_at ? timeEl(token.last_used_at, "relative") : el("span", { class: "muted", text: t("never") })),
    el(
      "td",
      { class: "right" },
      el("button", { type: "button", class: "button small danger-outline", text: t("Revoke"), "data-action": "revoke" }),
    ),
  );
}

async function loadTokens() {
  const { tokens } = await api("GET", "/api/v1/me/tokens");
  const body = $("token-rows");
  body.replaceChildren(...tokens.map(tokenRow));
  if (!tokens.length) body.append(el("tr", {}, el("td", { colSpan: 4, class: "muted", text: t("No API tokens. You need one only for scripts or the agent desktop.") })));
}

function showToken(token) {
  $("token-value").value = token;
  $("token-dialog").showModal();
  $("token-value").select();
}

$("token-copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("token-value").value);
    toast(t("Copied."));
  } catch (error) {
    $("token-value").select();
    toast(t("Select the token and copy it (Ctrl+C)."));
  }
});
$("token-close").addEventListener("click", () => $("token-dialog").close());
$("token-dialog").addEventListener("close", () => {
  $("token-value").value = "";
});

$("token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const made = await api("POST", "/api/v1/me/tokens", { label: $("token-label").value.trim() });
    event.target.reset();
    showToken(made.token);
    await Promise.all([loadTokens(), loadLog()]);
  } catch (error) {
    toast(error.message, "error");
  }
});

$("token-rows").addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action='revoke']");
  if (!button) return;
  const id = button.closest("tr").dataset.tokenId;
  const ok = await confirmDialog({
    title: t("Revoke this token?"),
    body: t("Anything that uses it stops working at once. This cannot be undone."),
    confirmLabel: t("Revoke"),
    danger: true,
  });
  if (!ok) return;
  try {
    await api("DELETE", `/api/v1/me/tokens/${id}`);
    toast(t("Token revoked."));
    await Promise.all([loadTokens(), loadLog()]);
  } catch (error) {
    toast(error.message, "error");
  }
});

// --- password and e-mail --------------------------------------------------------------------

// An account from the identity provider has no password form (its password is kept there).
$("password-form")?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const box = $("password-error");
  showError(box, "");
  const current = $("current-password");
  const next = $("new-password").value;
  if (next.length < 12) return showError(box, t("A password needs at least 12 characters."));
  if (next !== $("new-password-2").value) return showError(box, t("The two new passwords differ."));
  try {
    await api("POST", "/api/v1/me/password", {
      current_password: current ? current.value : null,
      new_password: next,
    });
    // The session changed (every other one ended): reload for the new CSRF token.
    toast(t("Password saved. You are signed out everywhere else."));
    setTimeout(() => window.location.reload(), 800);
  } catch (error) {
    showError(box, error.message);
  }
});

$("email-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const box = $("email-error");
  showError(box, "");
  const body = { email: $("email").value.trim() || null };
  const password = $("email-password");
  if (password) body.current_password = password.value;
  try {
    await api("PATCH", "/api/v1/me", body);
    if (password) password.value = "";
    toast(t("E-mail address saved."));
    await loadLog();
  } catch (error) {
    showError(box, error.message);
  }
});

$("email-notifications").addEventListener("change", async (event) => {
  try {
    await api("PATCH", "/api/v1/me", { email_notifications: event.target.checked });
    toast(event.target.checked ? t("E-mail notifications on.") : t("E-mail notifications off."));
  } catch (error) {
    event.target.checked = !event.target.checked;
    toast(error.message, "error");
  }
});

// --- sessions -------------------------------------------------------------------------------

async function loadSessions() {
  const body = await api("GET", "/api/v1/me/sessions");
  $("session-rules").textContent = t("A session ends after %(idle)s minutes without use, and after %(max)s hours in any case.", { idle: body.idle_minutes, max: body.max_hours });
  $("session-list").replaceChildren(
    ...body.sessions.map((s) =>
      el(
        "li",
        {},
        el("span", { text: s.current ? t("This browser") : t("Another browser") }),
        el("span", { class: "muted small" }, " · ", t("signed in"), " ", timeEl(s.created_at), ", ", t("last used"), " ", timeEl(s.last_seen_at, "relative")),
      ),
    ),
  );
}

$("sign-out-everywhere").addEventListener("click", async () => {
  const ok = await confirmDialog({
    title: t("Sign out everywhere?"),
    body: t("Every browser signed in as you is signed out, this one too. Your API tokens keep working (revoke them above if you need to)."),
    confirmLabel: t("Sign out everywhere"),
    danger: true,
  });
  if (!ok) return;
  try {
    await api("DELETE", "/api/v1/me/sessions");
    window.location.assign("/login");
  } catch (error) {
    toast(error.message, "error");
  }
});

// --- security log ---------------------------------------------------------------------------

const METHODS = { password: t("with your password"), link: t("with a sign-in link") };

async function loadLog() {
  const { events } = await api("GET", "/api/v1/me/security-log");
  const body = $("log-rows");
  body.replaceChildren(
    ...events.map((e) =>
      el(
        "tr",
        { class: e.action === "user.reset" ? "reset" : "" },
        el("td", {}, timeEl(e.at)),
        el("td", { text: e.method ? `${e.description} ${METHODS[e.method] || ""}`.trim() : e.description }),
        el("td", { text: e.by }),
      ),
    ),
  );
  if (!events.length) body.append(el("tr", {}, el("td", { colSpan: 3, class: "muted", text: t("Nothing yet.") })));
}

Promise.all([loadTokens(), loadSessions(), loadLog()]).catch((error) => toast(error.message, "error"));
