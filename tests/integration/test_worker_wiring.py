"""The web app and a real worker meet through a real Redis."""
import io
import socket
import time

import pytest

from tests.images import class_files, zip_bytes
from tests.stack import upload_dataset
from webapp.taskqueue import DESCRIBE_TASK

pytestmark = pytest.mark.integration


def test_task_round_trip_runs_in_an_app_context(stack_app, stack_client):
    before = stack_app.extensions["celery"].send_task(DESCRIBE_TASK).get(timeout=300)
    dataset = upload_dataset(stack_client, {"archive": (io.BytesIO(zip_bytes(class_files({"a": 2, "b": 2}))), "x.zip")})
    assert dataset["status"] == "ready" and dataset["num_images"] == 4
    after = stack_app.extensions["celery"].send_task(DESCRIBE_TASK).get(timeout=300)
    assert after["datasets"] == before["datasets"] + 1
    assert after["device"] == "cpu" and after["paddle"].startswith("3.")


def test_health_sees_redis_and_the_worker(stack_client):
    response = stack_client.get("/api/health")
    body = response.get_json()
    assert response.status_code == 200
    assert body["status"] == "ok" and body["redis"] == "ok" and body["database"] == "ok"
    # each worker announces its host, queues and (training) device
    by_queue = {worker["queues"][0]: worker for worker in body["workers"]}
    assert set(by_queue) == {"ingest", "training", "batch"}
    ingest, training, batch = by_queue["ingest"], by_queue["training"], by_queue["batch"]
    assert ingest["name"].startswith("ingest-test") and ingest["queues"] == ["ingest", "webhooks"] and ingest["device"] is None
    assert batch["name"].startswith("batch-test") and batch["queues"] == ["batch", "maintenance"]
    assert training["name"].startswith("test") and training["queues"][0] == "training"
    assert training["queues"] in (["training"], ["training", "training.cpu"])  # the second once its device is known
    assert training["host"] == socket.gethostname() and training["heartbeat_at"].endswith("+00:00")
    assert training["job_id"] is None and body["training_workers"] == 1


def test_the_training_worker_reports_its_device(stack_app):
    deadline = time.monotonic() + 300  # the device is probed once, in a child process, as the worker starts
    while time.monotonic() < deadline:
        stack_app.extensions.pop("health_workers", None)
        workers = stack_app.test_client().get("/api/health").get_json()["workers"]
        training = [w for w in workers if "training" in w["queues"]]
        if training and training[0]["device"] and len(training[0]["queues"]) == 2:
            assert training[0]["device"] == "cpu"
            assert training[0]["queues"] == ["training", "training.cpu"]  # it takes the jobs for its kind too
            return
        time.sleep(1)
    raise AssertionError("the training worker never reported its device and took its device kind's queue")
