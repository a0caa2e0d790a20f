// Audit log page: the entries of GET /api/audit as a table, narrowed by the filters as they change (no
// reload), a page at a time with "Load more"; actions and details in words.
import { apiJson, formatMoment, show, tableCell as cell } from "./api.js";
import { formatNumber, t } from "./i18n.js";

const PAGE_SIZE = 50;
const TYPING_PAUSE_MS = 300;
const form = document.getElementById("audit-filters");
const rows = document.querySelector("#audit-table tbody");
const summary = document.getElementById("audit-summary");
const empty = document.getElementById("audit-empty");
const more = document.getElementById("audit-more");
const errorBox = document.getElementById("audit-error");

const ACTIONS = {
  "user.sign_in": t("signed in"),
  "user.sign_in_failed": t("sign-in refused"),
  "user.sign_out": t("signed out"),
  "user.setup": t("first-run setup"),
  "user.create": t("user created"),
  "user.role": t("role changed"),
  "user.password": t("password changed"),
  "user.delete": t("user deleted"),
  "token.create": t("API token created"),
  "token.revoke": t("API token revoked"),
  "release.first_version": t("first version released"),
  "release.promote": t("promoted to production"),
  "release.promote_candidate": t("candidate promoted to production"),
  "release.promote_when_done": t("promoted when its training ended"),
  "release.rollback": t("release rolled back"),
  "release.set_candidate": t("candidate chosen"),
  "release.set_share": t("candidate's share changed"),
  "release.stop_experiment": t("experiment stopped"),
  "model.threshold": t("abstain threshold changed"),
  "model.class_thresholds": t("per-class thresholds changed"),
  "model.delete": t("model version deleted"),
  "dataset.delete": t("dataset deleted"),
  "dataset.revise": t("dataset revised"),
  "dataset.revision_delete": t("dataset revision deleted"),
  "batch.delete": t("batch prediction deleted"),
  "feedback.purge": t("feedback images purged"),
  "review.add": t("reviewed images added to a dataset"),
  "review.settings": t("review queue settings changed"),
  "webhook.create": t("webhook added"),
  "webhook.change": t("webhook changed"),
  "webhook.delete": t("webhook removed"),
  "webhook.rotate": t("webhook secret rotated"),
};

// The kinds of subject, named in words by the page's own subject filter (one list for both).
const SUBJECTS = Object.fromEntries([...document.getElementById("audit-subject-type").options]
  .filter((option) => option.value).map((option) => [option.value, option.textContent]));

const REASONS = {
  unknown_user: t("unknown user"), wrong_password: t("wrong password"), rate_limited: t("too many tries"),
  limit_unavailable: t("the limit could not be counted"),
};

const DETAIL_NAMES = {
  username: t("user name"), reason: t("reason"), role: t("role"), from: t("from"), to: t("to"),
  share: t("share"), name: t("name"), owner: t("owner"), scope: t("scope"), images: t("images"),
  bytes: t("bytes"), revision: t("revision"), version: t("version"), everywhere: t("everywhere"),
  sessions: t("sessions"), num_images: t("images"), job_id: t("job"), backbone: t("backbone network"),
  url: t("URL"), events: t("events"), enabled: t("enabled"), description: t("description"),
};

let next = null;
let asked = 0;  // the newest request: answers to older ones (filters changed meanwhile) are dropped

function detailValue(key, value) {
  if (key === "reason") return REASONS[value] || String(value);
  if (key === "share" && typeof value === "number") return `${formatNumber(value)}%`;
  if (value === null || value === undefined) return "–";
  if (value === true) return t("yes");
  if (value === false) return t("no");
  if (typeof value === "number") return formatNumber(value);
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function details(entry) {
  const pairs = Object.entries(entry.details || {});
  if (!pairs.length) return "–";
  const list = document.createElement("ul");
  list.className = "audit-details";
  for (const [key, value] of pairs) {
    const item = document.createElement("li");
    item.textContent = `${DETAIL_NAMES[key] || key}: ${detailValue(key, value)}`;
    list.append(item);
  }
  return list;
}

function when(entry) {
  const time = document.createElement("time");
  time.dateTime = entry.at;
  time.textContent = formatMoment(entry.at);
  return time;
}

function subject(entry) {
  const kind = SUBJECTS[entry.subject_type] || entry.subject_type;
  return entry.subject_id === null ? kind : `${kind} ${entry.subject_id}`;
}

function row(entry) {
  const tr = document.createElement("tr");
  tr.dataset.action = entry.action;
  if (entry.action === "user.sign_in_failed") tr.className = "audit-refused";
  tr.append(cell(when(entry)), cell(entry.actor), cell(entry.address || "–"),
    cell(ACTIONS[entry.action] || entry.action), cell(subject(entry)), cell(details(entry)));
  return tr;
}

// A day picked in the page (the reader's local calendar) as the UTC moment it starts; `after` moves to the next.
function dayStart(value, after = false) {
  const day = new Date(`${value}T00:00`);
  if (after) day.setDate(day.getDate() + 1);
  return day.toISOString();
}

function query(before) {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  for (const name of ["action", "actor", "address", "subject_type", "subject_id"]) {
    const value = form.elements[name].value.trim();
    if (value) params.set(name, value);
  }
  if (form.elements.since.value) params.set("since", dayStart(form.elements.since.value));
  if (form.elements.until.value) params.set("until", dayStart(form.elements.until.value, true));
  if (before !== null) params.set("before", String(before));
  return `/api/audit?${params}`;
}

function describe() {
  const count = rows.children.length;
  return count === 1 ? t("%(count)s entry shown", { count: formatNumber(count) })
    : t("%(count)s entries shown", { count: formatNumber(count) });
}

async function load(before = null) {
  const mine = ++asked;
  more.disabled = true;
  try {
    const page = await apiJson(query(before));
    if (mine !== asked) return;
    errorBox.hidden = true;
    if (before === null) rows.replaceChildren();
    rows.append(...page.entries.map(row));
    next = page.next_before;
    more.hidden = next === null;
    empty.hidden = rows.children.length > 0;
    summary.textContent = describe();
  } catch (error) {
    if (mine === asked) show(errorBox, error.message);
  } finally {
    if (mine === asked) more.disabled = false;
  }
}

let typing = null;
form.addEventListener("input", (event) => {
  clearTimeout(typing);
  typing = setTimeout(() => load(), event.target.type === "text" ? TYPING_PAUSE_MS : 0);
});
form.addEventListener("submit", (event) => {
  event.preventDefault();
  load();
});
more.addEventListener("click", () => load(next));
load();
