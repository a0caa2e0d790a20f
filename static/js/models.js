// Models page: the release (production, candidate and its share, rollback), live figures per version,
// promote and delete per version. Every change asks first, then updates the page without a reload.

import { apiAll, apiJson, flagField, formatFixed, formatMoment, show, unflagFields } from "./api.js";
import { formatNumber, formatPercent, t } from "./i18n.js";

const panel = document.getElementById("release");
const errorBox = document.getElementById("models-error");
const releaseError = document.getElementById("release-error");
let state = panel ? JSON.parse(panel.dataset.release) : null;

// One line of the release history per kind of change, with who made it (c.by).
const ACTIONS = {
  first_version: (c) => t("v%(to)s became production (first version) by %(by)s", c),
  promote: (c) => (c.from ? t("v%(to)s promoted to production (was v%(from)s) by %(by)s", c)
    : t("v%(to)s promoted to production by %(by)s", c)),
  promote_when_done: (c) => (c.from ? t("v%(to)s promoted when its training finished (was v%(from)s) by %(by)s", c)
    : t("v%(to)s promoted when its training finished by %(by)s", c)),
  promote_candidate: (c) => t("candidate v%(to)s promoted to production (was v%(from)s) by %(by)s", c),
  rollback: (c) => t("rolled back from v%(from)s to v%(to)s by %(by)s", c),
  set_candidate: (c) => t("v%(to)s set as candidate for %(share)s%% of clients by %(by)s", c),
  set_share: (c) => t("candidate v%(to)s share set to %(share)s%% by %(by)s", c),
  stop_experiment: (c) => t("experiment with v%(from)s stopped by %(by)s", c),
  threshold: (c) => thresholdChange(c),
  class_thresholds: (c) => classThresholdsChange(c),
};

// Threshold changes in words: a threshold is a number or "off".
const thresholdWords = (value) => (value === null || value === undefined ? t("off") : String(value));

function thresholdChange(c) {
  const words = { ...c, before: thresholdWords(c.details.from), after: thresholdWords(c.details.to) };
  return t("v%(to)s abstain threshold changed from %(before)s to %(after)s by %(by)s", words);
}

function classThresholdsChange(c) {
  const changes = Object.entries(c.details.changes)
    .map(([name, step]) => `${name} ${thresholdWords(step.from)} → ${thresholdWords(step.to)}`).join(", ")
    || t("no value changed");
  const calibration = c.details.calibration;
  if (!calibration) return t("v%(to)s class thresholds set by hand by %(by)s: %(changes)s", { ...c, changes });
  return t("v%(to)s class thresholds calibrated for %(precision)s precision on the %(split)s split of revision %(revision)s of '%(dataset)s' by %(by)s: %(changes)s", {
    ...c, changes, precision: formatPercent(calibration.precision, 0), split: SPLIT_LABELS[calibration.split] || calibration.split,
    revision: calibration.revision || 1, dataset: calibration.dataset_name,
  });
}

// Who made a change: a person's name as it is; in words an API token ("token:3 (alice)"), a training job
// (the first version, and promotions asked before jobs kept who asked), a command on the server ("cli") and
// the one person of a studio without sign-in ("local").
function who(by) {
  const job = /^job #(\d+)$/.exec(by || "");
  if (job) return t("training job #%(id)s", { id: job[1] });
  const token = /^token:(\d+) \((.*)\)$/.exec(by || "");
  if (token) return t("%(user)s's API token #%(id)s", { user: token[2], id: token[1] });
  if (by === "cli") return t("a command on the server");
  return by === "local" ? t("this machine's user") : by;
}

