// Live training dashboard: server-sent events update the page. When the server refuses the stream (it caps
// open streams) or the stream keeps failing, the page polls the job instead and tries the stream again later.

import { apiJson, formatFixed, formatSeconds, show } from "./api.js";
import { drawChart } from "./chart.js";
import { drawOverlay, framed } from "./explain_overlay.js";
import { formatBytes, formatNumber, formatPercent, t } from "./i18n.js";

const root = document.getElementById("job");
const jobId = root.dataset.id;
const $ = (id) => document.getElementById(id);

let job = null;
let startedLocal = null; // local clock time at which the job started, from duration_seconds
let source = null;
let pollTimer = null;
let streamRetryTimer = null;
let streamErrors = 0; // errors since the stream last delivered its snapshot
let streamRetries = 0; // fallbacks to polling in a row, which lengthen the wait before the next try

const POLL_MS = 2000;
const STREAM_ERRORS_BEFORE_POLLING = 3; // the browser reconnects a dropped stream by itself until then
const STREAM_RETRY_MS = 30000; // doubled after each fallback in a row, up to four times as long

// Status changes are announced to screen readers politely, once they finish what they are reading; the
// status the page opens with is not announced.
const announcer = document.createElement("p");
announcer.id = "job-announcer";
announcer.className = "visually-hidden";
announcer.setAttribute("role", "status");
announcer.setAttribute("aria-live", "polite");
$("progress-card").append(announcer);
let announcedStatus = null;

function announceStatus() {
  if (announcedStatus !== null && announcedStatus !== job.status) {
    announcer.textContent = t("Job #%(id)s: %(status)s", { id: jobId, status: STATUS_LABELS[job.status] || job.status });
  }
  announcedStatus = job.status;
}

const percent = (v) => (v === null || v === undefined ? "–" : formatPercent(v, 1));

// The job's status and phase words as people read them (the server sends the plain values).
const STATUS_LABELS = {
  queued: t("queued"), running: t("running"), succeeded: t("succeeded"), failed: t("failed"), cancelled: t("cancelled"),
};
const PHASE_LABELS = {
  ...STATUS_LABELS, preparing: t("preparing"), features: t("features"), training: t("training"), exporting: t("exporting"),
};

function setProgress(fraction, label) {
  const box = $("job-progress");
  box.querySelector(".bar").style.width = `${Math.round(fraction * 1000) / 10}%`;
  box.querySelector(".label").textContent = label;
  box.classList.toggle("indeterminate", fraction === null);
}

function eta(progress) {
  if (!startedLocal || !progress || progress <= 0.001) return "–";
  const elapsed = (Date.now() - startedLocal) / 1000;
  return formatSeconds((elapsed * (1 - progress)) / progress);
}

function size(bytes) {
  return bytes ? formatBytes(bytes) : "–";
}

// Where the job trains, short ("gpu:0 · bfloat16"), with the device's model name in the tooltip.
function renderDevice() {
  const cell = $("stat-device");
  if (!job.trained_on) {
    cell.textContent = "–";
    cell.title = "";
    return;
  }
  cell.textContent = job.precision ? `${job.trained_on} · ${job.precision}` : job.trained_on;
  const name = job.device_model || "";
  const mixed = job.precision && job.precision !== "float32";
  cell.title = [name, mixed ? t("Mixed precision: steps compute in %(precision)s, the weights stay float32.", { precision: job.precision }) : ""]
    .filter(Boolean).join(" — ");
}

