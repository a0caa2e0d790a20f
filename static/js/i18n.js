// The page's language and its messages, from the catalog the server puts in the page.
// t("Uploading… %(percent)s%%", { percent: 40 }) translates, then fills %(name)s placeholders.

const block = document.getElementById("i18n-catalog");
const catalog = block ? JSON.parse(block.textContent) : { locale: "en", messages: {} };

export const locale = catalog.locale;

export function t(message, params = {}) {
  const template = catalog.messages[message] || message;
  return template.replace(/%\((\w+)\)s|%%/g, (match, name) => (match === "%%" ? "%" : String(params[name] ?? match)));
}

export function formatNumber(value, options = {}) {
  return new Intl.NumberFormat(locale, options).format(value);
}

export function formatPercent(fraction, digits = 1) {
  return new Intl.NumberFormat(locale, { style: "percent", minimumFractionDigits: digits, maximumFractionDigits: digits })
    .format(fraction);
}

export function formatBytes(bytes) {
  const units = ["byte", "kilobyte", "megabyte", "gigabyte", "terabyte"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return new Intl.NumberFormat(locale, { style: "unit", unit: units[unit], unitDisplay: "short",
    maximumFractionDigits: value < 10 && unit > 0 ? 1 : 0 }).format(value);
}
