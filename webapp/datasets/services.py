"""Dataset services: turn an upload into rows and files, describe and delete datasets."""
from __future__ import annotations

import logging
import os
import shutil
import socket
import time
import uuid
from pathlib import Path

from flask import current_app
from sqlalchemy import func, select

from engine.errors import StudioError
from engine.messages import N_, Message
from webapp import audit, lifecycle
from webapp.datasets import revisions
from webapp.datasets.ingest import AcceptedImage, ingest
from webapp.datasets.receive import ReceivedUpload, receive_upload
from webapp.errors import get_or_404
from webapp.extensions import db
from webapp.messages import rejected_json, rendered, stored
from webapp.models import Dataset, DatasetImage, DatasetRevision, Job, iso
from webapp.statuses import ACTIVE, DATASET_TRANSITIONS, DatasetStatus
from webapp.storage import DatasetFiles, data_dir
from webapp.taskqueue import INGEST_QUEUE, INGEST_TASK
from webapp import webhooks

log = logging.getLogger(__name__)
MAX_NAME_LENGTH = 200


def _gave_up(attempts: int) -> Message:
    return Message(N_("Checking this upload stopped %(count)s times (its worker was stopped or ran out of memory); "
                      "upload it again, perhaps in smaller parts."), {"count": attempts})


def _drop_upload(dataset: Dataset) -> None:
    """A failed upload's received files are of no more use."""
    shutil.rmtree(data_dir().upload(dataset.id), ignore_errors=True)


# The check of an upload, by an ingest worker (or the request itself with INGEST_IN_REQUEST).
UPLOAD_CHECKS = lifecycle.Kind(
    name="upload check", model=Dataset, task=INGEST_TASK, transitions=DATASET_TRANSITIONS,
    waiting=DatasetStatus.PROCESSING, running=DatasetStatus.PROCESSING, failed=DatasetStatus.FAILED,
    finished=frozenset({DatasetStatus.READY, DatasetStatus.FAILED}), queue=lambda dataset: INGEST_QUEUE,
    stale_setting="INGEST_STALE_SECONDS", attempts_setting="INGEST_MAX_ATTEMPTS", gave_up=_gave_up,
    held_by_worker=True, attempt_column="ingest_attempt", heartbeat_column="ingest_heartbeat_at",
    on_failed=_drop_upload,
    in_move=webhooks.on_status({"failed": "dataset.failed"}, lambda dataset: {"dataset_id": dataset.id,
                                                                             "name": dataset.name}),
    never_sent=Message(N_("The task queue (Redis) was not reachable, so the upload was not checked; upload it "
                          "again.")))


def ready_dataset(dataset_id, field: str | None = None) -> Dataset:
    """The dataset with this id, refused (404, or 409 while it is not ready) with `field` named."""
    details = {"field": field} if field else {}
    dataset = get_or_404(Dataset, dataset_id, "Dataset", **details)
    if dataset.status != DatasetStatus.READY:
        raise StudioError("dataset_not_ready", "Dataset '%(name)s' is not ready (%(status)s).",
                          {"name": dataset.name, "status": dataset.status}, **details)
    return dataset


def _clean_name(name: str | None, fallback: str) -> str:
    name = (name or "").strip() or fallback
    if len(name) > MAX_NAME_LENGTH:
        raise StudioError("invalid_field", "The name is longer than %(max)s characters.", {"max": MAX_NAME_LENGTH},
                          field="name")
    if not name.isprintable():
        raise StudioError("invalid_field", "The name contains control characters.", field="name")
    return name


def _fallback_name(upload: ReceivedUpload) -> str:
    if upload.archive_filename is not None:
        return Path(upload.archive_filename).stem[:MAX_NAME_LENGTH] or "dataset"
    first = (upload.files[0] if upload.files else "dataset").replace("\\", "/").strip("/")
    return first.split("/")[0][:MAX_NAME_LENGTH] if "/" in first else "dataset"


