// A dataset whose upload is still being checked: progress until it is ready (the page then shows the
// dataset), or the reason it failed.
import { apiJson, show } from "./api.js";
import { formatNumber, t } from "./i18n.js";

const card = document.getElementById("ingest-card");
const bar = document.querySelector("#ingest-progress .bar");
const label = document.querySelector("#ingest-progress .label");
const errorBox = document.getElementById("ingest-error");
const deleteButton = document.getElementById("delete-dataset");

function showFailure(dataset) {
  document.getElementById("ingest-title").textContent = t("This upload could not be used");
  document.getElementById("ingest-progress").hidden = true;
  document.getElementById("ingest-hint").hidden = true;
  show(errorBox, dataset.error || t("The upload failed."));
  const rejected = document.getElementById("ingest-rejected");
  if (dataset.rejected.length) {
    const list = rejected.querySelector("ul");
    list.replaceChildren(...dataset.rejected.slice(0, 200).map((r) => {
      const item = document.createElement("li");
      const code = document.createElement("code");
      code.textContent = r.path;
      item.append(code, `: ${r.reason}`);
      return item;
    }));
    rejected.hidden = false;
  }
  deleteButton.hidden = false;
}

async function poll() {
  let dataset;
  try {
    dataset = await apiJson(`/api/datasets/${card.dataset.id}`);
  } catch (error) {
    label.textContent = t("%(error)s Retrying…", { error: error.message });
    window.setTimeout(poll, 3000);
    return;
  }
  if (dataset.status === "ready") { window.location.reload(); return; }
  if (dataset.status === "failed") { showFailure(dataset); return; }
  const { done, total } = dataset.progress;
  if (total > 0 && done > 0) {
    bar.style.width = `${Math.round((100 * done) / total)}%`;
    label.textContent = t("%(done)s of %(total)s files checked", { done: formatNumber(done), total: formatNumber(total) });
  }
  window.setTimeout(poll, 1000);
}

deleteButton.addEventListener("click", async () => {
  if (!window.confirm(t("Delete the dataset “%(name)s”?", { name: deleteButton.dataset.name }))) return;
  try {
    await apiJson(`/api/datasets/${deleteButton.dataset.id}`, { method: "DELETE" });
    window.location.assign("/datasets");
  } catch (error) {
    show(document.getElementById("delete-error"), error.message);
  }
});

if (card.dataset.status === "processing") poll();
