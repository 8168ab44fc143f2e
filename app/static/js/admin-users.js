// Users & teams: list, create, deactivate/reactivate, move to a team; create teams; send an
// enrolment link or reset an account (the link goes to the person's own e-mail — an admin
// never sees a token, a password or a link); set the e-mail of someone not yet signed in.
// No content and no per-person activity is ever shown here.
import { $, api, confirmDialog, el, showError, t, timeEl, tn, toast } from "./kit.js";

const roleNames = { employee: t("employee"), coach: t("coach"), admin: t("admin"), representative: t("representative") };
let users = [];
let teams = [];
let me = null;

function teamSelect(user) {
  const select = el("select", { class: "team-select", "aria-label": t("Team of %(name)s", { name: user.name }), "data-action": "team" });
  select.append(el("option", { value: "", text: t("No team") }));
  teams.forEach((team) => {
    const option = el("option", { value: team.id, text: team.name });
    if (user.team && user.team.id === team.id) option.selected = true;
    select.append(option);
  });
  return select;
}

function button(text, action, extra) {
  return el("button", { type: "button", class: "button small", text, "data-action": action, ...(extra || {}) });
}

// People of the organisation's identity provider have no password here and get no link: their
// access is managed there (the API refuses it too).
function linkButton(user) {
  if (!user.active || user.source === "provider") return null;
  return user.enrolled ? button(t("Reset…"), "reset") : button(t("Send enrolment link"), "enrol");
}

function emailCell(user) {
  const address = user.email
    ? el("span", { class: "email", text: user.email })
    : el("span", { class: "email muted", text: t("no e-mail") });
  if (user.enrolled) return address;
  return el("span", { class: "email-edit" }, address, " ", el("button", { type: "button", class: "link-button small", text: t("edit"), "data-action": "email", "aria-label": t("Edit the e-mail address of %(name)s", { name: user.name }) }));
}

function sourceLabel(user) {
  const text =
    user.source === "provider"
      ? t("Signs in with %(provider)s", { provider: $("user-rows").dataset.providerName })
      : t("Local account");
  return el("span", { class: `source small ${user.source === "provider" ? "provider" : "muted"}`, text, "data-source": user.source });
}

function row(user) {
  const isMe = me && me.id === user.id;
  const toggle = button(user.active ? t("Deactivate") : t("Reactivate"), user.active ? "deactivate" : "reactivate", {
    class: `button small ${user.active ? "danger-outline" : ""}`,
    disabled: isMe,
    title: isMe ? t("You cannot deactivate yourself") : "",
  });
  const status = user.active
    ? el("span", { class: "badge ok", text: t("Active") })
    : el("span", { class: "badge deleted", text: t("Deactivated") });
  return el(
    "tr",
    { "data-user-id": user.id, class: user.active ? "" : "inactive" },
    el(
      "td",
      { class: "person" },
      el("strong", { class: "person-name", text: user.name }),
      isMe ? el("span", { class: "muted small", text: t(" (you)") }) : null,
      el("span", { class: "login mono", text: user.login }),
      emailCell(user),
      sourceLabel(user),
    ),
    el("td", {}, el("span", { class: `role-pill ${user.role}`, text: roleNames[user.role] || user.role })),
    el("td", {}, teamSelect(user)),
    el("td", {}, status, user.enrolled ? null : el("span", { class: "badge pending", text: t("Not signed in yet") })),
    el("td", { class: "right" }, el("div", { class: "actions" }, linkButton(user), toggle)),
  );
}

function render() {
  const query = $("user-filter").value.trim().toLowerCase();
  const role = $("role-filter").value;
  const matches = (user) =>
    [user.name, user.login, user.email || ""].some((text) => text.toLowerCase().includes(query));
  const shown = users.filter((user) => (!role || user.role === role) && (!query || matches(user)));
  const body = $("user-rows");
  body.replaceChildren(...shown.map(row));
  if (!shown.length) body.append(el("tr", {}, el("td", { colSpan: 5, class: "muted", text: t("Nobody matches.") })));
  $("user-count").textContent = `${users.length}`;
}

