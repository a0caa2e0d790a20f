// Dataset page: delete with a confirmation.

import { apiJson, show } from "./api.js";

const button = document.getElementById("delete-dataset");
const errorBox = document.getElementById("delete-error");

button.addEventListener("click", async () => {
  if (!window.confirm(`Delete the dataset “${button.dataset.name}” and its images?`)) return;
  button.disabled = true;
  try {
    await apiJson(`/api/datasets/${button.dataset.id}`, { method: "DELETE" });
    window.location.assign("/datasets");
  } catch (error) {
    button.disabled = false;
    show(errorBox, error.message);
  }
});
