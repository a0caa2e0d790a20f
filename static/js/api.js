// Small helpers shared by the pages: JSON calls with errors in words.

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
    const message = body && body.error ? body.error : `The server answered ${response.status}.`;
    const error = new Error(message);
    error.status = response.status;
    error.body = body;
    throw error;
  }
  return body;
}

export function show(element, text) {
  element.textContent = text;
  element.hidden = false;
}

// A duration for people: "45 s", "3 min 20 s", "2 h 5 min".
export function formatSeconds(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

// A moment for people, in their locale and time zone; `empty` when there is none.
export function formatMoment(iso, empty = "never") {
  if (!iso) return empty;
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

// A table cell holding text or an element.
export function tableCell(content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content); else td.textContent = content;
  return td;
}
