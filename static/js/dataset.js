// Dataset page: delete with a confirmation.

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
