"""Training through the API with a real Redis and a real Celery worker process."""
from __future__ import annotations

import io
import json
import os
import signal
import time
import urllib.request
from contextlib import contextmanager

import pytest

from engine.bundle import read_bundle
from tests.images import noisy_image, zip_bytes
from tests.stack import running_stack, upload_dataset
from webapp import create_app
from worker.loops import start_watcher
from webapp.taskqueue import TRAIN_TASK

pytestmark = pytest.mark.integration
COLOURS = {"红色": (220, 40, 40), "绿色": (40, 200, 60), "蓝色": (40, 60, 220)}
EPOCHS_TO_KILL = 60  # a job killed mid-way: it must still be running when the kill comes
FAST = {"backbone": "mobilenet_v3_small", "pretrained": False, "epochs": 3, "batch_size": 8,
        "image_size": 32, "learning_rate": 0.003, "warmup_epochs": 0}


def upload_colours(client, per_class: int = 40, seed: int = 0) -> int:
    files = {f"{name}/{n}.png": noisy_image(seed + i * 1000 + n, colour)
             for i, (name, colour) in enumerate(COLOURS.items()) for n in range(per_class)}
    dataset = upload_dataset(client, {"archive": (io.BytesIO(zip_bytes(files)), "colours.zip")})
    assert dataset["status"] == "ready"
    return dataset["id"]


def start(client, dataset_id: int, **options) -> int:
    response = client.post("/api/jobs", json={"dataset_id": dataset_id, **FAST, **options})
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["status"] == "queued"
    return response.get_json()["id"]


def wait_for(client, job_id: int, condition, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").get_json()
        if condition(job):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} never reached the condition: {job}")


def finished(job) -> bool:
    return job["finished"]


@contextmanager
def worker_held(client, dataset_id: int):
    """The stack's one training worker kept busy by a long job, so that a job started meanwhile waits in the
    queue and whoever watches it (an event stream, a page) is watching before its first event; yields the
    function that cancels the long job and lets the queue move (called again on leaving, if need be)."""
    holder = start(client, dataset_id, epochs=500)
    wait_for(client, holder, lambda job: job["status"] == "running" and job["step"] > 0)

    def release() -> None:
        if not client.get(f"/api/jobs/{holder}").get_json()["finished"]:
            client.post(f"/api/jobs/{holder}/cancel")

    try:
        yield release
    finally:
        release()
        wait_for(client, holder, finished)


@pytest.fixture(scope="module")
def colours(stack):
    return upload_colours(create_app(stack["config"]).test_client())


def test_job_trains_exports_a_bundle_and_a_version(stack, stack_client, colours):
    job_id = start(stack_client, colours)
    job = wait_for(stack_client, job_id, finished)
    assert job["status"] == "succeeded", job["error"]
    assert [e["epoch"] for e in job["epochs"]] == [1, 2, 3]
    assert job["best_val_acc"] >= 0.8
    assert job["classes"] == sorted(COLOURS)
    assert sum(map(sum, job["confusion"])) == 24
    assert job["model_version"] is not None and job["progress"] == 1.0
    bundle = stack["data_dir"] / "models" / str(job["model_version"])
    meta = read_bundle(bundle).meta
    assert meta["classes"] == sorted(COLOURS) and meta["dataset"]["id"] == colours
    assert meta["metrics"]["val_acc"] == job["best_val_acc"]
    assert job["test"] is None and meta["metrics"]["test"] is None  # no test split in this dataset
    assert meta["int8"] is None and "model.int8.onnx" not in meta["files"]  # made only when asked for
    # where and how it trained: the worker's CPU, named by its model, in float32 (mixed precision is the GPU's)
    assert job["trained_on"] == "cpu" and job["device_model"]
    assert job["precision"] == meta["precision"] == "float32"
    assert not list((stack["data_dir"] / "models").glob(".staging-*"))
    assert any((stack["data_dir"] / "visualdl" / f"job-{job_id}").iterdir())


