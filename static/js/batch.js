// The batch prediction page: start a run from a folder, a .zip or a dataset revision, and follow every run
// (progress, summary, cancel, downloads) without a reload.
import { apiAll, apiJson, csrfHeaders, show, showFormError, unflagFields } from "./api.js";
import { formatNumber, formatPercent, t } from "./i18n.js";

const form = document.getElementById("batch-form");
const runsList = document.getElementById("batch-runs");
const emptyNote = document.getElementById("batch-empty");
const listError = document.getElementById("batch-list-error");
const POLL_MS = 1500;
const BADGES = { succeeded: "badge-ok", failed: "badge-bad" };
let chosen = null; // {kind: "zip", file} or {kind: "files", files: [{file, path}]}
let timer = null;

function statusText(run) {
  return {
    queued: t("waiting for a batch worker"), running: t("running"), succeeded: t("done"),
    failed: t("failed"), cancelled: t("cancelled"),
  }[run.status] || run.status;
}

function summaryText(run) {
  const summary = run.summary;
  const classes = Object.entries(summary.classes).map(([name, count]) => `${name} ${formatNumber(count)}`);
  const parts = [classes.length ? classes.join(", ") : t("no answers yet")];
  parts.push(t("%(count)s abstained", { count: formatNumber(summary.abstained) }));
  parts.push(t("%(count)s refused", { count: formatNumber(run.refused) }));
  if (summary.images_per_second) parts.push(t("%(rate)s images/s", { rate: formatNumber(summary.images_per_second) }));
  return parts.join(" · ");
}

