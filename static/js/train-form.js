// Training form on the dataset page: defaults that follow the choices, errors beside their field.

import { apiJson, show } from "./api.js";

const form = document.getElementById("train-form");
const errorBox = document.getElementById("train-error");
const button = document.getElementById("train-button");
const note = document.getElementById("weights-note");
const backbone = form.elements.backbone;
const pretrained = form.elements.pretrained;
const freeze = form.elements.freeze_backbone;
const lr = form.elements.learning_rate;

// The server's rule for the automatic learning rate, per optimizer: head_only / pretrained / scratch.
const learningRates = JSON.parse(form.dataset.learningRates);

function suggestedRate() {
  const rule = learningRates[form.elements.optimizer.value];
  if (freeze.checked) return rule.head_only;
  return pretrained.checked ? rule.pretrained : rule.scratch;
}

function refresh() {
  const option = backbone.selectedOptions[0];
  const hasWeights = option.dataset.weights === "yes";
  pretrained.disabled = !hasWeights;
  if (!hasWeights) pretrained.checked = false;
  freeze.disabled = !pretrained.checked;
  if (freeze.disabled) freeze.checked = false;
  note.hidden = hasWeights;
  note.textContent = hasWeights ? "" :
    `No pretrained weights for ${backbone.value} on this machine: it will train from scratch. ` +
    "An operator can import them offline (see the README).";
  lr.placeholder = `auto (${suggestedRate()})`;
}

[backbone, pretrained, freeze, form.elements.optimizer].forEach((el) => el.addEventListener("change", refresh));
refresh();

function clearErrors() {
  errorBox.hidden = true;
  form.querySelectorAll(".field-error").forEach((el) => { el.textContent = ""; });
  form.querySelectorAll(".invalid").forEach((el) => el.classList.remove("invalid"));
}

// Empty fields are left out, so the server's defaults apply; text that is not a number is sent as typed
// and the server names the field in its answer.
function payload() {
  const body = { dataset_id: Number(form.dataset.datasetId) };
  body.backbone = backbone.value;
  body.optimizer = form.elements.optimizer.value;
  body.pretrained = pretrained.checked;
  body.freeze_backbone = freeze.checked;
  body.promote_when_done = form.elements.promote_when_done.checked;
  body.export_int8 = form.elements.export_int8.checked;
  body.augmentation = form.elements.augmentation.value;
  for (const name of ["epochs", "batch_size", "image_size", "early_stopping_patience", "learning_rate",
    "label_smoothing", "randaugment_n", "randaugment_m", "random_erasing", "mixup_alpha", "cutmix_alpha",
    "teacher_version", "distill_temperature", "distill_weight", "init_version"]) {
    const raw = form.elements[name].value.trim();
    if (raw !== "") body[name] = Number.isFinite(Number(raw)) ? Number(raw) : raw;
  }
  return body;
}

// The advanced augmentation fields show the chosen preset's values as placeholders.
const presets = JSON.parse(form.dataset.augmentationPresets || "{}");
function showPreset() {
  const values = presets[form.elements.augmentation.value] || {};
  form.querySelectorAll("[data-preset]").forEach((input) => { input.placeholder = `preset: ${values[input.dataset.preset]}`; });
}
form.elements.augmentation.addEventListener("change", showPreset);
showPreset();

// A frozen backbone with no pixel augmentation trains the head on features computed once: say which one applies.
const headOnlyNote = document.getElementById("head-only-note");
function showHeadOnly() {
  const frozen = form.elements.freeze_backbone.checked;
  headOnlyNote.hidden = !frozen;
  headOnlyNote.textContent = form.elements.augmentation.value === "none"
    ? "Fast path: the backbone's features are computed once (and cached for later jobs), then the head trains on them in seconds per epoch."
    : "With a frozen backbone and augmentation “None”, the head trains on features computed once, in seconds per epoch; "
      + "augmentation that changes pixels turns that fast path off.";
}
form.elements.freeze_backbone.addEventListener("change", showHeadOnly);
form.elements.augmentation.addEventListener("change", showHeadOnly);
showHeadOnly();

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors();
  button.disabled = true;
  try {
    const job = await apiJson("/api/jobs", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(payload()),
    });
    window.location.assign(`/jobs/${job.id}`);
  } catch (error) {
    button.disabled = false;
    const field = error.body && error.body.field;
    const slot = field && form.querySelector(`.field-error[data-field="${field}"]`);
    if (slot) {
      slot.textContent = error.message;
      const input = form.elements[field];
      if (input) { input.classList.add("invalid"); input.focus(); }
    } else {
      show(errorBox, error.message);
    }
  }
});
