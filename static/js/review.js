// Feedback page, review queue: doubtful production answers labelled in one click each, the labelled ones added to a
// new revision of the training dataset, and (for admins) the queue's settings. Nothing here reloads the page.
import { apiJson, formatMoment, show, SLOT, withNode } from "./api.js";
import { formatNumber, formatPercent, t } from "./i18n.js";

const JSON_HEADERS = { "Content-Type": "application/json", Accept: "application/json" };
const statusFilter = document.getElementById("review-status");
const list = document.getElementById("review-items");
const empty = document.getElementById("review-empty");
const errorBox = document.getElementById("review-error");
const done = document.getElementById("review-done");
const settingsForm = document.getElementById("review-settings");

function post(url, payload) {
  return apiJson(url, { method: "POST", headers: JSON_HEADERS, body: JSON.stringify(payload) });
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showCounts(totals) {
  for (const name of ["waiting", "labelled", "dismissed", "added"]) {
    document.getElementById(`review-${name}`).textContent = formatNumber(totals[name]);
  }
}

// One button per version with labelled images waiting: "Add 3 labelled images to colours as a new revision".
function showReady(ready) {
  const box = document.getElementById("review-ready");
  box.replaceChildren(...ready.map((entry) => {
    if (!entry.dataset_name) {
      return element("p", "hint", t("v%(version)s has labelled images (%(count)s), but the dataset it was trained on is gone.", {
        count: formatNumber(entry.labelled), version: entry.version }));
    }
    const button = element("button", "button primary review-add", t(
      "Add the labelled images of v%(version)s (%(count)s) to %(name)s as a new revision",
      { count: formatNumber(entry.labelled), version: entry.version, name: entry.dataset_name }));
    button.type = "button";
    button.addEventListener("click", () => addToRevision(entry.version, button));
    return button;
  }));
}

// The item's answer in words: its two classes and confidences, and whether the model abstained.
function describe(item) {
  const top = item.top.map((entry) => `${entry.class} ${formatPercent(entry.confidence, 0)}`).join(" · ");
  const parts = [`v${item.version}`, top];
  if (item.abstained) parts.push(t("abstained"));
  if (item.anonymous) parts.push(t("anonymous caller"));
  return parts.join(" — ");
}

function decisionControls(item, classes) {
  const controls = element("div", "review-choices");
  for (const entry of item.top) {
    const button = element("button", "button review-choice", entry.class);
    button.type = "button";
    button.title = t("Label it %(name)s", { name: entry.class });
    if (item.label === entry.class) button.classList.add("primary");
    button.addEventListener("click", () => decide(item, { label: entry.class }));
    controls.append(button);
  }
  const others = classes.filter((name) => !item.top.some((entry) => entry.class === name));
  if (others.length) {
    const menu = element("select", "review-other");
    menu.setAttribute("aria-label", t("Another class"));
    menu.append(new Option(t("Another class…"), ""));
    for (const name of others) menu.append(new Option(name, name, false, item.label === name));
    menu.addEventListener("change", () => { if (menu.value) decide(item, { label: menu.value }); });
    controls.append(menu);
  }
  if (item.status !== "dismissed") {
    const dismiss = element("button", "button review-dismiss", t("Dismiss"));
    dismiss.type = "button";
    dismiss.addEventListener("click", () => decide(item, { dismiss: true }));
    controls.append(dismiss);
  }
  return controls;
}

function card(item, classes) {
  const entry = element("li", "review-item");
  entry.dataset.item = item.id;
  if (item.thumbnail_url) {
    const link = element("a", "review-image");
    link.href = item.image_url;
    link.target = "_blank";
    link.rel = "noopener";
    const image = element("img");
    image.src = item.thumbnail_url;
    image.alt = t("Image answered %(name)s", { name: item.top[0].class });
    image.loading = "lazy";
    link.append(image);
    entry.append(link);
  }
  const text = element("div", "review-text");
  text.append(element("p", "review-answer", describe(item)));
  const when = element("time", "hint", formatMoment(item.created_at));
  when.dateTime = item.created_at;
  text.append(when);
  if (item.label) text.append(element("p", "review-label", t("Labelled %(name)s", { name: item.label })));
  if (item.revision) {
    const link = element("a", "", t("revision %(number)s", { number: item.revision }));
    link.href = `/datasets/${item.dataset_id}`;
    const line = element("p", "review-label");
    line.append(...withNode(t("In %(revision)s of the dataset it was trained on.", { revision: SLOT }), link));
    text.append(line);
  }
  entry.append(text);
  if (item.revision === null) entry.append(decisionControls(item, classes));
  return entry;
}

async function refresh() {
  const query = new URLSearchParams({ status: statusFilter.value, limit: "60" });
  let body;
  try {
    body = await apiJson(`/api/review/items?${query}`);
  } catch (error) {
    show(errorBox, error.message);
    return;
  }
  const classes = Object.fromEntries(body.versions.map((version) => [version.version, version.classes]));
  showCounts(body.totals);
  showReady(body.totals.ready);
  list.replaceChildren(...body.items.map((item) => card(item, classes[item.version] || [])));
  empty.hidden = body.items.length > 0;
}

async function decide(item, payload) {
  errorBox.hidden = true;
  const entry = list.querySelector(`[data-item="${item.id}"]`);
  for (const control of entry.querySelectorAll("button, select")) control.disabled = true;
  try {
    await post(`/api/review/items/${item.id}`, payload);
  } catch (error) {
    show(errorBox, error.message);
  }
  await refresh();
}

async function addToRevision(version, button) {
  errorBox.hidden = true;
  done.hidden = true;
  button.disabled = true;
  button.textContent = t("Adding…");
  try {
    const body = await post("/api/review/revision", { version });
    const link = element("a", "", body.dataset.name);
    link.href = `/datasets/${body.dataset.id}`;
    const text = t("Made revision %(revision)s of %(name)s: %(count)s labelled images from the review queue added to its training split.", {
      revision: formatNumber(body.revision), name: SLOT, count: formatNumber(body.review_images) });
    done.replaceChildren(...withNode(text, link));
    done.hidden = false;
  } catch (error) {
    show(errorBox, error.message);
  }
  await refresh();
}

// The settings: the form shows them as stored; the notice says when the queue is off.
function showSettings(settings) {
  document.getElementById("review-off").hidden = settings.enabled;
  if (!settingsForm) return;
  settingsForm.elements.enabled.checked = settings.enabled;
  settingsForm.elements.keep_anonymous.checked = settings.keep_anonymous;
  settingsForm.elements.margin.value = settings.margin;
  settingsForm.elements.sample_percent.value = Math.round(settings.sample_rate * 100);
  settingsForm.elements.hourly_cap.value = settings.hourly_cap;
  document.getElementById("review-settings-note").textContent = t("%(taken)s of %(cap)s kept this hour.", {
    taken: formatNumber(settings.taken_this_hour), cap: formatNumber(settings.hourly_cap) });
}

async function saveSettings(event) {
  event.preventDefault();
  const errors = document.getElementById("review-settings-error");
  errors.hidden = true;
  const fields = settingsForm.elements;
  for (const name of ["margin", "sample_percent", "hourly_cap"]) {
    if (!fields[name].checkValidity()) {
      show(errors, t("Check the highlighted value: %(message)s", { message: fields[name].validationMessage }));
      fields[name].setAttribute("aria-invalid", "true");
      fields[name].focus();
      return;
    }
    fields[name].removeAttribute("aria-invalid");
  }
  const payload = {
    enabled: fields.enabled.checked, keep_anonymous: fields.keep_anonymous.checked, margin: Number(fields.margin.value),
    sample_rate: Number(fields.sample_percent.value) / 100, hourly_cap: Number(fields.hourly_cap.value),
  };
  try {
    showSettings(await apiJson("/api/review/settings", { method: "PUT", headers: JSON_HEADERS, body: JSON.stringify(payload) }));
  } catch (error) {
    show(errors, error.message);
  }
}

statusFilter.addEventListener("change", refresh);
if (settingsForm) settingsForm.addEventListener("submit", saveSettings);
apiJson("/api/review/settings").then(showSettings).catch((error) => show(errorBox, error.message));
refresh();
