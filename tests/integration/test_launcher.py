"""`python app.py` (what `make run` runs): starts every service, Ctrl-C stops them, a kill -9 is recovered."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from launcher import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def launch(data_dir: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "DATA_DIR": str(data_dir), "PORT": str(port)}
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    log = open(data_dir / "launcher.log", "a")  # a file, not a pipe nobody reads while the app runs
    return subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_healthy(port: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=3) as response:
                return json.load(response)
        except OSError:  # not listening yet, or 503 until the worker answers
            time.sleep(0.5)
    raise AssertionError("the app never became healthy")


def service_pids(data_dir: Path) -> dict[str, int]:
    return {path.stem: int(path.read_text()) for path in (data_dir / "run").glob("*.pid")}


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def still_running(pids: dict[str, int], timeout: float = 30) -> dict[str, int]:
    """The services of `pids` still running after they have had `timeout` seconds to stop."""
    deadline = time.monotonic() + timeout
    while any(map(running, pids.values())) and time.monotonic() < deadline:
        time.sleep(0.2)
    return {name: pid for name, pid in pids.items() if running(pid)}


def test_start_stop_and_recover_from_kill(tmp_path):
    port = free_port()
    app = launch(tmp_path, port)
    try:
        health = wait_healthy(port)
        assert health["status"] == "ok" and len(health["workers"]) == 1
        first = service_pids(tmp_path)
        assert set(first) == {"redis", "visualdl", "worker", "web"} and all(map(running, first.values()))

        os.kill(first["worker"], signal.SIGKILL)  # a worker that dies is started again
        deadline = time.monotonic() + 90
        while service_pids(tmp_path)["worker"] == first["worker"] or wait_healthy(port)["status"] != "ok":
            assert time.monotonic() < deadline, "the worker was not started again"
            time.sleep(1)
        first = service_pids(tmp_path)

        app.kill()  # like kill -9: no clean-up at all
        app.wait()
        app = launch(tmp_path, port)
        assert wait_healthy(port)["status"] == "ok"
        second = service_pids(tmp_path)
        assert still_running(first) == {}
        assert set(second) == set(first) and set(second.values()).isdisjoint(first.values())

        app.send_signal(signal.SIGINT)
        assert app.wait(timeout=90) == 0
        output = (tmp_path / "launcher.log").read_text()
        assert output.count(f"Image Studio is running on http://127.0.0.1:{port}") == 2
        assert still_running(second) == {}
        assert not list((tmp_path / "run").glob("*.pid"))
    finally:
        if app.poll() is None:
            app.kill()
