"""GET /api/datasets/<id>/recommendation and how POST /api/jobs resolves the options left out."""
from __future__ import annotations

import io

import pytest

from tests.images import class_files, zip_bytes
from webapp.extensions import db
from webapp.jobs.recommendation import record_timing
from webapp.models import Job


@pytest.fixture
def dataset_id(client):
    response = client.post("/api/datasets", content_type="multipart/form-data", data={
        "archive": (io.BytesIO(zip_bytes(class_files({"猫": 5, "狗": 5}))), "pets.zip")})
    return response.get_json()["id"]


def _timing(app, seconds_per_image, backbone="resnet18", image_size=32, batch_size=16, worker="gpu-box@lab"):
    with app.app_context():
        record_timing(worker, "cpu", backbone, image_size, batch_size, seconds_per_image, "job")
        db.session.commit()


def test_recommendation_suggests_every_option_with_reasons(client, dataset_id):
    body = client.get(f"/api/datasets/{dataset_id}/recommendation").get_json()
    config, reasons = body["config"], body["reasons"]
    assert body["regime"] == "tiny_images" and body["profile"]["median_side"] == 24
    assert config["image_size"] == 32 and config["backbone"] == "resnet18" and config["augmentation"] == "none"
    assert config["early_stopping_patience"] > 0 and config["learning_rate"] == 2e-3
    assert "24 px" in reasons["image_size"] and "epochs" in reasons and "batch_size" in reasons
    assert {"epochs", "seed", "grad_clip", "export_int8"} <= set(config)  # every job option
    # no worker has measured anything yet: no estimate, and it says so
    assert body["estimate_seconds"] is None and body["measured_on"] is None and body["estimate_exact"] is False


def test_estimate_comes_from_the_worker_that_measured(app, client, dataset_id):
    _timing(app, 0.01)
    body = client.get(f"/api/datasets/{dataset_id}/recommendation").get_json()
    assert body["measured_on"] == "gpu-box@lab" and body["estimate_exact"] is True
    assert body["estimate_is_upper_bound"] is True and 0 < body["estimate_seconds"] < 60
    assert body["warning"] is None
    scaled = client.get(f"/api/datasets/{dataset_id}/recommendation?image_size=80").get_json()
    assert scaled["estimate_exact"] is False and scaled["estimate_seconds"] > 3 * body["estimate_seconds"]


def test_hours_long_cpu_runs_are_warned_about_with_cheaper_alternatives(app, client, dataset_id):
    _timing(app, 60.0, backbone="resnet50", image_size=224, batch_size=16)
    body = client.get(f"/api/datasets/{dataset_id}/recommendation?backbone=resnet50&image_size=224&epochs=50").get_json()
    assert body["estimate_seconds"] > 3600 and "hours" in body["warning"]
    labels = [alternative["label"] for alternative in body["alternatives"]]
    assert any("mobilenet_v3_small" in label for label in labels)
    smaller = next(a for a in body["alternatives"] if a["options"] == {"backbone": "mobilenet_v3_small"})
    assert smaller["estimate_seconds"] < body["estimate_seconds"]


def test_fixed_options_stand_and_explicit_epochs_run_in_full(client, dataset_id):
    body = client.get(f"/api/datasets/{dataset_id}/recommendation?epochs=3&backbone=mobilenet_v3_small").get_json()
    assert body["config"]["epochs"] == 3 and body["config"]["backbone"] == "mobilenet_v3_small"
    assert body["config"]["early_stopping_patience"] == 0 and "every epoch runs" in body["reasons"]["early_stopping_patience"]
    assert "epochs" not in body["reasons"] and "backbone" not in body["reasons"]


@pytest.mark.parametrize("query, status, field", [
    ("epochs=ten", 400, "epochs"), ("epochs=0", 400, "epochs"), ("nope=1", 400, "nope"),
    ("image_size=33", 400, "image_size"), ("backbone=%00", 400, "backbone"),
])
def test_bad_query_options_are_400_naming_the_field(client, dataset_id, query, status, field):
    response = client.get(f"/api/datasets/{dataset_id}/recommendation?{query}")
    assert response.status_code == status and response.get_json()["field"] == field


@pytest.mark.parametrize("dataset", ["999", "0", str(2**63), str(10**30)])
def test_unknown_dataset_is_404(client, dataset):
    response = client.get(f"/api/datasets/{dataset}/recommendation")
    assert response.status_code == 404 and response.get_json()["code"] == "dataset_not_found"


def test_a_job_keeps_its_resolved_config_and_which_options_were_suggested(app, client, dataset_id, monkeypatch):
    from webapp.jobs import commands

    monkeypatch.setattr(commands, "enqueue", lambda job: None)
    suggested = client.post("/api/jobs", json={"dataset_id": dataset_id}).get_json()["id"]
    job = client.get(f"/api/jobs/{suggested}").get_json()
    assert job["config"]["image_size"] == 32 and job["config"]["early_stopping_patience"] > 0
    assert {"epochs", "image_size", "backbone", "early_stopping_patience"} <= set(job["suggested"])
    assert job["stopped_early_reason"] is None
    explicit = client.post("/api/jobs", json={"dataset_id": dataset_id, "epochs": 2, "warmup_epochs": 0}).get_json()["id"]
    job = client.get(f"/api/jobs/{explicit}").get_json()
    assert job["config"]["epochs"] == 2 and job["config"]["early_stopping_patience"] == 0
    assert "epochs" not in job["suggested"]
    with app.app_context():  # the worker stopped it early: the page says when and why
        row = db.session.get(Job, suggested)
        row.stopped_early, row.best_epoch, row.epoch = True, 3, 5
        db.session.commit()
    reason = client.get(f"/api/jobs/{suggested}").get_json()["stopped_early_reason"]
    assert "epoch 5" in reason and "since epoch 3" in reason