// Release roles and evaluation statuses as people read them (the server sends the plain values).
const ROLE_LABELS = { production: t("production"), candidate: t("candidate") };
const STATUS_LABELS = { queued: t("queued"), running: t("running"), succeeded: t("succeeded"), failed: t("failed") };
const SPLIT_LABELS = { train: t("train"), val: t("val"), test: t("test") };

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
  rollback.textContent = t("Roll back to v%(version)s", { version: state.previous_production });
  const running = state.candidate !== null;
  document.getElementById("candidate-none").hidden = running;
  document.getElementById("candidate-running").hidden = !running;
  if (running) {
    document.getElementById("candidate-version").textContent = `v${state.candidate}`;
    document.getElementById("candidate-share").textContent = t("%(share)s%% of clients", { share: state.candidate_share });
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
      pill.textContent = ROLE_LABELS[role];
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
  document.getElementById("production-since").textContent = since ? t("since %(when)s (%(by)s)", { when: when(since.at), by: who(since.by) }) : "";
  const list = panel.querySelector(".history");
  list.replaceChildren(...history.map((change) => {
    const item = document.createElement("li");
    const describe = ACTIONS[change.action] || ((c) => t("%(action)s by %(by)s", c));
    item.textContent = `${when(change.at)}: ${describe({ ...change, by: who(change.by) })}`;
    return item;
  }));
  if (!history.length) list.replaceChildren(Object.assign(document.createElement("li"), { textContent: t("No changes yet.") }));
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

const percent = (value) => (value === null || value === undefined ? "—" : formatPercent(value, 1));
const ms = (value) => (value === null || value === undefined ? "—" : t("%(ms)s ms", { ms: formatFixed(value, 1) }));

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
    const role = item.version === figures.production ? t("production")
      : item.version === figures.candidate ? t("candidate") : t("pinned only");
    tr.append(cell(`v${item.version}`, false), cell(role, false), cell(formatNumber(item.requests)),
      cell(formatNumber(item.errors)), cell(ms(item.p50_ms)), cell(ms(item.p95_ms)), cell(percent(item.mean_confidence)),
      cell(percent(item.low_confidence_share)), cell(formatNumber(item.abstained)),
      cell(item.feedback ? t("%(wrong)s of %(total)s", { wrong: formatNumber(item.marked_wrong), total: formatNumber(item.feedback) }) : "—"),
      cell(percent(item.feedback_accuracy)));
    return tr;
  });
  document.querySelector("#stats-table tbody").replaceChildren(...rows);
  document.getElementById("stats-empty").hidden = rows.length > 0;
}

if (panel) {
  document.getElementById("rollback").addEventListener("click", (event) =>
    change("rollback", t("Roll production back to v%(version)s? Any experiment stops.", { version: state.previous_production }),
      event.target));
  document.getElementById("start-experiment").addEventListener("click", (event) => {
    const candidate = Number(document.getElementById("candidate-choice").value);
    const share = Number(document.getElementById("candidate-share-choice").value);
    change({ candidate, candidate_share: share }, t("Send %(share)s%% of clients to v%(version)s?", { share, version: candidate }),
      event.target);
  });
  for (const button of panel.querySelectorAll(".share")) {
    button.addEventListener("click", () => {
      const share = Number(button.dataset.share);
      change({ candidate_share: share },
        t("Send %(share)s%% of clients to candidate v%(version)s?", { share, version: state.candidate }), button);
    });
  }
  document.getElementById("promote-candidate").addEventListener("click", (event) =>
    change({ production: state.candidate },
      t("Promote candidate v%(version)s to production for all clients?", { version: state.candidate }), event.target));
  document.getElementById("stop-experiment").addEventListener("click", (event) =>
    change({ candidate: null }, t("Stop the experiment? All clients go back to v%(version)s.", { version: state.production }),
      event.target));
  render();
  refreshRelease().catch(() => {});
  document.addEventListener("release-history-changed", () => refreshRelease().catch(() => {}));
  refreshStats();
  setInterval(refreshStats, 3000);
}

