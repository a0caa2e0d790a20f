// Prediction page: drop, pick or paste images; each is classified in turn and listed with its top classes.

const dropzone = document.getElementById("drop-image");
const input = document.getElementById("image-input");
const picker = document.getElementById("version-picker");
const topK = document.getElementById("top-k");
const list = document.getElementById("predictions");
const errorBox = document.getElementById("predict-error");
const RUNTIME_NAMES = { onnx: "ONNX Runtime", paddle: "Paddle Inference" };
const ARM_NAMES = { production: "production", candidate: "candidate (experiment)", pinned: "chosen version" };

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
  title.textContent = file.name || "pasted image";
  const status = document.createElement("p");
  status.className = "hint status";
  status.textContent = "Waiting…";
  body.append(title, status);
  item.append(preview, body);
  list.prepend(item);
  return { item, body, status };
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
    value.textContent = `${(entry.confidence * 100).toFixed(1)}%`;
    row.append(name, track, value);
    box.append(row);
  });
  return box;
}

async function classify({ file, view }) {
  view.status.textContent = "Classifying…";
  const data = new FormData();
  data.append("image", file, file.name || "pasted.png");
  if (picker && picker.value) data.append("version", picker.value);
  data.append("top_k", topK.value || "5");
  const started = performance.now();
  let body = null;
  let ok = false;
  try {
    const response = await fetch("/api/predict", { method: "POST", body: data, headers: { Accept: "application/json" } });
    ok = response.ok;
    body = await response.json();
  } catch {
    body = { error: "The server could not be reached." };
  }
  view.item.classList.remove("pending");
  if (!ok) {
    view.item.classList.add("failed");
    view.status.textContent = body && body.error ? body.error : "Classification failed.";
    return;
  }
  const total = performance.now() - started;
  const answer = document.createElement("p");
  answer.className = "answer";
  answer.textContent = body.abstained ? "Not sure" : body.class;
  if (body.abstained) answer.title = "The confidence is below this version's abstain threshold; the top classes are listed below.";
  const runtime = RUNTIME_NAMES[body.runtime] || body.runtime;
  view.item.dataset.arm = body.arm;
  view.status.textContent = `model v${body.model_version} (${ARM_NAMES[body.arm] || body.arm}) · ${runtime} · ${body.elapsed_ms.toFixed(0)} ms on the server · ${total.toFixed(0)} ms in all`;
  view.body.insertBefore(answer, view.status);
  view.body.append(bars(body));
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
    errorBox.textContent = "Drop image files (JPEG, PNG, GIF, BMP or WEBP).";
    errorBox.hidden = false;
    return;
  }
  images.forEach((file) => queue.push({ file, view: card(file) }));
  drain();
}

if (dropzone) {
  ["dragenter", "dragover"].forEach((type) => dropzone.addEventListener(type, (e) => { e.preventDefault(); dropzone.classList.add("over"); }));
  ["dragleave", "drop"].forEach((type) => dropzone.addEventListener(type, () => dropzone.classList.remove("over")));
  dropzone.addEventListener("drop", (e) => { e.preventDefault(); add(e.dataTransfer.files); });
  input.addEventListener("change", () => { add(input.files); input.value = ""; });
  document.addEventListener("paste", (e) => {
    const files = Array.from(e.clipboardData.items).filter((i) => i.kind === "file").map((i) => i.getAsFile());
    if (files.length) add(files);
  });
}
