// Dataset page: the revisions. Showing another revision without a reload (the page's own parts for it, taken
// from the server's page), comparing a revision with the one it was made from, and deleting one.

import { apiJson, formatMoment, show } from "./api.js";
import { formatNumber, t } from "./i18n.js";

const root = document.getElementById("dataset-page");
const datasetId = root.dataset.datasetId;
// Items of a long list shown before its "show all" button (as the server's lists do).
export const PAGE_SIZE = 6;

function pageUrl(number) {
  return number ? `/datasets/${datasetId}?revision=${number}` : `/datasets/${datasetId}`;
}

// <time> elements written after the page loaded, in the reader's locale (as time.js does at load).
function formatTimes(scope) {
  for (const element of scope.querySelectorAll("time[datetime]")) {
    element.textContent = formatMoment(element.getAttribute("datetime"));
    element.title = element.getAttribute("datetime");
  }
}

// The train form's revision choices follow the page's; the one shown is picked (its suggestion reloads).
function refreshRevisionChoice(fresh, number) {
  const select = document.getElementById("train-revision");
  const options = fresh.getElementById("train-revision");
  if (!select || !options) return;
  select.replaceChildren(...[...options.options].map((option) => document.adoptNode(option)));
  select.value = String(number);
  select.dispatchEvent(new Event("change", { bubbles: true }));
}

// Show revision `number` (null: the newest): every part of the page that depends on the revision is
// replaced by the server's, and the address names it. Resolves to the number shown.
export async function showRevision(number, { remember = true } = {}) {
  const response = await fetch(pageUrl(number), { headers: { Accept: "text/html" } });
  if (!response.ok) throw new Error(t("The server answered %(status)s.", { status: response.status }));
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  const freshRoot = fresh.getElementById("dataset-page");
  if (!freshRoot) throw new Error(t("The server answered %(status)s.", { status: response.status }));
  for (const part of document.querySelectorAll("[data-part]")) {
    const replacement = fresh.getElementById(part.id);
    if (replacement) part.replaceWith(document.adoptNode(replacement));
  }
  const shown = Number(freshRoot.dataset.revision);
  root.dataset.revision = freshRoot.dataset.revision;
  root.dataset.newest = freshRoot.dataset.newest;
  formatTimes(root);
  refreshRevisionChoice(fresh, shown);
  if (remember) rememberEntry(number === null ? null : shown);
  document.dispatchEvent(new CustomEvent("revision-shown", { detail: { revision: shown } }));
  return shown;
}

// The history remembers which revision each entry asked for (null: the newest), so that Back shows it again;
// entries without that (a jump to a finding's anchor) are left to the browser.
let remembered = new URLSearchParams(window.location.search).get("revision");
remembered = remembered ? Number(remembered) : null;
window.history.replaceState({ revision: remembered }, "");

function rememberEntry(asked) {
  remembered = asked;
  window.history.pushState({ revision: asked }, "", pageUrl(asked));
}

window.addEventListener("popstate", (event) => {
  if (!event.state || !("revision" in event.state) || event.state.revision === remembered) return;
  remembered = event.state.revision;
  showRevision(remembered, { remember: false }).catch(() => window.location.reload());
});

// --- comparing a revision with the one it was made from ---

const SPLITS = { train: t("train"), val: t("val"), test: t("test") };
const KINDS = {
  added: (count) => t("Added (%(count)s)", { count: formatNumber(count) }),
  removed: (count) => t("Removed (%(count)s)", { count: formatNumber(count) }),
  relabelled: (count) => t("Relabelled (%(count)s)", { count: formatNumber(count) }),
  moved: (count) => t("Moved to another split (%(count)s)", { count: formatNumber(count) }),
};

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function changedImage(kind, item) {
  const li = element("li", "diff-image");
  const figure = element("figure", "quality-image");
  const img = element("img");
  Object.assign(img, { src: item.thumbnail_url, alt: item.path, width: 96, height: 96, loading: "lazy" });
  const caption = element("figcaption");
  caption.append(element("span", "path", item.path));
  let facts = `${item.class_name} · ${SPLITS[item.split] || item.split}`;
  if (kind === "relabelled") facts = `${item.from} → ${item.to}`;
  if (kind === "moved") facts = `${item.class_name} · ${SPLITS[item.from] || item.from} → ${SPLITS[item.to] || item.to}`;
  caption.append(element("span", "image-facts", facts));
  figure.append(img, caption);
  li.append(figure);
  return li;
}

