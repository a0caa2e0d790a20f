"""Serving: both runtimes, the runtime choice, bounded decoding and bodies, the lean request path."""
from __future__ import annotations

import dataclasses
import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import event

from engine.bundle import read_bundle
from engine.images import open_checked
from engine.runtimes import ONNX_TOLERANCE
from tests.factories import register_bundle
from tests.images import class_files, noisy_image, zip_bytes
from webapp.config import ServingOptions
from webapp.extensions import db
from webapp.predict.serving import ModelServer


def predict(client, data: bytes, **fields):
    form = {"image": (io.BytesIO(data), "x.png"), **{k: str(v) for k, v in fields.items()}}
    return client.post("/api/predict", data=form, content_type="multipart/form-data")


def test_every_bundle_carries_a_checked_onnx_model_and_a_runtime_measurement(trained):
    bundle = read_bundle(trained[1])
    assert bundle.files.onnx is not None and set(bundle.meta["files"]) == {
        "model.json", "model.pdiparams", "model.onnx", "explain.json", "explain.pdiparams", "explain.onnx"}
    assert bundle.meta["onnx"]["opset"] >= 13 and bundle.meta["onnx"]["max_abs_diff"] <= ONNX_TOLERANCE
    measured = bundle.meta["runtimes"]["cpu-1t"]
    assert set(measured["ms"]) == {"onnx", "paddle"} and measured["runtime"] == min(measured["ms"],
                                                                                     key=measured["ms"].get)


def test_both_runtimes_give_the_same_probabilities(served):
    models = Path(served.config["DATA_DIR"], "models")
    image, _ = open_checked(noisy_image(7, (40, 60, 220), size=(80, 60)), 10**8, 37)
    answers = {}
    for runtime in ("onnx", "paddle"):
        loaded = ModelServer(models, ServingOptions(runtime=runtime, threads=1), device="cpu").get(1)
        assert loaded.runtime == runtime and loaded.note is None
        answers[runtime] = loaded.probabilities(image)
    np.testing.assert_allclose(answers["onnx"], answers["paddle"], atol=1e-5)


def test_onnx_asked_for_a_bundle_without_onnx_falls_back_to_paddle_and_says_so(served):
    folder = Path(served.config["DATA_DIR"], "models", "1")
    meta = json.loads((folder / "meta.json").read_text())
    del meta["files"]["model.onnx"]
    meta["onnx"] = {"error": "RuntimeError: unsupported operator"}
    (folder / "model.onnx").unlink()
    (folder / "meta.json").write_text(json.dumps(meta))
    served.extensions["model_server"] = ModelServer(folder.parent, ServingOptions(runtime="onnx"), device="cpu")
    client = served.test_client()
    body = predict(client, noisy_image(1, (220, 40, 40))).get_json()
    assert body["runtime"] == "paddle" and body["class"] == "red"
    serving = client.get("/api/models/1").get_json()["serving"]
    assert serving["onnx"] is False and serving["onnx_error"] == "RuntimeError: unsupported operator"
    assert "has no ONNX model" in serving["note"]
    page = client.get("/models").get_data(as_text=True)
    assert "no ONNX model: RuntimeError: unsupported operator" in page and "Paddle Inference" in page


def test_a_measurement_made_at_load_is_recorded_for_every_process(served):
    models = Path(served.config["DATA_DIR"], "models")
    first = ModelServer(models, ServingOptions(threads=1, cpu_threads=2), device="cpu").get(1)
    recorded = json.loads((models / "1" / "runtimes-cpu-2t.json").read_text())
    second = ModelServer(models, ServingOptions(threads=1, cpu_threads=2), device="cpu").get(1)
    assert first.runtime == second.runtime == recorded["runtime"] and recorded["cpu_threads"] == 2


def gif(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("P", (width, height), 3).save(out, "GIF")
    return out.getvalue()


def test_a_strip_image_is_refused_before_any_resize(served):
    data = gif(60000, 1)
    assert len(data) < 2000
    response = predict(served.test_client(), data)
    assert response.status_code == 400
    assert response.get_json()["code"] == "image_aspect_ratio" and response.get_json()["field"] == "image"
    assert predict(served.test_client(), gif(400, 20)).status_code == 200  # 20:1 is still fine


def test_a_strip_image_is_listed_as_rejected_at_upload(client):
    files = class_files({"a": 2, "b": 2})
    files["a/strip.gif"] = gif(60000, 1)
    body = client.post("/api/datasets", content_type="multipart/form-data", data={
        "archive": (io.BytesIO(zip_bytes(files)), "d.zip")}).get_json()
    assert body["rejected"] == [{"path": "a/strip.gif", "reason": "The image is 60000x1 pixels; an image whose "
                                 "longer side is over 20 times its shorter side is not accepted."}]


def test_bodies_are_bounded_even_without_a_length(served):
    client = served.test_client()
    served.config["PREDICT_MAX_BYTES"] = 1000
    boundary = "x"
    big = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n".encode()
           + b"\0" * 200_000 + f"\r\n--{boundary}--\r\n".encode())

    # As a server hands over a chunked body: no Content-Length, and the input marked as terminated.
    response = client.post("/api/predict", input_stream=io.BytesIO(big), environ_base={"wsgi.input_terminated": True},
                           headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                                    "Transfer-Encoding": "chunked"})
    assert response.status_code == 413 and response.get_json()["code"] == "file_too_large"
    response = client.post("/api/jobs", data=json.dumps({"dataset_id": 1, "x": "y" * 2_000_000}),
                           content_type="application/json")
    assert response.status_code == 413 and response.get_json()["code"] == "request_too_large"


