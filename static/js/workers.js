// Workers page: the announced workers, what each is doing, and how many jobs wait; refreshed every few seconds.
import { apiJson, formatMoment, show, tableCell as cell } from "./api.js";
import { formatNumber, locale, t } from "./i18n.js";

const REFRESH_MS = 3000;
const table = document.getElementById("workers-table");
const rows = table.querySelector("tbody");
const summary = document.getElementById("workers-summary");
const startHint = document.getElementById("workers-empty");
const errorBox = document.getElementById("workers-error");
const relative = new Intl.RelativeTimeFormat(locale, { numeric: "auto" });

// "5 seconds ago", "2 minutes ago", in the page's language; a clock slightly ahead of this one reads "now".
function ago(iso) {
  const seconds = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (seconds < 60) return relative.format(-seconds, "second");
  if (seconds < 3600) return relative.format(-Math.floor(seconds / 60), "minute");
  return relative.format(-Math.floor(seconds / 3600), "hour");
}

function deviceName(worker) {
  if (worker.device === "unknown") return t("not found");  // the worker could not load Paddle to probe it
  if (worker.device) return worker.device;
  return worker.kind === "training" ? t("checking…") : "–";  // ingest workers have no training device
}

// The device, and under it why not a better one: the probe's words stay English (they quote Paddle).
function device(worker) {
  if (!worker.device_problem) return deviceName(worker);
  const box = document.createElement("span");
  const problem = document.createElement("span");
  problem.className = "probe-problem";
  problem.textContent = worker.device === "unknown"
    ? t("Probe: %(problem)s", { problem: worker.device_problem })
    : t("Trains on %(device)s instead: %(problem)s",
      { device: worker.device, problem: worker.device_problem });
  box.append(deviceName(worker), problem);
  return box;
}

function doing(worker) {
  if (worker.busy) {
    const link = document.createElement("a");
    link.href = `/jobs/${worker.job_id}`;
    link.textContent = t("Job %(id)s", { id: worker.job_id });
    return link;
  }
  if (worker.kind === "batch") return t("runs batch predictions and backups");
  return worker.kind === "training" ? t("idle") : t("checks uploads, sends webhooks");
}

function heartbeat(worker) {
  if (!worker.heartbeat_at) return "–";
  const time = document.createElement("time");
  time.dateTime = worker.heartbeat_at;
  time.title = formatMoment(worker.heartbeat_at);
  time.textContent = ago(worker.heartbeat_at);
  return time;
}

function row(worker) {
  const tr = document.createElement("tr");
  tr.dataset.worker = worker.name;
  tr.className = worker.busy ? "busy" : "";
  tr.append(cell(worker.name), cell(worker.host || "–"), cell(device(worker)),
    cell(worker.queues.join(", ") || "–"), cell(doing(worker)), cell(heartbeat(worker)));
  return tr;
}

function describe(report) {
  const trainers = report.workers.filter((worker) => worker.kind === "training").length;
  const busy = report.workers.filter((worker) => worker.kind === "training" && worker.busy).length;
  const waiting = report.queued_jobs;
  return [
    trainers === 1 ? t("%(count)s training worker", { count: formatNumber(trainers) })
      : t("%(count)s training workers", { count: formatNumber(trainers) }),
    t("%(count)s busy", { count: formatNumber(busy) }),
    waiting === 1 ? t("%(count)s job waiting", { count: formatNumber(waiting) })
      : t("%(count)s jobs waiting", { count: formatNumber(waiting) }),
  ].join(" · ");
}

function render(report) {
  errorBox.hidden = true;
  rows.replaceChildren(...report.workers.map(row));
  table.hidden = report.workers.length === 0;
  summary.textContent = describe(report);
  summary.hidden = false;
  startHint.hidden = report.workers.some((worker) => worker.kind === "training");
}

async function refresh() {
  try {
    if (!document.hidden) render(await apiJson("/api/workers"));
  } catch (error) {
    // Without an answer (Redis down) nobody knows which workers are up: show none rather than an aging list.
    rows.replaceChildren();
    table.hidden = true;
    startHint.hidden = true;
    summary.hidden = true;
    show(errorBox, t("%(error)s Retrying…", { error: error.message }));
  }
  window.setTimeout(refresh, REFRESH_MS);
}

refresh();