function renderAttempts() {
  const notes = [];
  if (job.resumed_from_epoch) notes.push(t("Resumed after epoch %(epoch)s (attempt %(attempt)s).", { epoch: job.resumed_from_epoch, attempt: job.attempt }));
  else if (job.attempt > 1) notes.push(t("Started again from the beginning (attempt %(attempt)s): no epoch had been saved yet.", { attempt: job.attempt }));
  if (job.device === "gpu") notes.push(job.status === "queued" ? t("Waits for a worker with a GPU.") : t("Asked for a worker with a GPU."));
  if (job.device === "cpu") notes.push(job.status === "queued" ? t("Waits for a worker that trains on the CPU.") : t("Asked for a worker that trains on the CPU."));
  if (job.status === "queued" && job.retries > 0) notes.push(t("Its worker stopped responding; waiting for a worker to continue it (retry %(retry)s).", { retry: job.retries }));
  $("resume-note").textContent = notes.join(" ");
  $("resume-note").hidden = notes.length === 0;
  $("early-stop-note").hidden = !job.stopped_early_reason;
  $("early-stop-note").textContent = job.stopped_early_reason || "";
  renderDevice();
  $("stat-checkpoint").textContent = size(job.checkpoint_bytes);
  $("stat-checkpoint").title = job.status === "succeeded"
    ? t("The best weights, kept so a new job can start from them") : t("The last finished epoch, kept so the job can resume");
  $("resume-job").hidden = !(job.status === "failed" || job.status === "cancelled") || !job.dataset_id;
}

function renderStatus() {
  const pill = $("job-status");
  pill.textContent = STATUS_LABELS[job.status] || job.status;
  pill.className = `pill pill-${job.status}`;
  announceStatus();
  $("cancel-job").hidden = job.finished;
  renderAttempts();
  const failed = job.status === "failed" || job.status === "cancelled";
  $("error-card").hidden = !failed;
  if (failed) {
    $("error-title").textContent = job.status === "failed" ? t("Training failed") : t("Training cancelled");
    $("error-message").textContent = job.error || "";
    $("traceback-box").hidden = !job.traceback;
    $("traceback").textContent = job.traceback || "";
  }
}

function renderProgress(event = {}) {
  const progress = event.progress ?? job.progress;
  const phase = event.phase ?? job.phase;
  if (job.status === "queued") {
    setProgress(0, job.queue_position ? t("Queued: #%(position)s in line", { position: job.queue_position }) : t("Queued"));
  } else if (phase === "preparing") {
    const done = event.done ?? 0;
    const total = event.total ?? 0;
    setProgress(total ? done / total : null,
      total ? t("Preparing images %(done)s/%(total)s", { done: formatNumber(done), total: formatNumber(total) }) : t("Preparing images…"));
  } else if (phase === "features") {
    setProgress(null, t("Computing backbone features once (then the head trains on them)…"));
  } else if (job.status === "running") {
    setProgress(progress, phase === "exporting"
      ? t("%(percent)s · exporting the model", { percent: formatPercent(progress, 1) }) : formatPercent(progress, 1));
  } else {
    setProgress(job.status === "succeeded" ? 1 : progress, job.status === "succeeded"
      ? t("Finished") : t("Stopped at %(percent)s", { percent: formatPercent(progress, 1) }));
  }
  $("stat-phase").textContent = PHASE_LABELS[phase || job.status] || phase || job.status;
  $("stat-epoch").textContent = job.total_epochs ? `${event.epoch ?? job.epoch} / ${job.total_epochs}` : "–";
  $("stat-step").textContent = (event.steps ?? job.steps) && (event.step ?? job.step) ? `${event.step ?? job.step} / ${event.steps ?? job.steps}` : "–";
  $("stat-eta").textContent = job.status === "running" ? eta(progress) : "–";
}

