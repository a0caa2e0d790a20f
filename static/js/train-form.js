// Training form on the dataset page: defaults that follow the choices, errors beside their field.

import { apiJson, flagField, formatSeconds, show, unflagFields } from "./api.js";
import { formatNumber, t } from "./i18n.js";

const form = document.getElementById("train-form");
const errorBox = document.getElementById("train-error");
const button = document.getElementById("train-button");
const note = document.getElementById("weights-note");
const backbone = form.elements.backbone;
const pretrained = form.elements.pretrained;
const freeze = form.elements.freeze_backbone;
const lr = form.elements.learning_rate;
const $ = (id) => document.getElementById(id);

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
  note.textContent = hasWeights ? "" : t("No pretrained weights for %(backbone)s on this machine: it will train from scratch. "
    + "An operator can import them offline (see the README).", { backbone: backbone.value });
  lr.placeholder = t("auto (%(rate)s)", { rate: suggestedRate() });
}

[backbone, pretrained, freeze, form.elements.optimizer].forEach((el) => el.addEventListener("change", refresh));
refresh();

function clearErrors() {
  errorBox.hidden = true;
  form.querySelectorAll(".field-error").forEach((el) => { el.textContent = ""; });
  form.querySelectorAll(".invalid").forEach((el) => el.classList.remove("invalid"));
  unflagFields(form);
}

// Suggested settings: the fields start at the dataset's suggestion with the reason beside each. Fields the
// person changes are "touched": they are sent and fixed in new suggestions; the others are left out of the
// job request, so the server applies the suggestion (and suggested epochs stay a ceiling).
const SUGGESTED = ["backbone", "optimizer", "epochs", "batch_size", "image_size", "label_smoothing",
  "early_stopping_patience", "augmentation", "pretrained"];
const touched = new Set();
let suggestion = null;
let estimateTimer = null;
let probeRetries = 0;
// Timing probes this page asked for, by setting: "queued", "waiting" or "measured" while one is on its way,
// "refused" when the server said no (a viewer, no training worker, every worker busy). Each setting is asked
// for once per page; reading a suggestion never queues anything by itself.
const probes = new Map();

function fieldValue(name) {
  const el = form.elements[name];
  if (el.type === "checkbox") return el.checked;
  const raw = el.value.trim();
  return raw !== "" && Number.isFinite(Number(raw)) && el.tagName !== "SELECT" ? Number(raw) : raw;
}

function applySuggestion(answer) {
  suggestion = answer;
  for (const name of SUGGESTED) {
    const el = form.elements[name];
    const reason = form.querySelector(`[data-reason="${name}"]`);
    if (!touched.has(name) && name in answer.config) {
      if (el.type === "checkbox") el.checked = Boolean(answer.config[name]);
      else el.value = answer.config[name];
    }
    if (reason) {
      const why = answer.reasons[name];
      reason.textContent = touched.has(name) ? "" : (why || "");
      reason.classList.toggle("suggested", Boolean(why) && !touched.has(name));
    }
  }
  refresh();
  showPreset();
  showHeadOnly();
  showEstimate(answer);
}

const REGIMES = { tiny_images: t("tiny images"), small_photo_set: t("a small photo set"), large_photo_set: t("a large photo set") };

// "Estimated time: about 3 min 20 s on <worker> (cpu, measured).", one whole sentence per case.
function estimateText(answer) {
  const params = { time: formatSeconds(answer.estimate_seconds), machine: answer.measured_on, device: answer.device || "cpu" };
  if (answer.estimate_is_upper_bound) {
    return answer.estimate_exact ? t("Estimated time: at most about %(time)s on %(machine)s (%(device)s, measured).", params)
      : t("Estimated time: at most about %(time)s on %(machine)s (%(device)s, scaled from a measurement of a similar setting).", params);
  }
  return answer.estimate_exact ? t("Estimated time: about %(time)s on %(machine)s (%(device)s, measured).", params)
    : t("Estimated time: about %(time)s on %(machine)s (%(device)s, scaled from a measurement of a similar setting).", params);
}

function showEstimate(answer) {
  const p = answer.profile;
  $("suggestion-summary").textContent = t("Suggested for %(regime)s: %(classes)s classes, %(images)s training images "
    + "(the smallest class has %(smallest)s), images about %(side)s px.", {
    regime: REGIMES[answer.regime] || answer.regime, classes: formatNumber(p.classes), images: formatNumber(p.train_images),
    smallest: formatNumber(p.smallest_class), side: formatNumber(p.median_side),
  });
  const text = $("estimate-text");
  text.textContent = answer.estimate_seconds === null ? t("No worker has measured this model and image size yet.")
    : estimateText(answer);
  if (answer.estimate_exact) probeRetries = 0;
  else followProbe(answer);
  const box = $("estimate-warning");
  box.hidden = !answer.warning;
  if (answer.warning) {
    $("estimate-warning-text").textContent = t("%(warning)s Consider a cheaper run:", { warning: answer.warning });
    const list = $("estimate-alternatives");
    list.replaceChildren(...answer.alternatives.map((alternative) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "button";
      button.textContent = alternative.estimate_seconds === null ? alternative.label
        : t("%(label)s (about %(time)s)", { label: alternative.label, time: formatSeconds(alternative.estimate_seconds) });
      button.addEventListener("click", () => {
        for (const [name, value] of Object.entries(alternative.options)) {
          const el = form.elements[name];
          if (el.type === "checkbox") el.checked = Boolean(value); else el.value = value;
          touched.add(name);
        }
        refresh();
        loadSuggestion();
      });
      return button;
    }));
  }
}

