"""Job API without a worker: validation names the field, failures never leave a job stuck."""
from __future__ import annotations

import io
from datetime import timedelta

import pytest

from tests.images import class_files, zip_bytes
from tests.factories import newest_revision
from webapp.extensions import db
from webapp import lifecycle
from webapp.jobs.work import JOBS
from webapp.models import EpochMetric, Job, utcnow


@pytest.fixture
def app(app_on_each_database):
    """Every test here runs on SQLite and on PostgreSQL."""
    return app_on_each_database


@pytest.fixture
def dataset_id(client):
    response = client.post("/api/datasets", content_type="multipart/form-data", data={
        "archive": (io.BytesIO(zip_bytes(class_files({"猫": 3, "狗": 3}))), "pets.zip")})
    return response.get_json()["id"]


@pytest.mark.parametrize("payload, field, words", [
    ({"dataset_id": "one"}, "dataset_id", "must be the id"),
    ({"epochs": 3}, "dataset_id", "must be the id"),
    ({"epochs": "ten"}, "epochs", "whole number"),
    ({"epochs": 0}, "epochs", "between 1 and 500"),
    ({"epochs": 2.5}, "epochs", "whole number"),
    ({"batch_size": 4096}, "batch_size", "between 1 and 1024"),
    ({"learning_rate": -1}, "learning_rate", "above 0"),
    ({"learning_rate": "fast"}, "learning_rate", "must be a number"),
    ({"image_size": 100}, "image_size", "multiple of 8"),
    ({"backbone": "vgg16"}, "backbone", "Choose one of"),
    ({"optimizer": "lion"}, "optimizer", "Choose one of"),
    ({"pretrained": "maybe"}, "pretrained", "true or false"),
    ({"label_smoothing": 0.7}, "label_smoothing", "[0, 0.5)"),
    ({"early_stopping_patience": -2}, "early_stopping_patience", "0 (off)"),
    ({"epoch": 50}, "epoch", "'epoch' is not a training option"),
    ({"learning_rate": 10**400}, "learning_rate", "must be a number"),
    ({"epochs": "1e3"}, "epochs", "whole number"),  # text is no number, whatever it spells
    ({"epochs": "1"}, "epochs", "whole number"),
    ({"epochs": True}, "epochs", "whole number"),
    ({"pretrained": "true"}, "pretrained", "true or false"),
    ({"epochs": 2, "warmup_epochs": 3}, "warmup_epochs", "cannot exceed"),
    ({"seed": 2**40}, "seed", "from 0 to 4294967295"),
    ({"backbone": None}, "backbone", "cannot be null"),
    ({"epochs": None}, "epochs", "cannot be null"),
])
def test_bad_options_are_400_naming_the_field(client, dataset_id, payload, field, words):
    body = {"dataset_id": dataset_id, **payload} if field != "dataset_id" else payload
    response = client.post("/api/jobs", json=body)
    assert response.status_code == 400
    assert response.get_json()["field"] == field
    assert words in response.get_json()["error"]


def test_not_json_is_400(client):
    response = client.post("/api/jobs", data="{not json", content_type="application/json")
    assert response.status_code == 400 and response.get_json()["field"] == "body"
    response = client.post("/api/jobs", json=[1, 2])
    assert response.status_code == 400 and response.get_json()["field"] == "body"


@pytest.mark.parametrize("dataset_id", [77, 0, -5, 2**63, 10**40])
def test_unknown_dataset_is_404(client, dataset_id):
    response = client.post("/api/jobs", json={"dataset_id": dataset_id})
    assert response.status_code == 404
    assert response.get_json()["field"] == "dataset_id" and response.get_json()["code"] == "dataset_not_found"


