"""`python app.py` (what `make run` runs): starts every service, Ctrl-C stops them, a kill -9 is recovered."""
from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis

from launcher import free_port
from webapp.redis_keys import WORKER_PATTERN

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"redis", "visualdl", "worker", "ingest-worker", "batch-worker", "web"}
WORKER_NODES = {"studio", "ingest-studio", "batch-studio"}  # node names before the `@host`


def launch(data_dir: Path, port: int, **env: str) -> subprocess.Popen:
    env = {**os.environ, "DATA_DIR": str(data_dir), "PORT": str(port), **env}
    for unset in {"REDIS_URL", "DATABASE_URL", "HOST"} - set(env):
        env.pop(unset, None)
    log = open(data_dir / "launcher.log", "a")  # a file, not a pipe nobody reads while the app runs
    return subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_healthy(port: int, timeout: float = 300) -> dict:
    """The health report once both workers answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=3) as response:
                report = json.load(response)
            if {worker["name"].partition("@")[0] for worker in report["workers"]} == WORKER_NODES:
                return report
        except OSError:  # not listening yet, or 503 until a worker answers
            pass
        time.sleep(0.5)
    raise AssertionError("the app never became healthy")


def service_pids(data_dir: Path) -> dict[str, int]:
    return {path.stem: json.loads(path.read_text())["pid"] for path in (data_dir / "run").glob("*.pid")}


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def still_running(pids: dict[str, int], timeout: float = 90) -> dict[str, int]:
    """The services of `pids` still running after they have had `timeout` seconds to stop."""
    deadline = time.monotonic() + timeout
    while any(map(running, pids.values())) and time.monotonic() < deadline:
        time.sleep(0.2)
    return {name: pid for name, pid in pids.items() if running(pid)}


def environment(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


def group_members(group: int) -> list[int]:
    """The processes of a service: its process group (each service runs in a session of its own)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) == group:
                members.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return members


def loads_paddle(pid: int) -> bool:
    return "libpaddle" in Path(f"/proc/{pid}/maps").read_text()


def listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a socket listening on `port` (from /proc/net/tcp)."""
    addresses = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, _, state = line.split()[1:4]
        address, local_port = local.split(":")
        if int(local_port, 16) == port and state == "0A":
            addresses.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return addresses


def plant_leftovers(data_dir: Path) -> tuple[list[Path], list[Path]]:
    """(what an interrupted run leaves behind, what it must keep) under `data_dir`."""
    leftovers = {"tmp/upload-0d1e/roses/a.png": b"half", "tmp/stray.bin": b"x",
                 "cache/images/64/ab/ab12.u8.3f2c.part": b"half", "models/.staging-7-9a8b/model.json": b"{}"}
    kept = {"datasets/1/images/roses/a.png": b"png", "cache/images/64/ab/ab12.u8": b"whole"}
    for relative, content in {**leftovers, **kept}.items():
        (data_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        (data_dir / relative).write_bytes(content)
    return [data_dir / path for path in leftovers], [data_dir / path for path in kept]


def check_embedded_redis(data_dir: Path, web_pid: int) -> str:
    """The embedded Redis refuses clients without the install's password; returns the password."""
    password_file = data_dir / "keys" / "redis.password"
    assert password_file.stat().st_mode & 0o777 == 0o600
    password = password_file.read_bytes().hex()
    url = environment(web_pid)["REDIS_URL"]
    assert url.startswith(f"redis://:{password}@127.0.0.1:")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(b"PING\r\n")
        assert client.recv(100).startswith(b"-NOAUTH")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port, password="wrong", socket_timeout=5).ping()
    assert redis.Redis.from_url(url, socket_timeout=5).ping()
    return password


def check_private_files(data_dir: Path, redis_pid: int, password: str) -> None:
    """DATA_DIR (group- and world-readable before the start) is its owner's only, and so is what the
    services wrote in it; the embedded Redis's password is not on its command line."""
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    written = [*data_dir.glob("studio.sqlite3*"), *(data_dir / "redis").rglob("*"), *(data_dir / "run").glob("*")]
    assert len(written) > 5 and {path for path in written if path.stat().st_mode & 0o077} == set()
    assert password.encode() not in Path(f"/proc/{redis_pid}/cmdline").read_bytes()