def test_predictions_read_only_the_release_revision_once_the_version_list_is_known(served):
    server = served.extensions["model_server"]
    # the list is also re-read every few seconds; a long period keeps this loop inside one of them
    server.options = dataclasses.replace(server.options, versions_ttl_seconds=3600)
    client = served.test_client()
    assert predict(client, noisy_image(1, (220, 40, 40))).status_code == 200
    statements = []

    def trace(dbapi_connection, _record):  # what SQLite itself runs, the driver-level reads included
        dbapi_connection.set_trace_callback(statements.append)

    with served.app_context():
        engine = db.engine
    event.listen(engine, "connect", trace)
    engine.dispose()
    try:
        for seed in range(5):
            assert predict(client, noisy_image(seed, (40, 200, 60))).get_json()["class"] == "green"
    finally:
        event.remove(engine, "connect", trace)
        engine.dispose()
    # one primary-key read of the release's revision each (and the pool's liveness check): every process
    # routes by the release as it stands
    queries = [s for s in statements if not s.startswith("PRAGMA") and s != "SELECT 1"]
    assert queries == ["SELECT revision FROM release WHERE id = 1"] * 5


def test_loaded_versions_are_bounded_and_reloaded_on_demand(served, trained):
    register_bundle(served, trained[1], 2)
    register_bundle(served, trained[1], 3)
    models = Path(served.config["DATA_DIR"], "models")
    served.extensions["model_server"] = server = ModelServer(models, ServingOptions(max_versions=1), device="cpu")
    client = served.test_client()
    for version in (2, 3, 2, 3):
        assert predict(client, noisy_image(version, (220, 40, 40)), version=version).get_json()["model_version"] \
            == version
        assert list(server._loaded) == [version]  # production (v1) is not loaded until it is asked for
    assert predict(client, noisy_image(1, (220, 40, 40))).get_json()["model_version"] == 1
    for version in (2, 3):  # production stays loaded beyond the bound; pinned versions take turns
        predict(client, noisy_image(version, (220, 40, 40)), version=version)
        assert sorted(server._loaded) == [1, version]


@pytest.mark.parametrize("max_batch", [1, 8])
def test_batched_and_single_inference_agree(served, max_batch):
    models = Path(served.config["DATA_DIR"], "models")
    loaded = ModelServer(models, ServingOptions(threads=1, max_batch=max_batch, batch_wait_ms=20),
                         device="cpu").get(1)
    images = [open_checked(noisy_image(300 + i, (40, 200, 60), size=(50 + i, 40)), 10**8, 37)[0] for i in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        together = list(pool.map(loaded.probabilities, images))
    alone = [loaded.probabilities(image) for image in images]
    np.testing.assert_allclose(np.stack(together), np.stack(alone), atol=1e-5)


def test_a_bundle_from_before_onnx_and_the_named_rule_still_serves(served):
    """Bundles of earlier versions: no model.onnx, no runtime measurement, the preprocessing spelled out."""
    folder = Path(served.config["DATA_DIR"], "models", "1")
    meta = json.loads((folder / "meta.json").read_text())
    rule = meta["preprocess"]
    meta["preprocess"] = {"resize_shorter": rule["decode_size"], "center_crop_square": rule["decode_size"],
                          "center_crop": rule["input_size"], "interpolation": "bilinear", "scale": 1 / 255,
                          "mean": rule["mean"], "std": rule["std"], "layout": "NCHW"}
    for key in ("onnx", "runtimes"):
        del meta[key]
    del meta["files"]["model.onnx"]
    (folder / "model.onnx").unlink()
    (folder / "meta.json").write_text(json.dumps(meta))
    body = predict(served.test_client(), noisy_image(1, (40, 200, 60))).get_json()
    assert body["class"] == "green" and body["runtime"] == "paddle"
