"""Batch runs: asked for (an upload streamed to disk, or a dataset revision), cancelled, deleted, shown, and
their results removed once kept long enough. The run itself is worker.batch's (on a batch worker)."""
from __future__ import annotations

import logging
import os
import shutil
import uuid
from datetime import timedelta

from flask import current_app
from flask_login import current_user
from pydantic import ValidationError
from sqlalchemy import select

from engine.errors import StudioError
from engine.messages import N_, Message
from engine.schema import refusal
from webapp import audit, lifecycle
from webapp.accounts.guard import effective_role
from webapp.accounts.policy import role_allows
from webapp.batch import schemas
from webapp.batch.inputs import INPUT, upload_items
from webapp.batch.results import CSV_NAME, JSONL_NAME
from webapp.datasets import revisions
from webapp.datasets.receive import ReceivedUpload, receive_upload
from webapp.datasets.services import ready_dataset
from webapp.errors import get_or_404
from webapp.extensions import db
from webapp.messages import rendered
from webapp.models import BatchPrediction, iso, utcnow
from webapp.release import services as release
from webapp.release.routing import AbstainRule
from webapp.statuses import BATCH_TRANSITIONS, BatchStatus
from webapp.storage import data_dir
from webapp.taskqueue import BATCH_QUEUE, BATCH_TASK
from webapp import webhooks

log = logging.getLogger(__name__)
FINISHED = frozenset({BatchStatus.SUCCEEDED, BatchStatus.FAILED, BatchStatus.CANCELLED})


def _gave_up(attempts: int) -> Message:
    return Message(N_("The batch worker stopped while classifying these images (attempts made: %(count)s); the "
                      "results so far can be downloaded."), {"count": attempts})


def remove_input(row: BatchPrediction) -> None:
    """The received upload is of no more use once its run ended."""
    shutil.rmtree(data_dir().batch(row.id) / INPUT, ignore_errors=True)


BATCH_PREDICTIONS = lifecycle.Kind(
    name="batch prediction", model=BatchPrediction, task=BATCH_TASK, transitions=BATCH_TRANSITIONS,
    waiting=BatchStatus.QUEUED, running=BatchStatus.RUNNING, failed=BatchStatus.FAILED, finished=FINISHED,
    queue=lambda row: BATCH_QUEUE, stale_setting="BATCH_STALE_SECONDS", attempts_setting="BATCH_MAX_ATTEMPTS",
    gave_up=_gave_up, claimed=lambda now: {"started_at": now}, requeued={"worker": None},
    on_failed=remove_input,
    in_move=webhooks.on_status(dict.fromkeys(FINISHED, "batch.done"), lambda row: {
        "batch_id": row.id, "version": row.version, "total": row.total, "done": row.done}))
QUEUE_DOWN = "The task queue (Redis) is not reachable; the batch run was not started."


# --- asking for a run -----------------------------------------------------------------------------------

def _model_version(version: int | None) -> tuple[int, AbstainRule | None]:
    """The version that classifies (the release's production version unless one is named) and when it abstains
    (its own threshold and its classes'), as the catalog has it."""
    catalog = release.catalog()
    if not catalog.versions:
        raise StudioError("no_model", "There is no trained model yet: open a dataset and start training first.")
    if version is None:
        version = catalog.production
        if version is None:
            raise StudioError("no_model", "No model version is in production; name the version to use.",
                              field="version")
    elif version not in catalog.versions:
        raise StudioError("model_version_not_found", "Model version %(version)s does not exist.",
                          {"version": version}, field="version")
    return version, catalog.thresholds.get(version)


def abstain_rule(row: BatchPrediction) -> AbstainRule | None:
    """When the run's answers abstain: the thresholds its version had when the run was asked for."""
    if row.abstain_below is None and not row.class_thresholds:
        return None
    return AbstainRule(row.abstain_below, dict(row.class_thresholds or {}))


def _new_row(source: str, input_name: str, version: int | None, top_k: int, total: int, **values) -> BatchPrediction:
    version, abstain = _model_version(version)
    owner = current_user.id if current_user.is_authenticated else None
    row = BatchPrediction(source=source, input_name=input_name[:255], version=version, top_k=top_k,
                          abstain_below=abstain.overall if abstain else None,
                          class_thresholds=dict(abstain.per_class) if abstain and abstain.per_class else None,
                          total=total, created_by=audit.actor(), owner_id=owner,
                          summary={}, **values)
    db.session.add(row)
    return row