def check_ingest_worker(pid: int) -> None:
    """A Celery worker on the ingest and webhooks queues, and no process of it has Paddle loaded."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert argv[argv.index(b"-Q") + 1] == b"ingest,webhooks" and argv[argv.index(b"-n") + 1] == b"ingest-studio@%h"
    members = group_members(pid)
    assert pid in members and not any(map(loads_paddle, members))


def check_board_through_the_studio(port: int) -> None:
    """The VisualDL board listens on loopback only and is read through the studio's /visualdl/."""
    assert health_board(port) == "/visualdl/"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/visualdl/index", timeout=10) as response:
                page = response.read().decode()
                assert "<title>VisualDL</title>" in page and "/visualdl/_dist_/index.js" in page
                assert "'unsafe-inline'" in response.headers["Content-Security-Policy"]
                return
        except urllib.error.HTTPError as exc:  # 502 while the board is still starting
            assert exc.code == 502 and time.monotonic() < deadline
            time.sleep(1)


def health_board(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5) as response:
        return json.load(response)["visualdl"]


def test_start_stop_and_recover_from_kill(tmp_path):
    port = free_port()
    tmp_path.chmod(0o755)
    app = launch(tmp_path, port, HOST="127.0.0.1")
    try:
        health = wait_healthy(port)
        assert health["status"] == "ok"
        first = service_pids(tmp_path)
        assert set(first) == SERVICES and all(map(running, first.values()))
        assert listening_addresses(port) == {"127.0.0.1"}
        assert environment(first["ingest-worker"])["HOST"] == environment(first["web"])["HOST"] == "127.0.0.1"
        password = check_embedded_redis(tmp_path, first["web"])
        check_private_files(tmp_path, first["redis"], password)
        check_ingest_worker(first["ingest-worker"])
        check_board_through_the_studio(port)

        for worker in ("worker", "ingest-worker"):  # a worker that dies is started again
            os.kill(first[worker], signal.SIGKILL)
        # the dead workers' announcements would stay for up to 31 s (and the health report caches them a few
        # seconds more): gone, only the workers started again can announce both names below
        beacons = redis.Redis.from_url(environment(first["web"])["REDIS_URL"], socket_timeout=5)
        for key in beacons.keys(WORKER_PATTERN):
            beacons.delete(key)
        deadline = time.monotonic() + 300
        while {service_pids(tmp_path).get(name) for name in ("worker", "ingest-worker")} & set(first.values()):
            assert time.monotonic() < deadline, "the workers were not started again"
            time.sleep(1)
        while {name.decode().rpartition(":")[2].partition("@")[0] for name in beacons.keys(WORKER_PATTERN)} != WORKER_NODES:
            assert time.monotonic() < deadline, "the workers started again never announced themselves"
            time.sleep(0.5)
        wait_healthy(port)
        first = service_pids(tmp_path)

        app.kill()  # like kill -9: no clean-up at all
        app.wait()
        leftovers, kept = plant_leftovers(tmp_path)
        app = launch(tmp_path, port)  # HOST unset: loopback still
        # The killed launcher's services go on answering (health included) until the new one stops them, and
        # a pid file is replaced when its service starts again: wait for both before reading the new pids.
        assert still_running(first) == {}
        deadline = time.monotonic() + 300
        while set(service_pids(tmp_path)) != SERVICES or not set(service_pids(tmp_path).values()).isdisjoint(
                first.values()):
            assert time.monotonic() < deadline, "the new launcher did not start every service again"
            time.sleep(0.5)
        assert wait_healthy(port)["status"] == "ok"
        second = service_pids(tmp_path)
        assert set(second) == set(first) and set(second.values()).isdisjoint(first.values())
        assert all(map(running, second.values()))
        assert listening_addresses(port) == {"127.0.0.1"} and environment(second["web"])["HOST"] == "127.0.0.1"
        assert not any(path.exists() for path in leftovers) and all(path.exists() for path in kept)
        assert {path.name for path in (tmp_path / "tmp").iterdir()} == {"metrics"}  # nothing else is left
        # the killed processes' figures are gone; each folder left is a live process's own
        owners = {int(path.name.rsplit("-", 1)[1]) for path in (tmp_path / "tmp" / "metrics").iterdir()}
        assert owners and owners <= set(second.values()), (owners, second)

        app.send_signal(signal.SIGINT)
        assert app.wait(timeout=180) == 0
        output = (tmp_path / "launcher.log").read_text()
        assert output.count(f"Image Studio is running on http://127.0.0.1:{port}") == 2
        assert "tmp/upload-0d1e" in output and "models/.staging-7-9a8b" in output
        assert f"{tmp_path} could be read by other users of this machine (mode 755)" in output
        assert password not in output
        assert still_running(second) == {}
        assert not list((tmp_path / "run").glob("*.pid"))
    finally:
        if app.poll() is None:
            app.kill()
