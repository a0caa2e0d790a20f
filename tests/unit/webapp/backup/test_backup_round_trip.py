"""A populated studio backed up, wiped and restored, on SQLite and on PostgreSQL: the same predictions bit
for bit, the same users and tokens, the same release; and a backup taken while the studio writes."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from tests.factories import register_bundle
from tests.images import class_files, noisy_image, zip_bytes
from tests.postgres import new_database
from tests.stack import app_config
from webapp import create_app
from webapp.accounts import services as accounts
from webapp.backup import referenced
from webapp.extensions import db
from webapp.feedback import store
from webapp.models import Feedback, ModelVersion
from webapp.storage import DataDir

IMAGES = [noisy_image(seed, color) for seed, color in enumerate([(220, 20, 20), (20, 220, 20), (20, 20, 220),
                                                                 (120, 120, 40)])]
SETTINGS = {"AUTH": "on", "SERVING_RUNTIME": "paddle"}  # one runtime: the same numbers before and after


@pytest.fixture
def app_settings() -> dict:
    return SETTINGS


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def populate(app, bundle) -> str:
    """Users, a token, two datasets, three versions, a release with a candidate, feedback with its image; the
    admin's token."""
    with app.app_context():
        admin = accounts.create_user("ann", "a password 1", "admin")
        accounts.create_user("bo", "a password 2", "viewer")
        accounts.delete_user(accounts.create_user("gone", "a password 3", "viewer"))  # its id is never given again
        _, secret = accounts.create_token(admin, "ci")
    client = app.test_client()
    for name, classes in (("flowers", {"rose": 3, "tulip": 3}), ("pets", {"cat": 3, "dog": 2})):
        answer = client.post("/api/datasets", headers=bearer(secret), content_type="multipart/form-data", data={
            "name": name, "archive": (io.BytesIO(zip_bytes(class_files(classes))), f"{name}.zip")})
        assert answer.status_code == 201, answer.get_json()
    for version in (1, 2, 3):
        register_bundle(app, bundle, version)
    release = client.put("/api/release", headers=bearer(secret), json={"candidate": 2, "candidate_share": 30})
    assert release.status_code == 200, release.get_json()
    with app.app_context():
        kept = store.keep_image("p-1", IMAGES[0])
        db.session.add(Feedback(prediction_id="p-1", version=1, arm="production", predicted_class="red",
                                confidence=0.9, correct=False, label="blue", image_name=kept.name,
                                image_bytes=kept.size, image_sha256=kept.sha256))
        db.session.commit()
    return secret


def observed(app, secret: str) -> dict:
    """What a person sees of the studio: predictions of fixed images by each version, the release, the users,
    the datasets and the feedback (through the API, with the token)."""
    client, seen = app.test_client(), {}
    for version in (1, 2, 3):
        for number, image in enumerate(IMAGES):
            answer = client.post("/api/predict", headers=bearer(secret), content_type="multipart/form-data",
                                 data={"image": (io.BytesIO(image), f"{number}.png"), "version": str(version),
                                       "top_k": "3"}).get_json()
            seen[f"predict {version} {number}"] = (answer["class"], answer["top_k"])
    release = client.get("/api/release", headers=bearer(secret)).get_json()
    seen["release"] = {key: release[key] for key in ("production", "candidate", "candidate_share", "revision")}
    seen["datasets"] = sorted((item["name"], item["num_images"]) for item in
                              client.get("/api/datasets", headers=bearer(secret)).get_json()["datasets"])
    seen["feedback"] = client.get("/api/feedback", headers=bearer(secret)).get_json()
    with app.app_context():
        seen["users"] = sorted((user.username, user.role) for user in accounts.User.query.all())
    return seen


def wiped(app, tmp_path, request) -> dict:
    """The config of the same studio with DATA_DIR emptied and a new, empty database."""
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    folder = Path(app.config["DATA_DIR"])
    shutil.rmtree(folder)
    folder.mkdir()
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("postgresql"):
        uri = new_database(request.getfixturevalue("postgres_server"))
    return app_config(folder, **SETTINGS, SQLALCHEMY_DATABASE_URI=uri)


def test_a_restored_studio_answers_as_before(app_on_each_database, trained, tmp_path, tmp_path_factory, request):
    app = app_on_each_database
    secret = populate(app, trained[1])
    before = observed(app, secret)
    archive = tmp_path_factory.mktemp("backups") / "studio.tar"  # beside DATA_DIR, not in it
    made = app.test_cli_runner().invoke(args=["backup", "create", str(archive)])
    assert made.exit_code == 0, made.output
    assert "Backed up" in made.output and "schema revision" in made.output
    checked = app.test_cli_runner().invoke(args=["backup", "verify", str(archive)])
    assert checked.exit_code == 0 and "is whole" in checked.output, checked.output

    empty = create_app(wiped(app, tmp_path, request))
    restored = empty.test_cli_runner().invoke(args=["backup", "restore", str(archive)])
    assert restored.exit_code == 0, restored.output
    after = create_app(empty.config)
    assert observed(after, secret) == before
    with after.app_context():
        assert accounts.authenticate("bo", "a password 2") is not None
        assert accounts.create_user("cy", "a password 4", "viewer").id == 4  # after ann, bo and the deleted one


def test_writes_during_a_backup_stay_out_of_it_and_a_purged_file_is_said_in_words(app, trained, tmp_path,
                                                                                  monkeypatch):
    register_bundle(app, trained[1], 1)
    with app.app_context():
        kept = store.keep_image("p-9", IMAGES[1])
        db.session.add(Feedback(prediction_id="p-9", version=1, arm="production", predicted_class="red",
                                confidence=0.9, correct=True, image_name=kept.name, image_bytes=kept.size))
        db.session.commit()
    listing = referenced.referenced_files

    def with_writes_meanwhile(connection, folders, with_keys=False):
        """After the snapshot: a new version arrives and the feedback image is purged."""
        register_bundle(app, trained[1], 2)
        store.remove_images([kept.name])
        yield from listing(connection, folders, with_keys)

    monkeypatch.setattr("webapp.backup.services.referenced_files", with_writes_meanwhile)
    archive = tmp_path / "during.tar"
    made = app.test_cli_runner().invoke(args=["backup", "create", str(archive)])
    assert made.exit_code == 0, made.output
    assert f"files/feedback/{kept.name} was removed while the backup was taken" in made.output

    empty = create_app(app_config(tmp_path / "restored"))
    assert empty.test_cli_runner().invoke(args=["backup", "restore", str(archive)]).exit_code == 0
    with empty.app_context():
        assert [row.version for row in ModelVersion.query.all()] == [1]  # the snapshot's, not the later one
    folders = DataDir(tmp_path / "restored")
    assert (folders.model(1) / "meta.json").is_file() and not folders.model(2).exists()
