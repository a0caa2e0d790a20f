"""The Workers page and its JSON API: every announced worker, what it is doing, and how many jobs wait.

The page is a skeleton that its script fills from `GET /api/workers`; the list comes from the workers'
own announcements in Redis (webapp.workers), what each one trains from the database.
"""
from __future__ import annotations

import redis
from flask import Blueprint, current_app, jsonify, render_template
from sqlalchemy import func, select

from engine.errors import StudioError
from webapp.extensions import db
from webapp.statuses import JobStatus
from webapp.models import Job
from webapp.redisconn import redis_client
from webapp.taskqueue import trains
from webapp.workers import announced

pages = Blueprint("workers", __name__, url_prefix="/workers")
api = Blueprint("workers_api", __name__, url_prefix="/api")
REDIS_TIMEOUT_SECONDS = 1.0


def worker_kind(queues: list[str]) -> str:
    """'training' for a worker on the training queue or a device's training queue (training.gpu ...),
    else 'ingest' (the upload checking workers)."""
    return "training" if trains(queues) else "ingest"


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
def report():
    return jsonify(workers_report())


@pages.get("")
def index():
    return render_template("workers/index.html")
