// Jobs list: while some job is queued or running, reload the table every few seconds.

const table = document.getElementById("jobs-table");

if (table && table.dataset.live === "yes") {
  setInterval(async () => {
    const response = await fetch(window.location.href, { headers: { Accept: "text/html" } });
    if (!response.ok) return;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.getElementById("jobs-table");
    if (fresh) table.replaceChildren(...fresh.childNodes);
  }, 3000);
}
