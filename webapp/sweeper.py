"""Sends again the tasks that the broker lost: the database, not Redis, says what is waiting.

Queued jobs, queued evaluations and uploads waiting to be checked each need a message in Redis. When Redis
loses its queues (restarted without its append-only file, flushed, moved to another host) or a web process
dies between committing a row and sending its task, the row would wait forever. A sweep compares the
waiting rows with the messages Redis holds (waiting, or delivered and not yet acknowledged) and sends a task
for every row that had none on two sweeps in a row: a single sweep may fall between a commit and its send.
An upload whose check stopped making progress (its worker died holding the message, or the web process
checking it in a request stopped) is sent again the same way, unless a message for it already waits.
A task sent twice does no harm: jobs, evaluations and upload checks each claim their row before working.
"""
from __future__ import annotations

import json
import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from webapp.extensions import db
from webapp.jobs.status import JobStatus
from webapp.models import Dataset, Evaluation, Job, utcnow
from webapp.taskqueue import (DEVICE_KINDS, EVALUATE_TASK, INGEST_QUEUE, INGEST_TASK, TRAIN_TASK, broker_messages,
                              training_queue)

log = logging.getLogger(__name__)
LOCK_KEY = "studio:sweep:lock"  # one sweep at a time across every worker and web process
MISSING_KEY = "studio:sweep:missing"  # what the last sweep found without a message


def waiting_rows(stale_seconds: float) -> tuple[set, set, set]:
    """(task, id) of every row that waits for a worker, of uploads whose check stopped making progress for
    `stale_seconds`, and the queues their tasks go to."""
    queued_jobs = db.session.execute(select(Job.id, Job.queue).where(Job.status == JobStatus.QUEUED)).all()
    waiting = {(TRAIN_TASK, job_id) for job_id, _ in queued_jobs}
    waiting |= {(EVALUATE_TASK, row_id) for row_id in db.session.scalars(
        select(Evaluation.id).where(Evaluation.status == "queued"))}
    limit, stalled = utcnow() - timedelta(seconds=stale_seconds), set()
    for dataset_id, beat in db.session.execute(select(Dataset.id, Dataset.ingest_heartbeat_at)
                                               .where(Dataset.status == "processing")):
        if beat is None:
            waiting.add((INGEST_TASK, dataset_id))  # not taken yet
        elif beat < limit:
            stalled.add((INGEST_TASK, dataset_id))
    queues = {queue for _, queue in queued_jobs} | {training_queue(), INGEST_QUEUE}
    queues |= {training_queue(kind) for kind in DEVICE_KINDS}
    return waiting, stalled, queues


def sweep_lost_tasks(client, interval: float) -> list[tuple[str, int]]:
    """One sweep (skipped when another process swept less than `interval` ago); returns what was sent again."""
    if not client.set(LOCK_KEY, "1", nx=True, ex=max(1, int(interval * 0.8))):
        return []
    config = current_app.config
    waiting, stalled, queues = waiting_rows(config["JOB_STALE_SECONDS"])
    queued, taken = broker_messages(client, sorted(queues),
                                    current_app.extensions["celery"].conf.broker_transport_options or {})
    lost = (waiting - queued - taken) | (stalled - queued)
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
