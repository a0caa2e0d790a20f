// Show every <time datetime="..."> in the reader's own locale and time zone.
import { formatMoment } from "./api.js";

for (const element of document.querySelectorAll("time[datetime]")) {
  const moment = new Date(element.getAttribute("datetime"));
  if (!Number.isNaN(moment.getTime())) {
    element.textContent = formatMoment(element.getAttribute("datetime"));
    element.title = element.getAttribute("datetime");
  }
}