def test_estimates_come_from_the_workers_own_measurements(stack, stack_client, colours):
    """A finished job's epochs measured the worker; an unmeasured combination is timed by a probe task."""
    job = wait_for(stack_client, start(stack_client, colours, epochs=1), finished)
    assert job["status"] == "succeeded", job["error"]
    query = "backbone=mobilenet_v3_small&image_size=32&batch_size=8&epochs=1&learning_rate=0.003"
    measured = stack_client.get(f"/api/datasets/{colours}/recommendation?{query}").get_json()
    assert measured["measured_on"] == job["worker"] and measured["estimate_exact"] is True
    assert 0 < measured["estimate_seconds"] < job["duration_seconds"] * 3

    probe_query = "backbone=resnet18&image_size=40&batch_size=4"
    first = stack_client.get(f"/api/datasets/{colours}/recommendation?{probe_query}").get_json()
    assert first["estimate_exact"] is False  # scaled from the mobilenet measurement until a probe answers
    missing = first["missing_measurements"][0]
    assert missing == {"backbone": "resnet18", "image_size": 40, "batch_size": 4}
    assert stack_client.post("/api/timing-probes", json=missing).get_json()["status"] == "queued"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        answer = stack_client.get(f"/api/datasets/{colours}/recommendation?{probe_query}").get_json()
        if answer["estimate_exact"]:
            break
        time.sleep(0.5)
    assert answer["estimate_exact"] is True and answer["measured_on"] == job["worker"]
    assert answer["estimate_seconds"] > 0


def test_a_test_split_is_evaluated_on_the_best_epoch_and_kept_apart(stack, stack_client):
    files = {f"{split}/{name}/{n}.png": noisy_image(70_000 + i * 100 + offset + n, colour)
             for split, count, offset in (("train", 12, 0), ("val", 3, 30), ("test", 4, 60))
             for i, (name, colour) in enumerate(COLOURS.items()) for n in range(count)}
    upload = upload_dataset(stack_client, {"archive": (io.BytesIO(zip_bytes(files)), "split.zip")})
    assert upload["status"] == "ready"
    job = wait_for(stack_client, start(stack_client, upload["id"], epochs=2), finished)
    assert job["status"] == "succeeded", job["error"]
    test = job["test"]
    assert test["images"] == 12 and sum(map(sum, test["confusion"])) == 12 and sum(map(sum, job["confusion"])) == 9
    assert 0 <= test["accuracy"] <= 1 and [row["class"] for row in test["per_class"]] == sorted(COLOURS)
    assert sum(row["support"] for row in test["per_class"]) == 12
    meta = read_bundle(stack["data_dir"] / "models" / str(job["model_version"])).meta
    assert meta["metrics"]["test"] == test and meta["metrics"]["calibration"]["split"] == "test"
    version = stack_client.get(f"/api/models/{job['model_version']}").get_json()
    assert version["metrics"]["test"]["accuracy"] == test["accuracy"]
    assert version["suggested_threshold"] is None or version["suggested_threshold"]["calibrated_on"] == \
        "test split of revision 1 at training"
    for split, matrix in (("val", job["confusion"]), ("test", test["confusion"])):
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                cell = stack_client.get(f"/api/jobs/{job['id']}/confusion/{split}/{i}/{j}").get_json()
                assert cell["count"] == count and len(cell["items"]) == count
                assert all(item["top"][0]["class"] == cell["predicted"] for item in cell["items"])
                assert all(stack_client.get(item["thumbnail_url"]).status_code == 200 for item in cell["items"])


def test_a_student_distilled_from_a_trained_version(stack, stack_client, colours):
    teacher = wait_for(stack_client, start(stack_client, colours, epochs=2), finished)
    assert teacher["status"] == "succeeded", teacher["error"]
    job = wait_for(stack_client, start(stack_client, colours, epochs=2, image_size=40,
                                       teacher_version=teacher["model_version"], distill_temperature=3,
                                       distill_weight=0.6), finished)
    assert job["status"] == "succeeded", job["error"]
    assert (job["config"]["teacher_version"], job["config"]["distill_weight"]) == (teacher["model_version"], 0.6)
    version = stack_client.get(f"/api/models/{job['model_version']}").get_json()
    assert version["teacher_version"] == teacher["model_version"] and version["config"]["distill_temperature"] == 3
    listed = {m["version"]: m for m in stack_client.get("/api/models").get_json()["models"]}
    assert listed[job["model_version"]]["teacher_version"] == teacher["model_version"]

    # continue training from the teacher's kept weights
    continued = wait_for(stack_client, start(stack_client, colours, epochs=1, init_version=teacher["model_version"]),
                         finished)
    assert continued["status"] == "succeeded", continued["error"]
    assert continued["epochs"][0]["val_acc"] >= teacher["best_val_acc"] - 0.2  # it starts from a trained model
    assert stack_client.get(f"/api/models/{continued['model_version']}").get_json()["init_version"] == \
        teacher["model_version"]