def test_null_means_automatic_where_the_option_has_such_a_meaning(client, dataset_id):
    """learning_rate and image_size accept null (automatic); validation passes and the job is created."""
    response = client.post("/api/jobs", json={"dataset_id": dataset_id, "learning_rate": None, "image_size": None})
    assert response.status_code == 503 and response.get_json()["code"] == "queue_unavailable"
    job = client.get(f"/api/jobs/{response.get_json()['id']}").get_json()
    # the dataset's small images are not enlarged (32 px); from scratch, AdamW's automatic rate is 2e-3
    assert job["config"]["learning_rate"] == 2e-3 and job["config"]["image_size"] == 32
    assert "image_size" in job["suggested"] and "learning_rate" not in job["suggested"]
    assert job["steps"] == 0 and job["finished"] is True


def test_unreachable_queue_fails_the_job_with_a_reason(app, client, dataset_id):
    response = client.post("/api/jobs", json={"dataset_id": dataset_id, "epochs": 1})
    assert response.status_code == 503
    job_id = response.get_json()["id"]
    job = client.get(f"/api/jobs/{job_id}").get_json()
    assert job["status"] == "failed" and job["finished"] is True and "Redis" in job["error"]
    assert job["finished_at"] is not None
    assert "127.0.0.1" not in job["error"] and "Connection refused" not in job["error"]  # the address is logged


def _job(app, dataset_id, status, heartbeat_age):
    with app.app_context():
        job = Job(dataset_id=dataset_id, dataset_name="pets", status=status, config={"epochs": 3,
                  "backbone": "resnet18"}, **newest_revision(dataset_id), started_at=utcnow(), heartbeat_at=utcnow() - timedelta(seconds=heartbeat_age))
        db.session.add(job)
        db.session.commit()
        return job.id


def test_reaper_fails_only_jobs_whose_heartbeat_stopped(app, client, dataset_id):
    stale = _job(app, dataset_id, "running", 300)
    alive = _job(app, dataset_id, "running", 2)
    app.config["JOB_MAX_ATTEMPTS"] = 1
    with app.app_context():
        assert lifecycle.reap(JOBS) == [stale]
        assert lifecycle.reap(JOBS) == []
    assert client.get(f"/api/jobs/{stale}").get_json()["error"].startswith("The worker running this job stopped")
    assert client.get(f"/api/jobs/{alive}").get_json()["status"] == "running"


def test_a_job_that_lost_its_worker_is_queued_again_until_its_attempts_run_out(app, client, dataset_id, monkeypatch):
    sent = []
    monkeypatch.setattr(lifecycle, "send", lambda kind, job: sent.append(job.id))
    stale = _job(app, dataset_id, "running", 300)
    for retry in (1, 2):
        with app.app_context():
            assert lifecycle.reap(JOBS) == [stale]
        job = client.get(f"/api/jobs/{stale}").get_json()
        assert (job["status"], job["retries"], job["error"]) == ("queued", retry, None)
        with app.app_context():  # a worker claims it again, then dies again
            row = db.session.get(Job, stale)
            row.status, row.attempt, row.heartbeat_at = "running", retry + 1, utcnow() - timedelta(seconds=300)
            db.session.commit()
    with app.app_context():
        assert lifecycle.reap(JOBS) == [stale]
    job = client.get(f"/api/jobs/{stale}").get_json()
    assert job["status"] == "failed" and "after 3 attempts" in job["error"] and sent == [stale, stale]


