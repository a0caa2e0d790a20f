"""The production server that `make run` uses holds event streams open while everything else answers."""
from __future__ import annotations

import http.client
import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.factories import register_bundle
from tests.images import noisy_image
from tests.stack import fresh_app, production_server
from webapp.extensions import db
from webapp.models import Dataset, Job

pytestmark = pytest.mark.integration


@pytest.fixture
def server(stack, trained, tmp_path):
    """gunicorn serving a fresh data folder (one model, one queued job) against the stack's Redis."""
    app = fresh_app(stack, tmp_path)
    register_bundle(app, trained[1], 1)
    with app.app_context():
        dataset = Dataset(name="d", status="ready")
        db.session.add(dataset)
        db.session.flush()
        job = Job(dataset_id=dataset.id, dataset_name="d", status="queued", config={"epochs": 1})
        db.session.add(job)
        db.session.commit()
        job_id = job.id
    with production_server(stack, app) as port:
        yield port, job_id


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
    try:  # a request stuck behind the open streams would never be answered: its connection times out
        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(lambda seed: predict(port, noisy_image(seed, (220, 40, 40))), range(12)))
        assert all(status == 200 and body["class"] == "red" for status, body in answers), answers
        for path in ("/datasets", "/models", "/jobs", f"/jobs/{job_id}"):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("GET", path)
            response = connection.getresponse()
            assert response.status == 200 and b"<!doctype html>" in response.read().lower()[:200]
        keep_alive = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(3):  # one connection, several requests
            keep_alive.request("GET", "/api/models")
            response = keep_alive.getresponse()
            assert response.status == 200 and json.loads(response.read())["models"][0]["version"] == 1
    finally:
        for connection, _ in streams:
            connection.close()