function renderEpochs() {
  const epochs = job.epochs;
  const last = epochs[epochs.length - 1];
  $("stat-lr").textContent = last ? last.lr.toExponential(2) : "–";
  $("stat-speed").textContent = last ? formatFixed(last.images_per_s, 1) : "–";
  $("stat-best").textContent = percent(job.best_val_acc);
  $("stat-model").textContent = job.model_version ? t("version %(version)s", { version: job.model_version }) : "–";
  drawChart($("chart-loss"), [
    { className: "train", values: epochs.map((e) => e.train_loss) },
    { className: "val", values: epochs.map((e) => e.val_loss) },
  ]);
  drawChart($("chart-acc"), [
    { className: "train", values: epochs.map((e) => e.train_acc) },
    { className: "val", values: epochs.map((e) => e.val_acc) },
  ], { maxY: 1, format: (v) => formatPercent(v, 0) });
  const body = $("epoch-table").querySelector("tbody");
  body.replaceChildren(...epochs.map((e) => {
    const row = document.createElement("tr");
    const cells = [formatNumber(e.epoch), formatFixed(e.train_loss, 4), percent(e.train_acc), formatFixed(e.val_loss, 4),
      percent(e.val_acc), e.val_top5 === null ? "–" : percent(e.val_top5), e.lr.toExponential(2), formatFixed(e.seconds, 1),
      formatFixed(e.images_per_s, 1)];
    cells.forEach((value) => {
      const cell = document.createElement("td");
      cell.className = "num";
      cell.textContent = value;
      row.append(cell);
    });
    if (e.epoch === job.best_epoch) row.classList.add("best");
    return row;
  }));
}

// The gallery's title: how many images of a class went where (and how many of them are shown).
function cellTitle(cell) {
  const params = { actual: cell.true, predicted: cell.predicted, count: formatNumber(cell.count), shown: formatNumber(cell.shown) };
  const all = cell.shown >= cell.count;
  if (cell.true === cell.predicted) {
    return all ? t("%(actual)s: %(count)s right", params) : t("%(actual)s: %(count)s right (the %(shown)s surest shown)", params);
  }
  if (cell.count === 1) {
    return all ? t("%(actual)s taken for %(predicted)s: %(count)s image", params)
      : t("%(actual)s taken for %(predicted)s: %(count)s image (the %(shown)s surest shown)", params);
  }
  return all ? t("%(actual)s taken for %(predicted)s: %(count)s images", params)
    : t("%(actual)s taken for %(predicted)s: %(count)s images (the %(shown)s surest shown)", params);
}

async function showCell(split, galleryId, i, j) {
  const gallery = $(galleryId);
  gallery.hidden = false;
  gallery.textContent = t("Loading…");
  let cell;
  try {
    cell = await apiJson(`/api/jobs/${jobId}/confusion/${split}/${i}/${j}`);
  } catch (error) {
    gallery.textContent = error.message;
    return;
  }
  const title = document.createElement("h4");
  title.textContent = cellTitle(cell);
  const close = Object.assign(document.createElement("button"), { type: "button", className: "button", textContent: t("Close") });
  close.addEventListener("click", () => { gallery.hidden = true; });
  const grid = document.createElement("div");
  grid.className = "thumbs";
  const maps = [];
  cell.items.forEach((item) => {
    const figure = document.createElement("figure");
    figure.className = "cell-image";
    if (item.thumbnail_url) {
      const image = Object.assign(document.createElement("img"), { src: item.thumbnail_url, alt: item.name || "", loading: "lazy" });
      image.title = item.name || "";
      const { frame, canvas } = framed(image);
      figure.append(frame);
      if (item.image_id) maps.push({ imageId: item.image_id, image, canvas });
    }
    const caption = document.createElement("figcaption");
    caption.textContent = item.top.map((entry) => `${entry.class} ${formatPercent(entry.confidence, 1)}`).join(" · ");
    figure.append(caption);
    grid.append(figure);
  });
  const parts = [title];
  if (job.model_version && maps.length) parts.push(explainToggle(grid, maps));
  gallery.replaceChildren(...parts, grid, close);
}

