// A small SVG line chart: one line per series over epochs, axes with a few ticks. It is drawn at the width its
// container gives it (so its text keeps its size on a phone) and drawn again when that width changes.
import { formatNumber, t } from "./i18n.js";

const NS = "http://www.w3.org/2000/svg";
const PAD = { left: 48, right: 12, top: 12, bottom: 28 };

function el(name, attrs, text) {
  const node = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceMax(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 2.5, 5, 10].map((m) => m * power).find((m) => m >= value);
}

const measure = (svg) => Math.round(svg.getBoundingClientRect().width);

const drawn = new WeakMap();  // svg -> the arguments of its last drawing, to draw it again at a new width
const resized = new ResizeObserver((entries) => {
  for (const entry of entries) {
    const last = drawn.get(entry.target);
    if (last && measure(entry.target) !== last.width) drawChart(entry.target, ...last.args);
  }
});

function size(measured) {
  const width = measured || 480;  // not laid out yet (a hidden card): the first resize draws it again
  return [Math.max(240, width), Math.round(Math.min(260, Math.max(180, width / 2)))];
}

export function drawChart(svg, series, options = {}) {
  const measured = measure(svg);
  const [width, height] = size(measured);
  if (!drawn.has(svg)) resized.observe(svg);
  drawn.set(svg, { width: measured, args: [series, options] });
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const twoDigits = (v) => formatNumber(v, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const { maxY = null, format = twoDigits } = options;
  svg.replaceChildren();
  const points = series.flatMap((s) => s.values.filter((v) => v !== null && Number.isFinite(v)));
  const epochs = Math.max(1, ...series.map((s) => s.values.length));
  const top = maxY ?? niceMax(Math.max(...points, 0));
  const x = (i) => PAD.left + (epochs === 1 ? 0.5 : i / (epochs - 1)) * (width - PAD.left - PAD.right);
  const y = (v) => height - PAD.bottom - (v / top) * (height - PAD.top - PAD.bottom);
  for (let tick = 0; tick <= 4; tick += 1) {
    const value = (top * tick) / 4;
    svg.append(el("line", { x1: PAD.left, x2: width - PAD.right, y1: y(value), y2: y(value), class: "grid-line" }));
    svg.append(el("text", { x: PAD.left - 6, y: y(value) + 4, class: "tick", "text-anchor": "end" }, format(value)));
  }
  const step = Math.max(1, Math.ceil(epochs / 8));
  for (let i = 0; i < epochs; i += step) {
    svg.append(el("text", { x: x(i), y: height - 8, class: "tick", "text-anchor": "middle" }, formatNumber(i + 1)));
  }
  if (points.length === 0) {
    svg.append(el("text", { x: width / 2, y: height / 2, class: "tick", "text-anchor": "middle" }, t("waiting for the first epoch…")));
    return;
  }
  for (const s of series) {
    const coords = s.values.map((v, i) => (v === null ? null : `${x(i)},${y(Math.min(v, top))}`)).filter(Boolean);
    if (coords.length > 1) svg.append(el("polyline", { points: coords.join(" "), class: `line ${s.className}` }));
    coords.forEach((c) => {
      const [cx, cy] = c.split(",");
      svg.append(el("circle", { cx, cy, r: 3, class: `dot ${s.className}` }));
    });
  }
}
