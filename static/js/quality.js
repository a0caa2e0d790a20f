// Dataset page: the quality report's fixes, each a new revision made with one click and shown at once, and
// the measuring of a dataset uploaded before the report, followed until its report is there.

import { apiJson, show } from "./api.js";
import { t } from "./i18n.js";
import { showRevision } from "./revisions.js";

const root = document.getElementById("dataset-page");
const datasetId = root.dataset.datasetId;
const status = document.getElementById("revision-status");
const SCAN_POLL_MS = 1500;

function section() {
  return document.getElementById("quality");
}

function setBusy(busy) {
  section().querySelectorAll("button").forEach((button) => { button.disabled = busy; });
  section().setAttribute("aria-busy", String(busy));
}

// Make a new revision from the shown one with `changes` (a fix, images to drop or relabel), then show it.
async function revise(changes) {
  const errorBox = document.getElementById("quality-error");
  errorBox.hidden = true;
  setBusy(true);
  show(status, t("Making a new revision…"));
  try {
    const made = await apiJson(`/api/datasets/${datasetId}/revisions`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ base: Number(root.dataset.revision), ...changes }),
    });
    await showRevision(made.number);
    show(status, made.note ? t("Revision %(number)s made: %(note)s", { number: made.number, note: made.note })
      : t("Revision %(number)s made.", { number: made.number }));
    document.getElementById("quality-title").focus();
  } catch (error) {
    status.hidden = true;
    setBusy(false);
    show(document.getElementById("quality-error"), error.message);
  }
}

// What a button of the report asks for: a fix of a whole kind, or one image of a conflict dropped or
// given the other image's class.
function changesOf(button) {
  if (button.dataset.fix) {
    return { fix: button.dataset.fix, ...(button.dataset.kinds ? { kinds: button.dataset.kinds.split(" ") } : {}) };
  }
  if (button.dataset.drop) return { drop: [Number(button.dataset.drop)] };
  if (button.dataset.relabel) return { relabel: [{ image: Number(button.dataset.relabel), class_name: button.dataset.className }] };
  return null;
}

root.addEventListener("click", (event) => {
  const button = event.target.closest("#quality button");
  if (!button) return;
  if (button.id === "scan-quality") { startScan(button); return; }
  const changes = changesOf(button);
  if (changes) revise(changes);
});

// --- measuring the images of an older dataset ---

let scanTimer = null;

async function startScan(button) {
  button.disabled = true;
  try {
    await apiJson(`/api/datasets/${datasetId}/quality/scan`, { method: "POST" });
    await showRevision(Number(root.dataset.revision), { remember: false });
  } catch (error) {
    button.disabled = false;
    show(document.getElementById("quality-error"), error.message);
  }
}

function drawScan(scan) {
  const bar = document.getElementById("scan-progress");
  if (!bar || !scan) return;
  const percent = Math.round(scan.progress * 100);
  bar.setAttribute("aria-valuenow", String(percent));
  bar.querySelector(".bar").style.width = `${percent}%`;
  bar.querySelector(".label").textContent = t("Measuring the images… %(percent)s%%", { percent });
}

// While a scan measures the images, its progress moves on the page; once the report is there (or the scan
// stopped), the section is drawn again from the server's page.
async function followScan() {
  clearTimeout(scanTimer);
  const quality = section();
  if (!quality || !quality.hasAttribute("data-scan-active")) return;
  drawScan({ progress: Number(quality.querySelector("#scan-progress .bar").dataset.progress) || 0 });
  try {
    const answer = await apiJson(`/api/datasets/${datasetId}/quality?revision=${quality.dataset.revision}`);
    const active = answer.scan && ["queued", "running"].includes(answer.scan.status);
    if (answer.report || !active) {
      await showRevision(Number(quality.dataset.revision), { remember: false });
      return;
    }
    drawScan(answer.scan);
  } catch (error) {
    show(document.getElementById("quality-error"), error.message);
  }
  scanTimer = setTimeout(followScan, SCAN_POLL_MS);
}

document.addEventListener("revision-shown", followScan);
followScan();
