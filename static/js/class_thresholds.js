// Models page: the per-class abstain thresholds of one version. Anyone sees them; whoever may change the
// version's settings asks for a suggestion calibrated for a target precision, applies it, or edits a class's
// threshold by hand, without a reload. Each change joins the release history (models.js shows it).

import { apiJson, flagField, formatFixed, show, unflagFields } from "./api.js";
import { formatNumber, formatPercent, t } from "./i18n.js";

const panel = document.getElementById("class-thresholds");
const canSet = panel && panel.dataset.canSet === "true";
const picker = document.getElementById("thresholds-version");
const errorBox = document.getElementById("thresholds-error");
const applyButton = document.getElementById("thresholds-apply");
let suggestion = null; // the suggestion shown, for the version picked

const picked = () => picker.selectedOptions[0];
const classesOf = (option) => JSON.parse(option.dataset.classes);
const thresholdsOf = (option) => JSON.parse(option.dataset.thresholds) || {};
const SPLIT_WORDS = { test: t("test"), val: t("validation") };

function describeCalibration(calibration) {
  if (!calibration) return t("Set by hand.");
  return t("Calibrated for %(precision)s precision on the %(split)s split of revision %(revision)s of '%(dataset)s'.", {
    precision: formatPercent(calibration.precision, 0), split: SPLIT_WORDS[calibration.split] || calibration.split,
    revision: calibration.revision || 1, dataset: calibration.dataset_name,
  });
}

function thresholdCell(name, value) {
  const td = document.createElement("td");
  if (!canSet) {
    td.textContent = value === undefined ? t("off") : formatFixed(value, 3);
    return td;
  }
  const input = Object.assign(document.createElement("input"), {
    type: "number", min: "0.001", max: "0.999", step: "0.001", placeholder: t("off"), className: "threshold-input",
    value: value === undefined ? "" : String(value), name: `threshold-${name}`,
  });
  input.dataset.class = name;
  input.setAttribute("aria-label", t("Abstain threshold of class %(class)s", { class: name }));
  td.append(input);
  return td;
}

function textCell(text, numeric = true) {
  const td = document.createElement("td");
  td.textContent = text;
  if (numeric) td.className = "num";
  return td;
}

// The suggestion's columns for one class: the threshold (or none), the precision and the answers it keeps.
function suggestedCells(found) {
  if (!found) return [textCell("—"), textCell("—"), textCell("—"), Object.assign(textCell("", false), { className: "thresholds-note" })];
  const threshold = found.status === "threshold" ? formatFixed(found.threshold, 3)
    : found.status === "not_needed" ? t("none needed") : "—";
  const kept = found.answers ? t("%(kept)s of %(answers)s (%(share)s)", {
    kept: formatNumber(found.kept), answers: formatNumber(found.answers), share: formatPercent(found.coverage, 0),
  }) : "—";
  return [textCell(threshold), textCell(found.precision === null ? "—" : formatPercent(found.precision, 1)),
    textCell(kept), Object.assign(textCell(found.reason || "", false), { className: "thresholds-note" })];
}

function render() {
  const option = picked();
  panel.hidden = !option; // the last version was deleted
  if (!option) return;
  const current = thresholdsOf(option);
  const found = new Map((suggestion ? suggestion.classes : []).map((item) => [item.class, item]));
  const rows = classesOf(option).map((name) => {
    const tr = document.createElement("tr");
    tr.dataset.class = name;
    tr.append(textCell(name, false), thresholdCell(name, current[name]), ...suggestedCells(found.get(name)));
    return tr;
  });
  panel.querySelector("#thresholds-table tbody").replaceChildren(...rows);
  const calibration = JSON.parse(option.dataset.calibration);
  document.getElementById("thresholds-calibration").textContent = Object.keys(current).length
    ? describeCalibration(calibration) : t("No class has its own threshold.");
  if (applyButton) applyButton.hidden = !suggestion;
  const source = document.getElementById("thresholds-source");
  source.hidden = !suggestion;
  if (suggestion) {
    source.textContent = t("Suggested for %(precision)s precision from evaluation #%(id)s: the %(source)s, %(images)s images.", {
      precision: formatPercent(suggestion.precision_target, 0), id: suggestion.evaluation_id,
      source: suggestion.calibrated_on, images: formatNumber(suggestion.images),
    });
  }
}

// The version's thresholds as saved: the picker's option and the models table's summary follow.
function saved(version) {
  const option = [...picker.options].find((item) => Number(item.value) === version.version);
  option.dataset.thresholds = JSON.stringify(version.class_thresholds);
  option.dataset.calibration = JSON.stringify(version.class_thresholds_calibration);
  const summary = document.querySelector(`.thresholds-summary[data-version="${version.version}"]`);
  const values = Object.entries(version.class_thresholds).map(([name, value]) => `${name} ${value}`).join(" · ");
  if (summary) summary.textContent = values ? t("per class: %(values)s", { values }) : "";
  document.dispatchEvent(new CustomEvent("release-history-changed"));
}

async function save(body, button) {
  errorBox.hidden = true;
  unflagFields(panel);
  button.disabled = true;
  try {
    saved(await apiJson(`/api/models/${picker.value}`, {
      method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    }));
    render();
    button.textContent = t("Saved");
    setTimeout(() => { button.textContent = button === applyButton ? t("Apply suggestion") : t("Save class thresholds"); }, 1500);
  } catch (error) {
    show(errorBox, error.message);
  } finally {
    button.disabled = false;
  }
}

// The thresholds typed that differ from the saved ones (empty: none); null when one is no number in range.
function editedValues() {
  const current = thresholdsOf(picked());
  const changed = {};
  for (const input of panel.querySelectorAll("#thresholds-table input")) {
    const raw = input.value.trim();
    const value = raw === "" ? null : Number(raw);
    if (input.validity.badInput || (value !== null && !(value > 0 && value < 1))) {
      show(errorBox, t("Enter a number between 0 and 1 for class %(class)s, or leave it empty for none.", { class: input.dataset.class }));
      flagField(input, errorBox);
      input.focus();
      return null;
    }
    if (value !== (current[input.dataset.class] ?? null)) changed[input.dataset.class] = value;
  }
  return changed;
}

async function suggest(button) {
  errorBox.hidden = true;
  button.disabled = true;
  try {
    const query = new URLSearchParams({ precision: document.getElementById("thresholds-precision").value,
      split: document.getElementById("thresholds-split").value });
    suggestion = await apiJson(`/api/models/${picker.value}/class-thresholds/suggestion?${query}`);
  } catch (error) {
    suggestion = null;
    show(errorBox, error.message);
  } finally {
    button.disabled = false;
    render();
  }
}

if (panel) {
  picker.addEventListener("change", () => { suggestion = null; errorBox.hidden = true; render(); });
  if (canSet) {
    document.getElementById("thresholds-suggest").addEventListener("click", (event) => suggest(event.target));
    // classes the calibration could not set keep what they have
    applyButton.addEventListener("click", () => save({
      class_thresholds: Object.fromEntries(suggestion.classes.filter((item) => ["threshold", "not_needed"].includes(item.status))
        .map((item) => [item.class, item.threshold])),
      calibration: { precision: suggestion.precision_target, evaluation_id: suggestion.evaluation_id },
    }, applyButton));
    document.getElementById("thresholds-save").addEventListener("click", (event) => {
      const changed = editedValues();
      if (changed && Object.keys(changed).length) save({ class_thresholds: changed }, event.target);
    });
  }
  render();
}