document.querySelectorAll(".promote-version").forEach((button) => {
  button.addEventListener("click", () => {
    const version = Number(button.dataset.version);
    change({ production: version },
      t("Promote v%(version)s to production? It answers every unpinned prediction at once.", { version }), button);
  });
});

document.querySelectorAll(".delete-version").forEach((button) => {
  button.addEventListener("click", async () => {
    const version = button.dataset.version;
    if (!window.confirm(t("Delete model version %(version)s and its files?", { version }))) return;
    button.disabled = true;
    try {
      await apiJson(`/api/models/${version}`, { method: "DELETE" });
      button.closest("tr").remove();
      document.querySelector(`#thresholds-version option[value="${version}"]`)?.remove();
      document.getElementById("thresholds-version")?.dispatchEvent(new Event("change"));
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
    // a number field reads as empty when what was typed is no number: that must not turn the threshold off
    if (input.validity.badInput || (raw !== "" && !Number.isFinite(Number(raw)))) {
      input.classList.add("invalid");
      show(errorBox, t("Enter a number from 0.01 to 0.99, or leave the field empty to turn the threshold off."));
      flagField(input, errorBox);
      return;
    }
    const value = raw === "" ? null : Number(raw);
    button.disabled = true;
    try {
      const saved = await apiJson(`/api/models/${button.dataset.version}`, {
        method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ abstain_threshold: value }),
      });
      input.value = saved.abstain_threshold === null ? "" : saved.abstain_threshold;
      if (panel) refreshRelease().catch(() => {}); // the change joined the history
      input.classList.remove("invalid");
      unflagFields(input.parentElement);
      button.textContent = t("Saved");
      setTimeout(() => { button.textContent = t("Save"); }, 1500);
    } catch (error) {
      input.classList.add("invalid");
      show(errorBox, error.message);
      flagField(input, errorBox);
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
  compareSplit.replaceChildren(...names.map((name) => new Option(t("%(split)s (%(count)s images)", { split: SPLIT_LABELS[name], count: formatNumber(splits[name]) }), name)));
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
  const titles = [t("Version"), t("Status"), t("Images"), t("Accuracy"), t("Macro F1"),
    ...classes.map((name) => t("F1 %(class)s", { class: name })), "p50", "p95"];
  titles.forEach((title, k) => {
    const th = document.createElement("th");
    th.textContent = title;
    if (k >= 2) th.className = "num"; // all but Version and Status
    head.append(th);
  });
  document.querySelector("#compare-table thead").replaceChildren(head);
  const done = rows.filter((item) => item.status === "succeeded");
  const best = (key) => Math.max(...done.map(key));
  const body = rows.map((item) => {
    const tr = document.createElement("tr");
    tr.dataset.version = item.version;
    const status = item.status === "running" ? t("running %(percent)s", { percent: formatPercent(item.progress, 0) })
      : item.status === "failed" ? t("failed: %(error)s", { error: item.error }) : STATUS_LABELS[item.status] || item.status;
    tr.append(cell(`v${item.version}`, false), cell(status, false));
    if (item.status !== "succeeded") {
      for (let i = 0; i < classes.length + 5; i += 1) tr.append(cell("—"));
      return tr;
    }
    const f1 = Object.fromEntries(item.per_class.map((entry) => [entry.class, entry.f1]));
    const scored = [[percent(item.accuracy), item.accuracy === best((x) => x.accuracy)],
      [formatFixed(item.macro_f1, 3), item.macro_f1 === best((x) => x.macro_f1)],
      ...classes.map((name) => [name in f1 ? formatFixed(f1[name], 3) : "—", false])];
    tr.append(cell(formatNumber(item.images)));
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
    const query = new URLSearchParams({ dataset_id: compareDataset.value, split: compareSplit.value });
    if (renderComparison(await apiAll(`/api/evaluations?${query}`, "evaluations"))) compareTimer = setTimeout(refreshComparison, 1500);
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
      show(compareError, t("Tick at least one version to evaluate."));
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
