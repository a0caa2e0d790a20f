"""A second web process serves what the database and the models folder say now: the bundle that stands
under a version number (checked by its meta.json digest, which lists every file's sha256), and the
release as the last answered change left it."""
from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
from pathlib import Path

import pytest

from engine.bundle import publish_bundle
from tests.factories import register_bundle
from tests.images import noisy_image
from tests.stack import app_config
from webapp import create_app
from webapp.extensions import db
from webapp.models import ModelVersion
from webapp.predict.schemas import Prediction
from webapp.release import services as release

RENAMED = ["赤", "緑", "青"]


def predict(client, client_id: str | None = None, **fields) -> dict:
    form = {"image": (io.BytesIO(noisy_image(1, (220, 40, 40))), "x.png"), **{k: str(v) for k, v in fields.items()}}
    headers = {"X-Client-Id": client_id} if client_id else {}
    response = client.post("/api/predict", data=form, content_type="multipart/form-data", headers=headers)
    assert response.status_code == 200, response.get_json()
    Prediction.model_validate(response.get_json())  # the documented answer, in every arm
    return response.get_json()


@pytest.fixture
def other(served, tmp_path):
    """A second process of the same studio: its own model server over the same database and folder."""
    return create_app(app_config(tmp_path)).test_client()


def replace_bundle(app, version: int, classes: list[str]) -> None:
    """Put a different bundle in place under `version` (same weights, other class names), as a delete
    and a new registration under the same number would, without telling any process."""
    models = Path(app.config["DATA_DIR"], "models")
    staging = models.parent / "staging"
    shutil.copytree(models / str(version), staging)
    meta = json.loads((staging / "meta.json").read_text(encoding="utf-8"))
    meta["classes"] = classes
    (staging / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    publish_bundle(staging, models / str(version))
    with app.app_context():
        db.session.scalars(db.select(ModelVersion).where(ModelVersion.version == version)).one().class_names = classes
        db.session.commit()


def test_a_version_whose_bundle_was_replaced_is_reloaded_by_every_process(served, other):
    assert predict(other, version=1)["class"] == "red"
    assert predict(other)["class"] == "red"
    replace_bundle(served, 1, RENAMED)
    pinned, unpinned = predict(other, version=1), predict(other)
    assert pinned["class"] == unpinned["class"] == "赤"
    assert {item["class"] for item in pinned["top_k"]} == set(RENAMED)


def test_a_touched_but_unchanged_bundle_is_not_reloaded(served, other):
    predict(other)
    server = other.application.extensions["model_server"]
    loaded = server.loaded(1)
    models = Path(served.config["DATA_DIR"], "models")
    for path in (models / "1" / "meta.json", models):  # the file touched, and the folder: the list is read again
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert predict(other)["class"] == "red"
    assert server.loaded(1) is loaded


def test_a_key_sent_to_a_candidate_this_process_has_not_loaded_gets_the_candidate(served, trained, other):
    register_bundle(served, trained[1], 2)
    predict(other)  # production loaded here; the candidate is not
    state = served.test_client().put("/api/release", json={"candidate": 2, "candidate_share": 100}).get_json()
    assert state["candidate"] == 2
    answers = [predict(other, f"client-{n}") for n in range(3)]
    assert [(a["arm"], a["model_version"]) for a in answers] == [("candidate", 2)] * 3


def test_a_release_change_reaches_a_process_that_does_not_see_the_models_folder_touched(served, trained, other,
                                                                                        monkeypatch):
    """As on a shared volume another host mounts: the folder's time is no signal there."""
    register_bundle(served, trained[1], 2)
    server = other.application.extensions["model_server"]
    server.options = dataclasses.replace(server.options, versions_ttl_seconds=3600)
    assert predict(other, "client-1")["model_version"] == 1
    monkeypatch.setattr(release.os, "utime", lambda *args, **kwargs: None)
    served.test_client().put("/api/release", json={"production": 2})
    answer = predict(other, "client-1")
    assert (answer["arm"], answer["model_version"]) == ("production", 2)
