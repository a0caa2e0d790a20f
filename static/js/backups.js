// Workers page, for admins: the scheduled backups (GET /api/backups), refreshed while the page is open.
import { apiJson, formatMoment, show, tableCell as cell } from "./api.js";
import { formatBytes, formatNumber, t } from "./i18n.js";

const REFRESH_MS = 15000;
const table = document.getElementById("backups-table");
const rows = table.querySelector("tbody");
const empty = document.getElementById("backups-empty");
const errorBox = document.getElementById("backups-error");
const STATUSES = { queued: t("queued"), running: t("running"), succeeded: t("succeeded"), failed: t("failed") };

function status(backup) {
  const words = STATUSES[backup.status] || backup.status;
  return backup.error ? `${words}: ${backup.error}` : words;
}

function row(backup) {
  const tr = document.createElement("tr");
  tr.dataset.backup = String(backup.id);
  tr.className = `backups-${backup.status}`;
  const archive = backup.removed_at ? t("removed (newer ones are kept)") : backup.file || "–";
  tr.append(cell(formatMoment(backup.created_at)), cell(status(backup)), cell(archive),
    cell(backup.file ? formatBytes(backup.size_bytes) : "–"), cell(backup.file ? formatNumber(backup.files) : "–"));
  return tr;
}

async function refresh() {
  try {
    if (!document.hidden) {
      const report = await apiJson("/api/backups");
      errorBox.hidden = true;
      rows.replaceChildren(...report.backups.map(row));
      table.hidden = report.backups.length === 0;
      empty.hidden = report.backups.length > 0;
    }
  } catch (error) {
    show(errorBox, t("%(error)s Retrying…", { error: error.message }));
  }
  window.setTimeout(refresh, REFRESH_MS);
}

refresh();
