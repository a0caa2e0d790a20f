"""Ids and version numbers are never given twice: a deleted newest row's id or version number stays
unused, so nothing that still names it (another process's cache, links, evaluations, feedback) can come to
mean a new row. The migration that makes the SQLite tables AUTOINCREMENT keeps every row and link."""
from __future__ import annotations

import threading
from datetime import datetime

import pytest
from flask_migrate import upgrade
from sqlalchemy import inspect, text

from engine.config import TrainConfig
from tests.stack import app_config
from webapp import create_app
from webapp.database import MIGRATIONS_DIR
from webapp.extensions import db
from webapp.models import Dataset, Job, ModelVersion
from webapp.registry.services import delete_version, register_version

AUTOINCREMENT_TABLES = ("datasets", "dataset_images", "jobs", "epoch_metrics", "model_versions", "release_changes",
                        "serving_stats", "evaluations", "feedback", "step_timings", "users", "api_tokens")
NOW = datetime(2026, 12, 1, 12, 0)


def insert(connection, table: str, **values) -> None:
    """A row with the given values and a plain value in every other required column, as the schema stands."""
    for column in inspect(connection).get_columns(table):
        if column["name"] in values or column["nullable"] or column["default"] is not None:
            continue
        kind = column["type"].python_type if column["name"] != "id" else None
        values[column["name"]] = {int: 0, float: 0.0, str: "x", bool: False, datetime: NOW, dict: {},
                                  list: []}.get(kind, "[]")
    names = ", ".join(values)
    connection.execute(text(f"INSERT INTO {table} ({names}) VALUES ({', '.join(':' + n for n in values)})"),
                       {key: (str(value) if isinstance(value, (dict, list)) else value)
                        for key, value in values.items()})


def rows_at_0014(connection) -> None:
    """Two of everything, children pointing at the newest parents, as a studio at 0014 holds them."""
    for dataset in (1, 2):
        insert(connection, "datasets", id=dataset, name=f"set {dataset}", status="ready")
    for image, dataset in ((1, 1), (2, 2), (3, 2)):
        insert(connection, "dataset_images", id=image, dataset_id=dataset, class_name="rose", split="train")
    for job in (1, 2):
        insert(connection, "jobs", id=job, dataset_id=2, dataset_name="set 2", status="succeeded", config="{}")
        insert(connection, "epoch_metrics", id=job, job_id=job, epoch=1)
    for version in (1, 2):
        insert(connection, "model_versions", id=version, version=version, job_id=version, dataset_id=2,
               class_names='["rose"]')
    insert(connection, "evaluations", id=1, version=2, dataset_id=2, dataset_name="set 2", split="val")
    insert(connection, "feedback", id=1, prediction_id="p-1", version=2, dataset_id=2, correct=True)
    insert(connection, "release_changes", id=1, action="first_version", to_version=1, by="test", revision=1)
    # the figures of a version 3 deleted before the upgrade
    insert(connection, "serving_stats", id=1, process="web-1", version=3, arm="production", hour=NOW)
    insert(connection, "step_timings", id=1, worker="w", device="cpu", backbone="resnet18", image_size=32,
           batch_size=8, seconds_per_image=0.01, source="job")
    for user in (1, 2):
        insert(connection, "users", id=user, username=f"user{user}", role="member")
    insert(connection, "api_tokens", id=1, user_id=2, name="ci", token_hash="h" * 64, prefix="isk_")


def links(connection) -> dict:
    """Every row's id and the ids it points to, table by table."""
    columns = {"dataset_images": "dataset_id", "jobs": "dataset_id", "epoch_metrics": "job_id",
               "model_versions": "job_id, dataset_id, version", "evaluations": "dataset_id, version",
               "feedback": "dataset_id, version", "api_tokens": "user_id"}
    return {table: connection.execute(text(f"SELECT id{', ' + columns[table] if table in columns else ''} "
                                            f"FROM {table} ORDER BY id")).all()
            for table in AUTOINCREMENT_TABLES}


def test_migration_keeps_every_row_and_link_and_a_deleted_newest_id_is_not_given_again(tmp_path):
    app = create_app(app_config(tmp_path))
    with app.app_context():
        upgrade(directory=MIGRATIONS_DIR, revision="0014")
        with db.engine.begin() as connection:
            rows_at_0014(connection)
            before = links(connection)
        upgrade(directory=MIGRATIONS_DIR)
        with db.engine.begin() as connection:
            assert links(connection) == before
            assert connection.execute(text("PRAGMA foreign_key_check")).all() == []
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            schemas = dict(connection.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'")).all())
            assert [table for table in AUTOINCREMENT_TABLES if "AUTOINCREMENT" not in schemas[table]] == []
            assert "ON DELETE CASCADE" in schemas["dataset_images"] and "ON DELETE SET NULL" in schemas["jobs"]
            assert connection.execute(text("SELECT value FROM counters WHERE name = 'model_version'")).scalar() == 3
        newest = db.session.get(Dataset, 2)
        db.session.delete(newest)
        db.session.commit()
        db.session.add(Dataset(name="after"))
        db.session.commit()
        assert db.session.scalars(db.select(Dataset.id).order_by(Dataset.id)).all() == [1, 3]
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def app(app_on_each_database):
    return app_on_each_database


def finish_job(app, staging) -> int:
    """What the runner does when a job succeeds: its bundle becomes the next version."""
    staging.mkdir()
    (staging / "model.json").write_text("{}")
    with app.app_context():
        job = Job(dataset_name="flowers", config=TrainConfig().to_dict())
        db.session.add(job)
        db.session.commit()
        version = register_version(staging, job, TrainConfig(), ["rose", "tulip"], 0.9).version
        db.session.remove()
        return version


def test_deleting_the_newest_version_never_gives_its_number_again(app, tmp_path):
    assert [finish_job(app, tmp_path / name) for name in ("a", "b")] == [1, 2]
    with app.app_context():
        delete_version(db.session.scalar(db.select(ModelVersion).where(ModelVersion.version == 2)))
        db.session.remove()
    assert finish_job(app, tmp_path / "c") == 3
    with app.app_context():
        assert db.session.scalars(db.select(ModelVersion.version).order_by(ModelVersion.version)).all() == [1, 3]
        db.session.remove()


def test_two_processes_finishing_jobs_at_once_get_distinct_numbers(app, tmp_path):
    numbers, failures = [], []
    start = threading.Barrier(2)

    def finish(name: str) -> None:
        start.wait()
        try:
            numbers.extend(finish_job(app, tmp_path / f"{name}{n}") for n in range(3))
        except Exception as exc:  # noqa: BLE001 - shown by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=finish, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and sorted(numbers) == [1, 2, 3, 4, 5, 6]
