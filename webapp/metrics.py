"""GET /metrics: the install's figures in Prometheus's text format, for admins' tokens, the scrape token
(METRICS_TOKEN) or, while sign-in is off, this machine.

Two sources, so nothing is counted twice: what each process counts itself (requests, predictions; summed
over every web process by webapp.process_metrics), and the install's shared state, read at scrape time from
the database and Redis (queues, background work by status, workers, uploads), which any one web process
reports whole. The shared state costs one GROUP BY per kind of background work, one query of uploads and
one Redis pipeline.

prometheus_client is imported only when a figure is first made or written (here and in
webapp.process_metrics): a Celery worker imports the app before it chooses its figures folder, and the
library reads that choice once, when it is first imported.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

import redis
from flask import Blueprint, Flask, Response, current_app, g, request
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from webapp import process_metrics
from webapp.background import KINDS
from webapp.contract import operation
from webapp.extensions import db
from webapp.models import Dataset
from webapp.redisconn import redis_client
from webapp.statuses import DatasetStatus
from webapp.taskqueue import BATCH_QUEUE, INGEST_QUEUE, MAINTENANCE_QUEUE, WEBHOOKS_QUEUE, training_queue
from webapp.workers import DEVICE_PROBLEM, announced

bp = Blueprint("metrics", __name__)
QUEUES = (training_queue(), training_queue("cpu"), training_queue("gpu"), INGEST_QUEUE, BATCH_QUEUE, WEBHOOKS_QUEUE,
          MAINTENANCE_QUEUE)


def _label(name: str) -> str:
    return name.replace(" ", "_")


def _gauge(name: str, documentation: str, labels: tuple[str, ...]):
    from prometheus_client.core import GaugeMetricFamily

    return GaugeMetricFamily(name, documentation, labels=labels)


def background_families() -> list:
    """Rows of every kind of background work by status (every status named, zeros too, so alerts on a
    status that has no rows yet still evaluate)."""
    family = _gauge("studio_background_work", "Rows of background work by kind and status.", ("kind", "status"))
    for kind in KINDS:
        counts = dict(db.session.execute(
            select(kind.model.status, func.count()).group_by(kind.model.status)).all())
        for status in type(kind.waiting):
            family.add_metric((_label(kind.name), status.value), counts.get(status.value, 0))
    return [family]


def upload_families() -> list:
    """The progress of every upload being checked: images checked and images in all."""
    done = _gauge("studio_upload_images_checked", "Images of an upload checked so far.", ("dataset",))
    total = _gauge("studio_upload_images", "Images of an upload being checked.", ("dataset",))
    rows = db.session.execute(select(Dataset.id, Dataset.ingest_done, Dataset.ingest_total).where(
        Dataset.status == DatasetStatus.PROCESSING.value)).all()
    for dataset_id, checked, images in rows:
        done.add_metric((str(dataset_id),), checked or 0)
        total.add_metric((str(dataset_id),), images or 0)
    return [done, total]


def queue_families(client: redis.Redis) -> list:
    """Tasks waiting in each queue of the broker, in one pipeline."""
    pipeline = client.pipeline(transaction=False)
    for queue in QUEUES:
        pipeline.llen(queue)
    family = _gauge("studio_queue_depth", "Tasks waiting in a broker queue.", ("queue",))
    for queue, depth in zip(QUEUES, pipeline.execute()):
        family.add_metric((queue,), depth)
    return [family]


def _age(moment: str | None, now: datetime) -> float:
    return (now - datetime.fromisoformat(moment)).total_seconds() if moment else float("nan")


def worker_families(client: redis.Redis) -> list:
    """The workers that announced themselves (webapp.workers): how long since each one's last beat, its
    device, whether its GPU failed the device probe (it then trains on its CPU), and how many serve each
    queue."""
    workers, now = announced(client), datetime.now(timezone.utc)
    age = _gauge("studio_worker_heartbeat_age_seconds", "Seconds since a worker's last beat.", ("worker", "host"))
    info = _gauge("studio_worker_info", "A worker that is up (1), its device and queues.",
                  ("worker", "host", "device", "queues"))
    serving = _gauge("studio_workers", "Workers up that serve a queue.", ("queue",))
    failed = _gauge("studio_worker_device_problem", "1 when a worker's better device failed the device probe and "
                                                     "it runs on what it reports instead (the reason is on the "
                                                     "Workers page).", ("worker", "host", "device"))
    for worker in workers:
        age.add_metric((worker["name"], worker["host"] or ""), _age(worker["heartbeat_at"], now))
        info.add_metric((worker["name"], worker["host"] or "", worker["device"] or "",
                         ",".join(worker["queues"])), 1)
        failed.add_metric((worker["name"], worker["host"] or "", worker["device"] or ""),
                          1 if worker.get(DEVICE_PROBLEM) else 0)
    for queue in QUEUES:
        serving.add_metric((queue,), sum(queue in worker["queues"] for worker in workers))
    return [age, info, serving, failed]


def shared_families() -> list:
    """The install's shared state; a source that does not answer is left out and said so by
    studio_source_up, so a scrape never fails for it."""
    up = _gauge("studio_source_up", "Whether the database and Redis answered this scrape.", ("source",))
    families = []
    try:
        families += background_families() + upload_families()
        up.add_metric(("database",), 1)
    except SQLAlchemyError:
        current_app.logger.exception("the database did not answer the metrics scrape")
        db.session.rollback()
        up.add_metric(("database",), 0)
    try:
        client = redis_client(current_app.config["REDIS_URL"], timeout=1, connect_timeout=1)
        families += queue_families(client) + worker_families(client)
        up.add_metric(("redis",), 1)
    except (redis.RedisError, SQLAlchemyError):
        up.add_metric(("redis",), 0)
    return families + [up]


class _Families:
    """What generate_latest needs of a registry: families to write."""

    def __init__(self, families: list) -> None:
        self.families = families

    def collect(self):
        return self.families


@bp.get("/metrics")
@operation(answers={200: None}, text="text/plain", tags=("operations",))
def metrics():
    """The install's figures in Prometheus's text format (text/plain; version=0.0.4).

    Requests and latency per endpoint and status, predictions per version, arm and runtime with their
    latency and abstentions (summed over every web process); queue depth per queue, background work by
    kind and status, workers and their last beat, upload progress (the whole install, read at scrape time).
    For admins' API tokens and the scrape token (METRICS_TOKEN) as `Authorization: Bearer <token>`, or
    this machine while sign-in is off."""
    from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

    text = process_metrics.exposition() + generate_latest(_Families(shared_families()))
    return Response(text, content_type=CONTENT_TYPE_PLAIN_0_0_4)


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


def _count_request(response):
    """Count every answer by its endpoint (the route's name, never the path: a bounded set) and status."""
    endpoint, method = request.endpoint or "unmatched", request.method
    counted = process_metrics.figures()
    counted.requests.labels(endpoint, method, str(response.status_code)).inc()
    started = g.get("metrics_started")
    if started is not None:
        counted.request_seconds.labels(endpoint, method).observe(time.perf_counter() - started)
    return response


def init_app(app: Flask) -> None:
    """Time and count every request; call it before any check that may refuse one, so refusals count too."""
    app.before_request(_start_timer)
    app.after_request(_count_request)
