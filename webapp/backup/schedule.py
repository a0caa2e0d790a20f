"""Scheduled backups: background work on the one lifecycle (webapp.lifecycle). The workers' watcher pass
queues one (under its lock, so one process does) when BACKUP_EVERY_HOURS is on and the newest backup is
older than that; a worker of the maintenance queue writes the archive to BACKUP_DIR and keeps the newest
BACKUP_KEEP of them."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import func, select

from engine.messages import N_, Message
from webapp import lifecycle
from webapp.backup.services import create_backup
from webapp.extensions import db
from webapp.messages import rendered
from webapp.models import Backup, iso, utcnow
from webapp.statuses import BACKUP_TRANSITIONS, BackupStatus
from webapp.taskqueue import BACKUP_TASK, MAINTENANCE_QUEUE


def _gave_up(attempts: int) -> Message:
    return Message(N_("The worker stopped while writing the backup (attempts made: %(count)s); the next one is "
                      "taken at its time."), {"count": attempts})


BACKUPS = lifecycle.Kind(
    name="backup", model=Backup, task=BACKUP_TASK, transitions=BACKUP_TRANSITIONS, waiting=BackupStatus.QUEUED,
    running=BackupStatus.RUNNING, failed=BackupStatus.FAILED,
    finished=frozenset({BackupStatus.SUCCEEDED, BackupStatus.FAILED}), queue=lambda row: MAINTENANCE_QUEUE,
    stale_setting="BACKUP_STALE_SECONDS", attempts_setting="BACKUP_MAX_ATTEMPTS", gave_up=_gave_up,
    claimed=lambda now: {"started_at": now}, requeued={"worker": None})


def backup_due() -> bool:
    """Whether a scheduled backup is to be taken now: the schedule is on, none waits or runs, and the
    newest one (failed ones too, so a failing backup is tried once per interval) began an interval ago."""
    hours = current_app.config["BACKUP_EVERY_HOURS"]
    if hours <= 0:
        return False
    active = db.session.scalar(select(func.count()).select_from(Backup).where(
        Backup.status.in_([BackupStatus.QUEUED, BackupStatus.RUNNING])))
    newest = db.session.scalar(select(func.max(Backup.created_at)))
    return not active and (newest is None or newest <= utcnow() - timedelta(hours=hours))


def queue_due_backup() -> int | None:
    """Queue a scheduled backup when one is due (the watcher's pass); its id. A task that cannot be sent
    now is sent by the outbox's next pass."""
    if not backup_due():
        return None
    row = Backup()
    db.session.add(row)
    db.session.commit()
    lifecycle.send_or_leave(BACKUPS, row)
    return row.id


def archive_path(row: Backup) -> Path:
    """Where a scheduled backup's archive goes: BACKUP_DIR/studio-<UTC time>-<id>.tar."""
    return Path(current_app.config["BACKUP_DIR"]) / f"studio-{row.created_at:%Y%m%d-%H%M%S}-{row.id}.tar"


def run_backup(backup_id: int, worker: str) -> str:
    """Claim the backup, write its archive and end its row; then remove the archives beyond BACKUP_KEEP."""
    row = lifecycle.claim(BACKUPS, backup_id, worker)
    if row is None:
        return "skipped"
    attempt = row.attempt
    heartbeat = lifecycle.Heartbeat(BACKUPS, row.id, attempt, current_app.config["JOB_HEARTBEAT_SECONDS"])
    heartbeat.start()
    unexpected = N_("The backup stopped on an unexpected error (%(kind)s); the details are in the worker's log.")
    target = archive_path(row)
    try:
        with lifecycle.ending(BACKUPS, row, attempt, unexpected):
            manifest = create_backup(target)
            if not lifecycle.finish(BACKUPS, row, attempt, BackupStatus.SUCCEEDED, path=str(target),
                                    size_bytes=target.stat().st_size, files=len(manifest.entries),
                                    missing=manifest.missing, schema_revision=manifest.about.schema_revision):
                target.unlink(missing_ok=True)  # the row went on without this attempt
    finally:
        heartbeat.stopped.set()
    if row.status == BackupStatus.SUCCEEDED:
        prune(current_app.config["BACKUP_KEEP"])
    return row.status


def prune(keep: int) -> list[int]:
    """Remove the archives of the succeeded backups beyond the newest `keep`; the ids whose archive went
    (their rows stay, with when)."""
    kept = db.session.scalars(select(Backup).where(Backup.status == BackupStatus.SUCCEEDED,
                                                   Backup.removed_at.is_(None)).order_by(Backup.id.desc())).all()
    for row in kept[keep:]:
        Path(row.path).unlink(missing_ok=True)
        row.removed_at = utcnow()
    db.session.commit()
    return [row.id for row in kept[keep:]]


def backup_json(row: Backup) -> dict:
    """A backup as the API shows it: its archive by file name only (where BACKUP_DIR is stays on the server)."""
    return {"id": row.id, "status": row.status, "file": Path(row.path).name if row.path else None,
            "size_bytes": row.size_bytes, "files": row.files, "missing": len(row.missing or []),
            "schema_revision": row.schema_revision, "created_at": iso(row.created_at),
            "finished_at": iso(row.finished_at), "removed_at": iso(row.removed_at), "error": rendered(row.error)}
