"""This worker in Redis: its entry (name, host, queues, device, upload sandbox) renewed by a thread of the
main process, what it runs written by the process that runs the tasks, and the probe of its device.
The entry's layout and its readers are in webapp.workers."""
from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading

import redis

from webapp import redis_keys
from webapp.redisconn import redis_client
from webapp.workers import BEACON_SECONDS, IDLE_SINCE, TASK, now_iso

log = logging.getLogger(__name__)
# Asked in a child process, so the worker process itself never loads Paddle before its pool forks.
DEVICE_PROBE = "from engine.device import pick_device; print(pick_device())"


def probe_device(timeout: float = 120) -> str:
    """The device this machine's Paddle trains on ('gpu:0' or 'cpu'), or 'unknown'."""
    try:
        done = subprocess.run([sys.executable, "-c", DEVICE_PROBE], capture_output=True, text=True, timeout=timeout)
        return done.stdout.strip().splitlines()[-1] if done.returncode == 0 and done.stdout.strip() else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def _lifetime(every: float) -> int:
    """Seconds an entry lives unless renewed: three beats, and a second for the beat in flight."""
    return int(every * 3) + 1


class WorkerBeacon:
    """Renews this worker's entry every `every` seconds; the entry expires three beats after the last one."""

    def __init__(self, redis_url: str, name: str, queues: list[str], device: str | None,
                 every: float = BEACON_SECONDS, sandbox: str | None = None) -> None:
        self.client = redis_client(redis_url)
        self.name, self.queues, self.device, self.every = name, queues, device, every
        self.sandbox = sandbox
        self._stop = threading.Event()
        self._beating = threading.Lock()  # a beat under way and stop() never interleave

    def beat(self) -> None:
        key = redis_keys.worker(self.name)
        self.client.hset(key, mapping={
            "name": self.name, "host": socket.gethostname(), "device": self.device or "",
            "queues": ",".join(self.queues), "heartbeat_at": now_iso(),
            "sandbox": self.sandbox or ""})
        self.client.hsetnx(key, IDLE_SINCE, now_iso())  # a worker starts idle; its tasks write the field then
        self.client.expire(key, _lifetime(self.every))
        self.client.sadd(redis_keys.WORKERS_KNOWN, self.name)  # after the entry: a known name had one

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
            try:  # a clean stop, in one transaction: never taken for a lost worker
                self.client.pipeline(transaction=True).srem(redis_keys.WORKERS_KNOWN, self.name).delete(
                    redis_keys.worker(self.name)).execute()
            except redis.RedisError:
                pass


def _mark(redis_url: str, name: str, fields: dict) -> None:
    key = redis_keys.worker(name)
    try:
        client = redis_client(redis_url)
        client.hset(key, mapping=fields)
        client.expire(key, _lifetime(BEACON_SECONDS))  # an entry whose beacon stopped still expires
    except redis.RedisError as exc:
        log.warning("could not say what worker %s runs: %s", name, exc)


def mark_busy(redis_url: str, name: str, task: str, row_id) -> None:
    """The worker `name` runs `task` for `row_id` now."""
    _mark(redis_url, name, {TASK: f"{task}:{row_id}"})


def mark_idle(redis_url: str, name: str) -> None:
    """The worker `name` runs nothing from now on (a task ended, or its pool process started afresh)."""
    _mark(redis_url, name, {TASK: "", IDLE_SINCE: now_iso()})