function refusedText(run) {
  return Object.entries(run.summary.refused).map(([code, count]) => `${code}: ${formatNumber(count)}`).join(", ");
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function runItem(run) {
  const item = element("li", "batch-run");
  item.dataset.id = run.id;
  item.dataset.status = run.status;
  const head = element("div", "batch-run-head");
  head.append(element("strong", "", t("Run %(id)s", { id: run.id })),
    element("span", "batch-run-input", `${run.input_name}${run.revision ? ` · r${run.revision}` : ""} · v${run.version}`),
    element("span", `badge ${BADGES[run.status] || "badge-wait"}`, statusText(run)));
  item.append(head);
  const bar = element("progress", "batch-progress");
  bar.max = 1;
  bar.value = run.progress;
  bar.setAttribute("aria-label", t("Run %(id)s", { id: run.id }));
  const counts = element("span", "batch-counts", t("%(done)s of %(total)s files (%(percent)s)", {
    done: formatNumber(run.done), total: formatNumber(run.total), percent: formatPercent(run.progress, 0),
  }));
  item.append(element("div", "batch-progress-row"));
  item.lastChild.append(bar, counts);
  item.append(element("p", "batch-summary", summaryText(run)));
  if (run.refused) item.append(element("p", "hint batch-refused", t("Refused: %(reasons)s", { reasons: refusedText(run) })));
  if (run.error) item.append(element("p", "error", run.error));
  const actions = element("div", "batch-actions");
  if (run.results) {
    for (const [kind, label] of [["csv", t("Download CSV")], ["jsonl", t("Download JSON Lines")]]) {
      const link = element("a", "button secondary", label);
      link.href = run.results[kind];
      link.setAttribute("download", "");
      actions.append(link);
    }
  } else if (run.results_expired) {
    actions.append(element("span", "hint", t("Results removed after being kept for a while.")));
  }
  if (run.status === "queued" || run.status === "running") {
    const cancel = element("button", "button secondary batch-cancel", run.cancel_requested ? t("Stopping…") : t("Cancel"));
    cancel.type = "button";
    cancel.disabled = run.cancel_requested;
    cancel.addEventListener("click", () => cancelRun(run.id, cancel));
    actions.append(cancel);
  }
  item.append(actions);
  return item;
}

async function cancelRun(id, button) {
  button.disabled = true;
  try {
    await apiJson(`/api/batch-predictions/${id}/cancel`, { method: "POST" });
  } catch (error) {
    show(listError, error.message);
  }
  refresh();
}

async function refresh() {
  clearTimeout(timer);
  try {
    const runs = await apiAll("/api/batch-predictions", "batches");
    listError.hidden = true;
    runsList.replaceChildren(...runs.map(runItem));
    emptyNote.hidden = runs.length > 0;
    if (runs.some((run) => run.status === "queued" || run.status === "running")) timer = setTimeout(refresh, POLL_MS);
  } catch (error) {
    show(listError, error.message);
    timer = setTimeout(refresh, POLL_MS * 4);
  }
}

function choose(selection) {
  chosen = selection;
  const label = document.getElementById("batch-selection");
  if (!selection) label.textContent = t("Nothing chosen yet.");
  else if (selection.kind === "zip") label.textContent = selection.file.name;
  else label.textContent = t("%(count)s files", { count: formatNumber(selection.files.length) });
}

function source() {
  return form.elements.source.value;
}

function buildForm() {
  const data = new FormData();
  data.append("version", form.elements.version.value);
  data.append("top_k", form.elements.top_k.value);
  if (source() === "revision") {
    data.append("dataset_id", form.elements.dataset_id.value);
    if (form.elements.revision.value) data.append("revision", form.elements.revision.value);
  } else if (chosen.kind === "zip") {
    data.append("archive", chosen.file, chosen.file.name);
  } else {
    chosen.files.forEach(({ file, path }) => data.append("files", file, path));
  }
  return data;
}

function setProgress(fraction, text) {
  const box = document.getElementById("batch-upload-progress");
  box.hidden = fraction === null && !text;
  box.querySelector(".bar").style.width = `${Math.round((fraction || 0) * 100)}%`;
  box.querySelector(".label").textContent = text || "";
}

function start(event) {
  event.preventDefault();
  const errorBox = document.getElementById("batch-error");
  const button = document.getElementById("batch-start");
  errorBox.hidden = true;
  unflagFields(form);
  if (source() === "upload" && !chosen) {
    show(errorBox, t("Choose a folder or a .zip first."));
    return;
  }
  button.disabled = true;
  const request = new XMLHttpRequest();
  request.open("POST", "/api/batch-predictions");
  request.setRequestHeader("Accept", "application/json");
  for (const [name, value] of Object.entries(csrfHeaders())) request.setRequestHeader(name, value);
  request.upload.addEventListener("progress", (e) => {
    if (e.lengthComputable) setProgress(e.loaded / e.total, t("Uploading… %(percent)s%%", { percent: Math.round((100 * e.loaded) / e.total) }));
  });
  request.addEventListener("load", () => {
    button.disabled = false;
    setProgress(null, "");
    let body = null;
    try { body = JSON.parse(request.responseText); } catch { body = null; }
    if (request.status === 202) {
      choose(null);
      refresh();
      return;
    }
    const message = body && body.error ? body.error : t("The server answered %(status)s.", { status: request.status });
    showFormError(form, errorBox, { message, body });
  });
  request.addEventListener("error", () => {
    button.disabled = false;
    setProgress(null, "");
    show(errorBox, t("The upload was interrupted: is the server still running?"));
  });
  request.send(buildForm());
}

if (form) {
  document.getElementById("batch-zip-input").addEventListener("change", (event) => {
    const file = event.target.files[0];
    choose(file ? { kind: "zip", file } : null);
  });
  document.getElementById("batch-folder-input").addEventListener("change", (event) => {
    const files = [...event.target.files].map((file) => ({ file, path: file.webkitRelativePath || file.name }));
    choose(files.length ? { kind: "files", files } : null);
  });
  for (const radio of form.elements.source) {
    radio.addEventListener("change", () => {
      document.getElementById("batch-upload").hidden = source() !== "upload";
      document.getElementById("batch-revision").hidden = source() !== "revision";
    });
  }
  form.addEventListener("submit", start);
}
refresh();
