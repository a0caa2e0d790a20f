"""Offline comparison: evaluations of versions on a dataset split, and the suggested abstain threshold."""
from __future__ import annotations

import io
from datetime import timedelta

import pytest

from tests.factories import newest_revision, register_bundle
from tests.images import class_files, zip_bytes
from webapp import lifecycle
from webapp.extensions import db
from webapp.models import Evaluation, utcnow
from webapp.release.evaluation import EVALUATIONS
from worker.evaluation import run_evaluation

COLOURS = {"red": 4, "green": 4, "blue": 4}


def upload(client, files: dict[str, bytes]) -> int:
    response = client.post("/api/datasets", content_type="multipart/form-data",
                           data={"archive": (io.BytesIO(zip_bytes(files)), "d.zip")})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


@pytest.fixture
def with_test_split(served):
    client = served.test_client()
    files = {**class_files(COLOURS, prefix="train/"), **class_files({k: 2 for k in COLOURS}, prefix="val/", seed=50),
             **class_files({k: 5 for k in COLOURS}, prefix="test/", seed=90)}
    return client, upload(client, files)


def evaluate(app, version: int, dataset_id: int, split: str) -> dict:
    """Queue an evaluation row and run it as the worker would (the unit app has no broker)."""
    with app.app_context():
        row = Evaluation(version=version, dataset_id=dataset_id, dataset_name="d", split=split,
                         **newest_revision(dataset_id))
        db.session.add(row)
        db.session.commit()
        assert run_evaluation(row.id, "test-worker") == "succeeded"
        return row.id


def test_two_versions_compared_on_the_same_test_images(served, trained, with_test_split):
    client, dataset_id = with_test_split
    register_bundle(served, trained[1], 2)
    ids = [evaluate(served, version, dataset_id, "test") for version in (1, 2)]
    listed = client.get(f"/api/evaluations?dataset_id={dataset_id}&split=test").get_json()["evaluations"]
    assert [item["id"] for item in listed] == ids[::-1]
    first, second = sorted(listed, key=lambda item: item["version"])
    assert first["status"] == "succeeded" and first["images"] == 15 and first["progress"] == 1.0
    assert first["accuracy"] >= 0.8 and first["accuracy"] == second["accuracy"]  # the same model twice
    assert [row["class"] for row in first["per_class"]] == ["red", "green", "blue"]
    assert all(row["support"] == 5 for row in first["per_class"])
    assert 0 < first["latency_ms"]["p50"] <= first["latency_ms"]["p95"]
    assert first["runtime"] in ("onnx", "paddle") and "calibration" not in first
    assert client.get(f"/api/evaluations/{ids[0]}").get_json()["version"] == 1


def test_the_threshold_is_calibrated_on_a_test_split_once_one_was_evaluated(served, with_test_split):
    client, dataset_id = with_test_split
    before = client.get("/api/models/1?precision=0.99").get_json()["suggested_threshold"]
    assert before["calibrated_on"] == "validation split at training" and before["precision_target"] == 0.99
    assert before["samples"] > 0 and "calibration" not in client.get("/api/models/1").get_json()["metrics"]
    evaluate(served, 1, dataset_id, "test")
    after = client.get("/api/models/1").get_json()["suggested_threshold"]
    assert after["calibrated_on"] == "test split of revision 1 of dataset 'd'" and after["samples"] == 15
    for bad in ("0.3", "1", "abc", "nan", "inf"):
        response = client.get(f"/api/models/1?precision={bad}")
        assert response.status_code == 400 and response.get_json()["field"] == "precision"


@pytest.mark.parametrize("body,status,code", [
    ({"version": 9, "dataset_id": 1, "split": "test"}, 404, "model_version_not_found"),
    ({"version": 1, "dataset_id": 999, "split": "test"}, 404, "dataset_not_found"),
    ({"version": 1, "dataset_id": 1, "split": "holdout"}, 400, "invalid_field"),
    ({"version": "1", "dataset_id": 1}, 400, "invalid_field"),
    ({"version": 1, "dataset_id": 1, "colour": "red"}, 400, "unknown_option"),
    ([], 400, "invalid_body"),
])
def test_bad_evaluation_requests_are_refused(served, with_test_split, body, status, code):
    client, _ = with_test_split
    response = client.post("/api/evaluations", json=body)
    assert response.status_code == status and response.get_json()["code"] == code
    assert client.get("/api/evaluations").get_json()["evaluations"] == []


