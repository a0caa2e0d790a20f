// Where the model looked: an answer's `explanation` (its heat map PNG) drawn on a canvas over an image shown with
// `object-fit: cover`, at the centre-crop region the model saw, scaled up smoothly; and its legend in words.
import { t } from "./i18n.js";

// A frame holding `image` and a canvas over it; the canvas is drawn once the explanation is known.
export function framed(image) {
  const frame = document.createElement("div");
  frame.className = "explain-frame";
  const canvas = document.createElement("canvas");
  canvas.className = "explain-overlay";
  canvas.hidden = true;
  canvas.setAttribute("aria-hidden", "true");
  frame.append(image, canvas);
  return { frame, canvas };
}

function loaded(image) {
  if (image.complete && image.naturalWidth) return Promise.resolve();
  return new Promise((resolve, reject) => {
    image.addEventListener("load", resolve, { once: true });
    image.addEventListener("error", reject, { once: true });
  });
}

// Where the region of the image lies in the displayed box of an `object-fit: cover` image.
function regionInBox(image, region, box) {
  const scale = Math.max(box.width / image.naturalWidth, box.height / image.naturalHeight);
  const shownWidth = image.naturalWidth * scale;
  const shownHeight = image.naturalHeight * scale;
  const left = (box.width - shownWidth) / 2;
  const top = (box.height - shownHeight) / 2;
  return [left + region.x * shownWidth, top + region.y * shownHeight, region.width * shownWidth, region.height * shownHeight];
}

// Draw `explanation` (with its `png`) over `image` on `canvas`, at the device's pixel density.
export async function drawOverlay(canvas, image, explanation) {
  const heat = new Image();
  heat.src = `data:image/png;base64,${explanation.png}`;
  await Promise.all([loaded(image), loaded(heat)]);
  const box = image.getBoundingClientRect();
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(box.width * ratio));
  canvas.height = Math.max(1, Math.round(box.height * ratio));
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.imageSmoothingEnabled = true;
  context.imageSmoothingQuality = "high";
  context.drawImage(heat, ...regionInBox(image, explanation.region, box));
  canvas.hidden = false;
}

// The legend in words: what the colours mean, for which class, and whether the map is exact.
export function legend(explanation) {
  const text = document.createElement("p");
  text.className = "hint explain-legend";
  const kind = explanation.exact
    ? t("Exact map: the model's score for the class is the average of this map.")
    : t("Approximate map: this model's head is not linear, so the map only approximates its reasoning.");
  text.textContent = `${t("Red: where the model looked most for “%(class)s”; blue or clear: where it looked least.", { class: explanation.class })} ${kind}`;
  return text;
}
