"""What keeps the install's files and processes its own: keys written whole and private, a key of the wrong
length refused, a private DATA_DIR, leftovers stopped only when pid and start time match, and a crashing
service restarted with backoff while health can say why it is down."""
from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import launcher
from launcher import ServiceProcess, Supervisor, make_data_dir_private
from webapp import storage
from webapp.storage import KEY_BYTES, DataDir, write_whole


@pytest.fixture
def open_umask():
    """A umask that lets everyone read new files, as many desktop sessions have; restored afterwards."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_key_is_written_whole_before_it_appears(tmp_path, monkeypatch, open_umask):
    key_file = tmp_path / "keys" / "session.key"
    seen = []

    def token_bytes(count: int) -> bytes:  # another process looks while the key is being made
        seen.append(key_file.read_bytes() if key_file.exists() else None)
        return b"k" * count

    monkeypatch.setattr(storage.secrets, "token_bytes", token_bytes)
    assert DataDir(tmp_path).secret("session.key") == b"k" * KEY_BYTES
    assert seen == [None]
    assert mode(key_file) == 0o600 and mode(key_file.parent) == 0o700
    assert os.listdir(key_file.parent) == ["session.key"]


def test_two_processes_making_the_key_at_once_keep_the_same_one(tmp_path, monkeypatch):
    made = [b"b" * KEY_BYTES, b"a" * KEY_BYTES]
    inner = []

    def token_bytes(count: int) -> bytes:
        key = made.pop()
        if made:  # while this process makes its key, another makes one and keeps it first
            inner.append(DataDir(tmp_path).secret("checkpoint.key"))
        return key

    monkeypatch.setattr(storage.secrets, "token_bytes", token_bytes)
    outer = DataDir(tmp_path).secret("checkpoint.key")
    assert outer == inner[0] == (tmp_path / "keys" / "checkpoint.key").read_bytes()
    assert os.listdir(tmp_path / "keys") == ["checkpoint.key"]


@pytest.mark.parametrize("content", [b"", b"short", b"x" * (KEY_BYTES + 1)])
def test_key_of_the_wrong_length_is_refused_not_used(tmp_path, content):
    key_file = tmp_path / "keys" / "redis.password"
    key_file.parent.mkdir()
    key_file.write_bytes(content)
    with pytest.raises(RuntimeError) as refused:
        DataDir(tmp_path).secret("redis.password")
    message = str(refused.value)
    assert str(key_file) in message and f"{len(content)} bytes" in message
    assert "delete it" in message and "backup" in message
    assert key_file.read_bytes() == content  # never silently made again


# --- a private DATA_DIR ---------------------------------------------------------------------------------

def test_the_launcher_makes_data_dir_private_before_it_creates_anything(tmp_path, monkeypatch, open_umask):
    import app as launcher_main

    data = tmp_path / "studio-data"
    monkeypatch.setenv("DATA_DIR", str(data))
    monkeypatch.setenv("HOST", "127.0.0.1")
    monkeypatch.setattr(launcher_main, "free_port", lambda port, host: port + 1)  # "busy": main stops there
    with pytest.raises(SystemExit):
        launcher_main.main()
    assert mode(data) == 0o700
    (data / "studio.sqlite3").touch()  # as the database, Redis and every child process would create files
    assert mode(data / "studio.sqlite3") == 0o600


def test_an_existing_data_dir_open_to_other_users_is_made_private_with_a_log_line(tmp_path, caplog, open_umask):
    data = tmp_path / "instance"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    with caplog.at_level(logging.WARNING, logger="launcher"):
        make_data_dir_private(data)
    assert mode(data) == 0o700
    assert f"{data} could be read by other users of this machine (mode 755)" in caplog.text
    caplog.clear()
    make_data_dir_private(data)  # already private: nothing to say
    assert caplog.text == ""


# --- leftovers: pid and start time -------------------------------------------------------------------

@pytest.fixture
def stopped(monkeypatch) -> list[int]:
    """The process groups the launcher would stop (recorded instead)."""
    groups: list[int] = []
    monkeypatch.setattr(launcher, "_stop_group", lambda pid, **_: groups.append(pid))
    return groups


@pytest.fixture
def stranger():
    """Some other program that now has a pid an earlier run recorded (a python, like our workers)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


