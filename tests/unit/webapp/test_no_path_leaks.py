"""Answers to non-admins never carry the server's paths, and public prediction answers with the released
model only: an unexpected training error reads as what happened (the full text stays in the admin-only
traceback), a version that fails to load says so without its files' paths, and an anonymous caller of a
public prediction API cannot pin a version."""
from __future__ import annotations

import io

import pytest

from tests.factories import CLASSES, app_with_user
from tests.images import noisy_image
from webapp.accounts import services as accounts
from webapp.extensions import db
from worker import training as runner
from webapp.models import Job, ModelVersion
from webapp.predict import serving
from webapp.release import services as release

SECRET_PATH = "/srv/studio-data/instance/cache/ab/12345.npy"


def bearer(app, username: str, role: str) -> dict:
    with app.app_context():
        user = accounts.find_user(username) or accounts.create_user(username, "a password 1", role)
        _, secret = accounts.create_token(user, "script")
    return {"Authorization": f"Bearer {secret}"}


def add_version(app, version: int) -> None:
    """A model version row (no files: these tests never load a real bundle)."""
    with app.app_context():
        db.session.add(ModelVersion(version=version, backbone="mobilenet_v3_small", image_size=32,
                                    class_names=CLASSES, val_acc=1.0, bundle_bytes=1))
        db.session.commit()
        release.on_new_version(version, False, by="test")


def test_an_unexpected_training_error_shows_no_path_to_non_admins(tmp_path, monkeypatch):
    app = app_with_user(tmp_path, "mia", "a password 1", "member")

    def broken_training(job, reporter, device):
        raise OSError(f"[Errno 28] No space left on device: '{SECRET_PATH}'")

    monkeypatch.setattr(runner, "_train", broken_training)
    monkeypatch.setattr(runner, "placement", lambda: "cpu")
    with app.app_context():
        job = Job(dataset_name="flowers", status="queued", config={"epochs": 1})
        db.session.add(job)
        db.session.commit()
        job_id = job.id
        assert runner.run_training_job(job_id, "trainer@box") == "failed"
    client = app.test_client()
    member = client.get(f"/api/jobs/{job_id}", headers=bearer(app, "mia", "member")).get_json()
    assert member["status"] == "failed" and member["traceback"] is None
    assert "OSError" in member["error"] and "/srv" not in member["error"] and "Errno" not in member["error"]
    admin = client.get(f"/api/jobs/{job_id}", headers=bearer(app, "ada", "admin")).get_json()
    assert admin["error"] == member["error"] and SECRET_PATH in admin["traceback"]
    chinese = client.get(f"/api/jobs/{job_id}", headers={**bearer(app, "mia", "member"), "Accept-Language": "zh-CN"})
    assert "OSError" in chinese.get_json()["error"] and chinese.get_json()["error"] != member["error"]


def test_a_version_that_fails_to_load_answers_prediction_without_paths(app, monkeypatch):
    add_version(app, 1)

    def unreadable(folder):
        raise RuntimeError(f"(NotFound) Cannot open file {folder}/model.pdiparams, please confirm it exists")

    monkeypatch.setattr(serving, "read_bundle", lambda folder: folder)
    monkeypatch.setattr(serving, "choose_runtime", lambda bundle, options, device: unreadable(bundle))
    answer = app.test_client().post("/api/predict", data={"image": (io.BytesIO(noisy_image(1, (200, 30, 30))), "a.png")},
                                    content_type="multipart/form-data")
    body = answer.get_json()
    assert answer.status_code == 409 and body["code"] == "model_bundle_rejected"
    assert "1" in body["error"] and app.config["DATA_DIR"] not in body["error"] and "model.pdiparams" not in body["error"]


class FakeVersion:
    """Stands in for a loaded model version; records nothing, answers its own version's class."""

    def __init__(self, version: int) -> None:
        self.version, self.decode_size, self.classes = version, 36, CLASSES

    def classify(self, image, top_k, abstain=None, explain=False, heat_map=False):
        return {"class": CLASSES[0], "confidence": 0.9, "abstained": False, "abstained_by": None,
                "model_version": self.version,
                "runtime": "onnx", "top_k": [{"class": CLASSES[0], "confidence": 0.9}]}


@pytest.fixture
def public_app(tmp_path, monkeypatch, redis_url_empty):
    """Sign-in on, prediction public (counted in Redis), version 1 in production and version 2 unreleased."""
    app = app_with_user(tmp_path, "ada", "a password 1", "admin", PREDICT_PUBLIC=True, REDIS_URL=redis_url_empty)
    add_version(app, 1)
    add_version(app, 2)
    loaded = []
    server = app.extensions["model_server"]
    monkeypatch.setattr(server, "get", lambda version: loaded.append(version) or FakeVersion(version))
    app.loaded_versions = loaded
    return app


def image_form(**fields) -> dict:
    return {"image": (io.BytesIO(noisy_image(2, (30, 200, 30))), "b.png"), **fields}


def test_an_anonymous_public_caller_cannot_pin_a_version(public_app):
    client = public_app.test_client()
    for pinned in ({"data": image_form(version="2")}, {"data": image_form(), "query_string": {"version": "2"}}):
        answer = client.post("/api/predict", content_type="multipart/form-data", **pinned)
        body = answer.get_json()
        assert answer.status_code == 403 and body["code"] == "forbidden" and body["field"] == "version"
        assert "released" in body["error"] and "red" not in answer.get_data(as_text=True)
    assert public_app.loaded_versions == []
    unpinned = client.post("/api/predict", content_type="multipart/form-data", data=image_form()).get_json()
    assert unpinned["model_version"] == 1 and unpinned["arm"] == "production" and public_app.loaded_versions == [1]
    signed = client.post("/api/predict", content_type="multipart/form-data", data=image_form(version="2"),
                         headers=bearer(public_app, "ada", "admin")).get_json()
    assert signed["model_version"] == 2 and signed["arm"] == "pinned"  # people who sign in still pin
