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
