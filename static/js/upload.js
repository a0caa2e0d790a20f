// Dataset upload: a folder (picker or drag and drop) or a .zip, sent with a progress bar.

import { csrfHeaders, show, showFormError, unflagFields } from "./api.js";
import { formatBytes, formatNumber, t } from "./i18n.js";

const form = document.getElementById("upload-form");
const dropzone = document.getElementById("dropzone");
const folderInput = document.getElementById("folder-input");
const zipInput = document.getElementById("zip-input");
const selection = document.getElementById("selection");
const button = document.getElementById("upload-button");
const progress = document.getElementById("upload-progress");
const bar = progress.querySelector(".bar");
const label = progress.querySelector(".label");
const errorBox = document.getElementById("upload-error");
const nameInput = document.getElementById("dataset-name");

let chosen = null; // { kind: "zip", file } or { kind: "files", files: [{ file, path }] }

function choose(value) {
  chosen = value;
  errorBox.hidden = true;
  if (!value) {
    selection.textContent = "";
    button.disabled = true;
    return;
  }
  if (value.kind === "zip") {
    selection.textContent = `${value.file.name} · ${formatBytes(value.file.size)}`;
  } else {
    const bytes = value.files.reduce((sum, item) => sum + item.file.size, 0);
    const top = value.files.length ? value.files[0].path.split("/")[0] : "";
    selection.textContent = t("%(count)s files from “%(folder)s” · %(size)s", {
      count: formatNumber(value.files.length), folder: top, size: formatBytes(bytes),
    });
  }
  button.disabled = false;
}

folderInput.addEventListener("change", () => {
  const files = Array.from(folderInput.files).map((file) => ({ file, path: file.webkitRelativePath || file.name }));
  choose(files.length ? { kind: "files", files } : null);
});

zipInput.addEventListener("change", () => {
  choose(zipInput.files.length ? { kind: "zip", file: zipInput.files[0] } : null);
});

// Drag and drop: walk dropped folders with the entries API so each file keeps its relative path.
function readAll(reader) {
  return new Promise((resolve, reject) => {
    const all = [];
    const next = () => reader.readEntries((batch) => {
      if (batch.length === 0) resolve(all);
      else { all.push(...batch); next(); }
    }, reject);
    next();
  });
}

async function walk(entry, out) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push({ file, path: entry.fullPath.replace(/^\//, "") });
  } else if (entry.isDirectory) {
    for (const child of await readAll(entry.createReader())) await walk(child, out);
  }
}

["dragenter", "dragover"].forEach((type) => dropzone.addEventListener(type, (event) => {
  event.preventDefault();
  dropzone.classList.add("over");
}));
["dragleave", "drop"].forEach((type) => dropzone.addEventListener(type, () => dropzone.classList.remove("over")));

dropzone.addEventListener("drop", async (event) => {
  event.preventDefault();
  const items = Array.from(event.dataTransfer.items || []);
  const entries = items.map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry()).filter(Boolean);
  const dropped = Array.from(event.dataTransfer.files || []);
  if (dropped.length === 1 && /\.zip$/i.test(dropped[0].name)) {
    choose({ kind: "zip", file: dropped[0] });
    return;
  }
  if (entries.length === 0) {
    choose(null);
    show(errorBox, t("Drop a folder of class folders, or a .zip archive."));
    return;
  }
  const files = [];
  selection.textContent = t("Reading the folder…");
  for (const entry of entries) await walk(entry, files);
  choose(files.length ? { kind: "files", files } : null);
});

function buildForm() {
  const data = new FormData();
  if (nameInput.value.trim()) data.append("name", nameInput.value.trim());
  if (chosen.kind === "zip") data.append("archive", chosen.file, chosen.file.name);
  else chosen.files.forEach(({ file, path }) => data.append("files", file, path));
  return data;
}

function setProgress(fraction, text) {
  progress.hidden = false;
  progress.classList.toggle("indeterminate", fraction === null);
  bar.style.width = fraction === null ? "100%" : `${Math.round(fraction * 100)}%`;
  label.textContent = text;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!chosen) return;
  button.disabled = true;
  errorBox.hidden = true;
  unflagFields(form);
  const request = new XMLHttpRequest();
  request.open("POST", "/api/datasets");
  request.setRequestHeader("Accept", "application/json");
  for (const [name, value] of Object.entries(csrfHeaders())) request.setRequestHeader(name, value);
  request.upload.addEventListener("progress", (e) => {
    if (e.lengthComputable) setProgress(e.loaded / e.total, t("Uploading… %(percent)s%%", { percent: Math.round((100 * e.loaded) / e.total) }));
  });
  request.upload.addEventListener("load", () => setProgress(null, t("Checking every image…")));
  request.addEventListener("load", () => {
    let body = null;
    try { body = JSON.parse(request.responseText); } catch { body = null; }
    if (request.status === 201 || request.status === 202) {
      setProgress(1, request.status === 201
        ? t("Done: %(images)s images in %(classes)s classes", { images: formatNumber(body.num_images), classes: formatNumber(body.classes.length) })
        : t("Uploaded; checking the images…"));
      window.location.assign(`/datasets/${body.id}`);
      return;
    }
    progress.hidden = true;
    button.disabled = false;
    const message = body && body.error ? body.error : t("Upload failed (%(status)s).", { status: request.status });
    showFormError(form, errorBox, { message, body });
  });
  request.addEventListener("error", () => {
    progress.hidden = true;
    button.disabled = false;
    show(errorBox, t("The upload was interrupted: is the server still running?"));
  });
  setProgress(0, t("Uploading… %(percent)s%%", { percent: 0 }));
  request.send(buildForm());
});
