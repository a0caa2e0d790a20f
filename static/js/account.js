// The account page: the signed-in person's password, API tokens (create, copy once, revoke) and
// "sign out everywhere".
import { apiAll, apiJson, flagField, formatMoment as when, show, showFormError, tableCell as cell, unflagFields } from "./api.js";
import { t } from "./i18n.js";

const table = document.querySelector("#token-table tbody");
const empty = document.getElementById("tokens-empty");
const form = document.getElementById("token-form");
const nameInput = document.getElementById("token-name");
const expiry = document.getElementById("token-expiry");
const errorBox = document.getElementById("token-error");
const fresh = document.getElementById("new-token");
const freshValue = document.getElementById("new-token-value");

function row(token) {
  const tr = document.createElement("tr");
  tr.dataset.token = token.id;
  const code = document.createElement("code");
  code.textContent = `${token.prefix}…`;
  const prefix = cell(code);
  const actions = document.createElement("td");
  const revoke = document.createElement("button");
  revoke.className = "button danger revoke-token";
  revoke.textContent = t("Revoke");
  revoke.addEventListener("click", async () => {
    if (!window.confirm(t("Revoke the token “%(name)s”? Scripts using it stop working at once.", { name: token.name }))) return;
    try {
      await apiJson(`/api/tokens/${token.id}`, { method: "DELETE" });
      await load();
    } catch (error) {
      show(errorBox, error.message);
    }
  });
  actions.append(revoke);
  const expires = cell(when(token.expires_at, t("does not expire")));
  if (token.expired) {
    expires.textContent = t("expired %(moment)s", { moment: expires.textContent });
    expires.className = "error";
  }
  tr.append(cell(token.name), prefix, cell(when(token.created_at)), cell(when(token.last_used_at)), expires, actions);
  return tr;
}

async function load() {
  const tokens = (await apiAll("/api/tokens", "tokens")).sort((a, b) => a.id - b.id); // oldest first, as made
  table.replaceChildren(...tokens.map(row));
  empty.hidden = tokens.length > 0;
}

// Without sign-in (local mode) the page explains that and has no tokens to manage.
if (form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    unflagFields(form);
    try {
      const token = await apiJson("/api/tokens", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ name: nameInput.value, expires_in_days: expiry.value ? Number(expiry.value) : null }),
      });
      freshValue.textContent = token.token;
      fresh.hidden = false;
      nameInput.value = "";
      await load();
    } catch (error) {
      showFormError(form, errorBox, error);
    }
  });

  document.getElementById("token-copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(freshValue.textContent);
      document.getElementById("token-copy").textContent = t("Copied");
    } catch {
      window.getSelection().selectAllChildren(freshValue);
    }
  });

  load().catch((error) => show(errorBox, error.message));
}

const passwordForm = document.getElementById("password-form");
if (passwordForm) {
  const passwordError = document.getElementById("password-error");
  const passwordDone = document.getElementById("password-done");
  passwordForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    passwordError.hidden = true;
    passwordDone.hidden = true;
    unflagFields(passwordForm);
    const fields = passwordForm.elements;
    if (fields.password.value !== fields.confirm.value) {
      show(passwordError, t("The two passwords differ."));
      flagField(fields.confirm, passwordError);
      fields.confirm.focus();
      return;
    }
    try {
      await apiJson("/api/me/password", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ current_password: fields.current_password.value, password: fields.password.value }),
      });
      passwordForm.reset();
      show(passwordDone, t("Password changed. Your other sessions have ended; this one goes on."));
    } catch (error) {
      showFormError(passwordForm, passwordError, error);
    }
  });

  document.getElementById("sign-out-everywhere").addEventListener("click", async () => {
    if (!window.confirm(t("Sign out everywhere? Every browser signed in to your account, this one included, will have to sign in again."))) return;
    try {
      await apiJson("/api/me/sessions", { method: "DELETE" });
      window.location.assign("/sign-in");
    } catch (error) {
      show(document.getElementById("sessions-error"), error.message);
    }
  });
}
