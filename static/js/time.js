// Show every <time datetime="..."> in the reader's own locale and time zone.

for (const element of document.querySelectorAll("time[datetime]")) {
  const moment = new Date(element.getAttribute("datetime"));
  if (!Number.isNaN(moment.getTime())) {
    element.textContent = moment.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    element.title = element.getAttribute("datetime");
  }
}
