// Small helpers shared by the pages: JSON calls with errors in words.
import { formatNumber, locale, t } from "./i18n.js";

// The page's CSRF token: the server refuses state-changing calls of a signed-in session without it.
export function csrfHeaders() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? { "X-CSRF-Token": meta.content } : {};
}

export async function apiJson(url, options = {}) {
  const headers = { Accept: "application/json", ...csrfHeaders(), ...(options.headers || {}) };
  const response = await fetch(url, { ...options, headers });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = body && body.error ? body.error : t("The server answered %(status)s.", { status: response.status });
    const error = new Error(message);
    error.status = response.status;
    error.body = body;
    throw error;
  }
  return body;
}

// Every row of a paged list (`key` in each answer), following `next_before` from page to page.
export async function apiAll(url, key) {
  const rows = [];
  let next = null;
  do {
    const page = new URL(url, window.location.origin);
    page.searchParams.set("limit", "500");
    if (next !== null) page.searchParams.set("before", String(next));
    const body = await apiJson(`${page.pathname}${page.search}`);
    rows.push(...body[key]);
    next = body.next_before;
  } while (next !== null && next !== undefined);
  return rows;
}

export function show(element, text) {
  element.textContent = text;
  element.hidden = false;
}

// Form errors tied to their fields for assistive technology: the field is marked invalid and described by the
// element that shows its message; `unflagFields(root)` takes every such mark in `root` off again.
function describedBy(input) {
  return (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
}

export function flagField(input, message) {
  if (!message.id) message.id = `${input.form ? input.form.id : "form"}-${input.name || "field"}-error`;
  input.setAttribute("aria-describedby", [...new Set([...describedBy(input), message.id])].join(" "));
  input.setAttribute("aria-invalid", "true");
  input.dataset.errorId = message.id;
}

export function unflagFields(root) {
  for (const input of root.querySelectorAll("[data-error-id]")) {
    const kept = describedBy(input).filter((id) => id !== input.dataset.errorId);
    if (kept.length) input.setAttribute("aria-describedby", kept.join(" "));
    else input.removeAttribute("aria-describedby");
    input.removeAttribute("aria-invalid");
    delete input.dataset.errorId;
  }
}

// A failed request's message in `box`; when the server named the field at fault and `form` has it, that
// field is flagged and focused.
export function showFormError(form, box, error) {
  show(box, error.message);
  const field = error.body && error.body.field;
  const input = field && form.elements[field];
  if (input instanceof HTMLElement) {
    flagField(input, box);
    input.focus();
  }
}

// A duration for people: "45 s", "3 min 20 s", "2 h 5 min" (the server's formatter uses the same messages).
export function formatSeconds(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  if (seconds < 60) return t("%(s)s s", { s: Math.round(seconds) });
  if (seconds < 3600) return t("%(m)s min %(s)s s", { m: Math.floor(seconds / 60), s: Math.round(seconds % 60) });
  return t("%(h)s h %(m)s min", { h: Math.floor(seconds / 3600), m: Math.round((seconds % 3600) / 60) });
}

// A moment for people, in the page's language and their time zone; `empty` when there is none.
export function formatMoment(iso, empty = t("never")) {
  if (!iso) return empty;
  return new Date(iso).toLocaleString(locale, { dateStyle: "medium", timeStyle: "short" });
}

// A number with a fixed count of decimals, in the page's language (what toFixed gives, with its separators).
export function formatFixed(value, digits) {
  return formatNumber(value, { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

// A translated message with an element in it: translate with SLOT as the element's placeholder value, then
// `withNode(text, element)` gives the pieces for append/replaceChildren.
export const SLOT = "\u0001";

export function withNode(text, node) {
  const at = text.indexOf(SLOT);
  if (at < 0) return [text, node];
  return [text.slice(0, at), node, text.slice(at + SLOT.length)];
}

// A button that runs `action` with the page's error box cleared, shows its error there if it fails, and then,
// either way, calls `after` so the page shows what is now true.
export function actionButton(text, className, action, errorBox, after) {
  const element = document.createElement("button");
  element.type = "button";
  element.className = `button ${className}`;
  element.textContent = text;
  element.addEventListener("click", async () => {
    errorBox.hidden = true;
    try {
      await action();
    } catch (error) {
      show(errorBox, error.message);
    }
    await after();
  });
  return element;
}

// A table cell holding text or an element.
export function tableCell(content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content); else td.textContent = content;
  return td;
}