def _send(row: BatchPrediction) -> BatchPrediction:
    lifecycle.send_or_refuse(BATCH_PREDICTIONS, row, StudioError("queue_unavailable", QUEUE_DOWN, id=row.id))
    return row


def start_from_revision(dataset_id: int, number: int | None, version: int | None, top_k: int) -> BatchPrediction:
    """A run over a dataset revision's images (its newest by default)."""
    dataset = ready_dataset(dataset_id, field="dataset_id")
    revision = revisions.get_revision(dataset, number, field="revision")
    row = _new_row("revision", dataset.name, version, top_k, revision.num_images, dataset_id=dataset.id,
                   revision_id=revision.id, revision=revision.number)
    db.session.commit()
    return _send(row)


def start_from_json(body: dict) -> BatchPrediction:
    try:
        asked = schemas.BatchRequest.model_validate(body)
    except ValidationError as exc:
        raise refusal(schemas.BatchRequest, exc) from None
    return start_from_revision(asked.dataset_id, asked.revision, asked.version, asked.top_k)


def _options(upload: ReceivedUpload) -> schemas.BatchOptions:
    try:
        return schemas.BatchOptions.model_validate(upload.fields)
    except ValidationError as exc:
        raise refusal(schemas.BatchOptions, exc) from None


def _input_name(upload: ReceivedUpload) -> str:
    if upload.archive_filename is not None:
        return os.path.basename(upload.archive_filename.replace("\\", "/")) or "archive.zip"
    first = (upload.files[0] if upload.files else "").replace("\\", "/").strip("/")
    return first.split("/")[0] if "/" in first else "files"


def start_from_upload(stream, content_type: str | None) -> BatchPrediction:
    """A run over an upload streamed to disk (a .zip in `archive` or a folder's files in `files`, refused now
    when the archive is not one or is hostile), or over a revision when the form names `dataset_id`."""
    limits = current_app.config["INGEST_LIMITS"]
    incoming = data_dir().incoming(uuid.uuid4().hex)
    try:
        upload = receive_upload(stream, content_type, incoming, limits["max_entries"])
        options = _options(upload)
        if upload.archive_filename is None and not upload.files:
            shutil.rmtree(incoming, ignore_errors=True)
            if options.dataset_id is None:
                raise StudioError("missing_field", "Send a .zip archive in 'archive', image files in 'files', or "
                                                   "name a dataset in 'dataset_id'.", field="archive")
            return start_from_revision(options.dataset_id, options.revision, options.version, options.top_k)
        if upload.archive_filename is not None and upload.files:
            raise StudioError("conflicting_fields", "Send either 'archive' or 'files', not both.", field="archive")
        if options.dataset_id is not None:
            raise StudioError("conflicting_fields", "Send either files or 'dataset_id', not both.", field="dataset_id")
        with upload_items(incoming, limits) as items:
            total = len(items)
        if not total:
            raise StudioError("no_usable_images", "The upload holds no files to classify.", field="archive")
        row = _new_row("upload", _input_name(upload), options.version, options.top_k, total)
        db.session.flush()
        target = data_dir().batch(row.id)
        shutil.rmtree(target, ignore_errors=True)  # left over from a row that a crash never committed
        target.mkdir(parents=True)
        os.replace(incoming, target / INPUT)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        shutil.rmtree(incoming, ignore_errors=True)
        raise
    return _send(row)


# --- a run once asked for ---------------------------------------------------------------------------------

def get_batch(batch_id: int) -> BatchPrediction:
    return get_or_404(BatchPrediction, batch_id, "Batch prediction")


def _may_change(row: BatchPrediction) -> None:
    """Who started a run, or an admin, may cancel or delete it."""
    mine = current_user.is_authenticated and row.owner_id == current_user.id
    if not mine and not role_allows(effective_role(), "admin"):
        raise StudioError("forbidden", "Only the person who started batch run %(id)s, or an admin, may change it.",
                          {"id": row.id})