def receive_dataset(stream, content_type: str | None) -> Dataset:
    """Stream an upload to disk and add its dataset as `processing`; the ingest follows in the
    background (or at once with INGEST_IN_REQUEST). Refusals that need no image are answered now."""
    limits = current_app.config["INGEST_LIMITS"]
    incoming = data_dir().incoming(uuid.uuid4().hex)
    try:
        upload = receive_upload(stream, content_type, incoming, limits["max_entries"])
        if upload.archive_filename is not None and upload.files:
            raise StudioError("conflicting_fields", "Send either 'archive' or 'files', not both.", field="archive")
        if upload.archive_filename is None and not upload.files:
            raise StudioError("missing_field", "Send a .zip archive in 'archive' or image files in 'files'.",
                              field="archive")
        name = _clean_name(upload.name, _fallback_name(upload))
        with upload.entries(incoming, limits) as (entries, _):  # an unreadable archive or a zip bomb: refused now
            dataset = Dataset(name=name, status=DatasetStatus.PROCESSING, ingest_total=len(entries))
        db.session.add(dataset)
        db.session.flush()
        target = data_dir().upload(dataset.id)
        shutil.rmtree(target, ignore_errors=True)  # left over from a row that a crash never committed
        os.replace(incoming, target)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        shutil.rmtree(incoming, ignore_errors=True)
        raise
    if current_app.config["INGEST_IN_REQUEST"]:
        return _ingest_now(dataset)
    lifecycle.send_or_refuse(UPLOAD_CHECKS, dataset, StudioError(
        "queue_unavailable", "The task queue (Redis) is not reachable; the upload was not kept. Try again once it "
                             "is back."))
    return dataset


def _ingest_now(dataset: Dataset) -> Dataset:
    """Ingest in the request: a refused upload answers with its error and leaves no dataset behind."""
    try:
        return ingest_upload(dataset.id, worker=f"web@{socket.gethostname()}")
    except StudioError:
        db.session.delete(db.session.get(Dataset, dataset.id))
        db.session.commit()
        raise


class _ProgressWriter:
    """Writes ingest progress (and so the check's heartbeat) to the dataset row about once a second, while
    this attempt holds the check; raises Superseded once it does not."""

    def __init__(self, dataset_id: int, attempt: int, every: float = 1.0) -> None:
        self.dataset_id, self.attempt, self.every, self.last = dataset_id, attempt, every, 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.every or done == total:
            self.last = now
            if not lifecycle.stamp(UPLOAD_CHECKS, self.dataset_id, self.attempt, ingest_done=done,
                                   ingest_total=total):
                raise lifecycle.Superseded()


def waiting_for_check() -> list[int]:
    """The datasets whose received upload is still to be checked: a start-up sweep keeps their files."""
    return list(db.session.scalars(select(Dataset.id).where(Dataset.status == DatasetStatus.PROCESSING)))


def ingest_upload(dataset_id: int, worker: str) -> Dataset | None:
    """Check and store a received upload as `worker`; the dataset ends `ready`, or `failed` with the reason
    (a StudioError is raised again for the caller). Nothing to do for a dataset that is not waiting (its
    check is held by another worker, or done), nor for a check given up on meanwhile."""
    dataset = lifecycle.claim(UPLOAD_CHECKS, dataset_id, worker)
    if dataset is None:
        log.info("dataset %s is not waiting for its check; skipping this delivery", dataset_id)
        return db.session.get(Dataset, dataset_id)
    attempt = dataset.ingest_attempt
    folder, staging = data_dir().upload(dataset_id), data_dir().ingest_staging(dataset_id, attempt)
    limits = current_app.config["INGEST_LIMITS"]
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with ReceivedUpload.load(folder).entries(folder, limits) as (entries, refused):
            result = ingest(entries, refused, staging, limits, _ProgressWriter(dataset_id, attempt))
        _store(dataset, result, staging, attempt)
    except lifecycle.Superseded:
        log.warning("the check of dataset %s went on without attempt %s; stopping", dataset_id, attempt)
        return dataset
    except StudioError as exc:
        lifecycle.finish(UPLOAD_CHECKS, dataset, attempt, DatasetStatus.FAILED, error=exc)
        raise
    except Exception:
        log.exception("ingest of dataset %s failed", dataset_id)
        lifecycle.finish(UPLOAD_CHECKS, dataset, attempt, DatasetStatus.FAILED, error=Message(N_(
            "The upload could not be checked because of an error on the server; the details are in the ingest "
            "worker's log.")))
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    log.info("dataset %s '%s': %d images, %d rejected", dataset.id, dataset.name, dataset.num_images,
             len(dataset.rejected))
    return dataset