// "Show where the model looked" for a gallery: the job's model version explains each image once, in turn.
function explainToggle(grid, maps) {
  const box = document.createElement("div");
  box.className = "explain-gallery";
  const label = document.createElement("label");
  label.className = "explain-toggle";
  const input = Object.assign(document.createElement("input"), { type: "checkbox" });
  label.append(input, ` ${t("Show where the model looked")}`);
  const note = Object.assign(document.createElement("p"), { className: "hint explain-legend", hidden: true });
  box.append(label, note);
  let started = false;
  input.addEventListener("change", async () => {
    grid.classList.toggle("explain-off", !input.checked);
    note.hidden = !input.checked;
    if (!input.checked || started) return;
    started = true;
    note.textContent = t("Loading…");
    for (const entry of maps) {
      try {
        const answer = await apiJson(`/api/models/${job.model_version}/explanations?image=${entry.imageId}`);
        await drawOverlay(entry.canvas, entry.image, answer.explanation);
        note.textContent = `${t("Red: where the model looked most for the class it answered; blue or clear: where it looked least.")} ${
          answer.explanation.exact ? t("Exact map: the model's score for the class is the average of this map.")
            : t("Approximate map: this model's head is not linear, so the map only approximates its reasoning.")}`;
      } catch (error) {
        note.textContent = error.message;
        return;
      }
    }
  });
  return box;
}

function renderReport(confusion, perClass, tableId, perClassId, split, galleryId) {
  const names = job.classes;
  const head = document.createElement("tr");
  head.append(document.createElement("th"), ...names.map((n) => Object.assign(document.createElement("th"), { textContent: n })));
  const rows = confusion.map((counts, i) => {
    const row = document.createElement("tr");
    row.append(Object.assign(document.createElement("th"), { textContent: names[i] }));
    const total = counts.reduce((a, b) => a + b, 0) || 1;
    counts.forEach((count, j) => {
      const cell = document.createElement("td");
      const share = count / total;
      cell.textContent = formatNumber(count);
      cell.title = `${names[i]} → ${names[j]}: ${formatNumber(count)} (${formatPercent(share, 0)})`;
      // light enough at full strength that the page's dark text keeps a 4.5:1 contrast on every cell
      const tint = i === j ? "140, 60%, 55%" : "0, 70%, 62%";
      cell.style.background = count ? `hsla(${tint}, ${0.12 + 0.78 * share})` : "";
      if (count) {
        cell.tabIndex = 0;
        cell.className = "clickable";
        cell.dataset.cell = `${i}-${j}`;
        const open = () => showCell(split, galleryId, i, j);
        cell.addEventListener("click", open);
        cell.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); open(); } });
      }
      row.append(cell);
    });
    return row;
  });
  $(tableId).replaceChildren(head, ...rows);
  $(perClassId).querySelector("tbody").replaceChildren(...perClass.map((r) => {
    const row = document.createElement("tr");
    [r.class, percent(r.precision), percent(r.recall), percent(r.f1), formatNumber(r.support)].forEach((value, k) => {
      const cell = document.createElement("td");
      cell.textContent = value;
      if (k > 0) cell.className = "num";
      row.append(cell);
    });
    return row;
  }));
}

function renderResults() {
  const ready = job.confusion && job.per_class;
  $("results").hidden = !ready;
  if (ready) {
    $("best-epoch").textContent = formatNumber(job.best_epoch);
    renderReport(job.confusion, job.per_class, "confusion", "per-class", "val", "cell-gallery");
  }
  const test = job.test;
  $("test-results").hidden = !test;
  if (test) {
    $("test-accuracy").textContent = percent(test.accuracy);
    $("test-top5").textContent = percent(test.top5);
    $("test-loss").textContent = formatFixed(test.loss, 4);
    $("test-images").textContent = formatNumber(test.images);
    renderReport(test.confusion, test.per_class, "test-confusion", "test-per-class", "test", "test-cell-gallery");
  }
}

// A job that ends while the page is open may turn out to owe its figures to leaked images: the server's
// notice (rendered with the page) is taken from the page again, once.
let leakageShown = Boolean(document.getElementById("leakage-notice"));

async function renderLeakage() {
  const leak = job.leakage;
  if (leakageShown || !job.finished || !leak || !["val", "test"].some((split) => leak[split] && leak[split].near_train)) return;
  leakageShown = true;
  try {
    const response = await fetch(window.location.pathname, { headers: { Accept: "text/html" } });
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html").getElementById("leakage-slot");
    if (fresh) $("leakage-slot").replaceWith(document.adoptNode(fresh));
  } catch (error) {
    console.warn("could not show the leakage notice", error);
  }
}