def test_an_int8_variant_is_judged_at_export_and_reported(stack, stack_client, colours):
    job = wait_for(stack_client, start(stack_client, colours, epochs=1, export_int8=True,
                                       int8_max_accuracy_drop=5), finished)
    assert job["status"] == "succeeded", job["error"]
    meta = read_bundle(stack["data_dir"] / "models" / str(job["model_version"])).meta
    report = meta["int8"]
    assert report["max_accuracy_drop_points"] == 5 and report["val_images"] == 24
    assert {"float_accuracy", "int8_accuracy", "float_ms", "int8_ms"} <= set(report)
    assert ("model.int8.onnx" in meta["files"]) == report["used"]
    assert ("onnx_int8" in next(iter(meta["runtimes"].values()))["ms"]) == report["used"]
    version = stack_client.get(f"/api/models/{job['model_version']}").get_json()
    # the API shows the bundle's report, its reason (when int8 is not used) in the reader's language
    assert version["serving"]["int8"] == {k: v for k, v in report.items() if k not in ("reason_template",
                                                                                        "reason_params")}
    if not report["used"]:
        assert report["reason_template"] and version["serving"]["int8"]["reason"] == report["reason"]


def test_second_delivery_of_a_finished_job_is_skipped(stack, stack_app, stack_client, colours):
    job_id = start(stack_client, colours, epochs=1)
    job = wait_for(stack_client, job_id, finished)
    result = stack_app.extensions["celery"].send_task(TRAIN_TASK, args=[job_id], ignore_result=False)
    assert result.get(timeout=300) == "skipped"
    again = stack_client.get(f"/api/jobs/{job_id}").get_json()
    assert again["epochs"] == job["epochs"] and again["model_version"] == job["model_version"]


def test_live_events_stream_progress_epochs_and_the_end(stack, live_server, stack_client, colours):
    seen = []
    with worker_held(stack_client, colours) as release:
        job_id = start(stack_client, colours)  # it waits: the stream below opens before it starts
        stream = urllib.request.urlopen(f"{live_server}/api/jobs/{job_id}/events", timeout=300)
        release()
    with stream:
        event = None
        for raw in stream:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                seen.append((event, json.loads(line[6:])))
    kinds = [kind for kind, _ in seen]
    assert kinds[0] == "snapshot" and seen[0][1]["id"] == job_id
    assert seen[0][1]["status"] == "queued" and seen[0][1]["epochs"] == []
    assert "progress" in kinds and kinds.count("epoch") == 3
    assert seen[-1] == ("status", {"type": "status", "status": "succeeded", "finished": True, "error": None})
    steps = [data for kind, data in seen if kind == "progress" and data.get("phase") == "training"]
    assert steps and all(0 < step["progress"] <= 1 for step in steps)


def test_cancel_running_and_queued_jobs(stack_client, colours):
    running = start(stack_client, colours, epochs=200)
    queued = start(stack_client, colours, epochs=1)
    wait_for(stack_client, running, lambda job: job["status"] == "running" and job["step"] > 0)
    waiting = stack_client.get(f"/api/jobs/{queued}").get_json()
    assert waiting["status"] == "queued" and waiting["queue_position"] == 1
    assert stack_client.post(f"/api/jobs/{queued}/cancel").get_json()["status"] == "cancelled"
    response = stack_client.post(f"/api/jobs/{running}/cancel")
    assert response.get_json() == {"id": running, "status": "running", "cancel_requested": True}
    job = wait_for(stack_client, running, finished)
    assert job["status"] == "cancelled" and "Cancelled on request" in job["error"]
    assert job["model_version"] is None
    assert stack_client.post(f"/api/jobs/{running}/cancel").status_code == 409
    assert stack_client.get(f"/api/jobs/{queued}").get_json()["epochs"] == []