def dataset_from_entries(name: str, entries: list, refused: list | None = None) -> Dataset:
    """Ingest `entries` (paths as in an upload: `class/file` or `split/class/file`) into a new dataset at once."""
    name = _clean_name(name, "dataset")
    staging = data_dir().entries_staging(uuid.uuid4().hex)
    try:
        result = ingest(entries, refused or [], staging, current_app.config["INGEST_LIMITS"])
        dataset = Dataset(name=name, status=DatasetStatus.PROCESSING)
        db.session.add(dataset)
        _store(dataset, result, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dataset


def uploaded_note(count: int) -> Message:
    """The note of every first revision (migration 0021 writes the same)."""
    return Message(N_("Uploaded: %(count)s images."), {"count": count})


def append_to_dataset(dataset: Dataset, entries: list, note: Message) -> revisions.DatasetRevision:
    """A new revision of the dataset: its newest revision and the images of `entries` (paths as in an upload
    with split folders, `train/class/file`), checked as an upload's are; their contents are stored once
    beside the dataset's."""
    base = revisions.get_revision(dataset, None)
    staging = data_dir().entries_staging(uuid.uuid4().hex)
    try:
        result = ingest(entries, [], staging, current_app.config["INGEST_LIMITS"], whole=False)
        staged, files = DatasetFiles(staging), data_dir().dataset_files(dataset.id)
        for image in result.images:
            for source, target in ((staged.image(image.stored_name), files.image(image.stored_name)),
                                   (staged.thumbnail(image.sha256), files.thumbnail(image.sha256))):
                if source.exists() and not target.exists():
                    os.replace(source, target)
        rows = [revisions.row_fields(row) for row in revisions.manifest(base.id)]
        rows += [vars(image) for image in result.images]
        revisions.check_usable(AcceptedImage(**row) for row in rows)
        now = revisions.report_in_request(len(rows))
        revision = revisions.add_revision(dataset, rows, note, {"added": len(result.images)}, parent=base.number,
                                          by=audit.actor(), report_now=now)
        audit.record("dataset.revise", "dataset", dataset.id, {"revision": revision.number, "from": base.number,
                                                               "added": len(result.images)})
        db.session.commit()
        if not now:
            from webapp.datasets.quality import queue_report

            queue_report(dataset)
    except BaseException:
        db.session.rollback()
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return revision


def _store(dataset: Dataset, result, staging: Path, attempt: int | None = None) -> None:
    """Fill the dataset's row and rows of images from an ingest result and move its files into place; for
    a check (`attempt`), only while that attempt still holds it (else lifecycle.Superseded)."""
    if attempt is not None:
        lifecycle.hold(UPLOAD_CHECKS, dataset.id, attempt)
    dataset.status, dataset.layout, dataset.num_images = DatasetStatus.READY, result.layout, len(result.images)
    dataset.content_hash, dataset.rejected = result.content_hash, result.rejected
    dataset.warnings, dataset.duplicates = [stored(warning) for warning in result.warnings], result.duplicates
    dataset.ingest_done = dataset.ingest_total
    db.session.flush()
    revisions.add_revision(dataset, [vars(image) for image in result.images], uploaded_note(len(result.images)),
                           {"added": len(result.images)})
    target = data_dir().dataset(dataset.id)
    if target.exists():  # left over from a row that a crash never committed
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, target)
    webhooks.emit("dataset.ready", {"dataset_id": dataset.id, "name": dataset.name, "images": dataset.num_images})
    try:
        db.session.commit()
    except BaseException:
        db.session.rollback()
        shutil.rmtree(target, ignore_errors=True)
        raise


