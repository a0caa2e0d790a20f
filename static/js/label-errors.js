// Likely label errors: the plan of a search in words before it starts, the search's progress while it runs
// (polled), then its ranked findings with a decision per image; the decisions make a new revision.
// The server renders a search (#search-slot) and the list of searches; when a search starts or ends, the
// page takes both from the server again, without a reload.

import { apiJson, formatMoment, formatSeconds, show, SLOT, withNode } from "./api.js";
import { formatNumber, formatPercent, locale, t } from "./i18n.js";

const root = document.getElementById("label-errors");
const datasetId = root.dataset.datasetId;
const api = `/api/datasets/${datasetId}/label-searches`;
const form = document.getElementById("search-form");
const planText = document.getElementById("plan-text");
const planError = document.getElementById("plan-error");
const startButton = document.getElementById("start-search");
const POLL_MS = 1000;
const SENTENCE_GAP = locale.startsWith("zh") ? "" : " "; // Chinese sentences follow one another without a space

const STATUS_LABELS = {
  queued: t("queued"), running: t("running"), succeeded: t("succeeded"), failed: t("failed"), cancelled: t("cancelled"),
};

let planAsked = 0; // the newest plan request: an older answer arriving late is ignored
let pollTimer = null;

// --- the plan ---------------------------------------------------------------------------------------

function planSentence(plan) {
  const params = {
    folds: formatNumber(plan.folds), backbone: plan.backbone, epochs: formatNumber(plan.epochs),
    images: formatNumber(plan.images), size: plan.image_size,
  };
  return plan.head_only
    ? t("%(folds)s trainings of a %(backbone)s head on its pretrained features, %(epochs)s epochs each, on %(images)s training images at %(size)s px.", params)
    : t("%(folds)s trainings of %(backbone)s, %(epochs)s epochs each, on %(images)s training images at %(size)s px.", params);
}

function estimateSentence(plan) {
  if (plan.estimate_seconds === null) {
    return t("No worker has measured its training speed yet, so there is no estimate; without pretrained weights a CPU takes minutes.");
  }
  return t("About %(time)s on %(worker)s.", { time: formatSeconds(plan.estimate_seconds), worker: plan.measured_on });
}

function foldsSentence(plan, asked) {
  if (plan.folds >= asked) return "";
  return t("Folds lowered to %(folds)s: a class has only %(folds)s training images.", { folds: formatNumber(plan.folds) });
}

async function loadPlan() {
  const asked = ++planAsked;
  const query = new URLSearchParams({ revision: form.elements.revision.value, folds: form.elements.folds.value });
  planError.hidden = true;
  planText.classList.add("waiting");
  if (startButton) startButton.disabled = true;
  try {
    const plan = await apiJson(`${api}/plan?${query}`);
    if (asked !== planAsked) return;
    planText.textContent = [planSentence(plan), estimateSentence(plan), foldsSentence(plan, Number(query.get("folds")))]
      .filter(Boolean).join(SENTENCE_GAP);
    if (startButton) startButton.disabled = false;
  } catch (error) {
    if (asked !== planAsked) return;
    planText.textContent = "";
    show(planError, error.message);
  } finally {
    if (asked === planAsked) planText.classList.remove("waiting");
  }
}

form.addEventListener("change", (event) => {
  if (event.target.name === "revision" || event.target.name === "folds") loadPlan();
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!startButton || startButton.disabled) return;
  startButton.disabled = true;
  planError.hidden = true;
  try {
    const search = await apiJson(api, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ revision: Number(form.elements.revision.value), folds: Number(form.elements.folds.value) }),
    });
    await openSearch(search.id, true);
  } catch (error) {
    show(planError, error.message);
  } finally {
    startButton.disabled = false;
  }
});

// --- a search: the server's rendering, then its progress -------------------------------------------------

function showMoments(container) {
  for (const element of container.querySelectorAll("time[datetime]")) {
    const iso = element.getAttribute("datetime");
    if (iso && !Number.isNaN(new Date(iso).getTime())) {
      element.textContent = formatMoment(iso);
      element.title = iso;
    }
  }
}

