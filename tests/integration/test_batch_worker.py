"""Batch prediction with the real stack (Redis, a batch worker process): a run whose CSV and JSON Lines rows equal
POST /api/predict's answers for the same images, with the bad files of the zip reported with the reason; a run
cancelled mid-way keeping its committed rows; a batch worker killed with SIGKILL mid-run, whose run goes on from
its committed rows on the next worker; and the `studio batch` command."""
from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from launcher import batch_worker_process
from tests.client_package import CLIENT_DIR
from tests.factories import register_bundle
from tests.images import image_bytes, zip_bytes
from tests.stack import serving
from webapp import create_app, lifecycle
from webapp.batch.services import BATCH_PREDICTIONS
from webapp.release import services as release
from webapp.storage import DataDir
from webapp.taskqueue import BATCH_WORKER_PREFIX

pytestmark = pytest.mark.integration
COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}
SLOW_IMAGES = 300  # one per commit on the slow worker: a run long enough to stop mid-way


@pytest.fixture(scope="module")
def version(stack, trained) -> int:
    """The shared trained bundle as a new model version of the stack (pinned by every run here)."""
    app = create_app(stack["config"])
    with app.app_context():
        number = max(release.catalog().versions, default=0) + 1
    register_bundle(app, trained[1], number)
    return number


def photos(count_per_class: int = 3) -> dict[str, bytes]:
    return {f"{name}/{n}.png": image_bytes(colour, size=(36 + n, 30), fmt="PNG")
            for name, colour in COLOURS.items() for n in range(count_per_class)}


def start(client, files: dict[str, bytes], version: int, **fields) -> dict:
    answer = client.post("/api/batch-predictions", content_type="multipart/form-data", data={
        "archive": (io.BytesIO(zip_bytes(files)), "photos.zip"), "version": str(version), **fields})
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()


