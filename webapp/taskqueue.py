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


def device_of(queue: str) -> str:
    """The device kind ('any', 'cpu' or 'gpu') whose jobs go to `queue` (the inverse of training_queue)."""
    return queue.partition(".")[2] or ANY_DEVICE


def device_kind(device: str | None) -> str | None:
    """'gpu' for 'gpu:0', 'cpu' for 'cpu'; None for a device not found yet or unknown."""
    kind = (device or "").partition(":")[0]
    return kind if kind in DEVICE_KINDS else None


def trains(queues: list[str]) -> bool:
    """Whether a worker on these queues trains (the shared queue or a device kind's)."""
    return any(queue == TRAINING_QUEUE or queue.startswith(f"{TRAINING_QUEUE}.") for queue in queues)


class UnknownLayout(RuntimeError):
    """Redis holds messages that this reading of kombu's layout cannot decode."""


def _task_of(raw: bytes | str) -> tuple[str, object] | None:
    """(task name, first argument) of one stored message, or None for anything else."""
    try:
        message = json.loads(raw)
        if isinstance(message, list):  # unacknowledged entries are [message, exchange, routing key]
            message = message[0]
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return message["headers"]["task"], (args[0] if args else None)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None


def broker_messages(client, queues: list[str], options: dict) -> tuple[set, set]:
    """What Celery's Redis transport holds for `queues`, as (task name, first argument) pairs: the messages
    waiting in the queues, and those delivered to a worker and not yet acknowledged (tasks acknowledge late,
    so a running task's message is there until it ends). The key names follow kombu's own (its priority
    separator and steps, its unacknowledged hash, the broker's key prefix option)."""
    from kombu.transport.redis import Channel

    prefix = options.get("global_keyprefix", "")
    steps = [step for step in options.get("priority_steps", Channel.priority_steps) if step]
    keys = [prefix + key for queue in queues for key in (queue, *(f"{queue}{Channel.sep}{step}" for step in steps))]
    raw_waiting = [raw for key in keys for raw in client.lrange(key, 0, -1)]
    raw_taken = client.hvals(prefix + options.get("unacked_key", Channel.unacked_key))
    waiting = {_task_of(raw) for raw in raw_waiting} - {None}
    taken = {_task_of(raw) for raw in raw_taken} - {None}
    if (raw_waiting or raw_taken) and not (waiting or taken):
        raise UnknownLayout(f"{len(raw_waiting) + len(raw_taken)} messages in Redis could not be read")
    return waiting, taken


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
