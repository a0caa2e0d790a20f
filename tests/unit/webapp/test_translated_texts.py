"""Texts the Python code words for people (suggestion reasons, dataset warnings and rejections, job and
evaluation errors, sign-in messages) reach them through the catalog, in the request's language, while the
English stays exactly as it was (read through the stand-in catalog of tests.marked_catalog)."""
from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest

from engine.bundle import BundleRejected
from engine.errors import StudioError
from engine.messages import Message
from engine.recommend import DatasetProfile, suggest
from tests.factories import app_with_user, form_token
from tests.images import class_files, zip_bytes
from tests.marked_catalog import EN, MARK, ZH, marked_chinese  # noqa: F401 (an autouse fixture)
from webapp.extensions import db
from webapp.jobs.work import transition
from webapp.statuses import JobStatus
from webapp.models import Dataset, Evaluation, Job, utcnow


@pytest.fixture
def dataset_id(client):
    response = client.post("/api/datasets", content_type="multipart/form-data", data={
        "archive": (io.BytesIO(zip_bytes(class_files({"猫": 5, "狗": 5}))), "pets.zip")})
    return response.get_json()["id"]


def test_suggestion_reasons_warning_and_alternatives_follow_the_language(app, client, dataset_id):
    from webapp.jobs.recommendation import record_timing

    english = client.get(f"/api/datasets/{dataset_id}/recommendation", headers=EN).get_json()
    chinese = client.get(f"/api/datasets/{dataset_id}/recommendation", headers=ZH).get_json()
    assert set(english["reasons"]) == set(chinese["reasons"]) and english["reasons"]
    assert english["reasons"]["image_size"] == ("The images are about 24 px; enlarging them beyond 32 px adds "
                                                "computation but no detail.")
    for name, reason in chinese["reasons"].items():
        assert reason.startswith(MARK) and not english["reasons"][name].startswith(MARK), name
    assert chinese["reasons"]["image_size"] == MARK + english["reasons"]["image_size"]

    with app.app_context():
        record_timing("box", "cpu", "resnet50", 224, 16, 60.0, "job")
        db.session.commit()
    query = f"/api/datasets/{dataset_id}/recommendation?backbone=resnet50&image_size=224&epochs=50"
    english, chinese = client.get(query, headers=EN).get_json(), client.get(query, headers=ZH).get_json()
    assert re.fullmatch(r"This run would take about \d+\.\d hours on box's CPU\.", english["warning"])
    assert chinese["warning"] == MARK + english["warning"]
    assert "Use the smaller mobilenet_v3_small" in [a["label"] for a in english["alternatives"]]
    assert all(a["label"].startswith(MARK) for a in chinese["alternatives"]) and chinese["alternatives"]


PROFILES = [DatasetProfile(3, 90, 20, 0, 20, 30, 24), DatasetProfile(3, 300, 60, 0, 90, 100, 180),
            DatasetProfile(5, 5000, 900, 0, 800, 1000, 400)]


def test_the_engine_words_its_reasons_as_english_messages_the_catalog_knows():
    from webapp.datasets.layout import _BROKEN_RULE
    from webapp.i18n import extract_catalog

    ids = {message.id for message in extract_catalog() if message.id}
    reasons = [reason for profile in PROFILES for weights in ({}, {"pp_lcnet_x1_0": True}, {"resnet50": True})
               for backbone in (None, "resnet18") for gpu in (False, True)
               for reason in suggest(profile, weights, gpu=gpu, backbone=backbone).reasons.values()]
    for reason in reasons:
        assert isinstance(reason, Message) and reason.template in ids, reason
        assert str(reason) == (reason.template % reason.params if reason.params else reason.template)
    assert set(_BROKEN_RULE.values()) <= ids
    assert suggest(PROFILES[0], {}).reasons["image_size"] == ("The images are about 24 px; enlarging them beyond "
                                                              "32 px adds computation but no detail.")


def test_dataset_warnings_rejections_and_error_follow_the_language(app, client):
    files = class_files({"many": 30, "few": 2})
    files["readme.txt"] = b"hello"
    files["many/notes.jpg"] = b"not an image"
    response = client.post("/api/datasets", content_type="multipart/form-data",
                           data={"archive": (io.BytesIO(zip_bytes(files)), "set.zip")})
    ident = response.get_json()["id"]
    english = client.get(f"/api/datasets/{ident}", headers=EN).get_json()
    chinese = client.get(f"/api/datasets/{ident}", headers=ZH).get_json()
    assert {"path": "readme.txt", "reason": "not inside a class folder"} in english["rejected"]
    assert {"path": "many/notes.jpg", "reason": "The file is not an image; send a JPEG, PNG, GIF, BMP or WEBP."} \
        in english["rejected"]
    assert [r["path"] for r in chinese["rejected"]] == [r["path"] for r in english["rejected"]]
    assert [r["reason"] for r in chinese["rejected"]] == [MARK + r["reason"] for r in english["rejected"]]
    assert all(set(r) == {"path", "reason"} for r in chinese["rejected"])
    assert any(w.startswith("Classes are strongly imbalanced: 'many' has") for w in english["warnings"])
    assert chinese["warnings"] == [MARK + w for w in english["warnings"]] and len(english["warnings"]) == 2
    page = client.get(f"/datasets/{ident}", headers=ZH).get_data(as_text=True)
    assert MARK + "not inside a class folder" in page and MARK + "Classes are strongly imbalanced" in page

    with app.app_context():  # words that are no template are shown as they are
        row = db.session.get(Dataset, ident)
        row.rejected = [{"path": "a.png", "reason": {"text": "some words"}}]
        db.session.commit()
    words = client.get(f"/api/datasets/{ident}", headers=ZH).get_json()
    assert words["rejected"] == [{"path": "a.png", "reason": "some words"}]

    from webapp import lifecycle
    from webapp.datasets.services import UPLOAD_CHECKS

    with app.app_context():
        failed = Dataset(name="broken", status="processing")
        db.session.add(failed)
        db.session.commit()
        lifecycle.move(UPLOAD_CHECKS, failed, UPLOAD_CHECKS.failed,
                       error=StudioError("not_a_zip", "The file is not a readable .zip archive."))
        failed_id = failed.id
    assert client.get(f"/api/datasets/{failed_id}", headers=EN).get_json()["error"] == \
        "The file is not a readable .zip archive."
    assert client.get(f"/api/datasets/{failed_id}", headers=ZH).get_json()["error"] == \
        MARK + "The file is not a readable .zip archive."


