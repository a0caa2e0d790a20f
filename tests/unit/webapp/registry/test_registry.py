"""Model versions: list, detail, download, delete."""
import io
import json
import shutil
import zipfile

from engine.messages import N_, Message
from engine.quantize import refusal
from tests.factories import register_bundle
from webapp.storage import DataDir


def test_list_detail_download_and_delete(served, trained):
    register_bundle(served, trained[1], 2, promote=True)
    client = served.test_client()
    listed = client.get("/api/models").get_json()
    assert listed["default_version"] == 2
    assert [(m["version"], m["is_default"], m["release_role"]) for m in listed["models"]] == \
        [(2, True, "production"), (1, False, None)]
    detail = client.get("/api/models/1").get_json()
    assert detail["preprocess"]["input_size"] == 32 and detail["metrics"]["best_epoch"] >= 1
    assert set(detail["files"]) == {"model.json", "model.pdiparams", "model.onnx", "explain.json", "explain.pdiparams",
                                    "explain.onnx"}
    assert detail["serving"]["onnx"] is True and detail["serving"]["onnx_max_abs_diff"] <= 1e-4
    assert set(detail["serving"]["measured_ms"]) == {"onnx", "paddle"}
    response = client.get("/api/models/1/download")
    assert response.headers["Content-Disposition"].endswith("model-v1.zip")
    names = zipfile.ZipFile(io.BytesIO(response.data)).namelist()
    assert sorted(names) == ["model-v1/explain.json", "model-v1/explain.onnx", "model-v1/explain.pdiparams",
                             "model-v1/meta.json", "model-v1/model.json", "model-v1/model.onnx",
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


def test_each_state_of_a_version_is_answered_as_its_model_says(served, trained):
    """An int8 variant kept, one whose quantizing failed, a bundle whose files are gone: each answer has
    the fields its model names for that state (an answer outside its model would be a 500)."""
    for version in (2, 3, 4):
        register_bundle(served, trained[1], version)
    folders = DataDir(served.config["DATA_DIR"])
    kept = {"calibration_images": 16, "val_images": 12, "float_accuracy": 1.0, "int8_accuracy": 0.99,
            "accuracy_drop_points": 1.0, "float_ms": 2.0, "int8_ms": 1.0, "max_accuracy_drop_points": 1.0,
            "used": True, "reason": None}
    failed = {"used": False, **refusal(Message(N_("quantization failed: %(error)s"), {"error": "ValueError: x"}))}
    for version, report in ((2, kept), (3, failed)):
        meta_file = folders.model(version) / "meta.json"
        meta_file.write_text(json.dumps({**json.loads(meta_file.read_text()), "int8": report}))
    shutil.rmtree(folders.model(4))
    client = served.test_client()
    listed = {item["version"]: item for item in client.get("/api/models").get_json()["models"]}
    assert listed[2]["serving"]["int8"] == kept and listed[1]["serving"]["int8"] is None
    assert listed[3]["serving"]["int8"] == {"used": False, "reason": "quantization failed: ValueError: x"}
    assert listed[4]["serving"]["onnx"] is False and listed[4]["suggested_threshold"] is None
    chinese = client.get("/api/models/3", headers={"Accept-Language": "zh"}).get_json()
    assert chinese["serving"]["int8"]["reason"] == "量化失败：ValueError: x"
    gone = client.get("/api/models/4").get_json()
    assert gone["bundle_missing"] is True and gone["suggested_threshold"] is None
    assert not {"serving", "metrics", "preprocess", "files"} & set(gone)
    assert "bundle_missing" not in client.get("/api/models/2").get_json()
