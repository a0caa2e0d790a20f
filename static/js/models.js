// Models page: delete a version after confirmation.

import { apiJson, show } from "./api.js";

const errorBox = document.getElementById("models-error");

document.querySelectorAll(".delete-version").forEach((button) => {
  button.addEventListener("click", async () => {
    const version = button.dataset.version;
    if (!window.confirm(`Delete model version ${version} and its files?`)) return;
    button.disabled = true;
    try {
      await apiJson(`/api/models/${version}`, { method: "DELETE" });
      button.closest("tr").remove();
    } catch (error) {
      button.disabled = false;
      show(errorBox, error.message);
    }
  });
});
