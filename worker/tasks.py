"""Celery tasks: unpack ids, call the real logic elsewhere, record the outcome."""
from __future__ import annotations

import socket

from celery import shared_task
from sqlalchemy import func, select

from webapp.extensions import db
from webapp.models import Dataset


@shared_task(name="worker.describe")
def describe() -> dict:
    """Report this worker's host, Paddle build and device, and what it sees in the database."""
    from worker.engine.device import describe_device

    datasets = db.session.scalar(select(func.count()).select_from(Dataset))
    return {"host": socket.gethostname(), "datasets": datasets, **describe_device()}


@shared_task(name="worker.train", bind=True, acks_late=True, ignore_result=True)
def train(self, job_id: int) -> str:
    """Train one job by id; the outcome is recorded on the job row."""
    from worker.training import run_training_job

    return run_training_job(job_id, worker=self.request.hostname or socket.gethostname())