def worker_service(run_dir) -> ServiceProcess:
    return ServiceProcess("worker", [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker"], run_dir)


def recorded_pid(pid: int, identity: str | None) -> str:
    return json.dumps({"pid": pid, "identity": identity})


@pytest.mark.parametrize("pid_file", ["pid only", "another boot", "another start"])
def test_a_reused_pid_of_a_stranger_is_not_killed(tmp_path, stopped, stranger, pid_file):
    boot_id, start = launcher.process_identity(stranger.pid).split("/")
    (tmp_path / "worker.pid").write_text({
        "pid only": str(stranger.pid),  # what earlier versions wrote: nothing tells whose pid it was
        "another boot": recorded_pid(stranger.pid, f"{'0' * len(boot_id)}/{start}"),
        "another start": recorded_pid(stranger.pid, f"{boot_id}/{int(start) - 5}"),
    }[pid_file])
    worker_service(tmp_path).stop_leftover()
    assert stopped == [] and stranger.poll() is None
    assert not (tmp_path / "worker.pid").exists()


def test_a_leftover_of_this_install_is_stopped_when_pid_and_start_match(tmp_path, stopped):
    leftover = ServiceProcess("worker", ["sleep", "60"], tmp_path).start()
    try:
        recorded = json.loads((tmp_path / "worker.pid").read_text())
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        assert recorded["pid"] == leftover.process.pid and recorded["identity"].startswith(boot_id + "/")
        worker_service(tmp_path).stop_leftover()
        assert stopped == [leftover.process.pid]
    finally:
        leftover.process.kill()
        leftover.process.wait()


# --- restarts with backoff, and why a service is down ------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class CrashingService:
    """A service whose every run ends `runs_for` seconds after its start with `code`."""

    def __init__(self, clock: Clock, name: str = "worker", code: int = 1, runs_for: float = 0.5) -> None:
        self.name, self.clock, self.code, self.runs_for = name, clock, code, runs_for
        self.started_at = clock()
        self.starts = 0

    def exited(self) -> int | None:
        return self.code if self.clock() >= self.started_at + self.runs_for else None

    def start(self) -> "CrashingService":
        self.started_at, self.starts = self.clock(), self.starts + 1
        return self

    def last_output(self) -> list[str]:
        return [f"run {self.starts}: cannot connect to the broker"]


def run_until_started(supervisor: Supervisor, service: CrashingService, clock: Clock) -> float:
    """Check every 0.1 s until the service is started again; the time its restart waited."""
    starts = service.starts
    while service.exited() is None:
        clock.now += 0.1
        supervisor.check()
    ended = clock.now
    while service.starts == starts:
        clock.now += 0.1
        supervisor.check()
    return round(clock.now - ended)


def test_a_service_that_keeps_crashing_is_restarted_with_backoff_up_to_a_minute(tmp_path):
    clock = Clock()
    service = CrashingService(clock)
    supervisor = Supervisor([service], tmp_path / "services.json", clock=clock)
    waits = [run_until_started(supervisor, service, clock) for _ in range(9)]
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    service.runs_for = 61  # it ran for a while: the next restart comes quickly again
    assert run_until_started(supervisor, service, clock) == 1
    service.runs_for = 0.5
    assert run_until_started(supervisor, service, clock) == 2


def test_why_a_service_is_down_is_written_for_health(tmp_path):
    clock = Clock()
    status = tmp_path / "run" / "services.json"
    service, other = CrashingService(clock, code=-signal.SIGKILL), CrashingService(clock, "visualdl", runs_for=1e9)
    supervisor = Supervisor([service, other], status, clock=clock)
    assert json.loads(status.read_text()) == {"down": []}
    clock.now += 1
    supervisor.check()
    down = json.loads(status.read_text())["down"]
    assert down == [{"name": "worker", "exit_code": None, "signal": "SIGKILL",
                     "exited_at": launcher.utc_moment(clock.now), "next_start_at": launcher.utc_moment(clock.now + 1),
                     "exits_in_a_row": 1, "output": ["run 0: cannot connect to the broker"]}]
    assert mode(status) == 0o600
    clock.now += 1
    supervisor.check()
    assert service.starts == 1 and json.loads(status.read_text()) == {"down": []}


def test_a_worker_s_last_output_is_kept_and_still_shown(tmp_path, capfd):
    script = "import sys\nfor n in range(30): print('line', n, file=sys.stderr)\nsys.exit(3)"
    service = ServiceProcess("worker", [sys.executable, "-c", script], tmp_path, keep_output=True).start()
    assert service.process.wait(timeout=30) == 3
    assert service.last_output() == [f"line {n}" for n in range(10, 30)]
    assert "line 0\n" in capfd.readouterr().err
    assert launcher.exit_reason(3) == {"exit_code": 3, "signal": None}


# --- health: the services the launcher waits to start again -------------------------------------------

DOWN = {"name": "ingest-worker", "exit_code": 1, "signal": None, "exited_at": "2026-01-02T03:04:05Z",
        "next_start_at": "2026-01-02T03:04:09Z", "exits_in_a_row": 3,
        "output": ["kombu.exceptions.OperationalError: Error 111 connecting to 127.0.0.1:6389"]}


@pytest.fixture
def signed_in_app(tmp_path):
    """Sign-in on, an admin and a viewer with a token each, and the launcher's note of a service down."""
    from tests.stack import app_config
    from webapp import create_app
    from webapp.accounts import services
    from webapp.database import upgrade_schema

    app = create_app(app_config(tmp_path, AUTH="on"))
    upgrade_schema(app)
    write_whole(DataDir(tmp_path).service_status, json.dumps({"down": [DOWN]}).encode())
    with app.app_context():
        for role in ("admin", "viewer"):
            user = services.create_user(f"{role}-ann", "a long enough password 1", role)
            app.config[f"TOKEN_{role}"] = services.create_token(user, "monitor")[1]
    return app


def health_as(app, role: str | None) -> dict:
    headers = {"Authorization": f"Bearer {app.config[f'TOKEN_{role}']}"} if role else {}
    answer = app.test_client().get("/api/health", headers=headers)
    assert answer.status_code == 503
    return answer.get_json()


def test_health_lists_a_down_worker_with_why_for_admins(signed_in_app):
    report = health_as(signed_in_app, "admin")
    assert report["status"] == "degraded" and report["services_down"] == [DOWN]


def test_health_names_a_down_worker_without_its_output_for_other_roles(signed_in_app):
    assert health_as(signed_in_app, "viewer")["services_down"] == [
        {"name": "ingest-worker", "exited_at": "2026-01-02T03:04:05Z", "next_start_at": "2026-01-02T03:04:09Z",
         "exits_in_a_row": 3}]
    anonymous = health_as(signed_in_app, None)
    assert "services_down" not in anonymous and anonymous["status"] == "degraded"


def test_health_without_the_launcher_lists_nothing_down(client):
    assert client.get("/api/health").get_json()["services_down"] == []


def test_a_service_down_makes_health_degraded(app, tmp_path, monkeypatch):
    from webapp import health

    monkeypatch.setattr(health, "_redis_ok", lambda: True)
    monkeypatch.setattr(health, "_workers", lambda: [{"name": "studio@lab", "host": "lab", "device": "cpu",
                                                      "queues": ["training"], "heartbeat_at": None, "job_id": None}])
    client = app.test_client()
    assert client.get("/api/health").get_json()["status"] == "ok"
    write_whole(DataDir(tmp_path).service_status, json.dumps({"down": [DOWN]}).encode())
    answer = client.get("/api/health")
    assert answer.status_code == 503 and answer.get_json()["status"] == "degraded"


def test_a_worker_keeps_running_when_its_output_cannot_be_shown(tmp_path, monkeypatch):
    class ClosedTerminal:
        def write(self, data):
            raise BrokenPipeError("the terminal went away")

        buffer = property(lambda self: self)
        flush = write

    monkeypatch.setattr(sys, "stderr", ClosedTerminal())
    script = "import sys\nfor n in range(4000): print('x' * 99, n, file=sys.stderr)\nprint('done', file=sys.stderr)"
    service = ServiceProcess("worker", [sys.executable, "-c", script], tmp_path, keep_output=True).start()
    try:
        assert service.process.wait(timeout=60) == 0  # more than a pipe holds went through
    finally:
        service.process.kill()
    assert service.last_output()[-1] == "done"


def test_a_service_that_cannot_be_started_again_is_tried_later_and_the_others_go_on(tmp_path):
    clock = Clock()
    service, other = CrashingService(clock), CrashingService(clock, "ingest-worker")
    attempts = []

    def start():
        attempts.append(clock.now)
        raise BlockingIOError("fork: Resource temporarily unavailable")

    service.start = start
    supervisor = Supervisor([service, other], tmp_path / "services.json", clock=clock)
    for _ in range(40):
        clock.now += 0.5
        supervisor.check()
    assert [round(moment - attempts[0]) for moment in attempts] == [0, 2, 6, 14]
    assert other.starts >= 1
    assert "worker" in [entry["name"] for entry in json.loads((tmp_path / "services.json").read_text())["down"]]
