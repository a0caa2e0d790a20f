// The users page (admins): add teammates, change roles, reset passwords, remove accounts.
import { actionButton, apiAll, apiJson, formatMoment as when, show, showFormError, tableCell as cell, unflagFields } from "./api.js";
import { t } from "./i18n.js";

const ROLES = ["viewer", "member", "admin"];
const ROLE_LABELS = { viewer: t("viewer"), member: t("member"), admin: t("admin") };
const table = document.querySelector("#user-table tbody");
const form = document.getElementById("user-form");
const errorBox = document.getElementById("user-error");

function button(text, className, action) {
  return actionButton(text, className, action, errorBox, load);
}

function row(user) {
  const tr = document.createElement("tr");
  tr.dataset.user = user.username;
  const role = document.createElement("select");
  role.className = "user-role";
  role.setAttribute("aria-label", t("Role of %(name)s", { name: user.username }));
  for (const name of ROLES) role.append(new Option(ROLE_LABELS[name], name, false, name === user.role));
  role.addEventListener("change", async () => {
    errorBox.hidden = true;
    try {
      await apiJson(`/api/users/${user.id}`, {
        method: "PATCH", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ role: role.value }),
      });
    } catch (error) {
      show(errorBox, error.message);
      role.value = user.role;
    }
  });
  const actions = document.createElement("div");
  actions.className = "row-actions";
  actions.append(
    button(t("New password"), "reset-password", async () => {
      const password = window.prompt(t("New password for %(name)s (at least 8 characters):", { name: user.username }));
      if (!password) return;
      await apiJson(`/api/users/${user.id}`, {
        method: "PATCH", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ password }),
      });
    }),
    button(t("Remove"), "danger remove-user", async () => {
      if (!window.confirm(t("Remove %(name)s? Their API tokens stop working at once.", { name: user.username }))) return;
      await apiJson(`/api/users/${user.id}`, { method: "DELETE" });
    }),
  );
  tr.append(cell(user.username), cell(role), cell(when(user.created_at)), cell(when(user.last_sign_in_at)), cell(actions));
  return tr;
}

async function load() {
  const users = (await apiAll("/api/users", "users")).sort((a, b) => (a.username < b.username ? -1 : 1)); // by name
  table.replaceChildren(...users.map(row));
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  errorBox.hidden = true;
  unflagFields(form);
  const data = Object.fromEntries(new FormData(form));
  try {
    await apiJson("/api/users", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data),
    });
    form.reset();
    await load();
  } catch (error) {
    showFormError(form, errorBox, error);
  }
});

load().catch((error) => show(errorBox, error.message));