def test_refused_uploads_list_their_files_in_the_language(client):
    files = {"a/notes.jpg": b"not an image", "readme.txt": b"hello"}
    response = client.post("/api/datasets", content_type="multipart/form-data", headers=ZH,
                           data={"archive": (io.BytesIO(zip_bytes(files)), "set.zip")})
    body = response.get_json()
    assert body["code"] == "no_usable_images" and body["error"].startswith(MARK)
    assert all(set(r) == {"path", "reason"} and r["reason"].startswith(MARK) for r in body["rejected"])


def test_job_texts_follow_the_language(app, client, dataset_id, monkeypatch):
    from webapp.jobs import commands

    monkeypatch.setattr(commands, "enqueue", lambda job: None)
    ident = client.post("/api/jobs", json={"dataset_id": dataset_id}).get_json()["id"]
    with app.app_context():
        row = db.session.get(Job, ident)
        row.stopped_early, row.best_epoch, row.epoch = True, 3, 5
        db.session.commit()
    english = client.get(f"/api/jobs/{ident}", headers=EN).get_json()
    chinese = client.get(f"/api/jobs/{ident}", headers=ZH).get_json()
    assert english["stopped_early_reason"].startswith("Stopped after epoch 5 of at most ")
    assert chinese["stopped_early_reason"] == MARK + english["stopped_early_reason"]
    assert set(chinese["suggested"]) == set(english["suggested"]) and english["suggested"]
    assert chinese["suggested"] == {name: MARK + reason for name, reason in english["suggested"].items()}

    assert client.post(f"/api/jobs/{ident}/cancel").status_code == 200
    assert client.get(f"/api/jobs/{ident}", headers=EN).get_json()["error"] == "Cancelled before it started."
    assert client.get(f"/api/jobs/{ident}", headers=ZH).get_json()["error"] == MARK + "Cancelled before it started."
    with app.app_context():  # an unexpected exception's words are kept as they are
        transition(db.session.get(Job, ident), JobStatus.QUEUED)
        transition(db.session.get(Job, ident), JobStatus.RUNNING)
        transition(db.session.get(Job, ident), JobStatus.FAILED, error="MemoryError: boom")
    assert client.get(f"/api/jobs/{ident}", headers=ZH).get_json()["error"] == "MemoryError: boom"


def test_evaluation_errors_follow_the_language(app, client):
    from webapp import lifecycle
    from webapp.release.evaluation import EVALUATIONS

    app.config["EVALUATION_MAX_ATTEMPTS"] = 1
    with app.app_context():
        row = Evaluation(version=1, dataset_name="d", split="test", status="running", worker="w",
                         heartbeat_at=utcnow() - timedelta(hours=1))
        db.session.add(row)
        db.session.commit()
        assert lifecycle.reap(EVALUATIONS) == [row.id]
    english = client.get("/api/evaluations", headers=EN).get_json()["evaluations"][0]["error"]
    chinese = client.get("/api/evaluations", headers=ZH).get_json()["evaluations"][0]["error"]
    assert english == "The worker stopped while evaluating (attempts made: 1); start the evaluation again."
    assert chinese == MARK + english


def test_a_wrapped_error_is_translated_inside_too(app):
    from webapp.errors import translated

    inner = BundleRejected("Model version %(version)s has no bundle folder.", {"version": 7})
    outer = StudioError("model_bundle_rejected", "The teacher, model version %(version)s, cannot be used: "
                                                 "%(reason)s", {"version": 7, "reason": inner})
    with app.test_request_context(headers=ZH):
        assert translated(outer) == (MARK + "The teacher, model version 7, cannot be used: " + MARK
                                     + "Model version 7 has no bundle folder.")
    with app.test_request_context(headers=EN):
        assert translated(outer) == outer.message


def test_sign_in_messages_follow_the_language(tmp_path, redis_url_empty):
    client = app_with_user(tmp_path, "ann", "a password 1", "viewer", REDIS_URL=redis_url_empty).test_client()
    token = form_token(client, headers=ZH)
    wrong = client.post("/sign-in", headers=ZH, data={"username": "ann", "password": "nope", "csrf_token": token})
    assert wrong.status_code == 401 and MARK + "The user name or password is wrong." in wrong.get_data(as_text=True)