function renderTeams() {
  const list = $("team-list");
  list.replaceChildren(...teams.map((team) => el("li", {}, el("span", { class: "team-dot", "aria-hidden": "true" }), team.name)));
  if (!teams.length) list.append(el("li", { class: "muted", text: t("No teams yet.") }));
  const select = $("new-team");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "", text: t("No team") }), ...teams.map((team) => el("option", { value: team.id, text: team.name })));
  select.value = chosen;
}

async function loadMail() {
  const body = await api("GET", "/api/v1/admin/mail");
  $("mail-summary").textContent = body.failed
    ? [
        tn("%(num)s message could not be sent after every retry.", "%(num)s messages could not be sent after every retry.", body.failed),
        body.queued ? tn("%(num)s message waiting.", "%(num)s messages waiting.", body.queued) : "",
        t("Check the mail server (CR_SMTP_URL), then send the link again."),
      ]
        .filter(Boolean)
        .join(" ")
    : body.queued
      ? tn("%(num)s message waiting to be sent. Nothing has failed.", "%(num)s messages waiting to be sent. Nothing has failed.", body.queued)
      : t("Nothing waiting, nothing failed.");
  $("mail-failures").replaceChildren(
    ...body.failures.map((f) =>
      el(
        "li",
        {},
        el("span", { class: "mono", text: f.login || "—" }),
        " · ",
        f.kind === "reset" ? t("reset link") : t("enrolment link"),
        " · ",
        timeEl(f.failed_at),
        el("span", { class: "muted small", text: [" ", tn("%(num)s attempt", "%(num)s attempts", f.attempts), f.error || ""].join(" · ") }),
      ),
    ),
  );
}

async function load() {
  const [userBody, teamBody, meBody] = await Promise.all([
    api("GET", "/api/v1/admin/users"),
    api("GET", "/api/v1/admin/teams"),
    api("GET", "/api/v1/me"),
  ]);
  users = userBody.users.sort((a, b) => a.name.localeCompare(b.name));
  teams = teamBody.teams;
  me = meBody;
  renderTeams();
  render();
  loadMail().catch((error) => {
    $("mail-summary").textContent = error.message;
  });
}

function replaceUser(updated) {
  users = users.map((user) => (user.id === updated.id ? updated : user));
  render();
}

// --- the e-mail dialog (only for people who have not signed in yet) -------------------------

let editing = null;
function openEmail(user) {
  editing = user;
  $("email-for").textContent = t("For %(name)s (%(login)s).", { name: user.name, login: user.login });
  $("email-value").value = user.email || "";
  showError($("email-error"), "");
  $("email-dialog").showModal();
  $("email-value").focus();
}
$("email-cancel").addEventListener("click", () => $("email-dialog").close());
$("email-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    replaceUser(await api("PATCH", `/api/v1/admin/users/${editing.id}`, { email: $("email-value").value.trim() || null }));
    $("email-dialog").close();
    toast(t("E-mail address saved."));
  } catch (error) {
    showError($("email-error"), error.message);
  }
});

// --- row actions ----------------------------------------------------------------------------

async function sendEnrolment(user) {
  const sent = await api("POST", `/api/v1/admin/users/${user.id}/enrolment-link`);
  toast(t("An enrolment link is on its way to %(email)s.", { email: sent.email }));
}

async function reset(user) {
  const ok = await confirmDialog({
    title: t("Reset the account of %(name)s?", { name: user.name }),
    body: [
      t("Every session and API token of theirs ends at once. A single-use link to choose a new password goes to their own e-mail address; you do not see it."),
      t("They are told at their next sign-in and in their security log, and resets are counted in oversight."),
    ],
    confirmLabel: t("Reset and send the link"),
    danger: true,
  });
  if (!ok) return;
  const sent = await api("POST", `/api/v1/admin/users/${user.id}/reset`);
  toast(t("%(name)s is signed out everywhere; a reset link is on its way to %(email)s.", { name: user.name, email: sent.email }));
}

