"""Celery bound to the Flask app: every task runs inside an app context."""
from __future__ import annotations

import base64
import json

from celery import Celery, Task
from flask import Flask

TRAINING_QUEUE = "training"  # every training worker serves it
# A job can ask for a kind of device: it goes to `training.<kind>`, which a training worker serves as soon
# as it has found its own device (worker.celery_app), or which a worker started with `-Q training.gpu` serves.
DEVICE_KINDS = ("cpu", "gpu")
ANY_DEVICE = "any"
# Uploads are checked and stored by a small worker of their own, so training never delays an ingest.
INGEST_QUEUE = "ingest"
INGEST_WORKER_PREFIX = "ingest-"  # ingest workers' names start with it (health tells them apart)
# Task names: the worker registers its tasks under these; the web app sends tasks by name only.
TRAIN_TASK = "worker.train"
DESCRIBE_TASK = "worker.describe"
EVALUATE_TASK = "worker.evaluate"
MEASURE_TASK = "worker.measure_step"
INGEST_TASK = "worker.ingest_dataset"


def training_queue(kind: str = ANY_DEVICE) -> str:
    """The queue of training jobs for a device kind ('any', 'cpu' or 'gpu')."""
    return TRAINING_QUEUE if kind == ANY_DEVICE else f"{TRAINING_QUEUE}.{kind}"


def device_kind(device: str | None) -> str | None:
    """'gpu' for 'gpu:0', 'cpu' for 'cpu'; None for a device not found yet or unknown."""
    kind = (device or "").partition(":")[0]
    return kind if kind in DEVICE_KINDS else None


def trains(queues: list[str]) -> bool:
    """Whether a worker on these queues trains (the shared queue or a device kind's)."""
    return any(queue == TRAINING_QUEUE or queue.startswith(f"{TRAINING_QUEUE}.") for queue in queues)


# Where Celery's Redis transport (kombu) keeps messages: one list per queue and priority step, and a hash of
# the messages delivered to a worker but not acknowledged yet (tasks acknowledge late, so a running task's
# message stays there until it ends).
_PRIORITY_SEP, _PRIORITY_STEPS, _UNACKED = "\x06\x16", (3, 6, 9), "unacked"


def _task_of(raw: bytes | str) -> tuple[str, object] | None:
    """(task name, first argument) of one stored message, or None for anything else."""
    try:
        message = json.loads(raw)
        if isinstance(message, list):  # unacked entries are [message, exchange, routing key]
            message = message[0]
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return message["headers"]["task"], (args[0] if args else None)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None


def waiting_tasks(client, queues: list[str]) -> set[tuple[str, object]]:
    """Every (task name, first argument) that Redis holds for `queues`, waiting or being run."""
    keys = [key for queue in queues for key in (queue, *(f"{queue}{_PRIORITY_SEP}{step}" for step in _PRIORITY_STEPS))]
    found = set()
    for key in keys:
        for raw in client.lrange(key, 0, -1):
            found.add(_task_of(raw))
    for raw in client.hvals(_UNACKED):
        found.add(_task_of(raw))
    found.discard(None)
    return found


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
