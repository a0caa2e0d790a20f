"""Who asked: promotion when done needs the release role, and jobs, releases, deletions and token changes
record the person (or token) that asked."""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from tests.images import class_files, zip_bytes
from tests.stack import app_config
from webapp import create_app
from webapp.accounts import policy, services as accounts
from webapp.database import upgrade_schema
from webapp.extensions import db
from webapp.jobs import commands as jobs, events
from webapp.models import ApiToken, AuditEntry, Job, ModelVersion, User
from webapp.registry.services import register_version
from engine.config import TrainConfig

PASSWORD = "correct horse 9"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """One app with sign-in on, a user of each role with one token each, and a ready dataset."""
    app = create_app(app_config(tmp_path_factory.mktemp("who"), AUTH="on"))
    upgrade_schema(app)
    tokens = {}
    with app.app_context():
        for role in policy.ROLES:
            user = accounts.create_user(f"{role}-ann", PASSWORD, role)
            token, secret = accounts.create_token(user, "script")
            tokens[role] = ({"Authorization": f"Bearer {secret}"}, f"token:{token.id} ({role}-ann)")
    app.tokens = tokens
    upload = app.test_client().post("/api/datasets", headers=tokens["member"][0],
                                    content_type="multipart/form-data",
                                    data={"archive": (io.BytesIO(zip_bytes(class_files({"cat": 3, "dog": 3}))),
                                                      "pets.zip")})
    assert upload.status_code == 201, upload.get_json()
    app.dataset_id = upload.get_json()["id"]
    return app


@pytest.fixture
def client(studio, monkeypatch):
    monkeypatch.setattr(jobs, "enqueue", lambda job: None)  # no broker here: the job stays queued
    monkeypatch.setattr(events, "clear_cancel", lambda client, job_id: None)
    return studio.test_client()


def _jobs(app) -> int:
    with app.app_context():
        return db.session.query(Job).count()


def test_member_cannot_promote_when_done(studio, client):
    headers, _ = studio.tokens["member"]
    before = _jobs(studio)
    refused = client.post("/api/jobs", headers=headers, json={"dataset_id": studio.dataset_id, "epochs": 1,
                                                               "promote_when_done": True})
    body = refused.get_json()
    assert refused.status_code == 403 and body["code"] == "forbidden" and body["field"] == "promote_when_done"
    assert "member" in body["error"] and "admin" in body["error"] and "promote_when_done" in body["error"]
    assert _jobs(studio) == before
    chinese = client.post("/api/jobs", headers={**headers, "Accept-Language": "zh-CN"},
                          json={"dataset_id": studio.dataset_id, "promote_when_done": True}).get_json()
    assert chinese["code"] == "forbidden" and "管理员" in chinese["error"]
    allowed = client.post("/api/jobs", headers=headers, json={"dataset_id": studio.dataset_id, "epochs": 1,
                                                              "promote_when_done": False})
    assert allowed.status_code == 202


def test_the_train_form_offers_promotion_only_to_the_release_role(studio, client):
    def form(role: str) -> str:
        return client.get(f"/datasets/{studio.dataset_id}", headers=studio.tokens[role][0]).get_data(as_text=True)

    assert 'name="promote_when_done"' in form("admin")
    assert 'name="promote_when_done"' not in form("member") and 'name="export_int8"' in form("member")


def test_job_records_who_created_it(studio, client):
    headers, actor = studio.tokens["member"]
    job_id = client.post("/api/jobs", headers=headers, json={"dataset_id": studio.dataset_id,
                                                             "epochs": 1}).get_json()["id"]
    shown = client.get(f"/api/jobs/{job_id}", headers=studio.tokens["viewer"][0]).get_json()
    assert shown["created_by"] == actor == "token:2 (member-ann)"
    assert shown["promote_when_done"] is False and shown["promote_requested_by"] is None


def _finish(app, job_id: int, staging) -> int:
    """What the runner does when training succeeds: register the bundle as the next version."""
    staging.mkdir()
    (staging / "model.json").write_text("{}")
    with app.app_context():
        job = db.session.get(Job, job_id)
        return register_version(staging, job, TrainConfig.from_dict(job.config), ["cat", "dog"], 0.9).version


def test_promotion_when_done_is_recorded_as_the_admin_who_asked(studio, client, tmp_path):
    headers, actor = studio.tokens["admin"]
    _finish(studio, client.post("/api/jobs", headers=headers, json={"dataset_id": studio.dataset_id,
                                                                    "epochs": 1}).get_json()["id"],
            tmp_path / "first")  # the first version becomes production by itself
    job_id = client.post("/api/jobs", headers=headers, json={"dataset_id": studio.dataset_id, "epochs": 1,
                                                             "promote_when_done": True}).get_json()["id"]
    assert client.get(f"/api/jobs/{job_id}", headers=headers).get_json()["promote_requested_by"] == actor
    version = _finish(studio, job_id, tmp_path / "second")
    release = client.get("/api/release", headers=headers).get_json()
    assert release["production"] == version
    latest = release["history"][0]
    assert (latest["action"], latest["to"], latest["by"]) == ("promote_when_done", version, actor)
    assert f"job #{job_id}" not in [change["by"] for change in release["history"]]


