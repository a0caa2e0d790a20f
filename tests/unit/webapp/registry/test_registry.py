"""Model versions: list, detail, download, delete."""
import io
import zipfile

from tests.factories import register_bundle


def test_list_detail_download_and_delete(served, trained):
    register_bundle(served, trained[1], 2, promote=True)
    client = served.test_client()
    listed = client.get("/api/models").get_json()
    assert listed["default_version"] == 2
    assert [(m["version"], m["is_default"], m["release_role"]) for m in listed["models"]] == \
        [(2, True, "production"), (1, False, None)]
    detail = client.get("/api/models/1").get_json()
    assert detail["preprocess"]["input_size"] == 32 and detail["metrics"]["best_epoch"] >= 1
    assert set(detail["files"]) == {"model.json", "model.pdiparams", "model.onnx"}
    assert detail["serving"]["onnx"] is True and detail["serving"]["onnx_max_abs_diff"] <= 1e-4
    assert set(detail["serving"]["measured_ms"]) == {"onnx", "paddle"}
    response = client.get("/api/models/1/download")
    assert response.headers["Content-Disposition"].endswith("model-v1.zip")
    names = zipfile.ZipFile(io.BytesIO(response.data)).namelist()
    assert sorted(names) == ["model-v1/meta.json", "model-v1/model.json", "model-v1/model.onnx",
                             "model-v1/model.pdiparams"]
    refused = client.delete("/api/models/2")
    assert refused.status_code == 409 and "serves as production" in refused.get_json()["error"]
    assert client.delete("/api/models/1").get_json() == {"deleted": 1}
    assert client.get("/api/models/1").status_code == 404
    page = client.get("/models").get_data(as_text=True)
    assert 'data-version="2"' in page and 'data-version="1"' not in page


def test_pages_without_models_explain_what_to_do(client):
    assert "No models yet" in client.get("/models").get_data(as_text=True)
    assert 'id="no-model"' in client.get("/predict").get_data(as_text=True)