def cancel(row: BatchPrediction) -> BatchPrediction:
    """A waiting run ends at once; a running one stops after its current batch (its worker reads the request),
    keeping the results committed so far."""
    _may_change(row)
    if row.status in FINISHED:
        raise StudioError("batch_finished", "Batch run %(id)s has ended (%(status)s).",
                          {"id": row.id, "status": row.status})
    if lifecycle.move(BATCH_PREDICTIONS, row, BatchStatus.CANCELLED, BatchPrediction.status == BatchStatus.QUEUED,
                      cancel_requested=True):
        remove_input(row)
    else:
        db.session.execute(db.update(BatchPrediction).where(BatchPrediction.id == row.id)
                           .values(cancel_requested=True))
        db.session.commit()
    db.session.refresh(row)
    return row


def delete(row: BatchPrediction) -> None:
    """Delete an ended run, its results and its row."""
    _may_change(row)
    if row.status not in FINISHED:
        raise StudioError("batch_running", "Batch run %(id)s is still %(status)s; cancel it first.",
                          {"id": row.id, "status": row.status})
    batch_id = row.id
    db.session.delete(row)
    audit.record("batch.delete", "batch_prediction", batch_id)
    db.session.commit()
    shutil.rmtree(data_dir().batch(batch_id), ignore_errors=True)


def results_file(row: BatchPrediction, kind: str):
    """The committed part of a run's results ('csv' or 'jsonl'), once it ended; 409 before, 410 once removed."""
    if row.status not in FINISHED:
        raise StudioError("results_not_ready", "Batch run %(id)s is %(status)s; its results can be downloaded once "
                                               "it ends.", {"id": row.id, "status": row.status})
    if row.expired_at is not None:
        raise StudioError("batch_results_expired", "The results of batch run %(id)s were removed after being kept "
                                                   "%(hours)s hours.", {"id": row.id, "hours": _keep_hours()})
    name, size = (CSV_NAME, row.csv_bytes) if kind == "csv" else (JSONL_NAME, row.jsonl_bytes)
    path = data_dir().batch(row.id) / name
    if size and not path.is_file():
        raise StudioError("model_files_gone", "The results of batch run %(id)s are missing from the data folder.",
                          {"id": row.id})
    return path, size


def _keep_hours() -> str:
    return format(current_app.config["BATCH_RESULTS_KEEP_HOURS"], "g")


def expire_results() -> list[int]:
    """Remove the results of runs that ended more than BATCH_RESULTS_KEEP_HOURS ago (the watcher's pass,
    never a request); the ids whose results went."""
    limit = utcnow() - timedelta(hours=current_app.config["BATCH_RESULTS_KEEP_HOURS"])
    rows = db.session.scalars(select(BatchPrediction).where(
        BatchPrediction.status.in_(sorted(FINISHED)), BatchPrediction.finished_at < limit,
        BatchPrediction.expired_at.is_(None))).all()
    for row in rows:
        shutil.rmtree(data_dir().batch(row.id), ignore_errors=True)
        row.expired_at = utcnow()
        log.info("batch run %s: results removed after %s hours", row.id, _keep_hours())
    db.session.commit()
    return [row.id for row in rows]


def batch_json(row: BatchPrediction) -> dict:
    """The API's view of a run."""
    ended = row.status in FINISHED
    until = row.finished_at + timedelta(hours=current_app.config["BATCH_RESULTS_KEEP_HOURS"]) \
        if ended and row.finished_at else None
    results = None
    if ended and row.expired_at is None:
        base = f"/api/batch-predictions/{row.id}"
        results = {"csv": f"{base}/results.csv", "jsonl": f"{base}/results.jsonl"}
    summary = {"classes": {}, "abstained": 0, "refused": {}, "seconds": 0.0, "images_per_second": None,
               **(row.summary or {})}
    return {"id": row.id, "status": row.status, "progress": round(row.progress, 4), "source": row.source,
            "input_name": row.input_name, "dataset_id": row.dataset_id, "revision": row.revision,
            "version": row.version, "top_k": row.top_k, "abstain_below": row.abstain_below,
            "class_thresholds": row.class_thresholds or {}, "total": row.total,
            "done": row.done, "refused": row.refused, "summary": summary, "cancel_requested": row.cancel_requested,
            "error": rendered(row.error), "attempt": row.attempt, "retries": row.retries,
            "created_by": row.created_by, "created_at": iso(row.created_at), "started_at": iso(row.started_at),
            "finished_at": iso(row.finished_at), "results_until": iso(until),
            "results_expired": row.expired_at is not None, "results": results}