def wait_for(client, batch_id: int, ready, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = client.get(f"/api/batch-predictions/{batch_id}").get_json()
        if ready(run):
            return run
        assert time.monotonic() < deadline, f"batch run {batch_id} never got there: {run}"
        time.sleep(0.05)


def ended(run: dict) -> bool:
    return run["status"] in ("succeeded", "failed", "cancelled")


def rows_of(client, batch_id: int) -> list[dict]:
    answer = client.get(f"/api/batch-predictions/{batch_id}/results.jsonl")
    assert answer.status_code == 200, answer.get_json()
    return [json.loads(line) for line in answer.get_data(as_text=True).splitlines()]


def test_a_run_answers_as_predict_does_and_reports_the_bad_files(stack_client, version):
    files = {**photos(), "notes.txt": b"plain words", "broken.jpg": image_bytes()[:60], "empty.png": b""}
    run = wait_for(stack_client, start(stack_client, files, version, top_k="2")["id"], ended)
    assert (run["status"], run["done"], run["total"], run["refused"]) == ("succeeded", 12, 12, 3), run["error"]
    assert run["summary"]["refused"] == {"empty_file": 1, "image_corrupt": 1, "not_an_image": 1}
    rows = rows_of(stack_client, run["id"])
    assert [row["path"] for row in rows] == list(files)
    for row in rows:
        if row["error"] is not None:
            assert row["class"] is None and row["reason"]
            continue
        answer = stack_client.post("/api/predict", data={"image": (io.BytesIO(files[row["path"]]), "x.png"),
                                                         "version": str(version), "top_k": "2"}).get_json()
        assert {key: row[key] for key in ("class", "confidence", "abstained", "top_k")} == \
            {key: answer[key] for key in ("class", "confidence", "abstained", "top_k")}
    table = list(csv.DictReader(io.StringIO(
        stack_client.get(f"/api/batch-predictions/{run['id']}/results.csv").get_data(as_text=True))))
    assert [(line["path"], line["error"]) for line in table] == [(row["path"], row["error"] or "") for row in rows]
    assert next(line for line in table if line["path"] == "broken.jpg")["reason"] == "The image is truncated or corrupt."
    assert not (DataDir(stack_client.application.config["DATA_DIR"]).batch(run["id"]) / "input").exists()


def test_studio_batch_starts_a_run_waits_and_downloads_its_results(stack_app, version, tmp_path):
    folder = tmp_path / "trip"
    for path, data in photos(2).items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    with serving(stack_app) as url:
        env = {**os.environ, "PYTHONPATH": str(CLIENT_DIR), "STUDIO_URL": url}
        done = subprocess.run([sys.executable, "-m", "studio_client.cli", "batch", str(folder), "--version",
                               str(version), "--top-k", "1", "--jsonl", "-O", str(tmp_path)], env=env,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "succeeded: 6/6 files, 0 refused" in done.stdout
    saved = tmp_path / done.stdout.split("results: ")[1].strip().rsplit("/", 1)[1]
    rows = [json.loads(line) for line in saved.read_text(encoding="utf-8").splitlines()]
    assert sorted(row["path"] for row in rows) == sorted(f"trip/{path}" for path in photos(2))
    assert all(len(row["top_k"]) == 1 for row in rows)


@pytest.fixture
def slow_worker(stack):
    """The stack's batch worker stopped, and a batch worker of this test's own in its place that commits every
    image (BATCH_PREDICT_SIZE=1) and beats every second; the stack's worker starts again afterwards."""
    stack["batch_worker"].stop()
    env = {**stack["env"], "BATCH_PREDICT_SIZE": "1", "JOB_HEARTBEAT_SECONDS": "1"}
    worker = batch_worker_process(DataDir(stack["data_dir"]), env, name="slow", service="batch-worker-slow").start()
    celery = create_app(stack["config"]).extensions["celery"]
    deadline = time.monotonic() + 60
    while f"{BATCH_WORKER_PREFIX}slow" not in {name.partition("@")[0] for reply in celery.control.ping(timeout=0.5)
                                                for name in reply}:
        assert time.monotonic() < deadline, "the slow batch worker did not start"
    try:
        yield worker
    finally:
        worker.stop()
        stack["batch_worker"].start()


def test_a_cancelled_run_keeps_its_committed_rows_and_a_killed_worker_s_run_goes_on(stack, stack_client, version,
                                                                                    slow_worker):
    files = photos(SLOW_IMAGES // 3)
    cancelled = start(stack_client, files, version)
    wait_for(stack_client, cancelled["id"], lambda run: run["done"] >= 2)
    assert stack_client.post(f"/api/batch-predictions/{cancelled['id']}/cancel").get_json()["cancel_requested"]
    stopped = wait_for(stack_client, cancelled["id"], ended)
    assert stopped["status"] == "cancelled" and 2 <= stopped["done"] < SLOW_IMAGES
    assert [row["path"] for row in rows_of(stack_client, cancelled["id"])] == list(files)[:stopped["done"]]

    killed = start(stack_client, files, version)
    wait_for(stack_client, killed["id"], lambda run: run["done"] >= 3)
    os.killpg(slow_worker.process.pid, signal.SIGKILL)  # as the kernel's OOM killer or a reboot would
    reaper = create_app({**stack["config"], "BATCH_STALE_SECONDS": 2})
    deadline = time.monotonic() + 60
    with reaper.app_context():
        while killed["id"] not in lifecycle.reap(BATCH_PREDICTIONS):  # gives it back to the queue and sends it
            assert time.monotonic() < deadline, "the killed worker's run was never given back"
            time.sleep(0.2)
    waiting = stack_client.get(f"/api/batch-predictions/{killed['id']}").get_json()
    assert (waiting["status"], waiting["retries"]) == ("queued", 1) and waiting["done"] >= 3
    stack["batch_worker"].start()  # the next worker (the stack's own) takes it
    run = wait_for(stack_client, killed["id"], ended)
    assert (run["status"], run["attempt"], run["done"], run["refused"]) == ("succeeded", 2, SLOW_IMAGES, 0)
    rows = rows_of(stack_client, killed["id"])
    assert [row["path"] for row in rows] == list(files)  # each file once, in order: nothing repeated or lost
    assert sum(run["summary"]["classes"].values()) + run["summary"]["abstained"] == SLOW_IMAGES
    stack["batch_worker"].stop()  # the fixture starts it again
