"""The quality report of a dataset revision: near and exact duplicates, leakage across splits, conflicts across
classes, image issues and class balance (engine.quality), from the signature each image got when the upload's
checker decoded it.

A revision's report is computed when the revision is made and kept on it. A dataset uploaded before the
report existed has images without signatures: a quality scan (background work on the one lifecycle, run by
an ingest worker through the same sandboxed checker as an upload) measures them, then fills every
revision's report.
"""
from __future__ import annotations

import logging
import shutil

from flask import current_app
from sqlalchemy import func, select

from engine.errors import StudioError
from engine.messages import N_, Message
from engine.quality import Item, Signature, Thresholds, report
from webapp import lifecycle
from webapp.extensions import db
from webapp.messages import rendered
from webapp.models import Dataset, DatasetImage, DatasetRevision, QualityScan, iso, utcnow
from webapp.statuses import DatasetStatus, SCAN_TRANSITIONS, ScanStatus
from webapp.storage import data_dir
from webapp.taskqueue import INGEST_QUEUE, SCAN_TASK

log = logging.getLogger(__name__)
# A scan reads the stored images in batches of this many files (each batch one round through the checker).
SCAN_BATCH = 32


def _gave_up(attempts: int) -> Message:
    return Message(N_("Measuring this dataset's images stopped %(count)s times (its worker was stopped or ran out "
                      "of memory); start the scan again."), {"count": attempts})


QUALITY_SCANS = lifecycle.Kind(
    name="quality scan", model=QualityScan, task=SCAN_TASK, transitions=SCAN_TRANSITIONS,
    waiting=ScanStatus.QUEUED, running=ScanStatus.RUNNING, failed=ScanStatus.FAILED,
    finished=frozenset({ScanStatus.SUCCEEDED, ScanStatus.FAILED}), queue=lambda row: INGEST_QUEUE,
    stale_setting="INGEST_STALE_SECONDS", attempts_setting="INGEST_MAX_ATTEMPTS", gave_up=_gave_up,
    claimed=lambda now: {"progress": 0.0}, requeued={"worker": None, "progress": 0.0})


def thresholds() -> Thresholds:
    return Thresholds(**current_app.config["QUALITY_THRESHOLDS"])


def _item(row: DatasetImage) -> Item:
    return Item(key=row.id, class_name=row.class_name, split=row.split, width=row.width, height=row.height,
                signature=Signature.from_json(row.signature), sha256=row.sha256)


def refresh_report(revision: DatasetRevision, rows: list[DatasetImage] | None = None, partial: bool = False) -> bool:
    """Compute the revision's report when every image's signature is known (`partial`: from those that are,
    once a scan measured what it could); whether it could."""
    rows = rows if rows is not None else list(db.session.scalars(select(DatasetImage).where(
        DatasetImage.revision_id == revision.id).order_by(DatasetImage.id)))
    measured = [row for row in rows if row.signature is not None]
    if len(measured) < len(rows) and not partial:
        revision.quality = None
        return False
    revision.quality = {**report([_item(row) for row in measured], thresholds()),
                        "unmeasured": len(rows) - len(measured)}
    return True


# The scan of a dataset uploaded before the report.

def unmeasured(dataset_id: int) -> int:
    """How many of the dataset's stored contents have no signature yet."""
    return db.session.scalar(select(func.count(func.distinct(DatasetImage.sha256))).where(
        DatasetImage.dataset_id == dataset_id, DatasetImage.signature.is_(None)))


def active_scan(dataset_id: int) -> QualityScan | None:
    return db.session.scalar(select(QualityScan).where(
        QualityScan.dataset_id == dataset_id, QualityScan.status.in_([ScanStatus.QUEUED, ScanStatus.RUNNING]))
        .order_by(QualityScan.id.desc()).limit(1))


def latest_scan(dataset_id: int) -> QualityScan | None:
    return db.session.scalar(select(QualityScan).where(QualityScan.dataset_id == dataset_id)
                             .order_by(QualityScan.id.desc()).limit(1))


def without_report(dataset_id: int) -> int:
    """How many of the dataset's revisions have no report yet."""
    return db.session.scalar(select(func.count()).where(DatasetRevision.dataset_id == dataset_id,
                                                        DatasetRevision.quality.is_(None)))


def queue_report(dataset: Dataset) -> None:
    """A scan for a revision made in a request too large to report on there (the one already waiting or
    running does it too); a broker that cannot be reached leaves it to the outbox's next sweep."""
    if active_scan(dataset.id) is not None:
        return
    scan = QualityScan(dataset_id=dataset.id)
    db.session.add(scan)
    db.session.commit()
    lifecycle.send_or_leave(QUALITY_SCANS, scan)