// A list of items, the first PAGE_SIZE shown and a "show all" button for the rest (dataset.js handles it).
export function collapsedList(id, className, items) {
  const list = element("ul", className);
  list.id = id;
  items.forEach((item, index) => { item.hidden = index >= PAGE_SIZE; list.append(item); });
  const parts = [list];
  if (items.length > PAGE_SIZE) {
    const button = element("button", "button show-all", t("Show all %(count)s", { count: formatNumber(items.length) }));
    Object.assign(button, { type: "button" });
    button.setAttribute("aria-controls", id);
    button.setAttribute("aria-expanded", "false");
    button.dataset.showAll = id;
    parts.push(button);
  }
  return parts;
}

function drawDiff(box, diff) {
  const parts = [];
  const total = Object.values(diff.counts).reduce((sum, count) => sum + count, 0);
  parts.push(element("p", "hint", total ? t("Revision %(to)s against revision %(from)s:", { to: diff.to, from: diff.from })
    : t("Revision %(to)s holds the same images, classes and splits as revision %(from)s.", { to: diff.to, from: diff.from })));
  for (const [kind, title] of Object.entries(KINDS)) {
    if (!diff.counts[kind]) continue;
    parts.push(element("h4", "", title(diff.counts[kind])));
    if (diff.counts[kind] > diff[kind].length) {
      parts.push(element("p", "hint", t("The first %(shown)s are shown.", { shown: formatNumber(diff[kind].length) })));
    }
    parts.push(...collapsedList(`${box.id}-${kind}`, "diff-list", diff[kind].map((item) => changedImage(kind, item))));
  }
  box.replaceChildren(...parts);
}

async function compare(button) {
  const item = button.closest(".revision");
  const box = item.querySelector(".revision-diff");
  const errorBox = item.querySelector(".error");
  errorBox.hidden = true;
  if (button.getAttribute("aria-expanded") === "true") {
    box.hidden = true;
    button.setAttribute("aria-expanded", "false");
    return;
  }
  button.disabled = true;
  try {
    const diff = await apiJson(`/api/datasets/${datasetId}/revisions/${button.dataset.compare}/diff?against=${button.dataset.against}`);
    drawDiff(box, diff);
    box.hidden = false;
    button.setAttribute("aria-expanded", "true");
  } catch (error) {
    show(errorBox, error.message);
  } finally {
    button.disabled = false;
  }
}

// --- deleting a revision ---

async function deleteRevision(button) {
  const number = Number(button.dataset.deleteRevision);
  const errorBox = button.closest(".revision").querySelector(".error");
  if (!window.confirm(t("Delete revision %(number)s? Its images that no other revision holds are deleted with it.", { number }))) return;
  errorBox.hidden = true;
  button.disabled = true;
  try {
    await apiJson(`/api/datasets/${datasetId}/revisions/${number}`, { method: "DELETE" });
    const shown = Number(root.dataset.revision);
    await showRevision(shown === number ? null : shown, { remember: shown === number });
    show(document.getElementById("revision-status"), t("Revision %(number)s was deleted.", { number }));
  } catch (error) {
    button.disabled = false;
    show(errorBox, error.message);
  }
}

root.addEventListener("click", (event) => {
  const compareButton = event.target.closest("[data-compare]");
  if (compareButton) compare(compareButton);
  const deleteButton = event.target.closest("[data-delete-revision]");
  if (deleteButton) deleteRevision(deleteButton);
});
