// Feedback page: what people marked, refreshed in place; corrections into a dataset; purge of kept images.
import { apiJson, formatMoment, show, SLOT, withNode } from "./api.js";
import { formatBytes, formatNumber, formatPercent, t } from "./i18n.js";

const totalsBox = document.getElementById("feedback-totals");
const versionFilter = document.getElementById("filter-version");
const kindFilter = document.getElementById("filter-kind");
const tableBody = document.querySelector("#feedback-table tbody");
const empty = document.getElementById("feedback-empty");

// Which release arm answered, as people read it (the server sends the plain value).
const ARM_LABELS = { production: t("production"), candidate: t("candidate"), pinned: t("pinned") };

function showTotals(totals) {
  document.getElementById("total-feedback").textContent = formatNumber(totals.feedback);
  document.getElementById("total-wrong").textContent = formatNumber(totals.marked_wrong);
  document.getElementById("total-pending").textContent = formatNumber(totals.corrections_not_in_a_dataset);
  document.getElementById("total-disk").textContent = t("%(images)s · %(used)s of %(cap)s", {
    images: formatNumber(totals.images_kept), used: formatBytes(totals.disk_bytes), cap: formatBytes(totals.disk_cap_bytes),
  });
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
  let image = t("not kept");
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
  const confidence = formatPercent(item.confidence, 1);
  const answer = item.abstained ? t("not sure (top: %(name)s) · %(confidence)s", { name: item.predicted_class, confidence })
    : `${item.predicted_class} · ${confidence}`;
  const verdict = document.createElement("span");
  verdict.className = item.correct ? "verdict-right" : "verdict-wrong";
  verdict.textContent = item.correct ? t("right") : t("wrong");
  let dataset = "—";
  if (item.dataset_id) {
    dataset = document.createElement("a");
    dataset.href = `/datasets/${item.dataset_id}`;
    dataset.textContent = `#${item.dataset_id}`;
  }
  const when = document.createElement("time");
  when.dateTime = item.created_at;
  when.textContent = formatMoment(item.created_at);
  tr.append(td(image), td(`v${item.version} (${ARM_LABELS[item.arm] || item.arm})`), td(answer), td(verdict),
    td(item.correct ? item.predicted_class : item.label || t("not given")), td(dataset), td(when));
  return tr;
}

async function refresh() {
  // the newest 200 only: the table is a window on recent verdicts, the totals above count them all
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

// The button says what it makes: a dataset, or a revision of the version's dataset.
function makeLabel() {
  return document.querySelector("input[name=mode]:checked").value === "append" ? t("Make the revision") : t("Create dataset");
}

for (const radio of document.querySelectorAll("input[name=mode]")) {
  radio.addEventListener("change", () => { makeButton.textContent = makeLabel(); });
}

makeButton.addEventListener("click", async () => {
  datasetError.hidden = true;
  datasetDone.hidden = true;
  const mode = document.querySelector("input[name=mode]:checked").value;
  const version = document.getElementById("dataset-version").value;
  if (mode === "append" && !version) {
    show(datasetError, t("Choose the version whose training dataset gets the images."));
    return;
  }
  const payload = { mode, include: document.getElementById("dataset-include").value };
  if (version) payload.version = Number(version);
  const name = document.getElementById("dataset-name").value.trim();
  if (name) payload.name = name;
  makeButton.disabled = true;
  makeButton.textContent = t("Creating…");
  try {
    const body = await apiJson("/api/feedback/dataset", {
      method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify(payload),
    });
    const link = document.createElement("a");
    link.href = `/datasets/${body.dataset.id}`;
    link.textContent = body.dataset.name;
    const text = mode === "append"
      ? t("Made revision %(revision)s of %(name)s: %(feedback)s images from feedback added to its training split.", {
        revision: formatNumber(body.revision), name: SLOT, feedback: formatNumber(body.feedback_images),
      })
      : t("Created dataset %(name)s with %(images)s images, %(feedback)s of them from feedback.", {
        name: SLOT, images: formatNumber(body.dataset.num_images), feedback: formatNumber(body.feedback_images),
      });
    datasetDone.replaceChildren(...withNode(text, link));
    datasetDone.hidden = false;
    refresh();
  } catch (error) {
    show(datasetError, error.message);
  } finally {
    makeButton.disabled = false;
    makeButton.textContent = makeLabel();
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
    show(done, t("Deleted %(count)s images (%(size)s).", { count: formatNumber(body.purged), size: formatBytes(body.freed_bytes) }));
    refresh();
  } catch (error) {
    show(errorBox, error.message);
  }
}

document.getElementById("purge-added").addEventListener("click", () => purge("added", t("Delete the kept images that are already in a dataset?")));
document.getElementById("purge-all").addEventListener("click", () => purge("all", t("Delete every kept image? Corrections not yet in a dataset are lost.")));
