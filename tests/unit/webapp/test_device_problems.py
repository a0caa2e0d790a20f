"""A device probe that fails says why: a child that raises, exits non-zero, is killed, prints nothing or
garbage, or hangs gives the reason instead of a bare 'unknown'; the beacon carries it, and health and the
Workers page show it (the frame translated, the details as the probe wrote them)."""
from __future__ import annotations

import json
import re
import sys

import pytest

from tests.stack import app_config
from webapp import create_app
from webapp.database import upgrade_schema
from worker.beacon import DeviceProbe, WorkerBeacon, probe_device

HAN = re.compile(r"[\u4e00-\u9fff]")
TRAINER = "trainer-1@gpu-box"
CUDNN = "gpu:0 failed its check: RuntimeError: (PreconditionNotMet) Cannot load cudnn shared library."


def child(code: str) -> list[str]:
    """A probe command running `code` in a fresh Python instead of the real probe."""
    return [sys.executable, "-c", code]


def test_the_real_probe_in_its_child_answers_cpu_here():
    assert probe_device() == DeviceProbe("cpu", None)


def test_a_report_with_a_problem_is_passed_on():
    report = json.dumps({"device": "cpu", "problem": CUDNN, "paddle": "3.3.1"})
    assert probe_device(command=child(f"print('loading…'); print({report!r})")) == DeviceProbe("cpu", CUDNN)


@pytest.mark.parametrize("code, reason", [
    ("raise RuntimeError('Cannot load cudnn shared library')",
     r"the device probe ended with exit code 1: Traceback .* RuntimeError: Cannot load cudnn shared library"),
    ("import sys; sys.exit(3)", r"the device probe ended with exit code 3 and printed no report"),
    ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)",
     r"the device probe ended with signal SIGSEGV and printed no report"),
    ("pass", r"the device probe printed no report: ''"),
    ("print('gpu:0')", r"the device probe printed no report: 'gpu:0'"),
])
def test_a_child_that_fails_gives_the_reason(code, reason):
    found = probe_device(command=child(code))
    assert found.device == "unknown" and re.fullmatch(reason, found.problem), found.problem


def test_a_child_that_hangs_gives_the_reason():
    found = probe_device(timeout=0.5, command=child("import threading; threading.Event().wait()"))
    assert found == DeviceProbe("unknown", "the device probe gave no answer within 0.5 s")


def test_a_command_that_cannot_start_gives_the_reason(tmp_path):
    found = probe_device(command=[str(tmp_path / "no-python")])
    assert found.device == "unknown" and found.problem.startswith("the device probe could not start: ")


@pytest.fixture
def problem_app(tmp_path, redis_url_empty):
    app = create_app(app_config(tmp_path, REDIS_URL=redis_url_empty))
    upgrade_schema(app)
    beacon = WorkerBeacon(redis_url_empty, TRAINER, ["training", "training.cpu"], "cpu")
    beacon.device_problem = CUDNN
    beacon.beat()
    WorkerBeacon(redis_url_empty, "trainer-2@box", ["training"], "cpu").beat()
    return app


def test_the_beacon_carries_the_problem_to_the_api_and_health(problem_app):
    client = problem_app.test_client()
    broken, fine = client.get("/api/workers").get_json()["workers"]
    assert (broken["name"], broken["device"], broken["device_problem"]) == (TRAINER, "cpu", CUDNN)
    assert "device_problem" not in fine  # nothing failed there
    health = client.get("/api/health").get_json()
    assert [worker.get("device_problem") for worker in health["workers"]] == [CUDNN, None]


def test_the_workers_page_says_it_in_both_languages(problem_app):
    client = problem_app.test_client()
    script = client.get("/static/js/workers.js").get_data(as_text=True)
    frames = ("Trains on %(device)s instead: %(problem)s",
              "Probe: %(problem)s")
    assert all(f't("{frame}"' in script for frame in frames) and "worker.device_problem" in script
    html = client.get("/workers", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    catalog = json.loads(re.search(r'<script type="application/json" id="i18n-catalog">(.*?)</script>', html,
                                   re.S).group(1))["messages"]
    for frame in frames:
        assert HAN.search(catalog[frame]) and "%(problem)s" in catalog[frame], frame
