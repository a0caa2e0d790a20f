"""Migration 0021 on a studio's data: each ready dataset becomes its revision 1, its jobs, versions and
evaluations name that revision, its images wait for a quality scan that the outbox sends, and a downgrade
gives the dataset its newest revision's images back."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from tests.postgres import new_database
from tests.stack import app_config
from tests.unit.webapp.test_one_text_encoding import insert
from webapp import create_app
from webapp.database import MIGRATIONS_DIR
from webapp.extensions import db

IMAGE = {"dataset_id": 1, "split": "train", "format": "PNG", "width": 8, "height": 8, "num_bytes": 10}
ROWS_AT_0020 = [
    ("datasets", {"id": 1, "name": "parts", "status": "ready", "layout": "classes", "num_images": 3,
                  "content_hash": "c" * 64}),
    ("datasets", {"id": 2, "name": "upload", "status": "processing", "layout": "classes"}),
    *[("dataset_images", {**IMAGE, "id": n, "class_name": "ab"[n % 2], "original_path": f"x/{n}.png",
                          "stored_name": f"{n}.png", "sha256": str(n) * 64}) for n in (1, 2, 3)],
    ("jobs", {"id": 1, "dataset_id": 1, "dataset_name": "parts", "status": "succeeded", "config": {}}),
    ("model_versions", {"id": 1, "version": 1, "job_id": 1, "dataset_id": 1, "backbone": "resnet18",
                        "image_size": 32, "class_names": ["a", "b"], "val_acc": 0.5, "bundle_bytes": 1}),
    ("evaluations", {"id": 1, "version": 1, "dataset_id": 1, "dataset_name": "parts", "split": "val",
                     "status": "succeeded"}),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def app_at_0020(request, tmp_path):
    database = {}
    if request.param == "postgresql":
        database["SQLALCHEMY_DATABASE_URI"] = new_database(request.getfixturevalue("postgres_server"))
    app = create_app(app_config(tmp_path, **database))
    with app.app_context():
        upgrade(directory=MIGRATIONS_DIR, revision="0020")
        with db.engine.begin() as connection:
            for name, values in ROWS_AT_0020:
                insert(connection, name, values)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_old_datasets_become_their_first_revision_and_wait_for_their_scan(app_at_0020):
    app = app_at_0020
    with app.app_context():
        upgrade(directory=MIGRATIONS_DIR)
    client = app.test_client()
    revisions = client.get("/api/datasets/1/revisions").get_json()["revisions"]
    assert [(r["number"], r["parent"], r["num_images"], r["content_hash"], r["note"]) for r in revisions] == [
        (1, None, 3, "c" * 64, "Uploaded: 3 images.")]
    assert revisions[0]["classes"] == [{"name": "a", "train": 1, "val": 0, "test": 0},
                                       {"name": "b", "train": 2, "val": 0, "test": 0}]
    assert client.get("/api/jobs/1").get_json()["revision"] == 1
    assert client.get("/api/models/1").get_json()["revision"] == 1
    assert client.get("/api/evaluations/1").get_json()["revision"] == 1
    quality = client.get("/api/datasets/1/quality").get_json()
    assert quality["report"] is None and quality["unmeasured"] == 3
    assert quality["scan"]["status"] == "queued"  # sent by the outbox's next pass, not by the migration
    assert client.get("/api/datasets/2/revisions").get_json()["revisions"] == []  # its check makes revision 1
    with app.app_context():
        with db.engine.connect() as connection:
            assert connection.execute(sa.text("SELECT sent_at FROM quality_scans")).scalars().all() == [None]
            assert connection.execute(sa.text("SELECT revision_count FROM datasets ORDER BY id")).scalars().all() \
                == [1, 0]


def test_a_downgrade_keeps_each_datasets_newest_revision(app_at_0020):
    app = app_at_0020
    with app.app_context():
        upgrade(directory=MIGRATIONS_DIR)
        with db.engine.begin() as connection:
            connection.execute(sa.text("INSERT INTO dataset_revisions (id, dataset_id, number, parent, changes, "
                                       "num_images, created_at) VALUES (2, 1, 2, 1, '{}', 1, '2026-12-06')"))
            connection.execute(sa.text("INSERT INTO dataset_images (id, dataset_id, revision_id, class_name, split, "
                                       "original_path, stored_name, sha256, format, width, height, num_bytes) "
                                       "VALUES (4, 1, 2, 'a', 'train', 'x/1.png', '1.png', :sha, 'PNG', 8, 8, 10)"),
                               {"sha": "1" * 64})
        downgrade(directory=MIGRATIONS_DIR, revision="0020")
        with db.engine.connect() as connection:
            assert connection.execute(sa.text("SELECT id FROM dataset_images ORDER BY id")).scalars().all() == [4]
            assert "revision" not in {c["name"] for c in sa.inspect(connection).get_columns("jobs")}
