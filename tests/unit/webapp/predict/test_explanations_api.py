"""POST /api/predict with `explain`: the explanation's content, the PNG, bundles from before explanations
(409), and inference batches that mix requests with and without an explanation."""
from __future__ import annotations

import base64
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from engine.explain import EXPLAIN_FILES, EXPLAIN_ONNX_FILE
from tests.factories import register_bundle
from tests.images import noisy_image
from webapp.predict.schemas import Prediction
from webapp.predict.serving import _Request, _run_batch


def predict(client, data: bytes, **fields):
    form = {"image": (io.BytesIO(data), "x.png"), **{k: str(v) for k, v in fields.items()}}
    response = client.post("/api/predict", data=form, content_type="multipart/form-data")
    if response.status_code == 200:
        Prediction.model_validate(response.get_json())
    return response


def test_explain_answers_the_top_class_map_and_the_region_it_covers(served):
    client = served.test_client()
    answer = predict(client, noisy_image(3, (220, 40, 40), size=(120, 80)), explain=1).get_json()
    explanation = answer["explanation"]
    assert explanation["class"] == answer["top_k"][0]["class"] == "red"
    assert explanation["exact"] is False  # mobilenet_v3's head is not linear
    assert explanation["size"] == [1, 1] and explanation["map"] == [[1.0]]  # 32 px: a 1 x 1 feature map
    # decode 37 px: the 120 x 80 image becomes 56 x 37, its centre 37 square, then the centre 32 of that
    assert explanation["region"] == pytest.approx({"x": 11 / 56, "y": 2 / 37, "width": 32 / 56, "height": 32 / 37},
                                                  abs=1e-6)
    assert "png" not in explanation


def test_explain_png_adds_the_heat_map_in_the_same_grid(served):
    answer = predict(served.test_client(), noisy_image(4, (40, 60, 220)), explain="png").get_json()
    heat = Image.open(io.BytesIO(base64.b64decode(answer["explanation"]["png"])))
    assert heat.format == "PNG" and heat.mode == "RGBA" and heat.size == (1, 1)
    assert heat.getpixel((0, 0))[3] > 0  # the hottest cell is visible


def test_without_explain_the_answer_is_unchanged(served):
    response = predict(served.test_client(), noisy_image(5, (40, 200, 60)))
    assert response.status_code == 200 and "explanation" not in response.get_json()
    refused = predict(served.test_client(), noisy_image(5, (40, 200, 60)), explain="yes")
    assert refused.status_code == 400 and refused.get_json()["field"] == "explain"


def test_a_bundle_from_before_explanations_answers_409_naming_the_reason(app, trained, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(trained[1], old)
    meta = json.loads((old / "meta.json").read_text())
    for name in (*EXPLAIN_FILES, EXPLAIN_ONNX_FILE):
        (old / name).unlink(missing_ok=True)
        meta["files"].pop(name, None)
    meta.pop("explain")
    (old / "meta.json").write_text(json.dumps(meta))
    register_bundle(app, old, 1)
    client = app.test_client()
    refused = predict(client, noisy_image(6, (220, 40, 40)), explain=1)
    assert refused.status_code == 409
    assert refused.get_json()["code"] == "explanation_unavailable"
    assert "before explanations" in refused.get_json()["error"]
    assert predict(client, noisy_image(6, (220, 40, 40))).get_json()["class"] == "red"


class CountingSession:
    """A fake runtime: probabilities are the row's first pixel; each class map is the row's index."""

    def __init__(self) -> None:
        self.fetched_features, self.explained_rows = 0, 0

    def __call__(self, batch):
        return batch[:, 0, 0, :2]

    def with_features(self, batch):
        self.fetched_features += 1
        return self(batch), batch[:, :1]

    def class_maps(self, features):
        self.explained_rows += len(features)
        return np.repeat(features, 2, axis=1)


def test_a_mixed_batch_runs_the_head_only_for_the_requests_that_asked():
    session = CountingSession()
    rows = [np.full((1, 1, 1, 2), float(i), dtype=np.float32) for i in range(3)]
    requests = [_Request(rows[0]), _Request(rows[1], explain=True), _Request(rows[2])]
    _run_batch(session, requests)
    assert session.fetched_features == 1 and session.explained_rows == 1
    assert requests[0].maps is None and requests[2].maps is None
    assert requests[1].maps.shape == (1, 2, 1, 2) and float(requests[1].maps.max()) == 1.0
    assert [float(r.result[0, 0]) for r in requests] == [0.0, 1.0, 2.0]
    _run_batch(session, [_Request(rows[0]), _Request(rows[1])])
    assert session.fetched_features == 1  # nobody asked: the feature map was not fetched


def test_a_dataset_image_is_explained_by_a_version_and_nothing_is_recorded(served, monkeypatch):
    from sqlalchemy import func, select

    from tests.images import class_files, zip_bytes
    from webapp.extensions import db
    from webapp.models import DatasetImage

    client = served.test_client()
    upload = client.post("/api/datasets", content_type="multipart/form-data", data={
        "archive": (io.BytesIO(zip_bytes(class_files({"red": 2, "blue": 2}))), "d.zip")})
    assert upload.status_code in (201, 202), upload.get_json()
    with served.app_context():
        image_id = db.session.scalar(select(func.min(DatasetImage.id)))
    recorded = []
    monkeypatch.setattr(served.extensions["serving_stats"], "record", lambda *args: recorded.append(args))
    monkeypatch.setattr(served.extensions["prediction_hold"], "keep", lambda *args: recorded.append(args))
    answer = client.get(f"/api/models/1/explanations?image={image_id}")
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["image_id"] == image_id and body["model_version"] == 1
    assert body["explanation"]["class"] == body["top_k"][0]["class"] and body["explanation"]["png"]
    assert recorded == []  # a GET: no serving statistics, nothing held for feedback
    assert client.get("/api/models/1/explanations?image=999999").get_json()["code"] == "image_not_found"
    assert client.get(f"/api/models/7/explanations?image={image_id}").get_json()["code"] == "model_version_not_found"
    assert client.get("/api/models/1/explanations?image=x").status_code == 400
