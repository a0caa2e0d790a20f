"""A scheduled backup taken by the real batch worker from its maintenance queue, while the studio runs: the
row ends succeeded, its archive is whole, and the list shows it."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from webapp import lifecycle
from webapp.backup import services
from webapp.backup.schedule import BACKUPS
from webapp.extensions import db
from webapp.models import Backup

pytestmark = pytest.mark.integration


def test_the_batch_worker_writes_a_scheduled_backup(stack_app, stack_client):
    with stack_app.app_context():
        row = Backup()
        db.session.add(row)
        db.session.commit()
        lifecycle.send(BACKUPS, row)
        backup_id = row.id
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with stack_app.app_context():
            row = db.session.get(Backup, backup_id)
            if row.status in ("succeeded", "failed"):
                break
        time.sleep(0.2)
    assert row.status == "succeeded", row.error
    archive = Path(row.path)
    assert archive.parent == Path(stack_app.config["DATA_DIR"]) / "backups" and row.worker.startswith("batch-")
    with stack_app.app_context():
        checked = services.verify_backup(archive)
    assert checked.problems == [] and len(checked.manifest.entries) == row.files
    listed = stack_client.get("/api/backups").get_json()["backups"]
    assert listed[0]["id"] == backup_id and listed[0]["file"] == archive.name
    archive.unlink()  # the stack is shared: leave its data folder and database as they were
    with stack_app.app_context():
        db.session.delete(db.session.get(Backup, backup_id))
        db.session.commit()
