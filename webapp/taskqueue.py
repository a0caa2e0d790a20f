"""Celery bound to the Flask app: every task runs inside an app context."""
from __future__ import annotations

from celery import Celery, Task
from flask import Flask


TRAINING_QUEUE = "training"  # every training worker serves it
# A job can ask for a kind of device: it goes to `training.<kind>`, which a training worker serves as soon
# as it has found its own device (worker.celery_app), or which a worker started with `-Q training.gpu` serves.
ANY_DEVICE = "any"
# Uploads are checked and stored by a small worker of their own, so training never delays an ingest.
INGEST_QUEUE = "ingest"
INGEST_WORKER_PREFIX = "ingest-"  # ingest workers' names start with it (health tells them apart)
# Batch predictions run on workers of their own, so a batch never waits behind a training nor delays one.
BATCH_QUEUE = "batch"
BATCH_WORKER_PREFIX = "batch-"  # batch workers' names start with it
# Webhook deliveries: short HTTP requests (WEBHOOK_TIMEOUT_SECONDS), served by the ingest worker.
WEBHOOKS_QUEUE = "webhooks"
# Upkeep of the install (scheduled backups) on a queue of its own, served by the batch worker: training never
# waits for it, and it never waits behind a training.
MAINTENANCE_QUEUE = "maintenance"
# Task names: the worker registers its tasks under these; the web app sends tasks by name only.
TRAIN_TASK = "worker.train"
DESCRIBE_TASK = "worker.describe"
EVALUATE_TASK = "worker.evaluate"
MEASURE_TASK = "worker.measure_step"
INGEST_TASK = "worker.ingest_dataset"
SCAN_TASK = "worker.scan_dataset"
LABEL_SEARCH_TASK = "worker.find_label_errors"
BATCH_TASK = "worker.predict_batch"
WEBHOOK_TASK = "worker.deliver_webhook"
BACKUP_TASK = "worker.backup"


def training_queue(kind: str = ANY_DEVICE) -> str:
    """The queue of training jobs for a device kind ('any', 'cpu' or 'gpu')."""
    return TRAINING_QUEUE if kind == ANY_DEVICE else f"{TRAINING_QUEUE}.{kind}"


def device_of(queue: str) -> str:
    """The device kind ('any', 'cpu' or 'gpu') whose jobs go to `queue` (the inverse of training_queue)."""
    return queue.partition(".")[2] or ANY_DEVICE


def trains(queues: list[str]) -> bool:
    """Whether a worker on these queues trains (the shared queue or a device kind's)."""
    return any(queue == TRAINING_QUEUE or queue.startswith(f"{TRAINING_QUEUE}.") for queue in queues)


def init_app(app: Flask) -> Celery:
    """Create the Celery app for this Flask app and keep it in app.extensions['celery']."""

    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.import_name, task_cls=FlaskTask)
    celery.conf.update(
        broker_url=app.config["REDIS_URL"],
        result_backend=app.config["REDIS_URL"],
        result_expires=3600,
        task_default_queue=TRAINING_QUEUE,
        task_acks_late=True,  # a task whose worker dies is delivered again
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        # One publish policy for every task the web app sends: a broker that does not answer is a 503 in
        # about a second and a half, not a request that hangs.
        task_publish_retry_policy={"max_retries": app.config["QUEUE_PUBLISH_RETRIES"], "interval_start": 0,
                                   "interval_step": 0.5, "interval_max": 1},
        broker_transport_options={"visibility_timeout": 12 * 3600},
        imports=("worker.tasks",),
    )
    celery.set_default()
    app.extensions["celery"] = celery
    return celery
