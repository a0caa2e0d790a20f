"""`GET /api/backups`: the scheduled backups, newest first, for admins (the Workers page lists them)."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from flask import Blueprint, current_app, jsonify
from pydantic import Field
from sqlalchemy import select

from webapp.backup.schedule import backup_json
from webapp.contract import Answer, operation
from webapp.extensions import db
from webapp.models import Backup
from webapp.statuses import BackupStatus

api = Blueprint("backups_api", __name__, url_prefix="/api/backups")
LISTED = 50


class BackupOut(Answer):
    """A scheduled backup."""

    id: int
    status: Literal[tuple(status.value for status in BackupStatus)]
    file: str | None = Field(description="The archive's file name in BACKUP_DIR, once written.")
    size_bytes: int = Field(description="The archive's size.")
    files: int = Field(description="Members of the archive, the database copy included.")
    missing: int = Field(description="Files the database named that were removed while the backup was taken.")
    schema_revision: str | None = Field(description="The database schema revision (Alembic) of the copy.")
    created_at: datetime
    finished_at: datetime | None
    removed_at: datetime | None = Field(description="When its archive was removed: BACKUP_KEEP newer ones exist.")
    error: str | None = Field(description="Why it failed, in the reader's language.")


class BackupList(Answer):
    backups: list[BackupOut] = Field(description=f"The newest {LISTED} scheduled backups, newest first.")
    every_hours: float = Field(description="BACKUP_EVERY_HOURS: a backup is taken this often (0: never).")
    keep: int = Field(description="BACKUP_KEEP: how many archives are kept.")


@api.get("")
@operation(answers={200: BackupList}, tags=("backups",))
def index():
    """The scheduled backups, newest first, with the schedule's settings."""
    rows = db.session.scalars(select(Backup).order_by(Backup.id.desc()).limit(LISTED))
    return jsonify({"backups": [backup_json(row) for row in rows],
                    "every_hours": current_app.config["BACKUP_EVERY_HOURS"],
                    "keep": current_app.config["BACKUP_KEEP"]})
