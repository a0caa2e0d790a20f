"""Celery bound to the Flask app: every task runs inside an app context."""
from __future__ import annotations

from celery import Celery, Task
from flask import Flask

TRAINING_QUEUE = "training"
# Uploads are checked and stored by a small worker of their own, so training never delays an ingest.
INGEST_QUEUE = "ingest"
INGEST_WORKER_PREFIX = "ingest-"  # ingest workers' names start with it (health tells them apart)
# Task names: the worker registers its tasks under these; the web app sends tasks by name only.
TRAIN_TASK = "worker.train"
DESCRIBE_TASK = "worker.describe"
EVALUATE_TASK = "worker.evaluate"
MEASURE_TASK = "worker.measure_step"
INGEST_TASK = "worker.ingest_dataset"


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
        broker_transport_options={"visibility_timeout": 12 * 3600},
        imports=("worker.tasks",),
    )
    celery.set_default()
    app.extensions["celery"] = celery
    return celery
