"""Which workers are up, on which host and device, and what each is doing.

Every worker announces itself in Redis (a hash per worker that expires unless renewed), so health and the
Workers page list workers on any host without asking each one; what a worker is training comes from the
database, where the job row names its worker. An ingest worker also says how it checks upload images
(`sandbox`: a state of webapp.datasets.sandbox.sandbox_state), since that depends on its own machine.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import redis
from sqlalchemy import select

from engine.device import DEVICE_KINDS
from webapp import redis_keys
from webapp.extensions import db
from webapp.models import Job
from webapp.redisconn import redis_client
from webapp.statuses import JobStatus
from webapp.taskqueue import training_queue

BEACON_SECONDS = 10.0
FIELDS = ("name", "host", "device", "queues", "heartbeat_at")
# What a worker is doing, written by the process that runs its tasks (worker.beacon): the task under way
# ("name:id", empty when none) and since when it has had none.
TASK, IDLE_SINCE = "task", "idle_since"
# Why a training worker's device is not a better one: its GPU failed the probe's kernels, or the probe itself
# failed (worker.beacon.DeviceProbe); English details, absent from an entry when nothing failed.
DEVICE_PROBLEM = "device_problem"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _stored_entries(client: redis.Redis):
    """Every current worker entry as Redis holds it (text fields; entries not yet named are skipped)."""
    for key in client.scan_iter(redis_keys.WORKER_PATTERN, count=100):
        entry = {k.decode(): v.decode() for k, v in client.hgetall(key).items()}
        if entry.get("name"):
            yield entry


def _queues(entry: dict) -> list[str]:
    return entry["queues"].split(",") if entry.get("queues") else []


def _entries(client: redis.Redis) -> list[dict]:
    """Every worker whose entry is current, as announced (queues as a list, and `sandbox` and
    `device_problem` for a worker that announced one), by name; Redis only."""
    workers = []
    for entry in _stored_entries(client):
        worker = {field: entry.get(field) or None for field in FIELDS}
        worker["queues"] = _queues(entry)
        if entry.get("sandbox"):
            worker["sandbox"] = entry["sandbox"]
        if entry.get(DEVICE_PROBLEM):
            worker[DEVICE_PROBLEM] = entry[DEVICE_PROBLEM]
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


def vanished(client: redis.Redis) -> list[str]:
    """The workers whose entry expired without a clean stop (their beacon stopped: killed, out of memory, host
    down), each returned once: the names are read before the entries (a beacon writes its entry before its
    name), and removing a name decides which caller tells of it."""
    known = {name.decode() for name in client.smembers(redis_keys.WORKERS_KNOWN)}
    if not known:
        return []
    current = {entry["name"] for entry in _stored_entries(client)}
    return [name for name in sorted(known - current) if client.srem(redis_keys.WORKERS_KNOWN, name)]


def idle_queues(client: redis.Redis, seconds: float) -> set[str]:
    """Every queue served by a worker that has run no task for at least `seconds`: a message waiting there
    that long was lost, since that worker would have taken it (webapp.lifecycle.sweep_outbox)."""
    limit, idle = datetime.now(timezone.utc) - timedelta(seconds=seconds), set()
    for entry in _stored_entries(client):
        since = entry.get(IDLE_SINCE)
        if not entry.get(TASK) and since and datetime.fromisoformat(since) <= limit:
            idle.update(_queues(entry))
    return idle


def served_queues(client: redis.Redis) -> set[str]:
    """Every queue some announced worker serves (raises RedisError when Redis cannot be reached)."""
    return {queue for worker in _entries(client) for queue in worker["queues"]}


def served_device_kinds(redis_url: str) -> set[str]:
    """The device kinds whose training queue a worker serves now; none when Redis cannot be reached."""
    try:
        queues = served_queues(redis_client(redis_url, timeout=1, connect_timeout=1))
    except redis.RedisError:
        return set()
    return {kind for kind in DEVICE_KINDS if training_queue(kind) in queues}
