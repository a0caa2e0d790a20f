"""Which workers are up, on which host and device, and what each is doing.

Every worker announces itself in Redis (a hash per worker that expires unless renewed), so health and the
Workers page list workers on any host without asking each one; what a worker is training comes from the
database, where the job row names its worker. An ingest worker also says how it checks upload images
(`sandbox`: a state of webapp.datasets.sandbox.sandbox_state), since that depends on its own machine.
"""
from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
from datetime import datetime, timezone

import redis
from sqlalchemy import select

from webapp.extensions import db
from webapp.jobs import events
from webapp.jobs.status import JobStatus
from webapp.models import Job
from webapp.taskqueue import DEVICE_KINDS, training_queue

log = logging.getLogger(__name__)
KEY = "studio:worker:{name}"
PATTERN = "studio:worker:*"
BEACON_SECONDS = 10.0
FIELDS = ("name", "host", "device", "queues", "heartbeat_at")
# Asked in a child process, so the worker process itself never loads Paddle before its pool forks.
DEVICE_PROBE = "from engine.device import pick_device; print(pick_device())"


def probe_device(timeout: float = 120) -> str:
    """The device this machine's Paddle trains on ('gpu:0' or 'cpu'), or 'unknown'."""
    try:
        done = subprocess.run([sys.executable, "-c", DEVICE_PROBE], capture_output=True, text=True, timeout=timeout)
        return done.stdout.strip().splitlines()[-1] if done.returncode == 0 and done.stdout.strip() else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


class WorkerBeacon:
    """Renews this worker's entry every `every` seconds; the entry expires three beats after the last one."""

    def __init__(self, redis_url: str, name: str, queues: list[str], device: str | None,
                 every: float = BEACON_SECONDS, sandbox: str | None = None) -> None:
        self.client = events.redis_client(redis_url)
        self.name, self.queues, self.device, self.every = name, queues, device, every
        self.sandbox = sandbox
        self._stop = threading.Event()
        self._beating = threading.Lock()  # a beat under way and stop() never interleave

    def beat(self) -> None:
        key = KEY.format(name=self.name)
        self.client.hset(key, mapping={
            "name": self.name, "host": socket.gethostname(), "device": self.device or "",
            "queues": ",".join(self.queues), "heartbeat_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "sandbox": self.sandbox or ""})
        self.client.expire(key, int(self.every * 3) + 1)

    def _beat_logged(self) -> None:
        with self._beating:
            if self._stop.is_set():  # stopped: a late beat would put the deleted entry back for three beats
                return
            try:
                self.beat()
            except redis.RedisError as exc:
                log.warning("could not announce worker %s: %s", self.name, exc)

    def run(self) -> None:
        while not self._stop.is_set():
            self._beat_logged()
            self._stop.wait(self.every)

    def start(self) -> "WorkerBeacon":
        threading.Thread(target=self.run, name="worker-beacon", daemon=True).start()
        return self

    def beat_soon(self) -> None:
        """Announce a change (device, queues, sandbox) now rather than at the next beat, without waiting for
        Redis."""
        threading.Thread(target=self._beat_logged, name="worker-beacon-now", daemon=True).start()

    def stop(self) -> None:
        with self._beating:
            self._stop.set()
            try:
                self.client.delete(KEY.format(name=self.name))
            except redis.RedisError:
                pass


def _entries(client: redis.Redis) -> list[dict]:
    """Every worker whose entry is current, as announced (queues as a list, and `sandbox` for a worker that
    announced one), by name; Redis only."""
    workers = []
    for key in client.scan_iter(PATTERN, count=100):
        entry = {k.decode(): v.decode() for k, v in client.hgetall(key).items()}
        if entry.get("name"):
            worker = {field: entry.get(field) or None for field in FIELDS}
            worker["queues"] = worker["queues"].split(",") if worker["queues"] else []
            if entry.get("sandbox"):
                worker["sandbox"] = entry["sandbox"]
            workers.append(worker)
    return sorted(workers, key=lambda worker: worker["name"])


def announced(client: redis.Redis) -> list[dict]:
    """Every worker whose entry is current, with the job it is running (from the database), by name."""
    workers = _entries(client)
    running = dict(db.session.execute(select(Job.worker, Job.id).where(
        Job.status == JobStatus.RUNNING.value, Job.worker.in_([w["name"] for w in workers]))).all())
    for worker in workers:
        worker["job_id"] = running.get(worker["name"])
    return workers


def served_queues(client: redis.Redis) -> set[str]:
    """Every queue some announced worker serves (raises RedisError when Redis cannot be reached)."""
    return {queue for worker in _entries(client) for queue in worker["queues"]}


def served_device_kinds(redis_url: str) -> set[str]:
    """The device kinds whose training queue a worker serves now; none when Redis cannot be reached."""
    try:
        queues = served_queues(events.redis_client(redis_url, timeout=1, connect_timeout=1))
    except redis.RedisError:
        return set()
    return {kind for kind in DEVICE_KINDS if training_queue(kind) in queues}