def test_missing_pretrained_weights_fail_fast_with_instructions(stack_client, colours):
    job_id = start(stack_client, colours, pretrained=True, backbone="pp_lcnet_x1_0")
    job = wait_for(stack_client, job_id, finished)
    assert job["status"] == "failed"
    assert "PPLCNet_x1_0_pretrained.pdparams" in job["error"] and "weights" in job["error"]
    assert job["epochs"] == [] and job["step"] == 0  # refused before any training, not after


def test_broken_image_on_disk_fails_with_a_readable_error(stack, stack_client):
    dataset_id = upload_colours(stack_client, per_class=4, seed=50_000)  # not in the decode cache yet
    for image in (stack["data_dir"] / "datasets" / str(dataset_id) / "images").iterdir():
        image.write_bytes(b"disk corruption")
        break
    job = wait_for(stack_client, start(stack_client, dataset_id), finished)
    assert job["status"] == "failed"
    assert "UnidentifiedImageError" in job["error"] and "Traceback" in job["traceback"]


def test_the_job_of_a_killed_worker_resumes_from_its_checkpoint_on_the_next_worker(tmp_path):
    settings = {"JOB_HEARTBEAT_SECONDS": 1, "JOB_STALE_SECONDS": 5, "REAPER_INTERVAL_SECONDS": 1}
    with running_stack(tmp_path, **settings) as own:
        app = create_app(own["config"])
        client = app.test_client()
        # enough epochs that the job is still running when the worker is killed, however slow this test's
        # own process is between seeing the second epoch and the kill
        job_id = start(client, upload_colours(client, per_class=6), epochs=EPOCHS_TO_KILL)
        wait_for(client, job_id, lambda job: len(job["epochs"]) >= 2 and job["checkpoint_bytes"] > 0)
        os.killpg(own["worker"].process.pid, signal.SIGKILL)  # as the kernel's OOM killer or a reboot would
        stop = start_watcher(app)
        try:
            requeued = wait_for(client, job_id, lambda job: job["status"] == "queued")
            assert requeued["retries"] == 1 and requeued["error"] is None
            own["worker"].start()  # the launcher starts a dead worker again
            job = wait_for(client, job_id, finished, timeout=300)
        finally:
            stop.set()
        assert job["status"] == "succeeded", job["error"]
        assert (job["attempt"], job["retries"]) == (2, 1) and job["resumed_from_epoch"] >= 1
        assert [epoch["epoch"] for epoch in job["epochs"]] == list(range(1, EPOCHS_TO_KILL + 1))  # never repeated
        assert job["model_version"] is not None
        folder = tmp_path / "checkpoints" / f"job-{job_id}"
        assert sorted(p.name for p in folder.iterdir()) == ["best.json", "best.pdparams"]
        assert job["checkpoint_bytes"] == sum(p.stat().st_size for p in folder.iterdir())


def test_a_job_whose_worker_dies_on_every_attempt_fails_with_the_reason(tmp_path):
    settings = {"JOB_HEARTBEAT_SECONDS": 1, "JOB_STALE_SECONDS": 5, "REAPER_INTERVAL_SECONDS": 1,
                "JOB_MAX_ATTEMPTS": 1}
    with running_stack(tmp_path, **settings) as own:
        app = create_app(own["config"])
        client = app.test_client()
        job_id = start(client, upload_colours(client, per_class=6), epochs=500)
        wait_for(client, job_id, lambda job: job["status"] == "running" and job["step"] > 0)
        os.killpg(own["worker"].process.pid, signal.SIGKILL)
        stop = start_watcher(app)
        try:
            job = wait_for(client, job_id, finished)
        finally:
            stop.set()
        assert job["status"] == "failed" and "stopped responding" in job["error"] and "after 1 attempt." in job["error"]
