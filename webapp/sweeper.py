"""Sends again the tasks that the broker lost: the database, not Redis, says what is waiting.

Queued jobs, queued evaluations and uploads still being checked each need a message in Redis. When Redis
loses its queues (restarted without its append-only file, flushed, moved to another host) or a web process
dies between committing a row and sending its task, the row would wait forever. A sweep compares the
waiting rows with the messages Redis holds (waiting, or delivered and not yet acknowledged) and sends a task
for every row that had none on two sweeps in a row: a single sweep may fall between a commit and its send.
A task sent twice does no harm, because a task takes its row only while the row still waits.
"""
from __future__ import annotations

import json
import logging

from flask import current_app
from sqlalchemy import select

from webapp.extensions import db
from webapp.jobs.status import JobStatus
from webapp.models import Dataset, Evaluation, Job
from webapp.taskqueue import (DEVICE_KINDS, EVALUATE_TASK, INGEST_QUEUE, INGEST_TASK, TRAIN_TASK, training_queue,
                              waiting_tasks)

log = logging.getLogger(__name__)
LOCK_KEY = "studio:sweep:lock"  # one sweep at a time across every worker and web process
MISSING_KEY = "studio:sweep:missing"  # what the last sweep found without a message
QUEUES = [training_queue(), *(training_queue(kind) for kind in DEVICE_KINDS), INGEST_QUEUE]


def waiting_rows() -> set[tuple[str, int]]:
    """(task, id) of every row that waits for a worker."""
    rows = {(TRAIN_TASK, job_id) for job_id in db.session.scalars(
        select(Job.id).where(Job.status == JobStatus.QUEUED))}
    rows |= {(EVALUATE_TASK, row_id) for row_id in db.session.scalars(
        select(Evaluation.id).where(Evaluation.status == "queued"))}
    if not current_app.config["INGEST_IN_REQUEST"]:  # otherwise a web request is checking it right now
        rows |= {(INGEST_TASK, dataset_id) for dataset_id in db.session.scalars(
            select(Dataset.id).where(Dataset.status == "processing"))}
    return rows


def sweep_lost_tasks(client, interval: float) -> list[tuple[str, int]]:
    """One sweep (skipped when another process swept less than `interval` ago); returns what was sent again."""
    if not client.set(LOCK_KEY, "1", nx=True, ex=max(1, int(interval * 0.8))):
        return []
    lost = waiting_rows() - waiting_tasks(client, QUEUES)
    db.session.rollback()  # end the read; the sends below open their own
    seen = {tuple(item) for item in json.loads(client.get(MISSING_KEY) or "[]")}
    again = sorted(lost & seen)
    client.set(MISSING_KEY, json.dumps(sorted(lost - seen)), ex=max(60, int(interval * 10)))
    for task, row_id in again:
        log.warning("the queue had lost the task of %s %s; sending it again", task, row_id)
        try:
            _send(task, row_id)
        except Exception:
            log.exception("could not send the task of %s %s again", task, row_id)
    return again


def _send(task: str, row_id: int) -> None:
    from webapp.datasets.services import enqueue_ingest
    from webapp.jobs.services import enqueue
    from webapp.release.evaluation import send_evaluation

    if task == TRAIN_TASK:
        job = db.session.get(Job, row_id)
        if job is not None and job.status == JobStatus.QUEUED:
            enqueue(job)
    elif task == EVALUATE_TASK:
        send_evaluation(row_id)
    else:
        dataset = db.session.get(Dataset, row_id)
        if dataset is not None and dataset.status == "processing":
            enqueue_ingest(dataset)