async function deactivate(user, id) {
  const ok = await confirmDialog({
    title: t("Deactivate %(name)s?", { name: user.name }),
    body: t("They are signed out and their API tokens stop working. Their own recordings and shares are not touched; you can reactivate them later."),
    confirmLabel: t("Deactivate"),
    danger: true,
  });
  if (!ok) return;
  replaceUser(await api("PATCH", `/api/v1/admin/users/${id}`, { active: false }));
  toast(t("%(name)s is deactivated.", { name: user.name }));
}

const ACTIONS = {
  deactivate: (user, id) => deactivate(user, id),
  reactivate: async (user, id) => {
    replaceUser(await api("PATCH", `/api/v1/admin/users/${id}`, { active: true }));
    toast(t("%(name)s is active again.", { name: user.name }));
  },
  enrol: (user) => sendEnrolment(user),
  reset: (user) => reset(user),
  email: async (user) => openEmail(user),
};

$("user-rows").addEventListener("click", async (event) => {
  const target = event.target.closest("button[data-action]");
  if (!target || !ACTIONS[target.dataset.action]) return;
  const id = target.closest("tr").dataset.userId;
  const user = users.find((u) => u.id === id);
  showError($("users-error"), "");
  try {
    await ACTIONS[target.dataset.action](user, id);
    loadMail().catch(() => {});
  } catch (error) {
    // Long answers (no e-mail address: ask the operator) belong above the table, not a toast.
    showError($("users-error"), error.message);
  }
});

$("user-rows").addEventListener("change", async (event) => {
  const select = event.target.closest("select[data-action='team']");
  if (!select) return;
  const id = select.closest("tr").dataset.userId;
  try {
    replaceUser(await api("PATCH", `/api/v1/admin/users/${id}`, { team_id: select.value || null }));
    toast(t("Team changed."));
  } catch (error) {
    toast(error.message, "error");
  }
});

$("user-filter").addEventListener("input", render);
$("role-filter").addEventListener("change", render);

$("user-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const errorBox = $("user-error");
  showError(errorBox, "");
  const body = {
    name: $("new-name").value.trim(),
    login: $("new-login").value.trim(),
    role: $("new-role").value,
  };
  const team = $("new-team").value;
  const email = $("new-email").value.trim();
  if (team) body.team_id = team;
  if (email) body.email = email;
  let problem = "";
  if (!body.name) problem = t("Give the person's name.");
  else if (body.login.length < 2) problem = t("The login needs at least 2 characters.");
  if (problem) {
    showError(errorBox, problem);
    return;
  }
  try {
    const { enrolment_link_sent: sent, ...user } = await api("POST", "/api/v1/admin/users", body);
    users.push(user);
    users.sort((a, b) => a.name.localeCompare(b.name));
    render();
    event.target.reset();
    toast(
      sent
        ? t("%(name)s is created; an enrolment link is on its way to %(email)s.", { name: user.name, email: user.email })
        : t("%(name)s is created. Without an e-mail address, the operator's %(command)s prints their link.", { name: user.name, command: `consent-replay users reset ${user.login}` }),
    );
    loadMail().catch(() => {});
  } catch (error) {
    showError(errorBox, error.message);
  }
});

$("team-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("new-team-name").value.trim();
  if (!name) return;
  try {
    const team = await api("POST", "/api/v1/admin/teams", { name });
    teams.push(team);
    teams.sort((a, b) => a.name.localeCompare(b.name));
    renderTeams();
    render();
    event.target.reset();
    toast(t("Team “%(name)s” created.", { name: team.name }));
  } catch (error) {
    toast(error.message, "error");
  }
});

load().catch((error) => {
  $("user-rows").replaceChildren(el("tr", {}, el("td", { colSpan: 5, class: "alert alert-error", text: error.message })));
});
