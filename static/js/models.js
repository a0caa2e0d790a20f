// Models page: the release (production, candidate and its share, rollback), live figures per version,
// promote and delete per version. Every change asks first, then updates the page without a reload.

import { apiJson, formatMoment, show } from "./api.js";

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
const when = (at) => formatMoment(at, "");

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
      cell(percent(item.low_confidence_share)), cell(item.abstained.toLocaleString()),
      cell(item.feedback ? `${item.marked_wrong.toLocaleString()} of ${item.feedback.toLocaleString()}` : "—"),
      cell(percent(item.feedback_accuracy)));
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

// Abstain threshold per version: empty turns it off.
document.querySelectorAll(".save-threshold").forEach((button) => {
  button.addEventListener("click", async () => {
    const input = button.closest(".threshold-form").querySelector(".threshold-input");
    const raw = input.value.trim();
    const value = raw === "" ? null : Number(raw);
    button.disabled = true;
    try {
      const saved = await apiJson(`/api/models/${button.dataset.version}`, {
        method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ abstain_threshold: value }),
      });
      input.value = saved.abstain_threshold === null ? "" : saved.abstain_threshold;
      input.classList.remove("invalid");
      button.textContent = "Saved";
      setTimeout(() => { button.textContent = "Save"; }, 1500);
    } catch (error) {
      input.classList.add("invalid");
      show(errorBox, error.message);
    } finally {
      button.disabled = false;
    }
  });
});

// Offline comparison on one dataset split.
const compareDataset = document.getElementById("compare-dataset");
const compareSplit = document.getElementById("compare-split");
const compareError = document.getElementById("compare-error");
let compareTimer = null;

function fillSplits() {
  const splits = JSON.parse(compareDataset.selectedOptions[0].dataset.splits);
  const names = ["test", "val", "train"].filter((name) => splits[name]);
  compareSplit.replaceChildren(...names.map((name) => new Option(`${name} (${splits[name]} images)`, name)));
}

function latestPerVersion(evaluations) {
  const latest = new Map();
  for (const item of evaluations) if (!latest.has(item.version)) latest.set(item.version, item);
  return [...latest.values()].sort((a, b) => b.version - a.version);
}

function renderComparison(evaluations) {
  const rows = latestPerVersion(evaluations);
  const classes = [];
  for (const item of rows) for (const entry of item.per_class || []) if (!classes.includes(entry.class)) classes.push(entry.class);
  const head = document.createElement("tr");
  for (const title of ["Version", "Status", "Images", "Accuracy", "Macro F1", ...classes.map((c) => `F1 ${c}`), "p50", "p95"]) {
    const th = document.createElement("th");
    th.textContent = title;
    if (!["Version", "Status"].includes(title)) th.className = "num";
    head.append(th);
  }
  document.querySelector("#compare-table thead").replaceChildren(head);
  const done = rows.filter((item) => item.status === "succeeded");
  const best = (key) => Math.max(...done.map(key));
  const body = rows.map((item) => {
    const tr = document.createElement("tr");
    tr.dataset.version = item.version;
    const status = item.status === "running" ? `running ${(item.progress * 100).toFixed(0)}%`
      : item.status === "failed" ? `failed: ${item.error}` : item.status;
    tr.append(cell(`v${item.version}`, false), cell(status, false));
    if (item.status !== "succeeded") {
      for (let i = 0; i < classes.length + 5; i += 1) tr.append(cell("—"));
      return tr;
    }
    const f1 = Object.fromEntries(item.per_class.map((entry) => [entry.class, entry.f1]));
    const scored = [[percent(item.accuracy), item.accuracy === best((x) => x.accuracy)],
      [item.macro_f1.toFixed(3), item.macro_f1 === best((x) => x.macro_f1)],
      ...classes.map((name) => [name in f1 ? f1[name].toFixed(3) : "—", false])];
    tr.append(cell(item.images.toLocaleString()));
    for (const [text, top] of scored) {
      const td = cell(text);
      if (top && done.length > 1) td.classList.add("best");
      tr.append(td);
    }
    tr.append(cell(ms(item.latency_ms.p50)), cell(ms(item.latency_ms.p95)));
    return tr;
  });
  document.querySelector("#compare-table tbody").replaceChildren(...body);
  document.getElementById("compare-empty").hidden = body.length > 0;
  return rows.some((item) => item.status === "queued" || item.status === "running");
}

async function refreshComparison() {
  clearTimeout(compareTimer);
  if (!compareSplit.value) return;
  try {
    const answer = await apiJson(`/api/evaluations?dataset_id=${compareDataset.value}&split=${compareSplit.value}`);
    if (renderComparison(answer.evaluations)) compareTimer = setTimeout(refreshComparison, 1500);
  } catch (error) {
    show(compareError, error.message);
  }
}

if (compareDataset) {
  fillSplits();
  compareDataset.addEventListener("change", () => { fillSplits(); refreshComparison(); });
  compareSplit.addEventListener("change", refreshComparison);
  document.getElementById("compare-start").addEventListener("click", async (event) => {
    const versions = [...document.querySelectorAll(".versions-pick input:checked")].map((box) => Number(box.value));
    compareError.hidden = true;
    if (!versions.length) {
      show(compareError, "Tick at least one version to evaluate.");
      return;
    }
    event.target.disabled = true;
    try {
      for (const version of versions) {
        await apiJson("/api/evaluations", {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ version, dataset_id: Number(compareDataset.value), split: compareSplit.value }),
        });
      }
    } catch (error) {
      show(compareError, error.message);
    } finally {
      event.target.disabled = false;
      refreshComparison();
    }
  });
  refreshComparison();
}
