"""The jobs API's models: strict job options, typed query text, timing probes, and answers of the
documented shape."""
from __future__ import annotations

import io

import pytest

from engine.config import TrainConfig
from tests.images import class_files, zip_bytes
from webapp.extensions import db
from webapp.models import Job


@pytest.fixture
def dataset_id(client):
    response = client.post("/api/datasets", content_type="multipart/form-data", data={
        "archive": (io.BytesIO(zip_bytes(class_files({"a": 3, "b": 3}))), "ab.zip")})
    return response.get_json()["id"]


@pytest.fixture
def queued(monkeypatch):
    """Jobs stay queued: no broker is asked."""
    from webapp.jobs import commands

    monkeypatch.setattr(commands, "enqueue", lambda job: None)


@pytest.mark.parametrize("options, field, words", [
    ({"batch_size": "32"}, "batch_size", "whole number"), ({"seed": 7.0}, "seed", "whole number"),
    ({"freeze_backbone": "on"}, "freeze_backbone", "true or false"),
    ({"export_int8": 1}, "export_int8", "true or false"),
    ({"weight_decay": "0.01"}, "weight_decay", "a number"), ({"learning_rate": True}, "learning_rate", "a number"),
    ({"augmentation": ["strong"]}, "augmentation", "Choose one of"),
    ({"promote_when_done": "yes"}, "promote_when_done", "true or false"),
    ({"dataset_id": True}, "dataset_id", "must be the id"), ({"dataset_id": "1"}, "dataset_id", "must be the id"),
])
def test_options_are_their_own_type_not_text_or_booleans_that_look_like_one(client, dataset_id, options, field, words):
    response = client.post("/api/jobs", json={"dataset_id": dataset_id, **options})
    body = response.get_json()
    assert response.status_code == 400 and body["field"] == field and words in body["error"], body
    assert body["code"] == ("invalid_field" if field in ("dataset_id", "promote_when_done") else "invalid_option")
    with client.application.app_context():
        assert db.session.query(Job).count() == 0


def test_an_unknown_option_lists_the_training_options(client, dataset_id):
    body = client.post("/api/jobs", json={"dataset_id": dataset_id, "lr": 0.1}).get_json()
    assert (body["code"], body["field"]) == ("unknown_option", "lr")
    assert "'lr' is not a training option" in body["error"] and "learning_rate" in body["error"]
    assert "dataset_id" not in body["error"]  # the options are the training options


def test_a_stored_job_config_loads_as_the_worker_loads_it(app, client, dataset_id, queued):
    sent = {"dataset_id": dataset_id, "epochs": 2, "warmup_epochs": 0, "augmentation": " Strong", "mixup_alpha": 0}
    job_id = client.post("/api/jobs", json=sent).get_json()["id"]
    answer = client.get(f"/api/jobs/{job_id}").get_json()
    with app.app_context():
        stored = db.session.get(Job, job_id).config
    config = TrainConfig(**stored)
    assert answer["config"] == stored == config.to_dict()
    assert (config.augmentation, config.mixup_alpha, config.randaugment_n, config.epochs) == ("strong", 0.0, 2, 2)


def test_recommendation_query_text_is_read_as_each_options_type(client, dataset_id):
    body = client.get(f"/api/datasets/{dataset_id}/recommendation",
                      query_string={"epochs": "4", "pretrained": "false", "backbone": "ResNet18"}).get_json()
    config = body["config"]
    assert (config["epochs"], config["pretrained"], config["backbone"]) == (4, False, "resnet18")
    for query, field in (({"epochs": "1.5"}, "epochs"), ({"pretrained": "maybe"}, "pretrained"),
                         ({"learning_rate": "NaN"}, "learning_rate"), ({"epochs": ["2", "3"]}, "epochs")):
        refused = client.get(f"/api/datasets/{dataset_id}/recommendation", query_string=query)
        assert refused.status_code == 400 and refused.get_json()["field"] == field, query


def test_a_timing_probe_names_exactly_its_setting(client):
    setting = {"backbone": "resnet18", "image_size": 64, "batch_size": 16}
    for body, code, field, words in (
            ({**setting, "epochs": 3}, "unknown_option", "epochs", "is not part of a timing probe"),
            ({"backbone": "resnet18", "batch_size": 16}, "missing_field", "image_size", "required"),
            ({**setting, "image_size": "64"}, "invalid_option", "image_size", "whole number"),
            ({**setting, "batch_size": 2048}, "invalid_option", "batch_size", "between 1 and 1024")):
        answer = client.post("/api/timing-probes", json=body).get_json()
        assert (answer["code"], answer["field"]) == (code, field) and words in answer["error"], body


def test_the_job_list_filter_is_one_of_the_statuses_or_left_empty(app, client, dataset_id, queued):
    job_id = client.post("/api/jobs", json={"dataset_id": dataset_id, "epochs": 1}).get_json()["id"]
    assert [job["id"] for job in client.get("/api/jobs?status=").get_json()["jobs"]] == [job_id]
    assert client.get("/api/jobs?status=running").get_json() == {"jobs": [], "next_before": None}
    refused = client.get("/api/jobs?status=done").get_json()
    assert (refused["code"], refused["field"]) == ("invalid_field", "status")
    assert "queued, running, succeeded, failed, cancelled" in refused["error"]


def test_answers_have_the_documented_fields(app, client, dataset_id, queued):
    document = client.get("/api/openapi.json").get_json()["components"]["schemas"]
    job_id = client.post("/api/jobs", json={"dataset_id": dataset_id, "epochs": 1}).get_json()["id"]
    job = client.get(f"/api/jobs/{job_id}").get_json()
    assert set(job) == set(document["JobOut"]["properties"])
    summary = client.get("/api/jobs").get_json()["jobs"][0]
    assert set(summary) == set(document["JobSummary"]["properties"]) and summary["total_epochs"] == 1
    backbones = client.get("/api/backbones").get_json()["backbones"]
    assert set(backbones[0]["defaults"]) == set(document["JobOptions"]["properties"])
