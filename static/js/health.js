// Header badge: green when the database, Redis and a worker answer; red with the reason otherwise.

const badge = document.getElementById("health-badge");

function describe(report) {
  const problems = [];
  if (report.database !== "ok") problems.push("database down");
  if (report.redis !== "ok") problems.push("Redis down");
  else if (!report.workers || report.workers.length === 0) problems.push("no training worker");
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
    badge.textContent = `ready · ${report.workers.length} worker${report.workers.length > 1 ? "s" : ""}`;
    badge.title = report.workers.join(", ");
  } else {
    badge.classList.add("badge-bad");
    badge.textContent = problems.join(" · ");
    badge.title = "Training needs the database, Redis and at least one worker.";
  }
}

refresh();
setInterval(refresh, 10000);
