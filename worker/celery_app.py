"""Entry point for `celery -A worker.celery_app worker -Q training -c 1`."""
import logging
import sys
import threading

from celery.signals import worker_process_init, worker_ready, worker_shutdown

from webapp import create_app
from webapp.installation import WrongDataDir, check_data_dir
from webapp.jobs.reaper import start_reaper
from webapp.taskqueue import TRAINING_QUEUE, device_kind, training_queue, trains
from webapp.workers import WorkerBeacon, probe_device

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
log = logging.getLogger(__name__)


@worker_process_init.connect
def _own_connections(**_) -> None:
    """A pool process forked from this one must not share its database connections: two processes on one
    socket garble each other's answers (PostgreSQL) or locks (SQLite). The child drops the inherited pool
    without closing the parent's connections and opens its own."""
    engine.dispose(close=False)


@worker_ready.connect
def _start_reaper(**_) -> None:
    """Every worker also watches for jobs whose worker died, so a web process is not required."""
    start_reaper(flask_app)


@worker_ready.connect
def _announce(sender, **_) -> None:
    """Announce this worker (name, host, queues, and for training workers the device, probed in a child
    process so this process never loads Paddle before its pool forks)."""
    queues = sorted(queue.name for queue in sender.task_consumer.queues)
    beacon = WorkerBeacon(flask_app.config["REDIS_URL"], sender.hostname, queues, device=None).start()
    _beacon.append(beacon)
    if trains(queues):
        threading.Thread(target=_find_device, args=(beacon,), daemon=True).start()


def _find_device(beacon: WorkerBeacon) -> None:
    """Probe the device, then, for a worker of the shared training queue, also take the jobs routed to
    its device kind (`training.gpu` on a GPU machine, `training.cpu` otherwise)."""
    beacon.device = probe_device()
    kind = device_kind(beacon.device)
    if TRAINING_QUEUE in beacon.queues and kind is not None:
        queue = training_queue(kind)
        replies = celery_app.control.add_consumer(queue, destination=[beacon.name], reply=True, timeout=10)
        if any("ok" in answer for reply in replies or [] for answer in reply.values()):
            beacon.queues = sorted({*beacon.queues, queue})
        else:
            log.warning("worker %s could not take the %s queue: %s", beacon.name, queue, replies)
    try:
        beacon.beat()  # show the device and queues now rather than at the next beat
    except Exception as exc:
        log.warning("could not announce worker %s: %s", beacon.name, exc)


@worker_shutdown.connect
def _withdraw(**_) -> None:
    for beacon in _beacon:
        beacon.stop()
