// Models page: the release (production, candidate and its share, rollback), live figures per version,
// promote and delete per version. Every change asks first, then updates the page without a reload.

import { apiJson, show } from "./api.js";

const panel = document.getElementById("release");
const errorBox = document.getElementById("models-error");
const releaseError = document.getElementById("release-error");
let state = panel ? JSON.parse(panel.dataset.release) : null;

const ACTIONS = {
  first_version: (c) => `v${c.to} became production (first version)`,
  promote: (c) => `v${c.to} promoted to production` + (c.from ? ` (was v${c.from})` : ""),
  promote_when_done: (c) => `v${c.to} promoted when its training finished` + (c.from ? ` (was v${c.from})` : ""),
  promote_candidate: (c) => `candidate v${c.to} promoted to production (was v${c.from})`,
  rollback: (c) => `rolled back from v${c.from} to v${c.to}`,
  set_candidate: (c) => `v${c.to} set as candidate for ${c.share}% of clients`,
  set_share: (c) => `candidate v${c.to} share set to ${c.share}%`,
  stop_experiment: (c) => `experiment with v${c.from} stopped`,
};

function versions() {
  return [...document.querySelectorAll("#models-table tbody tr[data-version]")].map((row) => Number(row.dataset.version));
}

function roleOf(version) {
  if (!state) return null;
  if (version === state.production) return "production";
  if (version === state.candidate) return "candidate";
  return null;
}

function render() {
  if (!panel || !state) return;
  document.getElementById("production-version").textContent = state.production ? `v${state.production}` : "—";
  const rollback = document.getElementById("rollback");
  rollback.hidden = !state.previous_production;
  rollback.textContent = `Roll back to v${state.previous_production}`;
  const running = state.candidate !== null;
  document.getElementById("candidate-none").hidden = running;
  document.getElementById("candidate-running").hidden = !running;
  if (running) {
    document.getElementById("candidate-version").textContent = `v${state.candidate}`;
    document.getElementById("candidate-share").textContent = `${state.candidate_share}% of clients`;
    for (const button of panel.querySelectorAll(".share")) {
      button.classList.toggle("current", Number(button.dataset.share) === state.candidate_share);
    }
  }
  const choice = document.getElementById("candidate-choice");
  const others = versions().filter((v) => v !== state.production);
  choice.replaceChildren(...others.map((v) => new Option(`v${v}`, v)));
  document.getElementById("start-experiment").disabled = others.length === 0;
  for (const row of document.querySelectorAll("#models-table tbody tr[data-version]")) {
    const version = Number(row.dataset.version);
    const role = roleOf(version);
    const cell = row.querySelector(".role");
    cell.replaceChildren();
    if (role) {
      const pill = document.createElement("span");
      pill.className = `pill pill-${role}`;
      pill.textContent = role;
      cell.append(pill);
    }
    row.querySelector(".promote-version").hidden = role === "production";
    row.querySelector(".delete-version").hidden = role !== null;
  }
}

const PRODUCTION_CHANGES = new Set(["first_version", "promote", "promote_when_done", "promote_candidate", "rollback"]);
const when = (at) => new Date(at).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });

function renderHistory(history) {
  const since = history.find((change) => PRODUCTION_CHANGES.has(change.action) && change.to === state.production);
  document.getElementById("production-since").textContent = since ? `since ${when(since.at)} (${since.by})` : "";
  const list = panel.querySelector(".history");
  list.replaceChildren(...history.map((change) => {
    const item = document.createElement("li");
    const describe = ACTIONS[change.action] || ((c) => c.action);
    item.textContent = `${when(change.at)}: ${describe(change)} by ${change.by}`;
    return item;
  }));
  if (!history.length) list.replaceChildren(Object.assign(document.createElement("li"), { textContent: "No changes yet." }));
}

async function refreshRelease() {
  const fresh = await apiJson("/api/release");
  state = fresh;
  render();
  renderHistory(fresh.history);
}

