// Users & teams: list, create (the token is shown once), deactivate/reactivate, reset token,
// move to a team; create teams. No content and no per-person activity is ever shown here.
import { $, api, confirmDialog, el, showError, toast } from "./kit.js";

let users = [];
let teams = [];
let me = null;

function teamSelect(user) {
  const select = el("select", { "aria-label": `Team of ${user.name}`, "data-action": "team" });
  select.append(el("option", { value: "", text: "No team" }));
  teams.forEach((team) => {
    const option = el("option", { value: team.id, text: team.name });
    if (user.team && user.team.id === team.id) option.selected = true;
    select.append(option);
  });
  return select;
}

function row(user) {
  const isMe = me && me.id === user.id;
  const toggle = el("button", {
    type: "button",
    class: `button small ${user.active ? "danger-outline" : ""}`,
    text: user.active ? "Deactivate" : "Reactivate",
    "data-action": user.active ? "deactivate" : "reactivate",
    disabled: isMe,
    title: isMe ? "You cannot deactivate yourself" : "",
  });
  const token = el("button", { type: "button", class: "button small", text: "New token", "data-action": "token" });
  return el(
    "tr",
    { "data-user-id": user.id, class: user.active ? "" : "inactive" },
    el(
      "td",
      { class: "person" },
      el("strong", { text: user.name }),
      isMe ? el("span", { class: "muted small", text: " (you)" }) : null,
      el("span", { class: "login mono", text: user.login }),
    ),
    el("td", {}, el("span", { class: `role-pill ${user.role}`, text: user.role })),
    el("td", {}, teamSelect(user)),
    el("td", {}, el("span", { class: `badge ${user.active ? "ok" : "deleted"}`, text: user.active ? "Active" : "Deactivated" })),
    el("td", { class: "right nowrap" }, token, " ", toggle),
  );
}

function render() {
  const query = $("user-filter").value.trim().toLowerCase();
  const role = $("role-filter").value;
  const shown = users.filter(
    (user) =>
      (!role || user.role === role) &&
      (!query || user.name.toLowerCase().includes(query) || user.login.toLowerCase().includes(query)),
  );
  const body = $("user-rows");
  body.replaceChildren(...shown.map(row));
  if (!shown.length) body.append(el("tr", {}, el("td", { colSpan: 5, class: "muted", text: "Nobody matches." })));
  $("user-count").textContent = `${users.length}`;
}

function renderTeams() {
  const list = $("team-list");
  list.replaceChildren(...teams.map((team) => el("li", {}, el("span", { class: "team-dot", "aria-hidden": "true" }), team.name)));
  if (!teams.length) list.append(el("li", { class: "muted", text: "No teams yet." }));
  const select = $("new-team");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "", text: "No team" }), ...teams.map((team) => el("option", { value: team.id, text: team.name })));
  select.value = chosen;
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
}

function showToken(name, token) {
  $("token-for").textContent = `For ${name}.`;
  $("token-value").value = token;
  const dialog = $("token-dialog");
  dialog.showModal();
  $("token-value").select();
}
$("token-copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("token-value").value);
    toast("Copied.");
  } catch (error) {
    $("token-value").select();
    toast("Select the token and copy it (Ctrl+C).");
  }
});
$("token-close").addEventListener("click", () => {
  $("token-value").value = "";
  $("token-dialog").close();
});
$("token-dialog").addEventListener("close", () => {
  $("token-value").value = "";
});

function replaceUser(updated) {
  users = users.map((user) => (user.id === updated.id ? updated : user));
  render();
}

$("user-rows").addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const id = button.closest("tr").dataset.userId;
  const user = users.find((u) => u.id === id);
  try {
    if (button.dataset.action === "deactivate") {
      const ok = await confirmDialog({
        title: `Deactivate ${user.name}?`,
        body: "They are signed out and their API tokens stop working. Their own recordings and shares are not touched; you can reactivate them later.",
        confirmLabel: "Deactivate",
        danger: true,
      });
      if (!ok) return;
      replaceUser(await api("PATCH", `/api/v1/admin/users/${id}`, { active: false }));
      toast(`${user.name} is deactivated.`);
    } else if (button.dataset.action === "reactivate") {
      replaceUser(await api("PATCH", `/api/v1/admin/users/${id}`, { active: true }));
      toast(`${user.name} is active again.`);
    } else if (button.dataset.action === "token") {
      const ok = await confirmDialog({
        title: `New API token for ${user.name}?`,
        body: "Every earlier token of this person stops working at once. The new one is shown once.",
        confirmLabel: "Issue new token",
      });
      if (!ok) return;
      const body = await api("POST", `/api/v1/admin/users/${id}/token`);
      showToken(user.name, body.token);
    }
  } catch (error) {
    toast(error.message, "error");
  }
});

$("user-rows").addEventListener("change", async (event) => {
  const select = event.target.closest("select[data-action='team']");
  if (!select) return;
  const id = select.closest("tr").dataset.userId;
  try {
    replaceUser(await api("PATCH", `/api/v1/admin/users/${id}`, { team_id: select.value || null }));
    toast("Team changed.");
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
  const password = $("new-password").value;
  if (team) body.team_id = team;
  if (password) body.password = password;
  let problem = "";
  if (!body.name) problem = "Give the person's name.";
  else if (body.login.length < 2) problem = "The login needs at least 2 characters.";
  else if (password && password.length < 12) problem = "A password needs at least 12 characters (or leave it empty).";
  if (problem) {
    showError(errorBox, problem);
    return;
  }
  try {
    const created = await api("POST", "/api/v1/admin/users", body);
    const { token, ...user } = created;
    users.push(user);
    users.sort((a, b) => a.name.localeCompare(b.name));
    render();
    event.target.reset();
    showToken(user.name, token);
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
    toast(`Team “${team.name}” created.`);
  } catch (error) {
    toast(error.message, "error");
  }
});

load().catch((error) => {
  $("user-rows").replaceChildren(el("tr", {}, el("td", { colSpan: 5, class: "alert alert-error", text: error.message })));
});