def test_resume_is_for_failed_and_cancelled_jobs_whose_dataset_exists(app, client, dataset_id, monkeypatch):
    from webapp.jobs import commands, events

    sent = []
    monkeypatch.setattr(commands, "enqueue", lambda job: sent.append(job.id))
    monkeypatch.setattr(events, "clear_cancel", lambda client, job_id: None)
    running = _job(app, dataset_id, "running", 1)
    refused = client.post(f"/api/jobs/{running}/resume")
    assert refused.status_code == 409 and refused.get_json()["code"] == "job_not_resumable"
    failed = _job(app, dataset_id, "failed", 1)
    with app.app_context():
        row = db.session.get(Job, failed)
        row.error, row.retries, row.cancel_requested = {"text": "The worker stopped responding"}, 2, True
        db.session.commit()
    resumed = client.post(f"/api/jobs/{failed}/resume")
    body = resumed.get_json()
    assert resumed.status_code == 202 and body["status"] == "queued" and sent == [failed]
    assert (body["error"], body["retries"], body["cancel_requested"], body["finished_at"]) == (None, 0, False, None)
    assert client.post(f"/api/jobs/{failed}/resume").get_json()["code"] == "job_not_resumable"
    orphan = _job(app, dataset_id, "cancelled", 1)
    assert client.delete(f"/api/datasets/{dataset_id}").status_code == 409  # jobs still use it
    with app.app_context():
        for job_id in (running, failed):
            db.session.get(Job, job_id).status = "failed"
        db.session.commit()
    assert client.delete(f"/api/datasets/{dataset_id}").status_code == 200
    gone = client.post(f"/api/jobs/{orphan}/resume")
    assert gone.status_code == 409 and gone.get_json()["code"] == "dataset_deleted"
    assert client.post(f"/api/jobs/{2**70}/resume").status_code == 404


def test_dataset_in_use_cannot_be_deleted(app, client, dataset_id):
    _job(app, dataset_id, "running", 1)
    response = client.delete(f"/api/datasets/{dataset_id}")
    assert response.status_code == 409 and "used by 1 queued or running" in response.get_json()["error"]
    assert client.get(f"/api/datasets/{dataset_id}").status_code == 200


def test_job_json_and_list_filter(app, client, dataset_id):
    job_id = _job(app, dataset_id, "running", 1)
    queued = _job(app, dataset_id, "queued", 1)
    with app.app_context():
        db.session.add(EpochMetric(job_id=job_id, epoch=1, train_loss=1.2, train_acc=0.5, val_loss=1.0,
                                   val_acc=0.6, val_top5=None, lr=0.001, seconds=3.0, images_per_s=40.0))
        db.session.commit()
    body = client.get(f"/api/jobs/{job_id}").get_json()
    assert body["epochs"] == [{"epoch": 1, "train_loss": 1.2, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.6,
                               "val_top5": None, "lr": 0.001, "seconds": 3.0, "images_per_s": 40.0}]
    listed = client.get("/api/jobs?status=queued").get_json()["jobs"]
    assert [(j["id"], j["queue_position"]) for j in listed] == [(queued, 1)]
    page = client.get("/jobs?status=running").get_data(as_text=True)
    assert f'data-job="{job_id}"' in page and f'data-job="{queued}"' not in page


def test_backbones_list_reports_missing_weights(client, monkeypatch, tmp_path):
    monkeypatch.setenv("PADDLE_WEIGHTS_DIR", str(tmp_path / "none"))
    answer = client.get("/api/backbones").get_json()
    body = answer["backbones"]
    names = [b["name"] for b in body]
    assert names == ["mobilenet_v3_small", "mobilenet_v3_large", "resnet18", "resnet50", "pp_lcnet_x1_0"]
    assert all(b["pretrained_available"] is False and b["defaults"]["pretrained"] is False for b in body)
    assert answer["learning_rates"]["adamw"] == {"head_only": 0.01, "pretrained": 1e-3, "scratch": 2e-3}
    assert all(b["input_size"] == 224 == b["defaults"]["image_size"] for b in body)


