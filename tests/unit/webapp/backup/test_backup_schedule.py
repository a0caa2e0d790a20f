"""Scheduled backups: due only when on and the newest is older than the interval, written by the task's
runner, the newest BACKUP_KEEP archives kept; GET /api/backups lists them for admins."""
from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from tests.stack import DATABASE_FILE, app_config
from webapp import create_app
from webapp.backup import schedule
from webapp.database import upgrade_schema
from webapp.extensions import db
from webapp.models import Backup, utcnow


@pytest.fixture
def app(tmp_path, migrated_sqlite):
    shutil.copyfile(migrated_sqlite, tmp_path / DATABASE_FILE)
    return create_app(app_config(tmp_path, BACKUP_EVERY_HOURS=24, BACKUP_KEEP=2,
                                 BACKUP_DIR=str(tmp_path / "archives")))


def test_a_backup_is_due_once_per_interval_and_never_when_off(app, tmp_path):
    with app.app_context():
        first = schedule.queue_due_backup()  # Redis is not reachable: the outbox sends it later
        assert first is not None and db.session.get(Backup, first).sent_at is None
        assert schedule.queue_due_backup() is None  # one waits already
        row = db.session.get(Backup, first)
        row.status, row.created_at = "succeeded", utcnow() - timedelta(hours=23)
        db.session.commit()
        assert schedule.queue_due_backup() is None  # the newest is younger than a day
        row.created_at = utcnow() - timedelta(hours=25)
        db.session.commit()
        assert schedule.queue_due_backup() == first + 1
    off = create_app(app_config(tmp_path / "off"))
    upgrade_schema(off)
    with off.app_context():
        assert schedule.queue_due_backup() is None


def test_the_runner_writes_the_archive_and_keeps_the_newest(app, tmp_path):
    with app.app_context():
        ids = []
        for _ in range(3):
            row = Backup()
            db.session.add(row)
            db.session.commit()
            assert schedule.run_backup(row.id, "batch-studio@box") == "succeeded"
            ids.append(row.id)
        rows = [db.session.get(Backup, backup_id) for backup_id in ids]
        assert [row.removed_at is not None for row in rows] == [True, False, False]
        assert sorted(path.name for path in (tmp_path / "archives").iterdir()) == \
            sorted(Path(row.path).name for row in rows[1:])
        newest = rows[-1]
        assert newest.files >= 1 and newest.size_bytes == Path(newest.path).stat().st_size
        assert newest.schema_revision is not None and newest.missing == []
        assert schedule.run_backup(newest.id, "batch-studio@box") == "skipped"  # a second delivery


def test_admins_read_the_list(app):
    with app.app_context():
        db.session.add(Backup(status="failed", error={"template": "The backup stopped on an unexpected error "
                                                                  "(%(kind)s); the details are in the worker's log.",
                                                      "params": {"kind": "OSError"}}))
        db.session.commit()
    answer = app.test_client().get("/api/backups")
    assert answer.status_code == 200
    body = answer.get_json()
    assert (body["every_hours"], body["keep"]) == (24, 2)
    assert body["backups"][0]["status"] == "failed" and "OSError" in body["backups"][0]["error"]
    assert body["backups"][0]["file"] is None
