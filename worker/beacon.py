"""This worker in Redis: its entry (name, host, queues, device, upload sandbox) renewed by a thread of the
main process, what it runs written by the process that runs the tasks, and the probe of its device.
The entry's layout and its readers are in webapp.workers."""
from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass

import redis

from engine.device import NO_DEVICE

from webapp import redis_keys
from webapp.redisconn import redis_client
from webapp.workers import BEACON_SECONDS, DEVICE_PROBLEM, IDLE_SINCE, TASK, now_iso

log = logging.getLogger(__name__)
# Asked in a child process, so the worker process itself never loads Paddle before its pool forks, and a probe
# that crashes or hangs (a broken CUDA install can do both) takes only the child down.
PROBE_COMMAND = [sys.executable, "-c", "from engine.device import print_probe; print_probe()"]
STDERR_TAIL_CHARS = 300


@dataclass(frozen=True)
class DeviceProbe:
    """What the probe found: the device this worker trains on, and why not a better one (None when none
    failed): a kernel's failure, or how the probe itself ended."""

    device: str
    problem: str | None = None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # a real-time signal has no name
        return str(number)


def _ended(done: subprocess.CompletedProcess) -> str:
    """How a probe that answered no report ended: its exit code or signal, and the tail of its stderr."""
    code = done.returncode
    how = f"signal {_signal_name(-code)}" if code < 0 else f"exit code {code}"
    tail = " ".join(done.stderr.strip().split())[-STDERR_TAIL_CHARS:]
    return f"the device probe ended with {how}" + (f": {tail}" if tail else " and printed no report")


def _read_report(done: subprocess.CompletedProcess) -> DeviceProbe:
    """The probe's report, the last line of its stdout; a child that failed or printed no report gives why."""
    lines = done.stdout.strip().splitlines()
    try:
        report = json.loads(lines[-1]) if done.returncode == 0 and lines else None
        problem = report.get("problem")
        return DeviceProbe(str(report["device"]), None if problem is None else str(problem))
    except (ValueError, TypeError, KeyError, AttributeError):
        return DeviceProbe(NO_DEVICE, _ended(done) if done.returncode else
                           f"the device probe printed no report: {(lines or [''])[-1][:STDERR_TAIL_CHARS]!r}")


def probe_device(timeout: float = 120, command: list[str] | None = None) -> DeviceProbe:
    """Run the device probe (engine.device.print_probe, or `command`) in a child process and read its
    report; a child that cannot start, crashes, hangs past `timeout` or prints garbage gives NO_DEVICE and
    the reason."""
    try:
        done = subprocess.run(command or PROBE_COMMAND, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return DeviceProbe(NO_DEVICE, f"the device probe gave no answer within {timeout:g} s")
    except OSError as exc:
        return DeviceProbe(NO_DEVICE, f"the device probe could not start: {exc}")
    return _read_report(done)


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
        self.device_problem: str | None = None  # why the device is not a better one (DeviceProbe.problem)
        self._stop = threading.Event()
        self._beating = threading.Lock()  # a beat under way and stop() never interleave

    def beat(self) -> None:
        key = redis_keys.worker(self.name)
        self.client.hset(key, mapping={
            "name": self.name, "host": socket.gethostname(), "device": self.device or "",
            "queues": ",".join(self.queues), "heartbeat_at": now_iso(),
            "sandbox": self.sandbox or "", DEVICE_PROBLEM: self.device_problem or ""})
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