def delete_dataset(dataset: Dataset) -> None:
    """Delete the rows first, then the files; refused while a job still needs the images."""
    if dataset.status == DatasetStatus.PROCESSING:
        raise StudioError("dataset_in_use", "Dataset '%(name)s' is still being checked; delete it once it "
                                            "is ready or has failed.", {"name": dataset.name})
    active = db.session.scalar(select(func.count()).select_from(Job).where(
        Job.dataset_id == dataset.id, Job.status.in_(sorted(ACTIVE))))
    if active:
        raise StudioError("dataset_in_use", "Dataset '%(name)s' is used by %(count)s queued or running training "
                                            "job(s); cancel them or wait for them to finish first.",
                          {"name": dataset.name, "count": active})
    target = data_dir().dataset(dataset.id)
    audit.record("dataset.delete", "dataset", dataset.id, {"name": dataset.name, "num_images": dataset.num_images})
    db.session.delete(dataset)
    db.session.commit()
    shutil.rmtree(target, ignore_errors=True)
    _prune_image_cache()


def _prune_image_cache() -> None:
    """Drop decoded training images that no remaining dataset holds, and keep the cache within its size."""
    from engine.data import prune_cache

    kept = set(db.session.scalars(select(DatasetImage.sha256).distinct()))
    removed = prune_cache(data_dir().image_cache, kept, current_app.config["IMAGE_CACHE_MAX_BYTES"])
    if removed["removed_files"]:
        log.info("image cache: removed %d decoded images (%.1f MB)", removed["removed_files"],
                 removed["removed_bytes"] / 2**20)


def dataset_summary(dataset: Dataset, revision: DatasetRevision | None = None,
                    classes: list[dict] | None = None) -> dict:
    """A dataset as lists show it: the counts of its newest revision (of the upload while it is checked)."""
    revision = revision or revisions.newest(dataset.id)
    classes = (revisions.class_table(revision.id) if revision else []) if classes is None else classes
    return {"id": dataset.id, "name": dataset.name, "status": dataset.status,
            "num_images": revision.num_images if revision else dataset.num_images, "num_classes": len(classes),
            "revision": revision.number if revision else None, "created_at": iso(dataset.created_at)}


def dataset_json(dataset: Dataset) -> dict:
    """The API representation of a dataset; its warnings, rejected files' reasons and error in the
    request's language."""
    revision = revisions.newest(dataset.id)
    classes = revisions.class_table(revision.id) if revision else []
    return {**dataset_summary(dataset, revision, classes), "layout": dataset.layout,
            "content_hash": revision.content_hash if revision else dataset.content_hash, "classes": classes,
            "rejected": rejected_json(dataset.rejected),
            "warnings": [rendered(warning) for warning in dataset.warnings or []],
            "duplicates": dataset.duplicates or [], "error": rendered(dataset.error),
            "progress": {"done": dataset.ingest_done, "total": dataset.ingest_total}}


def thumbnails(revision: DatasetRevision, per_class: int = 6) -> dict[str, list[DatasetImage]]:
    """A few images of each class of a revision, for the dataset page."""
    shown = {}
    for row in revisions.class_table(revision.id):
        shown[row["name"]] = db.session.scalars(
            select(DatasetImage)
            .where(DatasetImage.revision_id == revision.id, DatasetImage.class_name == row["name"])
            .order_by(DatasetImage.id).limit(per_class)
        ).all()
    return shown