def test_a_confusion_cell_lists_its_images_surest_first(app, client, dataset_id):
    from webapp.models import DatasetImage

    job_id = _job(app, dataset_id, "succeeded", 1)
    with app.app_context():
        images = db.session.scalars(db.select(DatasetImage).where(DatasetImage.dataset_id == dataset_id)
                                    .order_by(DatasetImage.id)).all()
        job = db.session.get(Job, job_id)
        job.class_names = sorted({image.class_name for image in images})
        job.predictions = {"val": [
            {"key": images[0].sha256, "label": 0, "predicted": 1, "top": [[1, 0.6], [0, 0.4]]},
            {"key": images[1].sha256, "label": 0, "predicted": 1, "top": [[1, 0.9], [0, 0.1]]},
            {"key": images[2].sha256, "label": 1, "predicted": 1, "top": [[1, 0.99], [0, 0.01]]}]}
        db.session.commit()
        first, second = images[0].id, images[1].id
    cell = client.get(f"/api/jobs/{job_id}/confusion/val/0/1").get_json()
    names = cell["true"], cell["predicted"]
    assert (cell["count"], cell["shown"]) == (2, 2) and names[0] != names[1]
    assert [item["image_id"] for item in cell["items"]] == [second, first]  # surest mistake first
    assert cell["items"][0]["top"] == [{"class": names[1], "confidence": 0.9}, {"class": names[0], "confidence": 0.1}]
    assert client.get(cell["items"][0]["thumbnail_url"]).status_code == 200
    assert client.get(f"/api/jobs/{job_id}/confusion/val/1/0").get_json()["count"] == 0
    for path, code in ((f"/api/jobs/{job_id}/confusion/test/0/1", "results_not_ready"),
                       (f"/api/jobs/{job_id}/confusion/train/0/1", "invalid_field"),
                       (f"/api/jobs/{job_id}/confusion/val/2/0", "invalid_field"),
                       (f"/api/jobs/{job_id}/confusion/val/0/{2**70}", "invalid_field")):
        response = client.get(path)
        assert response.status_code in (400, 409) and response.get_json()["code"] == code, path
    assert client.get(f"/api/jobs/{2**70}/confusion/val/0/0").status_code == 404


def test_a_teacher_must_exist_pass_its_check_and_know_the_dataset_classes(app, client, dataset_id, trained):
    from tests.factories import register_bundle
    from webapp.storage import DataDir

    def start(**options):
        return client.post("/api/jobs", json={"dataset_id": dataset_id, "epochs": 1, **options})

    missing = start(teacher_version=7)
    assert missing.status_code == 404 and missing.get_json()["field"] == "teacher_version"
    register_bundle(app, trained[1], 1)  # knows red, green, blue; the dataset has other classes
    mismatch = start(teacher_version=1).get_json()
    assert mismatch["code"] == "classes_mismatch" and mismatch["field"] == "teacher_version"
    assert mismatch["missing"] and mismatch["extra"] == ["blue", "green", "red"] and "does not know" in mismatch["error"]
    for value in (0, -3, 2**70, "x", True, 1.5):
        response = start(teacher_version=value)
        assert response.status_code == 400 and response.get_json()["field"] == "teacher_version", value
    for field, value in (("distill_temperature", 0.5), ("distill_temperature", 21), ("distill_weight", 1.5)):
        assert start(**{field: value}).get_json()["field"] == field
    (DataDir(app.config["DATA_DIR"]).model(1) / "model.pdiparams").write_bytes(b"tampered")
    rejected = start(teacher_version=1)
    assert rejected.status_code == 409 and rejected.get_json()["code"] == "model_bundle_rejected"
    with app.app_context():
        assert db.session.query(Job).count() == 0


def test_continuing_needs_a_version_of_the_same_backbone_with_kept_weights(app, client, dataset_id, trained):
    from tests.factories import register_bundle

    def start(**options):
        return client.post("/api/jobs", json={"dataset_id": dataset_id, "epochs": 1, **options})

    assert start(init_version=4).get_json()["code"] == "model_version_not_found"
    register_bundle(app, trained[1], 1)  # a mobilenet_v3_small whose job (and so its weights) is unknown
    other = start(init_version=1, backbone="resnet18").get_json()
    assert other["code"] == "conflicting_fields" and other["field"] == "init_version" and "mobilenet_v3_small" in other["error"]
    gone = start(init_version=1, backbone="mobilenet_v3_small")
    assert gone.status_code == 409 and gone.get_json()["code"] == "init_weights_missing"
    assert start(init_version=0).get_json()["field"] == "init_version"
