"""The production server that `make run` uses holds event streams open while everything else answers."""
from __future__ import annotations

import http.client
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from launcher import free_port, wait_for_port, web_process
from tests.factories import register_bundle
from tests.images import noisy_image
from tests.stack import app_config
from webapp import create_app
from webapp.database import upgrade_schema
from webapp.extensions import db
from webapp.models import Dataset, Job
from webapp.storage import DataDir

pytestmark = pytest.mark.integration


@pytest.fixture
def server(stack, trained, tmp_path):
    """gunicorn serving a fresh data folder (one model, one queued job) against the stack's Redis."""
    config = app_config(tmp_path, REDIS_URL=stack["config"]["REDIS_URL"])
    app = create_app(config)
    upgrade_schema(app)
    register_bundle(app, trained[1], 1)
    with app.app_context():
        dataset = Dataset(name="d", status="ready")
        db.session.add(dataset)
        db.session.flush()
        job = Job(dataset_id=dataset.id, dataset_name="d", status="queued", config={"epochs": 1})
        db.session.add(job)
        db.session.commit()
        job_id = job.id
    port = free_port()
    env = {**stack["env"], "DATA_DIR": str(tmp_path), "DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"]}
    web = web_process(DataDir(tmp_path), "127.0.0.1", port, env, threads=32).start()
    try:
        wait_for_port("127.0.0.1", port, web)
        yield port, job_id
    finally:
        web.stop()


def predict(port: int, data: bytes) -> tuple[int, dict]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n".encode()
            + data + f"\r\n--{boundary}--\r\n".encode())
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("POST", "/api/predict", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    response = connection.getresponse()
    answer = response.status, json.loads(response.read())
    connection.close()
    return answer


def test_ten_open_event_streams_leave_predictions_and_pages_answering(server):
    port, job_id = server
    streams = []
    for _ in range(10):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", f"/api/jobs/{job_id}/events")
        response = connection.getresponse()
        assert response.status == 200 and response.getheader("Content-Type").startswith("text/event-stream")
        assert response.readline() == b"event: snapshot\n"
        streams.append((connection, response))
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(lambda seed: predict(port, noisy_image(seed, (220, 40, 40))), range(12)))
        assert all(status == 200 and body["class"] == "red" for status, body in answers), answers
        for path in ("/datasets", "/models", "/jobs", f"/jobs/{job_id}"):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("GET", path)
            response = connection.getresponse()
            assert response.status == 200 and b"<!doctype html>" in response.read().lower()[:200]
        assert time.monotonic() - started < 60
        keep_alive = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(3):  # one connection, several requests
            keep_alive.request("GET", "/api/models")
            response = keep_alive.getresponse()
            assert response.status == 200 and json.loads(response.read())["models"][0]["version"] == 1
    finally:
        for connection, _ in streams:
            connection.close()