// Take the search slot and the list of searches from the server's page for search `id` (null: the newest).
async function openSearch(id, remember) {
  const url = `/datasets/${datasetId}/label-errors${id ? `?search=${id}` : ""}`;
  const response = await fetch(url, { headers: { Accept: "text/html" } });
  if (!response.ok) throw new Error(t("The server answered %(status)s.", { status: response.status }));
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  for (const part of ["search-slot", "searches-card"]) {
    document.getElementById(part).replaceWith(document.adoptNode(fresh.getElementById(part)));
    showMoments(document.getElementById(part));
  }
  if (remember) window.history.pushState({ search: id }, "", url);
  followSearch();
}

function card() {
  return document.getElementById("search-card");
}

function setBar(fraction, label, waiting) {
  const box = document.getElementById("search-progress");
  box.classList.toggle("indeterminate", waiting);
  box.querySelector(".bar").style.width = waiting ? "100%" : `${Math.round(fraction * 1000) / 10}%`;
  box.querySelector(".label").textContent = label;
}

function timeLeft(search) {
  if (!search.started_at) return "";
  const elapsed = (Date.now() - new Date(search.started_at).getTime()) / 1000;
  if (search.progress >= 0.05) return t("About %(time)s left.", { time: formatSeconds((elapsed * (1 - search.progress)) / search.progress) });
  if (search.estimate_seconds !== null) {
    return t("About %(time)s left by the estimate.", { time: formatSeconds(Math.max(0, search.estimate_seconds - elapsed)) });
  }
  return "";
}

function renderProgress(search) {
  const status = document.getElementById("search-status");
  status.textContent = STATUS_LABELS[search.status] || search.status;
  status.className = `pill pill-${search.status}`;
  if (search.status === "queued") {
    setBar(0, t("Waiting for a training worker…"), true);
    document.getElementById("search-eta").textContent = "";
    return;
  }
  const fold = Math.min(search.folds, Math.floor(search.progress * search.folds) + 1);
  const label = search.cancel_requested
    ? t("Stopping at the next training step…")
    : t("%(percent)s · training %(fold)s of %(folds)s", {
      percent: formatPercent(search.progress, 0), fold: formatNumber(fold), folds: formatNumber(search.folds),
    });
  setBar(search.progress, label, false);
  document.getElementById("search-eta").textContent = timeLeft(search);
}

async function poll() {
  const box = card();
  if (!box) return;
  try {
    const search = await apiJson(`${api}/${box.dataset.id}`);
    if (search.status === "queued" || search.status === "running") {
      renderProgress(search);
      document.getElementById("search-error").hidden = true;
      pollTimer = window.setTimeout(poll, POLL_MS);
    } else {
      await openSearch(search.id, false);
    }
  } catch (error) {
    show(document.getElementById("search-error"), t("%(error)s Retrying…", { error: error.message }));
    pollTimer = window.setTimeout(poll, 3 * POLL_MS);
  }
}

// Start following the search the slot shows: its progress while it runs, its decisions once it is done.
function followSearch() {
  if (pollTimer) { window.clearTimeout(pollTimer); pollTimer = null; }
  const box = card();
  if (!box) return;
  const status = box.dataset.status;
  if (status === "queued" || status === "running") {
    const estimate = box.dataset.estimate === "" ? null : Number(box.dataset.estimate);
    renderProgress({ status, progress: Number(box.dataset.progress), folds: Number(box.dataset.folds),
      started_at: box.dataset.startedAt || null, estimate_seconds: estimate, cancel_requested: false });
    pollTimer = window.setTimeout(poll, POLL_MS);
  }
  summarise();
}

document.addEventListener("click", async (event) => {
  const cancel = event.target.closest("#cancel-search");
  if (!cancel) return;
  if (!window.confirm(t("Stop this search for label errors?"))) return;
  cancel.disabled = true;
  try {
    const search = await apiJson(`${api}/${card().dataset.id}/cancel`, { method: "POST" });
    if (search.status === "cancelled") await openSearch(search.id, false);
    else renderProgress(search);
  } catch (error) {
    show(document.getElementById("search-error"), error.message);
    cancel.disabled = false;
  }
});

