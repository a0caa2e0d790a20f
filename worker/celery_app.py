"""Entry point for `celery -A worker.celery_app worker -Q training -c 1`."""
import logging
import os
import sys
import threading

from celery.signals import (celeryd_init, task_postrun, task_prerun, worker_process_init, worker_process_shutdown,
                            worker_ready, worker_shutdown)

from engine.device import device_kind
from webapp import create_app
from webapp.datasets.sandbox import sandbox_state
from webapp import process_metrics
from webapp.installation import WrongDataDir, check_data_dir
from webapp.taskqueue import INGEST_QUEUE, TRAINING_QUEUE, training_queue, trains
from worker.beacon import WorkerBeacon, mark_busy, mark_idle, probe_device
from worker.loops import start_watcher

flask_app = create_app()
try:
    check_data_dir(flask_app)
except WrongDataDir as refusal:
    sys.exit(f"This worker will not start: {refusal}")
celery_app = flask_app.extensions["celery"]
with flask_app.app_context():
    from webapp.extensions import db

    engine = db.engine
app = celery_app
_beacon: list[WorkerBeacon] = []
_node: list[str] = []  # this worker's name, known before its pool forks
log = logging.getLogger(__name__)


@celeryd_init.connect
def _name(sender, **_) -> None:
    _node.append(sender)


@celeryd_init.connect
def _figures_folder(**_) -> None:
    """This worker's figures folder, made before its pool forks and before any figure exists, so its pool
    processes count into it (webapp.process_metrics)."""
    process_metrics.prepare_folder("worker")


@worker_ready.connect
def _serve_figures(**_) -> None:
    """Serve the worker's own figures (tasks, training epochs) on WORKER_METRICS_PORT, when set."""
    port, host = flask_app.config["WORKER_METRICS_PORT"], flask_app.config["WORKER_METRICS_HOST"]
    if port:
        try:
            process_metrics.serve(port, host)
        except OSError as exc:  # the worker works on without it
            log.warning("cannot serve this worker's figures on %s:%d: %s", host, port, exc)


@task_postrun.connect
def _count_task(task, state=None, **_) -> None:
    process_metrics.figures().tasks.labels(task.name, state or "unknown").inc()


@worker_process_shutdown.connect
def _pool_process_ended(**_) -> None:
    process_metrics.mark_process_dead(os.getpid())


@worker_process_init.connect
def _own_connections(**_) -> None:
    """A pool process forked from this one must not share its database connections: two processes on one
    socket garble each other's answers (PostgreSQL) or locks (SQLite). The child drops the inherited pool
    without closing the parent's connections and opens its own. A new pool process runs no task yet,
    whatever the one it replaces was running when it died."""
    engine.dispose(close=False)
    if _node:
        mark_idle(flask_app.config["REDIS_URL"], _node[0])


@task_prerun.connect
def _busy(task, args=None, **_) -> None:
    """What this worker runs is part of its entry: a waiting row's task is sent again only when a worker of
    its queue stays idle (webapp.lifecycle.sweep_outbox)."""
    mark_busy(flask_app.config["REDIS_URL"], task.request.hostname, task.name, args[0] if args else "")


@task_postrun.connect
def _idle(task, **_) -> None:
    mark_idle(flask_app.config["REDIS_URL"], task.request.hostname)


@worker_ready.connect
def _start_watcher(**_) -> None:
    """Every worker also watches for work whose worker died and tasks the broker lost, so a web process is
    not required."""
    start_watcher(flask_app)


@worker_ready.connect
def _announce(sender, **_) -> None:
    """Announce this worker (name, host, queues, for training workers the device, probed in a child
    process so this process never loads Paddle before its pool forks, and for ingest workers whether the
    upload sandbox can start on this machine, which is where their checks run)."""
    queues = sorted(queue.name for queue in sender.task_consumer.queues)
    beacon = WorkerBeacon(flask_app.config["REDIS_URL"], sender.hostname, queues, device=None).start()
    _beacon.append(beacon)
    if trains(queues):
        threading.Thread(target=_find_device, args=(sender, beacon), daemon=True).start()
    if INGEST_QUEUE in queues:
        threading.Thread(target=_find_sandbox, args=(beacon,), daemon=True).start()


def _find_sandbox(beacon: WorkerBeacon) -> None:
    beacon.sandbox = sandbox_state(flask_app.config["INGEST_LIMITS"]["sandbox"])
    beacon.beat_soon()


def _find_device(consumer, beacon: WorkerBeacon) -> None:
    """Probe the device, then fit the device-kind queues to it on the consumer's own loop: a worker of the
    shared training queue also takes the jobs routed to its kind (`training.gpu` on a GPU machine,
    `training.cpu` otherwise), and a device-kind queue this machine cannot serve (`-Q training.gpu` on a
    host whose GPU is not usable) is dropped with a warning, so such jobs wait for a worker that can."""
    found = probe_device()
    if found.problem:
        log.warning("worker %s: %s", beacon.name, found.problem)
    beacon.device, beacon.device_problem = found.device, found.problem
    consumer.call_soon(_fit_queues, consumer, beacon, device_kind(beacon.device))


def _fit_queues(consumer, beacon: WorkerBeacon, kind: str | None) -> None:
    names = {queue.name for queue in consumer.task_consumer.queues}
    own = training_queue(kind) if kind is not None else None
    for name in sorted(names):
        if name.startswith(f"{TRAINING_QUEUE}.") and name != own:
            log.warning("worker %s trains on %s, so it does not take the jobs of queue %s", beacon.name,
                        beacon.device, name)
            consumer.cancel_task_queue(name)
    if TRAINING_QUEUE in names and own is not None and own not in names:
        consumer.add_task_queue(own)
    beacon.queues = sorted(queue.name for queue in consumer.task_consumer.queues)
    beacon.beat_soon()  # never block the consumer's loop on Redis


@worker_shutdown.connect
def _withdraw(**_) -> None:
    for beacon in _beacon:
        beacon.stop()


@worker_shutdown.connect
def _remove_figures(**_) -> None:
    process_metrics.remove_folder()
