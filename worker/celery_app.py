"""Entry point for `celery -A worker.celery_app worker -Q training -c 1`."""
import sys
import threading

from celery.signals import worker_process_init, worker_ready, worker_shutdown

from webapp import create_app
from webapp.installation import WrongDataDir, check_data_dir
from webapp.jobs.reaper import start_reaper
from webapp.taskqueue import TRAINING_QUEUE
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
    if TRAINING_QUEUE in queues:
        threading.Thread(target=lambda: setattr(beacon, "device", probe_device()), daemon=True).start()


@worker_shutdown.connect
def _withdraw(**_) -> None:
    for beacon in _beacon:
        beacon.stop()