def test_a_split_without_images_or_with_unknown_classes_is_refused(served):
    client = served.test_client()
    no_test = upload(client, {**class_files(COLOURS, prefix="train/"), **class_files(COLOURS, prefix="val/", seed=9)})
    response = client.post("/api/evaluations", json={"version": 1, "dataset_id": no_test, "split": "test"})
    assert response.status_code == 400 and response.get_json()["code"] == "empty_split"
    other = upload(client, class_files({"red": 4, "purple": 4}))
    response = client.post("/api/evaluations", json={"version": 1, "dataset_id": other, "split": "val"})
    assert response.status_code == 409 and response.get_json()["unknown_classes"] == ["purple"]


def test_a_valid_request_without_a_broker_fails_in_words(served, with_test_split):
    client, dataset_id = with_test_split
    response = client.post("/api/evaluations", json={"version": 1, "dataset_id": dataset_id})
    assert response.status_code == 503 and response.get_json()["code"] == "queue_unavailable"
    row = client.get("/api/evaluations").get_json()["evaluations"][0]
    assert row["status"] == "failed" and row["split"] == "test" and "Redis" in row["error"]


def test_an_evaluation_whose_worker_died_fails_by_the_reaper_never_by_a_get(served, with_test_split):
    client, dataset_id = with_test_split
    served.config["EVALUATION_MAX_ATTEMPTS"] = 1
    with served.app_context():
        row = Evaluation(version=1, dataset_id=dataset_id, dataset_name="d", split="test", status="running",
                         worker="w", heartbeat_at=utcnow() - timedelta(hours=1))
        db.session.add(row)
        db.session.commit()
        evaluation_id = row.id
    assert client.get(f"/api/evaluations/{evaluation_id}").get_json()["status"] == "running"
    assert client.get("/api/evaluations").get_json()["evaluations"][0]["status"] == "running"
    with served.app_context():
        assert lifecycle.reap(EVALUATIONS) == [evaluation_id]
    body = client.get(f"/api/evaluations/{evaluation_id}").get_json()
    assert body["status"] == "failed" and "worker stopped" in body["error"]
    assert client.get("/api/evaluations/99999").status_code == 404
    assert client.get("/api/evaluations?dataset_id=abc").status_code == 400


def test_an_evaluation_has_its_results_only_once_it_succeeded(served, with_test_split):
    client, dataset_id = with_test_split
    with served.app_context():
        row = Evaluation(version=1, dataset_id=dataset_id, dataset_name="d", split="val")
        db.session.add(row)
        db.session.commit()
        evaluation_id = row.id
    queued = client.get(f"/api/evaluations/{evaluation_id}").get_json()
    assert (queued["status"], queued["progress"], queued["error"], queued["finished_at"]) == ("queued", 0, None, None)
    assert not {"runtime", "images", "accuracy", "per_class", "latency_ms"} & set(queued)
    listed = client.get("/api/evaluations?split=val&version=1").get_json()
    assert [item["id"] for item in listed["evaluations"]] == [evaluation_id] and listed["next_before"] is None
    assert client.get("/api/evaluations?split=test").get_json()["evaluations"] == []


def test_an_unexpected_evaluation_error_shows_no_path(served, with_test_split, monkeypatch):
    client, dataset_id = with_test_split

    def broken(*_args, **_kwargs):
        raise OSError("[Errno 28] No space left on device: '/srv/studio/data/models/1/model.pdiparams'")

    monkeypatch.setattr("worker.evaluation.evaluate_bundle", broken)
    with served.app_context():
        row = Evaluation(version=1, dataset_id=dataset_id, dataset_name="d", split="test",
                         **newest_revision(dataset_id))
        db.session.add(row)
        db.session.commit()
        assert run_evaluation(row.id, "test-worker") == "failed"
        evaluation_id = row.id
    shown = client.get(f"/api/evaluations/{evaluation_id}").get_json()
    assert shown["status"] == "failed"
    assert "/srv/studio" not in shown["error"] and "OSError" in shown["error"]