// --- the review: a decision per doubted image, then a new revision ---------------------------------------

function decisions() {
  const chosen = { relabel: [], drop: [] };
  for (const item of document.querySelectorAll("#issue-list .issue")) {
    const picked = item.querySelector("input[type=radio]:checked");
    const image = Number(item.dataset.image);
    if (picked && picked.value === "accept") chosen.relabel.push({ image, class_name: item.dataset.suggested });
    if (picked && picked.value === "drop") chosen.drop.push(image);
  }
  return chosen;
}

function summarise() {
  const summary = document.getElementById("decision-summary");
  if (!summary) return;
  for (const item of document.querySelectorAll("#issue-list .issue")) {
    const picked = item.querySelector("input[type=radio]:checked");
    item.dataset.decision = picked ? picked.value : "keep";
  }
  const { relabel, drop } = decisions();
  summary.textContent = relabel.length || drop.length
    ? t("%(relabel)s to relabel and %(drop)s to drop; every other label is kept.", {
      relabel: formatNumber(relabel.length), drop: formatNumber(drop.length),
    })
    : t("Nothing decided yet: every label is kept.");
  const button = document.getElementById("make-revision");
  if (!button.dataset.made) button.disabled = !(relabel.length || drop.length);
}

document.addEventListener("change", (event) => {
  if (event.target.closest("#issue-list")) summarise();
});

function decideAll(value) {
  for (const input of document.querySelectorAll(`#issue-list input[type=radio][value="${value}"]`)) {
    if (!input.disabled) input.checked = true;
  }
  summarise();
}

document.addEventListener("click", (event) => {
  if (event.target.closest("#accept-all")) decideAll("accept");
  if (event.target.closest("#keep-all")) decideAll("keep");
});

// The new revision joins the revision choice (picked, so a next search reads it).
function offerRevision(revision) {
  const params = { number: revision.number, images: formatNumber(revision.num_images) };
  const option = document.createElement("option");
  option.value = revision.number;
  option.dataset.plain = t("revision %(number)s · %(images)s images", params);
  option.textContent = t("revision %(number)s (newest) · %(images)s images", params);
  const select = form.elements.revision;
  for (const other of select.options) other.textContent = other.dataset.plain;
  select.prepend(option);
  select.value = String(revision.number);
  loadPlan();
}

function revisionMade(revision) {
  const done = document.getElementById("revision-done");
  const link = document.createElement("a");
  link.href = `/datasets/${datasetId}`;
  link.textContent = t("Open the dataset");
  const text = t("Revision %(number)s made: %(note)s %(link)s", { number: revision.number, note: revision.note || "", link: SLOT });
  done.replaceChildren(...withNode(text, link));
  done.hidden = false;
  for (const input of document.querySelectorAll("#issue-list input, #accept-all, #keep-all, #revise-form input")) {
    input.disabled = true;
  }
  offerRevision(revision);
}

document.addEventListener("submit", async (event) => {
  if (event.target.id !== "revise-form") return;
  event.preventDefault();
  const revise = event.target;
  const button = document.getElementById("make-revision");
  const errorBox = document.getElementById("revision-error");
  const { relabel, drop } = decisions();
  if (!relabel.length && !drop.length) return;
  const payload = { base: Number(revise.dataset.base), relabel, drop };
  const comment = revise.elements.comment.value.trim();
  if (comment) payload.comment = comment;
  button.disabled = true;
  errorBox.hidden = true;
  try {
    const revision = await apiJson(`/api/datasets/${datasetId}/revisions`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload),
    });
    button.dataset.made = "yes";
    revisionMade(revision);
  } catch (error) {
    show(errorBox, error.message);
    button.disabled = false;
  }
});

window.addEventListener("popstate", () => {
  const id = new URLSearchParams(window.location.search).get("search");
  openSearch(id, false).catch((error) => show(planError, error.message));
});

loadPlan();
followSearch();