// Ask a worker to time the setting the estimate lacks, then look again every few seconds until it lands.
async function followProbe(answer) {
  const missing = (answer.missing_measurements || [])[0];
  if (!missing) return;
  const key = `${missing.backbone}:${missing.image_size}:${missing.batch_size}`;
  if (!probes.has(key)) {
    probes.set(key, "asking");
    probeRetries = 0;
    try {
      const probe = await apiJson("/api/timing-probes", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(missing),
      });
      probes.set(key, probe.status);
    } catch {
      probes.set(key, "refused");
    }
  }
  const state = probes.get(key);
  if (!["queued", "waiting", "measured"].includes(state)) return;  // asked already by a newer answer, or refused
  if (suggestion === answer && answer.estimate_seconds === null) {
    $("estimate-text").textContent = t("No worker has measured this model and image size yet: a worker is timing a few steps…");
  }
  if (probeRetries++ < 60) scheduleEstimate(state === "measured" && probeRetries === 1 ? 400 : 5000);
}

function scheduleEstimate(delay = 400) {
  clearTimeout(estimateTimer);
  estimateTimer = setTimeout(loadSuggestion, delay);
}

async function loadSuggestion() {
  const query = new URLSearchParams();
  for (const name of touched) {
    const value = fieldValue(name);
    if (value !== "") query.set(name, String(value));
  }
  if (freeze.checked) query.set("freeze_backbone", "true");
  query.set("revision", form.elements.revision.value);
  try {
    applySuggestion(await apiJson(`/api/datasets/${form.dataset.datasetId}/recommendation?${query}`));
  } catch (error) {
    $("estimate-text").textContent = t("No suggestion: %(error)s", { error: error.message });
  }
}

for (const name of [...SUGGESTED, "freeze_backbone"]) {
  const mark = () => {
    if (name !== "freeze_backbone") touched.add(name);
    const reason = form.querySelector(`[data-reason="${name}"]`);
    if (reason) { reason.textContent = ""; reason.classList.remove("suggested"); }
  };
  form.elements[name].addEventListener("input", mark);
  form.elements[name].addEventListener("change", () => { mark(); scheduleEstimate(); });
}
// The suggestion is for the revision the job would train on: another choice asks again.
form.elements.revision.addEventListener("change", () => scheduleEstimate());
loadSuggestion();

// Options left as suggested are left out (the server applies the suggestion); empty fields are left out
// too, so the server's defaults apply; text that is not a number is sent as typed and the server names
// the field in its answer.
function payload() {
  const body = { dataset_id: Number(form.dataset.datasetId), revision: Number(form.elements.revision.value) };
  body.freeze_backbone = freeze.checked;
  // Offered only to roles that may change what serves (the policy table decides on the page).
  if (form.elements.promote_when_done) body.promote_when_done = form.elements.promote_when_done.checked;
  body.export_int8 = form.elements.export_int8.checked;
  if (form.elements.device.value !== "any") body.device = form.elements.device.value;
  for (const name of SUGGESTED) {
    if (suggestion && !touched.has(name)) continue;
    const value = fieldValue(name);
    if (value !== "") body[name] = value;
  }
  for (const name of ["learning_rate", "randaugment_n", "randaugment_m", "random_erasing", "mixup_alpha",
    "cutmix_alpha", "teacher_version", "distill_temperature", "distill_weight", "init_version"]) {
    const raw = form.elements[name].value.trim();
    if (raw !== "") body[name] = Number.isFinite(Number(raw)) ? Number(raw) : raw;
  }
  return body;
}

// The advanced augmentation fields show the chosen preset's values as placeholders.
const presets = JSON.parse(form.dataset.augmentationPresets || "{}");
function showPreset() {
  const values = presets[form.elements.augmentation.value] || {};
  form.querySelectorAll("[data-preset]").forEach((input) => { input.placeholder = t("preset: %(value)s", { value: String(values[input.dataset.preset]) }); });
}
form.elements.augmentation.addEventListener("change", showPreset);
showPreset();

// A frozen backbone with no pixel augmentation trains the head on features computed once: say which one applies.
const headOnlyNote = document.getElementById("head-only-note");
function showHeadOnly() {
  const frozen = form.elements.freeze_backbone.checked;
  headOnlyNote.hidden = !frozen;
  headOnlyNote.textContent = form.elements.augmentation.value === "none"
    ? t("Fast path: the backbone's features are computed once (and cached for later jobs), then the head trains on them in seconds per epoch.")
    : t("With a frozen backbone and augmentation “None”, the head trains on features computed once, in seconds per epoch; "
      + "augmentation that changes pixels turns that fast path off.");
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
      if (input) {
        input.classList.add("invalid");
        flagField(input, slot);
        input.focus();
      }
    } else {
      show(errorBox, error.message);
    }
  }
});
