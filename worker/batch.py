"""Run one batch prediction for the worker: claim it, load its model version as serving does (the same
options and runtime choice), classify its input from where the last committed attempt stopped, commit the
results files' sizes with the progress after every batch, and end it (succeeded, cancelled or failed with
words) while this attempt holds it. The received upload goes once the run ended."""
from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from typing import Iterator

from flask import current_app
from sqlalchemy import select, update

from engine.bundle import BundleRejected
from engine.device import serving_device
from engine.errors import StudioError
from engine.messages import N_
from webapp import lifecycle
from webapp.batch.inputs import Item, input_folder, revision_items, upload_items
from webapp.batch.results import ResultsWriter, Summary
from webapp.batch.running import classify_items
from webapp.batch.services import BATCH_PREDICTIONS, abstain_rule, remove_input
from webapp.config import serving_options
from webapp.extensions import db
from webapp.models import BatchPrediction, utcnow
from webapp.predict.serving import LoadedVersion, load_version
from webapp.statuses import BatchStatus
from webapp.storage import data_dir


class Cancelled(Exception):
    """A person asked the run to stop; what is committed stays."""


@contextmanager
def items_of(row: BatchPrediction) -> Iterator[list[Item]]:
    """The run's items in their fixed order, readable while the context lasts."""
    if row.source == "upload":
        if not input_folder(row.id).is_dir():
            raise StudioError("batch_input_gone", "The uploaded files of this run are gone from the data folder.")
        with upload_items(input_folder(row.id), current_app.config["INGEST_LIMITS"]) as items:
            yield items
        return
    if row.revision_id is None:
        raise StudioError("revision_not_found", "The dataset revision was deleted before the run ended.")
    yield revision_items(row.dataset_id, row.revision_id)


def load_model(version: int) -> LoadedVersion:
    """The version loaded as a web process serves it (its bundle checked, the same options, runtime and device:
    the CPU unless SERVING_DEVICE=gpu, as the training GPU is the training workers'), with one inference thread:
    a run sends one batch at a time, and every session holds its own working memory."""
    options = dataclasses.replace(serving_options(current_app.config), threads=1)
    device, note = serving_device(options.device, options.gpu)  # the note is logged with the version's
    try:
        return load_version(data_dir().model(version), version, options, device, device_note=note)
    except BundleRejected as exc:
        raise StudioError(exc.code, exc.template, exc.params) from None


def _commit_batch(row_id: int, attempt: int, writer: ResultsWriter, done: int, total: int, refused: int,
                  summary: Summary) -> bool:
    """Record the synced files' sizes with the progress, in one transaction fenced by the attempt; whether a
    person asked the run to stop."""
    csv_bytes, jsonl_bytes = writer.sync()
    db.session.execute(update(BatchPrediction).where(BatchPrediction.id == row_id).values(
        done=done, refused=refused, csv_bytes=csv_bytes, jsonl_bytes=jsonl_bytes, summary=summary.to_json(),
        progress=min(1.0, done / total) if total else 1.0).execution_options(synchronize_session=False))
    lifecycle.fenced_commit(BATCH_PREDICTIONS, row_id, attempt)
    return bool(db.session.scalar(select(BatchPrediction.cancel_requested).where(BatchPrediction.id == row_id)))


def classify_run(row: BatchPrediction, attempt: int, loaded: LoadedVersion) -> None:
    """Go through the run's items from its committed point to the end (raises Cancelled when asked to stop)."""
    config = current_app.config
    folder = data_dir().batch(row.id)
    summary, done, refused = Summary.from_json(row.summary), row.done, row.refused
    with items_of(row) as items, ResultsWriter(folder, row.csv_bytes, row.jsonl_bytes) as writer:
        total = len(items)
        started, spent = time.monotonic(), summary.seconds
        if row.cancel_requested:
            raise Cancelled()
        for rows in classify_items(items[done:], loaded, row.top_k, abstain_rule(row), config["BATCH_PREDICT_SIZE"],
                                   config["INGEST_LIMITS"]["max_file_bytes"], config["PREDICT_MAX_PIXELS"]):
            for result in rows:
                writer.write(result)
                summary.add(result)
            done += len(rows)
            refused += sum(result["error"] is not None for result in rows)
            summary.seconds = spent + time.monotonic() - started
            if _commit_batch(row.id, attempt, writer, done, total, refused, summary):
                raise Cancelled()
        db.session.execute(update(BatchPrediction).where(BatchPrediction.id == row.id).values(total=total))
        lifecycle.fenced_commit(BATCH_PREDICTIONS, row.id, attempt)


def run_batch(batch_id: int, worker: str) -> str:
    """Claim the run, classify what is left of it, and end it; a worker given up on changes nothing."""
    row = lifecycle.claim(BATCH_PREDICTIONS, batch_id, worker)
    if row is None:
        return "skipped"
    attempt = row.attempt
    heartbeat = lifecycle.Heartbeat(BATCH_PREDICTIONS, row.id, attempt, current_app.config["JOB_HEARTBEAT_SECONDS"])
    heartbeat.start()
    loaded = None
    unexpected = N_("The run stopped on an unexpected error (%(kind)s); the details are in the worker's log.")
    try:
        with lifecycle.ending(BATCH_PREDICTIONS, row, attempt, unexpected, (Cancelled, BatchStatus.CANCELLED)):
            loaded = load_model(row.version)
            classify_run(row, attempt, loaded)
            lifecycle.finish(BATCH_PREDICTIONS, row, attempt, BatchStatus.SUCCEEDED, progress=1.0,
                             finished_at=utcnow())
    finally:
        heartbeat.stopped.set()
        if loaded is not None:
            loaded.threads.close()
    if row.status in (BatchStatus.SUCCEEDED, BatchStatus.CANCELLED, BatchStatus.FAILED):
        remove_input(row)
    return row.status
