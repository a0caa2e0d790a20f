"""A real Prometheus (Debian's) scrapes /metrics of the production server run with two web processes, with the
scrape token, and its query of the predictions counter sums what both processes answered."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from launcher import free_port, wait_for_port, web_process
from tests.factories import register_bundle
from tests.images import noisy_image
from tests.integration.test_web_server import predict
from tests.stack import fresh_app
from webapp.storage import DataDir

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PROMETHEUS = Path("/usr/bin/prometheus")
SCRAPE_TOKEN = "scrape-token-for-the-test"
PREDICTIONS = 12


def scrape_config(folder: Path, port: int) -> Path:
    """prometheus.yml: the studio every second, with the scrape token as bearer."""
    config = folder / "prometheus.yml"
    config.write_text(json.dumps({  # YAML reads JSON
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "studio", "metrics_path": "/metrics",
                            "authorization": {"type": "Bearer", "credentials": SCRAPE_TOKEN},
                            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}]}))
    return config


def query(port: int, expression: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())["data"]["result"]


def wait_for_value(port: int, expression: str, expected: float, timeout: float = 30) -> float | None:
    """Poll Prometheus until `expression` equals `expected` (or the deadline passes); the last value seen."""
    deadline, seen = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        result = query(port, expression)
        seen = float(result[0]["value"][1]) if result else None
        if seen == expected:
            return seen
        time.sleep(0.2)
    return seen


@pytest.fixture
def prometheus(tmp_path):
    """start(target port): Debian's Prometheus on loopback with its own storage, scraping the target every
    second; returns its own port once it is ready."""
    if not PROMETHEUS.exists() or shutil.which("promtool") is None:
        pytest.skip("Debian's prometheus package is not installed")
    processes = []

    def start(target_port: int) -> int:
        port = free_port()
        process = subprocess.Popen(
            [str(PROMETHEUS), f"--config.file={scrape_config(tmp_path, target_port)}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
             "--log.level=warn"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(process)
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1).close()
                return port
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"prometheus did not become ready (exit code {process.poll()})")

    yield start
    for process in processes:
        process.terminate()
        process.wait(10)


def test_prometheus_counts_every_prediction_of_both_web_processes(stack, trained, tmp_path, prometheus):
    app = fresh_app(stack, tmp_path / "studio")
    register_bundle(app, trained[1], 1)
    port, figures = free_port(), DataDir(app.config["DATA_DIR"]).metrics
    prometheus_port = prometheus(port)  # it starts while the studio does, and scrapes it once it answers
    web = web_process(DataDir(app.config["DATA_DIR"]), "127.0.0.1", port, {
        **stack["env"], "DATA_DIR": app.config["DATA_DIR"], "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "METRICS_TOKEN": SCRAPE_TOKEN, "AUTH": "on", "PREDICT_PUBLIC": "on"}, processes=2, threads=4).start()
    try:
        wait_for_port("127.0.0.1", port, web)
        with ThreadPoolExecutor(max_workers=4) as pool:  # spread over both processes
            answers = list(pool.map(lambda seed: predict(port, noisy_image(seed, (220, 40, 40))),
                                    range(PREDICTIONS)))
        assert [status for status, _ in answers] == [200] * PREDICTIONS
        assert wait_for_value(prometheus_port, "sum(studio_predictions_total)", PREDICTIONS) == PREDICTIONS
        assert query(prometheus_port, 'up{job="studio"}')[0]["value"][1] == "1"
        assert wait_for_value(prometheus_port, 'sum(studio_workers{queue="training"})', 1) == 1
        folders = list(figures.glob("web-*"))  # this start's, where every web process counts
        assert len(folders) == 1 and list(folders[0].glob("counter_*.db"))
    finally:
        web.stop()
    assert list(figures.glob("web-*")) == []  # removed when the server stopped
