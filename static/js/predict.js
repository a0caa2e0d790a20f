// Prediction page: drop, pick or paste images; each is classified in turn and listed with its top classes,
// and a person can mark each answer right or wrong (with the right class). Large photos are downscaled first.
// With "Show where the model looked" on, each answer also draws its explanation over the image.
import { apiJson, csrfHeaders } from "./api.js";
import { downscaleForUpload, jpegName } from "./downscale.js";
import { drawOverlay, framed, legend } from "./explain_overlay.js";
import { formatNumber, formatPercent, t } from "./i18n.js";

const dropzone = document.getElementById("drop-image");
const input = document.getElementById("image-input");
const camera = document.getElementById("camera-input");
const picker = document.getElementById("version-picker");
const topK = document.getElementById("top-k");
const list = document.getElementById("predictions");
const errorBox = document.getElementById("predict-error");
const explainToggle = document.getElementById("explain-toggle");
const canGiveFeedback = list ? list.dataset.feedback === "on" : false;
const RUNTIME_NAMES = { onnx: "ONNX Runtime", paddle: "Paddle Inference", onnx_int8: "ONNX Runtime int8" };
const ARM_NAMES = { production: t("production"), candidate: t("candidate (experiment)"), pinned: t("chosen version") };

// One key per browser, so a release experiment shows this browser the same version every time.
if (!document.cookie.split("; ").some((entry) => entry.startsWith("studio_client="))) {
  const key = crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`;
  document.cookie = `studio_client=${key}; path=/; max-age=31536000; SameSite=Lax`;
}

const pinned = new URLSearchParams(window.location.search).get("version");
if (pinned && picker) picker.value = pinned;

const queue = [];
let busy = false;

function card(file) {
  const item = document.createElement("article");
  item.className = "card prediction pending";
  const preview = document.createElement("img");
  preview.src = URL.createObjectURL(file);
  preview.alt = file.name;
  const body = document.createElement("div");
  body.className = "prediction-body";
  const title = document.createElement("h3");
  title.textContent = file.name || t("pasted image");
  const status = document.createElement("p");
  status.className = "hint status";
  status.textContent = t("Waiting…");
  body.append(title, status);
  const { frame, canvas } = framed(preview);
  item.append(frame, body);
  list.prepend(item);
  return { item, body, status, preview, canvas };
}

function bars(result) {
  const box = document.createElement("div");
  box.className = "bars";
  result.top_k.forEach((entry, index) => {
    const row = document.createElement("div");
    row.className = `bar-row${index === 0 ? " top" : ""}`;
    const name = document.createElement("span");
    name.className = "bar-name";
    name.textContent = entry.class;
    const track = document.createElement("span");
    track.className = "bar-track";
    const fill = document.createElement("span");
    fill.className = "bar-fill";
    fill.style.width = `${(entry.confidence * 100).toFixed(1)}%`;
    track.append(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = formatPercent(entry.confidence, 1);
    row.append(name, track, value);
    box.append(row);
  });
  return box;
}

// The decode size of the version that will answer: the one chosen, or the largest of the released arms.
function decodeSize() {
  const chosen = picker && picker.value ? picker.selectedOptions[0] : dropzone;
  return Number.parseInt(chosen ? chosen.dataset.decodeSize : "", 10) || null;
}

async function upload(file, view) {
  const smaller = await downscaleForUpload(file, decodeSize());
  if (!smaller) return { blob: file, name: file.name || "pasted.png" };
  const sent = document.createElement("p");
  sent.className = "hint sent-size";
  sent.textContent = t("sent %(sent)s of %(original)s", {
    sent: `${smaller.width}×${smaller.height}`, original: `${smaller.original.width}×${smaller.original.height}`,
  });
  view.body.append(sent);
  return { blob: smaller.blob, name: jpegName(file.name) };
}

async function post(image, explain) {
  const data = new FormData();
  data.append("image", image.blob, image.name);
  if (picker && picker.value) data.append("version", picker.value);
  data.append("top_k", topK.value || "5");
  if (explain) data.append("explain", "png");
  try {
    const response = await fetch("/api/predict", { method: "POST", body: data, headers: { Accept: "application/json", ...csrfHeaders() } });
    return { ok: response.ok, body: await response.json() };
  } catch {
    return { ok: false, body: { error: t("The server could not be reached.") } };
  }
}

// The answer, with its explanation when the toggle is on; a version that cannot explain answers without one,
// and the reason is shown in its place.
async function ask(image, view) {
  const explain = Boolean(explainToggle && explainToggle.checked);
  const first = await post(image, explain);
  if (!explain || first.ok || first.body.code !== "explanation_unavailable") return first;
  const note = document.createElement("p");
  note.className = "hint explain-legend";
  note.textContent = first.body.error;
  view.body.append(note);
  return post(image, false);
}

async function showExplanation(view, explanation) {
  try {
    await drawOverlay(view.canvas, view.preview, explanation);
    view.body.append(legend(explanation));
  } catch {
    view.body.append(Object.assign(document.createElement("p"), { className: "hint", textContent: t("The map could not be drawn.") }));
  }
}

async function classify({ file, view }) {
  view.status.textContent = t("Classifying…");
  const image = await upload(file, view);
  const started = performance.now();
  const { ok, body } = await ask(image, view);
  view.item.classList.remove("pending");
  if (!ok) {
    view.item.classList.add("failed");
    view.status.textContent = body && body.error ? body.error : t("Classification failed.");
    return;
  }
  const total = performance.now() - started;
  const answer = document.createElement("p");
  answer.className = "answer";
  answer.textContent = body.abstained ? t("Not sure") : body.class;
  if (body.abstained) answer.title = t("The confidence is below this version's abstain threshold; the top classes are listed below.");
  const runtime = RUNTIME_NAMES[body.runtime] || body.runtime;
  view.item.dataset.arm = body.arm;
  view.status.textContent = t("model v%(version)s (%(arm)s) · %(runtime)s · %(server)s ms on the server · %(total)s ms in all", {
    version: body.model_version, arm: ARM_NAMES[body.arm] || body.arm, runtime,
    server: formatNumber(body.elapsed_ms, { maximumFractionDigits: 0 }), total: formatNumber(total, { maximumFractionDigits: 0 }),
  });
  view.body.insertBefore(answer, view.status);
  view.body.append(bars(body));
  if (body.explanation) await showExplanation(view, body.explanation);
  if (canGiveFeedback) view.body.append(feedbackRow(body));
}

const classLists = new Map(); // model version -> promise of its class names

function classesOf(version) {
  if (!classLists.has(version)) {
    classLists.set(version, apiJson(`/api/models/${version}`).then((m) => m.classes).catch(() => []));
  }
  return classLists.get(version);
}

function button(text, className = "button") {
  const element = document.createElement("button");
  element.type = "button";
  element.className = className;
  element.textContent = text;
  return element;
}

async function sendFeedback(result, payload) {
  return apiJson(`/api/predictions/${result.id}/feedback`, {
    method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify(payload),
  });
}

// "Is this right?" under an answer: Right, or Wrong with the right class (one of the version's or a new one).
function feedbackRow(result) {
  const box = document.createElement("div");
  box.className = "feedback-row";
  const top = result.top_k[0].class;

  function ask() {
    const question = document.createElement("span");
    question.className = "hint";
    question.textContent = result.abstained ? t("Is it %(name)s?", { name: top }) : t("Is this right?");
    const right = button(t("Right"));
    right.dataset.verdict = "right";
    const wrong = button(t("Wrong"));
    wrong.dataset.verdict = "wrong";
    right.addEventListener("click", () => send({ correct: true }));
    wrong.addEventListener("click", correct);
    box.replaceChildren(question, right, wrong);
  }

  async function correct() {
    const input = document.createElement("input");
    input.type = "text";
    input.maxLength = 255;
    input.placeholder = t("the right class");
    input.setAttribute("aria-label", t("The right class"));
    const list = document.createElement("datalist");
    list.id = `classes-${result.id}`;
    input.setAttribute("list", list.id);
    const sendButton = button(t("Send"), "button primary");
    const unknown = button(t("Not sure what it is"));
    const cancel = button(t("Cancel"));
    sendButton.addEventListener("click", () => {
      const label = input.value.trim();
      if (!label) { input.focus(); return; }
      send({ correct: false, label });
    });
    input.addEventListener("keydown", (event) => { if (event.key === "Enter") sendButton.click(); });
    unknown.addEventListener("click", () => send({ correct: false, label: null }));
    cancel.addEventListener("click", ask);
    box.replaceChildren(input, list, sendButton, unknown, cancel);
    input.focus();
    const names = await classesOf(result.model_version);
    list.replaceChildren(...names.filter((name) => name !== top).map((name) => {
      const option = document.createElement("option");
      option.value = name;
      return option;
    }));
  }

  async function send(payload) {
    box.querySelectorAll("button").forEach((element) => { element.disabled = true; });
    try {
      const saved = await sendFeedback(result, payload);
      const note = document.createElement("span");
      note.className = saved.correct ? "verdict-right" : "verdict-wrong";
      note.textContent = saved.correct ? t("Marked right: %(name)s", { name: saved.predicted_class })
        : saved.label ? t("Marked wrong: it is %(name)s", { name: saved.label }) : t("Marked wrong");
      const extra = document.createElement("span");
      extra.className = "hint";
      const kept = saved.image_kept ? t("image kept for training") : t("the image was not kept (the feedback disk cap is reached)");
      extra.textContent = ` · ${kept}`;
      const change = button(t("Change"));
      change.addEventListener("click", ask);
      box.replaceChildren(note, extra, change);
      box.dataset.saved = saved.correct ? "right" : "wrong";
    } catch (error) {
      const message = document.createElement("span");
      message.className = "error";
      message.textContent = error.message;
      const again = button(t("Try again"));
      again.addEventListener("click", ask);
      box.replaceChildren(message, again);
    }
  }

  ask();
  return box;
}

async function drain() {
  if (busy) return;
  busy = true;
  while (queue.length) await classify(queue.shift());
  busy = false;
}

function add(files) {
  errorBox.hidden = true;
  const images = Array.from(files);
  if (images.length === 0) {
    errorBox.textContent = t("Drop image files (JPEG, PNG, GIF, BMP or WEBP).");
    errorBox.hidden = false;
    return;
  }
  images.forEach((file) => queue.push({ file, view: card(file) }));
  drain();
}

if (explainToggle) {
  explainToggle.addEventListener("change", () => list.classList.toggle("explain-off", !explainToggle.checked));
}

if (dropzone) {
  ["dragenter", "dragover"].forEach((type) => dropzone.addEventListener(type, (e) => { e.preventDefault(); dropzone.classList.add("over"); }));
  ["dragleave", "drop"].forEach((type) => dropzone.addEventListener(type, () => dropzone.classList.remove("over")));
  dropzone.addEventListener("drop", (e) => { e.preventDefault(); add(e.dataTransfer.files); });
  for (const picked of [input, camera]) {
    picked.addEventListener("change", () => { add(picked.files); picked.value = ""; });
  }
  document.addEventListener("paste", (e) => {
    const files = Array.from(e.clipboardData.items).filter((i) => i.kind === "file").map((i) => i.getAsFile());
    if (files.length) add(files);
  });
}
