// Feedback page: what people marked, refreshed in place; corrections into a dataset; purge of kept images.
import { apiJson, formatMoment, show } from "./api.js";

const totalsBox = document.getElementById("feedback-totals");
const versionFilter = document.getElementById("filter-version");
const kindFilter = document.getElementById("filter-kind");
const tableBody = document.querySelector("#feedback-table tbody");
const empty = document.getElementById("feedback-empty");

function size(bytes) {
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GB`;
}

function showTotals(totals) {
  document.getElementById("total-feedback").textContent = totals.feedback.toLocaleString();
  document.getElementById("total-wrong").textContent = totals.marked_wrong.toLocaleString();
  document.getElementById("total-pending").textContent = totals.corrections_not_in_a_dataset.toLocaleString();
  document.getElementById("total-disk").textContent = `${totals.images_kept.toLocaleString()} · ${size(totals.disk_bytes)} of ${size(totals.disk_cap_bytes)}`;
  const used = totals.disk_cap_bytes ? Math.min(1, totals.disk_bytes / totals.disk_cap_bytes) : 0;
  document.getElementById("disk-bar").style.width = `${(used * 100).toFixed(1)}%`;
}

function td(content, className = "") {
  const cell = document.createElement("td");
  if (content instanceof Node) cell.append(content);
  else cell.textContent = content;
  if (className) cell.className = className;
  return cell;
}

function row(item) {
  const tr = document.createElement("tr");
  tr.dataset.feedback = item.id;
  let image = "not kept";
  if (item.thumbnail_url) {
    const link = document.createElement("a");
    link.href = item.image_url;
    link.target = "_blank";
    link.rel = "noopener";
    const thumb = document.createElement("img");
    thumb.className = "feedback-thumb";
    thumb.src = item.thumbnail_url;
    thumb.alt = item.label || item.predicted_class;
    thumb.loading = "lazy";
    link.append(thumb);
    image = link;
  }
  const answer = `${item.abstained ? "not sure (top: " : ""}${item.predicted_class}${item.abstained ? ")" : ""} · ${(item.confidence * 100).toFixed(1)}%`;
  const verdict = document.createElement("span");
  verdict.className = item.correct ? "verdict-right" : "verdict-wrong";
  verdict.textContent = item.correct ? "right" : "wrong";
  let dataset = "—";
  if (item.dataset_id) {
    dataset = document.createElement("a");
    dataset.href = `/datasets/${item.dataset_id}`;
    dataset.textContent = `#${item.dataset_id}`;
  }
  const when = document.createElement("time");
  when.dateTime = item.created_at;
  when.textContent = formatMoment(item.created_at);
  tr.append(td(image), td(`v${item.version} (${item.arm})`), td(answer), td(verdict),
    td(item.correct ? item.predicted_class : item.label || "not given"), td(dataset), td(when));
  return tr;
}

async function refresh() {
  const query = new URLSearchParams({ kind: kindFilter.value, limit: "200" });
  if (versionFilter.value) query.set("version", versionFilter.value);
  let body;
  try {
    body = await apiJson(`/api/feedback?${query}`);
  } catch {
    return; // the next refresh tries again
  }
  showTotals(body.totals);
  tableBody.replaceChildren(...body.items.map(row));
  empty.hidden = body.items.length > 0;
}

showTotals(JSON.parse(totalsBox.dataset.totals));
versionFilter.addEventListener("change", refresh);
kindFilter.addEventListener("change", refresh);
refresh();
setInterval(refresh, 5000);

const makeButton = document.getElementById("make-dataset");
const datasetError = document.getElementById("dataset-error");
const datasetDone = document.getElementById("dataset-done");

makeButton.addEventListener("click", async () => {
  datasetError.hidden = true;
  datasetDone.hidden = true;
  const mode = document.querySelector("input[name=mode]:checked").value;
  const version = document.getElementById("dataset-version").value;
  if (mode === "append" && !version) {
    show(datasetError, "Choose the version whose training dataset gets the images.");
    return;
  }
  const payload = { mode, include: document.getElementById("dataset-include").value };
  if (version) payload.version = Number(version);
  const name = document.getElementById("dataset-name").value.trim();
  if (name) payload.name = name;
  makeButton.disabled = true;
  makeButton.textContent = "Creating…";
  try {
    const body = await apiJson("/api/feedback/dataset", {
      method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify(payload),
    });
    const link = document.createElement("a");
    link.href = `/datasets/${body.dataset.id}`;
    link.textContent = body.dataset.name;
    datasetDone.replaceChildren(`Created dataset `, link, ` with ${body.dataset.num_images.toLocaleString()} images, `
      + `${body.feedback_images.toLocaleString()} of them from feedback.`);
    datasetDone.hidden = false;
    refresh();
  } catch (error) {
    show(datasetError, error.message);
  } finally {
    makeButton.disabled = false;
    makeButton.textContent = "Create dataset";
  }
});

async function purge(scope, question) {
  const errorBox = document.getElementById("purge-error");
  const done = document.getElementById("purge-done");
  errorBox.hidden = true;
  done.hidden = true;
  if (!window.confirm(question)) return;
  try {
    const body = await apiJson("/api/feedback/purge", {
      method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify({ scope }),
    });
    show(done, `Deleted ${body.purged.toLocaleString()} images (${size(body.freed_bytes)}).`);
    refresh();
  } catch (error) {
    show(errorBox, error.message);
  }
}

document.getElementById("purge-added").addEventListener("click", () => purge("added", "Delete the kept images that are already in a dataset?"));
document.getElementById("purge-all").addEventListener("click", () => purge("all", "Delete every kept image? Corrections not yet in a dataset are lost."));