function render(next) {
  job = next;
  renderLeakage();
  if (job.duration_seconds !== null) startedLocal = Date.now() - job.duration_seconds * 1000;
  renderStatus();
  renderProgress();
  renderEpochs();
  renderResults();
  if (job.finished) stopUpdates();
}

async function refetch() {
  try {
    render(await apiJson(`/api/jobs/${jobId}`));
  } catch (error) {
    console.warn("could not refresh the job", error);
  }
}

function stopPolling() {
  if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
}

function stopUpdates() {
  if (source) { source.close(); source = null; }
  stopPolling();
  if (streamRetryTimer) { clearTimeout(streamRetryTimer); streamRetryTimer = null; }
}

function startPolling() {
  if (pollTimer || (job && job.finished)) return;
  pollTimer = setInterval(refetch, POLL_MS);
}

// EventSource cannot tell a refusal (429, 503) from a dropped connection: either way, poll for now.
function pollInstead() {
  if (source) { source.close(); source = null; }
  streamErrors = 0;
  startPolling();
  refetch();
  if (streamRetryTimer || (job && job.finished)) return;
  const delay = STREAM_RETRY_MS * 2 ** Math.min(streamRetries, 2) * (0.75 + Math.random() / 2);
  streamRetries += 1;
  streamRetryTimer = setTimeout(() => { streamRetryTimer = null; listen(); }, delay);
}

function listen() {
  if (source || (job && job.finished)) return;
  if (!window.EventSource) { startPolling(); return; }
  const stream = new EventSource(`/api/jobs/${jobId}/events`);
  source = stream;
  stream.addEventListener("snapshot", (e) => {
    streamErrors = 0;
    streamRetries = 0;
    stopPolling();
    render(JSON.parse(e.data));
  });
  stream.addEventListener("progress", (e) => {
    const data = JSON.parse(e.data);
    if (job && job.status === "queued") { refetch(); return; }
    if (job) {
      if (data.progress !== undefined) job.progress = data.progress;
      if (data.phase) job.phase = data.phase;
      if (data.epoch) job.epoch = data.epoch;
      if (data.step) { job.step = data.step; job.steps = data.steps; }
      renderProgress(data);
    }
  });
  stream.addEventListener("epoch", refetch);
  stream.addEventListener("status", refetch);
  stream.onerror = () => {
    if (source !== stream) return;
    streamErrors += 1;
    if (stream.readyState === EventSource.CLOSED || streamErrors >= STREAM_ERRORS_BEFORE_POLLING) pollInstead();
  };
}

$("cancel-job").addEventListener("click", async () => {
  if (!window.confirm(t("Stop this training job?"))) return;
  $("cancel-job").disabled = true;
  try {
    await apiJson(`/api/jobs/${jobId}/cancel`, { method: "POST" });
    await refetch();
  } catch (error) {
    $("error-card").hidden = false;
    $("error-title").textContent = t("Could not cancel");
    show($("error-message"), error.message);
  } finally {
    $("cancel-job").disabled = false;
  }
});

$("resume-job").addEventListener("click", async () => {
  const question = job.checkpoint_bytes
    ? t("Resume this job after its last saved epoch?") : t("Resume this job from the beginning (no epoch was saved)?");
  if (!window.confirm(question)) return;
  $("resume-job").disabled = true;
  try {
    render(await apiJson(`/api/jobs/${jobId}/resume`, { method: "POST" }));
    if (!source) listen();
  } catch (error) {
    $("error-card").hidden = false;
    $("error-title").textContent = t("Could not resume");
    show($("error-message"), error.message);
  } finally {
    $("resume-job").disabled = false;
  }
});

refetch().then(() => { if (job && !job.finished) listen(); });
setInterval(() => { if (job && job.status === "running") $("stat-eta").textContent = eta(job.progress); }, 1000);