async function change(body, question, button) {
  if (!window.confirm(question)) return;
  releaseError.hidden = true;
  if (button) button.disabled = true;
  try {
    state = await apiJson(body === "rollback" ? "/api/release/rollback" : "/api/release", body === "rollback"
      ? { method: "POST" }
      : { method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ ...body, revision: state.revision }) });
    render();
    renderHistory(state.history);
    refreshStats();
  } catch (error) {
    show(releaseError, error.message);
    if (error.body && error.body.release) {
      state = error.body.release;
      render();
      renderHistory(state.history);
    }
  } finally {
    if (button) button.disabled = false;
  }
}

function cell(text, numeric = true) {
  const td = document.createElement("td");
  td.textContent = text;
  if (numeric) td.className = "num";
  return td;
}

const percent = (value) => (value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)}%`);
const ms = (value) => (value === null || value === undefined ? "—" : `${value.toFixed(1)} ms`);

async function refreshStats() {
  if (!panel) return;
  let figures;
  try {
    figures = await apiJson("/api/release/stats?hours=24");
  } catch {
    return; // the next refresh tries again
  }
  if (state && figures.revision !== state.revision) refreshRelease().catch(() => {});
  const rows = figures.versions.map((item) => {
    const tr = document.createElement("tr");
    tr.dataset.version = item.version;
    const role = item.version === figures.production ? "production" : item.version === figures.candidate ? "candidate" : "pinned only";
    tr.append(cell(`v${item.version}`, false), cell(role, false), cell(item.requests.toLocaleString()),
      cell(item.errors.toLocaleString()), cell(ms(item.p50_ms)), cell(ms(item.p95_ms)), cell(percent(item.mean_confidence)),
      cell(percent(item.low_confidence_share)), cell(item.abstained.toLocaleString()));
    return tr;
  });
  document.querySelector("#stats-table tbody").replaceChildren(...rows);
  document.getElementById("stats-empty").hidden = rows.length > 0;
}

if (panel) {
  document.getElementById("rollback").addEventListener("click", (event) =>
    change("rollback", `Roll production back to v${state.previous_production}? Any experiment stops.`, event.target));
  document.getElementById("start-experiment").addEventListener("click", (event) => {
    const candidate = Number(document.getElementById("candidate-choice").value);
    const share = Number(document.getElementById("candidate-share-choice").value);
    change({ candidate, candidate_share: share }, `Send ${share}% of clients to v${candidate}?`, event.target);
  });
  for (const button of panel.querySelectorAll(".share")) {
    button.addEventListener("click", () => {
      const share = Number(button.dataset.share);
      change({ candidate_share: share }, `Send ${share}% of clients to candidate v${state.candidate}?`, button);
    });
  }
  document.getElementById("promote-candidate").addEventListener("click", (event) =>
    change({ production: state.candidate }, `Promote candidate v${state.candidate} to production for all clients?`, event.target));
  document.getElementById("stop-experiment").addEventListener("click", (event) =>
    change({ candidate: null }, `Stop the experiment? All clients go back to v${state.production}.`, event.target));
  render();
  refreshRelease().catch(() => {});
  refreshStats();
  setInterval(refreshStats, 3000);
}

document.querySelectorAll(".promote-version").forEach((button) => {
  button.addEventListener("click", () => {
    const version = Number(button.dataset.version);
    change({ production: version }, `Promote v${version} to production? It answers every unpinned prediction at once.`, button);
  });
});

document.querySelectorAll(".delete-version").forEach((button) => {
  button.addEventListener("click", async () => {
    const version = button.dataset.version;
    if (!window.confirm(`Delete model version ${version} and its files?`)) return;
    button.disabled = true;
    try {
      await apiJson(`/api/models/${version}`, { method: "DELETE" });
      button.closest("tr").remove();
      render();
    } catch (error) {
      button.disabled = false;
      show(errorBox, error.message);
    }
  });
});
