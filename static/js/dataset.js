// Dataset page: delete with a confirmation, and long lists opened in full with their "show all" button.

import { apiJson, show } from "./api.js";
import { t } from "./i18n.js";

const button = document.getElementById("delete-dataset");
const errorBox = document.getElementById("delete-error");

button.addEventListener("click", async () => {
  if (!window.confirm(t("Delete the dataset “%(name)s” and its images?", { name: button.dataset.name }))) return;
  button.disabled = true;
  try {
    await apiJson(`/api/datasets/${button.dataset.id}`, { method: "DELETE" });
    window.location.assign("/datasets");
  } catch (error) {
    button.disabled = false;
    show(errorBox, error.message);
  }
});

// A list shows its first items and a "show all" button (data-show-all, aria-controls: the list); the button
// opens the rest, then goes, and the keyboard's focus moves to the first item it opened.
document.getElementById("dataset-page").addEventListener("click", (event) => {
  const showAll = event.target.closest("[data-show-all]");
  if (!showAll) return;
  const list = document.getElementById(showAll.getAttribute("aria-controls"));
  const opened = [...list.children].filter((item) => item.hidden);
  opened.forEach((item) => { item.hidden = false; });
  showAll.setAttribute("aria-expanded", "true");
  showAll.hidden = true;
  if (opened.length) {
    opened[0].tabIndex = -1;
    opened[0].focus();
  }
});