def start_scan(dataset: Dataset) -> QualityScan:
    """POST .../quality/scan: queue a scan of the dataset's unmeasured images and revisions without a report
    (the one already waiting or running when there is one); refused when there is nothing to do."""
    if dataset.status != DatasetStatus.READY:
        raise StudioError("dataset_not_ready", "Dataset '%(name)s' is not ready (%(status)s).",
                          {"name": dataset.name, "status": dataset.status})
    if (scan := active_scan(dataset.id)) is not None:
        return scan
    if not unmeasured(dataset.id) and not without_report(dataset.id):
        raise StudioError("nothing_to_scan", "Every image of dataset '%(name)s' is measured already.",
                          {"name": dataset.name})
    scan = QualityScan(dataset_id=dataset.id)
    db.session.add(scan)
    db.session.commit()
    lifecycle.send_or_refuse(QUALITY_SCANS, scan, StudioError(
        "queue_unavailable", "The task queue (Redis) is not reachable; the scan was not started.", id=scan.id))
    return scan


def run_scan(scan_id: int, worker: str) -> str:
    """Claim the scan, measure every unmeasured content of its dataset in the sandboxed checker, then fill
    the reports of its revisions; every write only while this attempt holds the scan."""
    from webapp.datasets.sandbox import ImageChecker

    scan = lifecycle.claim(QUALITY_SCANS, scan_id, worker)
    if scan is None:
        return "skipped"
    attempt, dataset_id = scan.attempt, scan.dataset_id
    heartbeat = lifecycle.Heartbeat(QUALITY_SCANS, scan.id, attempt, current_app.config["JOB_HEARTBEAT_SECONDS"])
    heartbeat.start()
    try:
        pending = list(db.session.execute(select(DatasetImage.sha256, func.min(DatasetImage.stored_name)).where(
            DatasetImage.dataset_id == dataset_id, DatasetImage.signature.is_(None)).group_by(DatasetImage.sha256)))
        files = data_dir().dataset_files(dataset_id)
        limits = current_app.config["INGEST_LIMITS"]
        folder = data_dir().scan_folder(scan.id, attempt)
        with ImageChecker(folder, limits) as checker:
            for start in range(0, len(pending), SCAN_BATCH):
                batch = pending[start:start + SCAN_BATCH]
                outcomes = checker.check_files([files.image(name).read_bytes() for _, name in batch])
                for (sha, _), outcome in zip(batch, outcomes):
                    if isinstance(outcome, Message):  # a stored image the checker now refuses: measured as flat
                        log.warning("scan of dataset %s: %s was refused (%s)", dataset_id, sha, outcome)
                        continue
                    db.session.execute(db.update(DatasetImage).where(
                        DatasetImage.dataset_id == dataset_id, DatasetImage.sha256 == sha).values(
                        signature=outcome.signature.to_json()))
                lifecycle.fenced_commit(QUALITY_SCANS, scan.id, attempt)
                lifecycle.stamp(QUALITY_SCANS, scan.id, attempt, progress=min(1.0, (start + len(batch)) / len(pending)))
        shutil.rmtree(folder, ignore_errors=True)
        for revision in db.session.scalars(select(DatasetRevision).where(
                DatasetRevision.dataset_id == dataset_id, DatasetRevision.quality.is_(None))):
            refresh_report(revision, partial=True)
        lifecycle.fenced_commit(QUALITY_SCANS, scan.id, attempt)
        lifecycle.finish(QUALITY_SCANS, scan, attempt, ScanStatus.SUCCEEDED, progress=1.0, finished_at=utcnow())
    except lifecycle.Superseded:
        db.session.rollback()
        log.warning("the scan %s went on without attempt %s; stopping", scan_id, attempt)
    except Exception as exc:
        db.session.rollback()
        log.exception("scan %s failed", scan_id)
        lifecycle.finish(QUALITY_SCANS, scan, attempt, ScanStatus.FAILED, finished_at=utcnow(), error=Message(N_(
            "The scan stopped on an unexpected error (%(kind)s); the details are in the worker's log."),
            {"kind": type(exc).__name__}))
    finally:
        heartbeat.stopped.set()
    return scan.status


# What the API and the pages show.

def scan_json(scan: QualityScan | None) -> dict | None:
    if scan is None:
        return None
    return {"id": scan.id, "status": scan.status, "progress": scan.progress, "error": rendered(scan.error),
            "created_at": iso(scan.created_at), "finished_at": iso(scan.finished_at)}


def quality_json(dataset: Dataset, revision: DatasetRevision) -> dict:
    """The revision's report with each image it names (path, class, split, size, thumbnail), or where its
    scan is while the report is not there yet."""
    answer = {"dataset_id": dataset.id, "revision": revision.number, "scan": scan_json(latest_scan(dataset.id)),
              "unmeasured": 0, "report": None, "images": {}}
    if revision.quality is None:
        answer["unmeasured"] = unmeasured(dataset.id)
        return answer
    found = revision.quality
    keys = {pair[side] for kind in ("duplicates", "leakage", "conflicts") for pair in found.get(kind, [])
            for side in ("a", "b")} | {issue["key"] for issue in found.get("issues", [])}
    rows = db.session.scalars(select(DatasetImage).where(DatasetImage.id.in_(sorted(keys)))) if keys else []
    answer["report"] = found
    answer["images"] = {str(row.id): {"id": row.id, "path": row.original_path, "class_name": row.class_name,
                                      "split": row.split, "width": row.width, "height": row.height,
                                      "thumbnail_url": f"/datasets/{dataset.id}/thumbs/{row.id}.jpg"}
                        for row in rows}
    return answer
