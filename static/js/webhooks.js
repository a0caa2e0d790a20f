// The webhooks page (admins): endpoints with their events, the secret shown once, rotate, test, and each
// endpoint's deliveries with their tries and a resend button, refreshed while the page is open.
import { actionButton, apiJson, formatMoment as when, show, showFormError, tableCell as cell, unflagFields } from "./api.js";
import { t } from "./i18n.js";

const REFRESH_MS = 2000;
const STATUS_LABELS = { pending: t("waiting"), sending: t("sending"), delivered: t("delivered"), failed: t("failed") };
const form = document.getElementById("webhook-form");
const errorBox = document.getElementById("webhook-error");
const table = document.querySelector("#webhook-table tbody");
const secretBox = document.getElementById("webhook-secret");
const secretValue = document.getElementById("webhook-secret-value");
const deliveryCard = document.getElementById("delivery-card");
const deliveryTable = document.querySelector("#delivery-table tbody");
let shown = null; // the endpoint whose deliveries are listed

const JSON_HEADERS = { "Content-Type": "application/json" };

function button(text, className, action) {
  return actionButton(text, className, action, errorBox, refresh);
}

function showSecret(secret) {
  secretValue.textContent = secret;
  document.getElementById("webhook-secret-copy").textContent = t("Copy");
  secretBox.hidden = false;
}

function endpointRow(endpoint) {
  const tr = document.createElement("tr");
  tr.dataset.endpoint = endpoint.id;
  const url = document.createElement("span");
  url.className = "webhooks-url";
  url.textContent = endpoint.url;
  if (endpoint.description) url.title = endpoint.description;
  const actions = document.createElement("div");
  actions.className = "row-actions";
  actions.append(
    button(t("Send test"), "webhook-test", async () => {
      await apiJson(`/api/webhooks/${endpoint.id}/test`, { method: "POST" });
      shown = endpoint;
    }),
    button(t("Deliveries"), "webhook-deliveries", async () => { shown = endpoint; }),
    button(t("Rotate secret"), "webhook-rotate", async () => {
      if (!window.confirm(t("Make a new secret for %(url)s? The old one still signs for a while.", { url: endpoint.url }))) return;
      showSecret((await apiJson(`/api/webhooks/${endpoint.id}/rotate`, { method: "POST" })).secret);
    }),
    button(endpoint.enabled ? t("Disable") : t("Enable"), "webhook-toggle", async () => {
      await apiJson(`/api/webhooks/${endpoint.id}`, {
        method: "PUT", headers: JSON_HEADERS, body: JSON.stringify({ enabled: !endpoint.enabled }),
      });
    }),
    button(t("Delete"), "danger webhook-delete", async () => {
      if (!window.confirm(t("Delete the endpoint %(url)s and its deliveries?", { url: endpoint.url }))) return;
      await apiJson(`/api/webhooks/${endpoint.id}`, { method: "DELETE" });
      if (shown && shown.id === endpoint.id) shown = null;
    }),
  );
  tr.append(cell(url), cell(endpoint.events.join(", ")), cell(endpoint.enabled ? t("yes") : t("no")), cell(actions));
  return tr;
}

function deliveryRow(delivery) {
  const tr = document.createElement("tr");
  tr.dataset.delivery = delivery.id;
  tr.dataset.status = delivery.status;
  const status = document.createElement("span");
  status.className = `webhooks-status webhooks-${delivery.status}`;
  status.textContent = STATUS_LABELS[delivery.status] || delivery.status;
  const code = cell(delivery.last_status_code === null ? "–" : String(delivery.last_status_code));
  code.className = "num";
  const tries = cell(String(delivery.tries.length));
  tries.className = "num";
  const actions = document.createElement("div");
  actions.className = "row-actions";
  if (delivery.status === "delivered" || delivery.status === "failed") {
    actions.append(button(t("Resend"), "webhook-resend", async () => {
      await apiJson(`/api/webhooks/${delivery.endpoint_id}/deliveries/${delivery.id}/resend`, { method: "POST" });
    }));
  }
  tr.append(cell(delivery.event), cell(status), code, cell(when(delivery.created_at)), tries,
    cell(delivery.error || ""), cell(actions));
  return tr;
}

async function loadDeliveries() {
  deliveryCard.hidden = shown === null;
  if (shown === null) return;
  document.getElementById("delivery-title").textContent = t("Deliveries to %(url)s", { url: shown.url });
  const page = await apiJson(`/api/webhooks/${shown.id}/deliveries?limit=50`);
  deliveryTable.replaceChildren(...page.deliveries.map(deliveryRow));
  document.getElementById("delivery-none").hidden = page.deliveries.length > 0;
}

async function refresh() {
  const { endpoints } = await apiJson("/api/webhooks");
  table.replaceChildren(...endpoints.map(endpointRow));
  document.getElementById("webhook-none").hidden = endpoints.length > 0;
  if (shown !== null && !endpoints.some((endpoint) => endpoint.id === shown.id)) shown = null;
  await loadDeliveries();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  errorBox.hidden = true;
  unflagFields(form);
  const data = new FormData(form);
  const body = {
    url: data.get("url"), description: data.get("description"), events: data.getAll("events"),
    enabled: document.getElementById("webhook-enabled").checked,
  };
  try {
    const created = await apiJson("/api/webhooks", { method: "POST", headers: JSON_HEADERS, body: JSON.stringify(body) });
    showSecret(created.secret);
    form.reset();
    await refresh();
  } catch (error) {
    showFormError(form, errorBox, error);
  }
});

document.getElementById("webhook-secret-copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(secretValue.textContent);
    document.getElementById("webhook-secret-copy").textContent = t("Copied");
  } catch {
    window.getSelection().selectAllChildren(secretValue);
  }
});

refresh().catch((error) => show(errorBox, error.message));
window.setInterval(() => { if (!document.hidden) loadDeliveries().catch(() => {}); }, REFRESH_MS);