def _promoting_job(app, status: str = "failed") -> int:
    with app.app_context():
        job = Job(dataset_id=app.dataset_id, dataset_name="pets", status=status, config={"epochs": 1},
                  promote_when_done=True, created_by="admin-ann", promote_requested_by="admin-ann")
        db.session.add(job)
        db.session.commit()
        return job.id


def test_member_cannot_resume_an_admins_promoting_job(studio, client):
    job_id = _promoting_job(studio)
    refused = client.post(f"/api/jobs/{job_id}/resume", headers=studio.tokens["member"][0])
    body = refused.get_json()
    assert refused.status_code == 403 and body["code"] == "forbidden" and body["field"] == "promote_when_done"
    assert f"cannot resume job {job_id}" in body["error"] and "admin" in body["error"]
    with studio.app_context():
        assert db.session.get(Job, job_id).status == "failed"
    headers, actor = studio.tokens["admin"]
    resumed = client.post(f"/api/jobs/{job_id}/resume", headers=headers)
    assert resumed.status_code == 202 and resumed.get_json()["promote_requested_by"] == actor


def _spare_version(app) -> int:
    """A version row no release names (the catalog does not need its files here)."""
    with app.app_context():
        number = (db.session.scalar(db.select(db.func.max(ModelVersion.version))) or 0) + 1
        db.session.add(ModelVersion(version=number, backbone="resnet18", image_size=32, class_names=["a", "b"],
                                    val_acc=0.5, bundle_bytes=1))
        db.session.commit()
        return number


def test_release_change_by_token_names_the_token(studio, client, monkeypatch):
    monkeypatch.setattr(studio.extensions["model_server"], "get", lambda version: None)
    headers, actor = studio.tokens["admin"]
    version = _spare_version(studio)
    changed = client.put("/api/release", headers=headers, json={"production": version})
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["history"][0]["by"] == actor


def _entries(app) -> list[tuple]:
    with app.app_context():
        return [(e.actor, e.action, e.subject_type, e.subject_id, e.details)
                for e in db.session.scalars(db.select(AuditEntry).order_by(AuditEntry.id))]


def test_deletions_role_and_token_changes_are_audited(studio, client, tmp_path):
    headers, actor = studio.tokens["admin"]
    before = len(_entries(studio))
    with studio.app_context():  # made outside any request, as a command on the server would
        bob = accounts.create_user("bob", PASSWORD, "viewer")
        accounts.update_user(bob, role="member")
        made = {"id": bob.id}
        made_token, _ = accounts.create_token(accounts.find_user("admin-ann"), "nightly")
        token = {"id": made_token.id}
    assert client.delete(f"/api/tokens/{token['id']}", headers=headers).status_code == 200
    assert client.delete(f"/api/users/{made['id']}", headers=headers).status_code == 200
    with studio.app_context():
        assert db.session.query(User).filter_by(username="bob").count() == 0
        assert db.session.get(ApiToken, token["id"]) is None
    unused = _spare_version(studio)
    assert client.put(f"/api/models/{unused}", headers=headers, json={"abstain_threshold": 0.5}).status_code == 200
    assert client.delete(f"/api/models/{unused}", headers=headers).status_code == 200
    upload = client.post("/api/datasets", headers=headers, content_type="multipart/form-data",
                         data={"archive": (io.BytesIO(zip_bytes(class_files({"a": 2, "b": 2}))), "spare.zip")})
    dataset_id = upload.get_json()["id"]
    assert client.delete(f"/api/datasets/{dataset_id}", headers=headers).status_code == 200
    assert client.post("/api/feedback/purge", headers=headers, json={"scope": "all"}).status_code == 200
    expected = [
        ("cli", "user.create", "user", str(made["id"]), {"username": "bob", "role": "viewer"}),
        ("cli", "user.role", "user", str(made["id"]), {"username": "bob", "from": "viewer", "to": "member"}),
        ("cli", "token.create", "token", str(token["id"]), {"name": "nightly", "owner": "admin-ann"}),
        (actor, "token.revoke", "token", str(token["id"]), {"name": "nightly", "owner": "admin-ann"}),
        (actor, "user.delete", "user", str(made["id"]), {"username": "bob", "role": "member"}),
        (actor, "model.threshold", "model", str(unused), {"from": None, "to": 0.5}),
        (actor, "model.delete", "model", str(unused), {"job_id": None, "backbone": "resnet18"}),
        (actor, "dataset.delete", "dataset", str(dataset_id), {"name": upload.get_json()["name"],
                                                           "num_images": upload.get_json()["num_images"]}),
        (actor, "feedback.purge", "feedback", None, {"scope": "all", "images": 0, "bytes": 0}),
    ]
    entries = _entries(studio)[before:]
    assert entries == expected


def test_guard_loads_first_on_its_own():
    """guard -> accounts.services -> audit -> guard is a circle: audit holds the guard module, not its names,
    so guard can be the first of them to load (audit or services first is what the app does)."""
    loaded = subprocess.run([sys.executable, "-c", "import webapp.accounts.guard"], capture_output=True, text=True,
                            cwd=ROOT)
    assert loaded.returncode == 0, loaded.stderr[-500:]
