"""The Workers page and its JSON API: every announced worker, what it is doing, and how many jobs wait.

The page is a skeleton that its script fills from `GET /api/workers`; the list comes from the workers'
own announcements in Redis (webapp.workers), what each one trains from the database.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

import redis
from flask import Blueprint, current_app, jsonify, render_template
from pydantic import Field
from sqlalchemy import func, select

from engine.errors import StudioError
from webapp.contract import Answer, operation
from webapp.datasets.sandbox import SANDBOX_STATES
from webapp.extensions import db
from webapp.statuses import JobStatus
from webapp.models import Job
from webapp.redisconn import redis_client
from webapp.taskqueue import BATCH_QUEUE, trains
from webapp.workers import announced

pages = Blueprint("workers", __name__, url_prefix="/workers")
api = Blueprint("workers_api", __name__, url_prefix="/api")
REDIS_TIMEOUT_SECONDS = 1.0


class WorkerEntry(Answer):
    """A worker as it announced itself (webapp.workers), with the job it is running."""

    name: str = Field(description="The worker's Celery name, `name@host`.")
    host: str | None
    device: str | None = Field(description="The device it trains on (`cpu`, `gpu:0`, ...); null for an ingest "
                                           "worker.")
    queues: list[str] = Field(description="The task queues it takes work from.")
    heartbeat_at: datetime | None = Field(description="When it last said it is alive.")
    sandbox: Literal[SANDBOX_STATES] | None = Field(None, description="How it checks upload images (ingest "
                                                                      "workers only; absent otherwise).")
    device_problem: str | None = Field(None, description="Why it does not train on a better device, in "
                                                          "English: its GPU failed the probe's kernels (it "
                                                          "trains on the CPU), or the probe itself failed "
                                                          "(device `unknown`); absent when nothing failed.")
    job_id: int | None = Field(description="The training job it is running, if any.")


class WorkerOut(WorkerEntry):
    busy: bool = Field(description="Whether it is running a job.")
    kind: Literal["training", "ingest", "batch"]


class WorkersReport(Answer):
    workers: list[WorkerOut] = Field(description="Every worker whose announcement is current, by name.")
    queued_jobs: int = Field(description="Training jobs waiting for a worker.")


def worker_kind(queues: list[str]) -> str:
    """'training' for a worker on the training queue or a device's training queue (training.gpu ...),
    'batch' for a worker of batch predictions, else 'ingest' (the upload checking workers)."""
    return "training" if trains(queues) else "batch" if BATCH_QUEUE in queues else "ingest"


def workers_report() -> dict:
    """Every announced worker with whether it is busy and its kind, and the number of queued jobs."""
    try:
        workers = announced(redis_client(current_app.config["REDIS_URL"], timeout=REDIS_TIMEOUT_SECONDS,
                                         connect_timeout=REDIS_TIMEOUT_SECONDS))
    except redis.RedisError:
        raise StudioError("queue_unavailable", "The workers announce themselves in Redis, which is not "
                                               "reachable; check that Redis is running.") from None
    queued = db.session.scalar(select(func.count()).select_from(Job).where(Job.status == JobStatus.QUEUED))
    return {"workers": [{**worker, "busy": worker["job_id"] is not None, "kind": worker_kind(worker["queues"])}
                        for worker in workers],
            "queued_jobs": queued}


@api.get("/workers")
@operation(answers={200: WorkersReport}, errors=("queue_unavailable",), tags=("workers",))
def report():
    """Every announced worker, whether it is busy and of which kind, and how many jobs wait."""
    return jsonify(workers_report())


@pages.get("")
def index():
    return render_template("workers/index.html")
