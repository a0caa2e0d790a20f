"""Jobs routed to a kind of device, and the sweep that sends again the tasks a broker lost, against a real
Redis (without workers) and on SQLite and PostgreSQL."""
from __future__ import annotations

import base64
import io
import json
import re
from datetime import timedelta

import pytest
import redis

from tests.images import class_files, zip_bytes
from webapp.datasets.services import claim_ingest, ingest_upload
from webapp.extensions import db
from webapp.models import Dataset, Evaluation, Job, utcnow
from webapp.sweeper import LOCK_KEY, sweep_lost_tasks
from webapp.taskqueue import EVALUATE_TASK, INGEST_TASK, TRAIN_TASK, UnknownLayout, broker_messages
from webapp.workers import WorkerBeacon

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


def sweep(app, broker) -> list:
    broker.delete(LOCK_KEY)  # as if the sweep interval had passed
    with app.app_context():
        return sweep_lost_tasks(broker, interval=30)


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


def test_tasks_the_broker_lost_are_sent_again_on_the_second_sweep(app, client, broker, dataset_id):
    job_id = client.post("/api/jobs", json={"dataset_id": dataset_id, **FAST}).json["id"]
    with app.app_context():
        evaluation = Evaluation(version=1, dataset_id=dataset_id, dataset_name="pets", split="val")
        checking = Dataset(name="waiting to be checked", status="processing")
        db.session.add_all([evaluation, checking])
        db.session.commit()
        evaluation_id, checking_id = evaluation.id, checking.id
        first_task = db.session.get(Job, job_id).task_id
    assert sweep(app, broker) == []  # the job's message waits; the other two are seen missing once
    assert sweep(app, broker) == [(EVALUATE_TASK, evaluation_id), (INGEST_TASK, checking_id)]
    assert messages(broker, "ingest") == [(INGEST_TASK, checking_id)]

    broker.flushdb()  # Redis restarted without its data
    assert sweep(app, broker) == []  # once may fall between a commit and its send
    assert sweep(app, broker) == [(EVALUATE_TASK, evaluation_id), (INGEST_TASK, checking_id), (TRAIN_TASK, job_id)]
    assert (TRAIN_TASK, job_id) in messages(broker, "training")
    with app.app_context():
        assert db.session.get(Job, job_id).task_id != first_task
    assert sweep(app, broker) == [] and sweep(app, broker) == []  # nothing is sent twice


def test_a_task_being_run_counts_as_present_and_sweeps_take_turns(app, client, broker, dataset_id):
    job_id = client.post("/api/jobs", json={"dataset_id": dataset_id, **FAST}).json["id"]
    celery = app.extensions["celery"]
    with celery.connection_for_read() as connection:  # a worker takes the message, as kombu delivers it
        delivered = connection.SimpleQueue("training", no_ack=False).get(timeout=60)
        assert broker_messages(broker, ["training"], {}) == (set(), {(TRAIN_TASK, job_id)})
        assert sweep(app, broker) == [] and sweep(app, broker) == []  # being run: not lost
        delivered.ack()  # it ends without taking the job (its process was killed before the claim)
    assert broker_messages(broker, ["training"], {}) == (set(), set())
    assert sweep(app, broker) == []  # first sighting
    with app.app_context():
        assert sweep_lost_tasks(broker, interval=30) == []  # another process swept moments ago: not yet
    assert sweep(app, broker) == [(TRAIN_TASK, job_id)]


def test_messages_in_an_unknown_layout_stop_the_sweep_rather_than_flood_the_queue(app, client, broker, dataset_id):
    client.post("/api/jobs", json={"dataset_id": dataset_id, **FAST})
    broker.delete("training")
    broker.rpush("training", b"not a kombu message")
    with pytest.raises(UnknownLayout):
        sweep(app, broker)


def test_an_upload_is_checked_once_and_sent_again_only_when_its_check_stopped(app, broker):
    with app.app_context():
        dataset = Dataset(name="big upload", status="processing")
        db.session.add(dataset)
        db.session.commit()
        dataset_id = dataset.id
        assert claim_ingest(dataset_id) == 1  # a check took it (a worker, or the web request itself)
        assert claim_ingest(dataset_id) is None  # a second delivery while it makes progress: skipped
    assert sweep(app, broker) == [] and sweep(app, broker) == []  # being checked, so no message is needed

    def stall() -> None:
        with app.app_context():
            row = db.session.get(Dataset, dataset_id)
            row.ingest_heartbeat_at = utcnow() - timedelta(seconds=2 * app.config["JOB_STALE_SECONDS"])
            db.session.commit()

    stall()  # its check stopped (the worker died holding the message, or the web process stopped)
    assert sweep(app, broker) == [] and sweep(app, broker) == [(INGEST_TASK, dataset_id)]
    assert messages(broker, "ingest") == [(INGEST_TASK, dataset_id)]
    assert sweep(app, broker) == [] and sweep(app, broker) == []  # a message waits for it: not sent twice
    with app.app_context():
        assert claim_ingest(dataset_id) == 2
    stall()
    with app.app_context():
        db.session.get(Dataset, dataset_id).ingest_attempt = app.config["JOB_MAX_ATTEMPTS"]
        db.session.commit()
        failed = ingest_upload(dataset_id)
        assert failed.status == "failed" and "stopped 3 times" in failed.error


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
