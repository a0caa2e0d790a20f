"""Jobs routed to a kind of device, against a real Redis (without workers) and on SQLite and PostgreSQL.
The sweep that sends the tasks a broker lost is in tests/unit/webapp/test_lifecycle.py."""
from __future__ import annotations

import base64
import io
import json
import re

import pytest
import redis

from tests.images import class_files, zip_bytes
from webapp.extensions import db
from webapp.models import Job
from webapp.taskqueue import TRAIN_TASK
from worker.beacon import WorkerBeacon

FAST = {"backbone": "mobilenet_v3_small", "pretrained": False, "epochs": 1, "image_size": 32}


@pytest.fixture
def app_settings(redis_url_empty):
    return {"REDIS_URL": redis_url_empty}


@pytest.fixture
def app(app_on_each_database):
    return app_on_each_database


@pytest.fixture
def broker(app):
    return redis.Redis.from_url(app.config["REDIS_URL"])


@pytest.fixture
def dataset_id(client):
    response = client.post("/api/datasets", content_type="multipart/form-data", data={
        "archive": (io.BytesIO(zip_bytes(class_files({"猫": 3, "狗": 3}))), "pets.zip")})
    return response.get_json()["id"]


def messages(broker, queue: str) -> list[tuple[str, int]]:
    """(task, first argument) of each message waiting on `queue`."""
    return [(message["headers"]["task"], json.loads(base64.b64decode(message["body"]))[0][0])
            for message in map(json.loads, broker.lrange(queue, 0, -1))]


def test_a_job_for_a_device_kind_goes_to_its_queue_once_a_worker_serves_it(app, client, broker, dataset_id):
    refused = client.post("/api/jobs", json={"dataset_id": dataset_id, "device": "gpu", **FAST})
    assert refused.status_code == 409 and refused.json["code"] == "no_worker_for_device"
    assert "No worker trains on a GPU yet" in refused.json["error"] and refused.json["field"] == "device"
    chinese = client.post("/api/jobs", json={"dataset_id": dataset_id, "device": "gpu", **FAST},
                          headers={"Accept-Language": "zh-CN"})
    assert chinese.json["code"] == "no_worker_for_device" and "GPU" in chinese.json["error"]
    assert "No worker" not in chinese.json["error"]
    for value in ("tpu", "GPU ", "", 0, [], {"kind": "gpu"}, True):
        bad = client.post("/api/jobs", json={"dataset_id": dataset_id, "device": value, **FAST})
        assert bad.status_code == 400 and bad.json["field"] == "device" and "any, cpu, gpu" in bad.json["error"]
    with app.app_context():
        assert db.session.query(Job).count() == 0  # nothing was left behind by the refusals

    WorkerBeacon(app.config["REDIS_URL"], "gpu-1@box", ["training", "training.gpu"], "gpu:0").beat()
    routed = client.post("/api/jobs", json={"dataset_id": dataset_id, "device": "gpu", **FAST})
    assert routed.status_code == 202
    anywhere = client.post("/api/jobs", json={"dataset_id": dataset_id, "device": None, **FAST}).json["id"]
    assert messages(broker, "training.gpu") == [(TRAIN_TASK, routed.json["id"])]
    assert messages(broker, "training") == [(TRAIN_TASK, anywhere)]
    job = client.get(f"/api/jobs/{routed.json['id']}").json
    assert (job["device"], job["queue"]) == ("gpu", "training.gpu")
    assert client.get(f"/api/jobs/{anywhere}").json["device"] == "any"


def test_the_train_form_offers_the_device_kinds_that_a_worker_serves(app, client, dataset_id):
    def options() -> list[str]:
        html = client.get(f"/datasets/{dataset_id}").get_data(as_text=True)
        select = html[html.index('<select name="device"'):]
        select = select[:select.index("</select>")]
        return [" ".join(option.split()) for option in re.findall(r"<option [^>]*>[^<]*", select)]

    assert options() == ['<option value="any">Any worker', '<option value="cpu" disabled>CPU (no worker)',
                         '<option value="gpu" disabled>GPU (no worker)']
    WorkerBeacon(app.config["REDIS_URL"], "gpu-1@box", ["training", "training.gpu"], "gpu:0").beat()
    assert options()[2] == '<option value="gpu">GPU'
