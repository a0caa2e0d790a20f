// Header badge: green when the database, Redis and a worker answer and no service is down; red with the
// reason otherwise.
import { formatNumber, t } from "./i18n.js";

const badge = document.getElementById("health-badge");  // absent for people who are not signed in

function describe(report) {
  const problems = [];
  if (report.database !== "ok") problems.push(t("database down"));
  if (report.redis !== "ok") problems.push(t("Redis down"));
  else if (!report.training_workers) problems.push(t("no training worker"));
  // Services the launcher starts again after they ended (admins read why in the report itself).
  for (const service of report.services_down || []) problems.push(t("%(name)s down", { name: service.name }));
  return problems;
}

async function refresh() {
  let report;
  try {
    const response = await fetch("/api/health", { headers: { Accept: "application/json" } });
    report = await response.json();
  } catch {
    report = { database: "unknown", redis: "unknown", workers: [] };
  }
  const problems = describe(report);
  badge.classList.remove("badge-wait", "badge-ok", "badge-bad");
  if (problems.length === 0) {
    badge.classList.add("badge-ok");
    const count = report.training_workers;
    badge.textContent = count > 1 ? t("ready · %(count)s training workers", { count: formatNumber(count) })
      : t("ready · %(count)s training worker", { count: formatNumber(count) });
    badge.title = report.workers.map((worker) => `${worker.name} · ${worker.device || "–"}`).join(", ");
  } else {
    badge.classList.add("badge-bad");
    badge.textContent = problems.join(" · ");
    badge.title = t("Training needs the database, Redis and at least one worker.");
  }
}

if (badge) {
  refresh();
  setInterval(refresh, 10000);
}
