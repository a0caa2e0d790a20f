"""A GET never writes or queues: the recommendation only reads (a timing probe is asked for with a POST a
member sends, deduplicated, bounded like job options, at most one waiting per worker), and reading the
release never inserts its row (the migrations make it)."""
from __future__ import annotations

import io

import pytest
import redis
from flask_migrate import upgrade
from sqlalchemy import delete, func, select

from tests.factories import app_with_user
from tests.images import class_files, zip_bytes
from tests.stack import app_config
from webapp import create_app
from webapp.accounts import services as accounts
from webapp.database import MIGRATIONS_DIR, upgrade_schema
from webapp.extensions import db
from webapp.models import Release
from webapp.release import services as release
from worker.beacon import WorkerBeacon

BIG = {"backbone": "resnet50", "image_size": 512, "batch_size": 1024}


def row_counts(app) -> dict[str, int]:
    with app.app_context():
        return {table.name: db.session.scalar(select(func.count()).select_from(table))
                for table in db.metadata.sorted_tables}


def broker_state(url: str) -> tuple[int, list]:
    """(messages waiting on the training queue, every key in Redis)."""
    client = redis.Redis.from_url(url)
    return client.llen("training"), sorted(client.keys())


def add_dataset(client) -> int:
    response = client.post("/api/datasets", content_type="multipart/form-data", data={
        "archive": (io.BytesIO(zip_bytes(class_files({"a": 5, "b": 5}))), "d.zip")})
    return response.get_json()["id"]


@pytest.fixture
def queue_app(tmp_path, redis_url_empty):
    """An app on a real Redis with one training worker announced in it."""
    app = create_app(app_config(tmp_path, REDIS_URL=redis_url_empty))
    upgrade_schema(app)
    WorkerBeacon(redis_url_empty, "trainer-1@box", ["training", "training.cpu"], "cpu").beat()
    return app


def test_recommendation_get_sends_nothing_to_the_queue_and_writes_no_row(queue_app):
    client = queue_app.test_client()
    dataset_id = add_dataset(client)
    url = queue_app.config["REDIS_URL"]
    rows, broker = row_counts(queue_app), broker_state(url)
    answer = client.get(f"/api/datasets/{dataset_id}/recommendation", query_string=BIG)
    assert answer.status_code == 200
    assert row_counts(queue_app) == rows and broker_state(url) == broker == (0, broker[1])
    body = answer.get_json()  # it says what is missing, so the form can ask for a probe
    assert body["estimate_exact"] is False and body["missing_measurements"][0] == BIG


def test_a_probe_is_asked_for_with_a_post_and_waits_once(queue_app):
    client = queue_app.test_client()
    url = queue_app.config["REDIS_URL"]
    asked = client.post("/api/timing-probes", json=BIG)
    assert asked.status_code == 202 and asked.get_json() == {**BIG, "status": "queued"}
    again = client.post("/api/timing-probes", json=BIG)  # the same combination: the waiting probe answers
    assert again.status_code == 200 and again.get_json()["status"] == "waiting"
    assert broker_state(url)[0] == 1


def test_at_most_one_probe_waits_per_worker(queue_app):
    client = queue_app.test_client()
    url = queue_app.config["REDIS_URL"]
    assert client.post("/api/timing-probes", json=BIG).status_code == 202
    other = {"backbone": "resnet18", "image_size": 64, "batch_size": 16}
    refused = client.post("/api/timing-probes", json=other)
    assert refused.status_code == 429 and refused.get_json()["code"] == "too_many_probes"
    assert refused.get_json()["retry_after"] > 0
    WorkerBeacon(url, "trainer-2@box", ["training"], "cpu").beat()  # a second worker: a second probe
    assert client.post("/api/timing-probes", json=other).status_code == 202
    assert broker_state(url)[0] == 2


def test_a_finished_probe_stops_waiting(queue_app, monkeypatch):
    from worker import probe

    monkeypatch.setattr(probe, "measure_seconds_per_image", lambda config, device: 0.02)
    client = queue_app.test_client()
    small = {"backbone": "resnet18", "image_size": 64, "batch_size": 16}
    assert client.post("/api/timing-probes", json=small).status_code == 202
    with queue_app.app_context():
        probe.measure_on_worker("trainer-1@box", "resnet18", 64, 16)
    done = client.post("/api/timing-probes", json=small)
    assert done.status_code == 200 and done.get_json()["status"] == "measured"
    assert client.post("/api/timing-probes", json=BIG).status_code == 202  # the worker's place is free again


def test_a_probe_the_broker_refuses_answers_503_and_frees_its_place(queue_app, monkeypatch):
    from kombu.exceptions import OperationalError

    def refused(*_args, **_kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    client = queue_app.test_client()
    monkeypatch.setattr(queue_app.extensions["celery"], "send_task", refused)
    answer = client.post("/api/timing-probes", json=BIG)
    assert answer.status_code == 503 and answer.get_json()["code"] == "queue_unavailable"
    monkeypatch.undo()
    assert client.post("/api/timing-probes", json=BIG).status_code == 202  # not "waiting" on a probe never sent


def test_a_probe_of_a_setting_no_job_may_use_is_refused(queue_app):
    client = queue_app.test_client()
    for body, field in [
        ({**BIG, "image_size": 1024}, "image_size"), ({**BIG, "image_size": 33}, "image_size"),
        ({**BIG, "batch_size": 1025}, "batch_size"), ({**BIG, "batch_size": 0}, "batch_size"),
        ({**BIG, "backbone": "vgg99"}, "backbone"), ({**BIG, "epochs": 3}, "epochs"),
        ({"backbone": "resnet18", "image_size": 64}, "batch_size"), ([BIG], "body"),
    ]:
        answer = client.post("/api/timing-probes", json=body)
        assert answer.status_code == 400 and answer.get_json()["field"] == field, body
    assert broker_state(queue_app.config["REDIS_URL"])[0] == 0


def test_a_probe_without_a_training_worker_is_refused(tmp_path, redis_url_empty):
    app = create_app(app_config(tmp_path, REDIS_URL=redis_url_empty))
    upgrade_schema(app)
    WorkerBeacon(redis_url_empty, "ingest-1@box", ["ingest"], None).beat()
    answer = app.test_client().post("/api/timing-probes", json=BIG)
    assert answer.status_code == 409 and answer.get_json()["code"] == "no_training_worker"
    assert broker_state(redis_url_empty)[0] == 0


def test_a_viewer_cannot_ask_for_a_probe(tmp_path):
    app = app_with_user(tmp_path, "vic", "a password 1", "viewer")
    with app.app_context():
        _, secret = accounts.create_token(accounts.find_user("vic"), "script")
    answer = app.test_client().post("/api/timing-probes", json=BIG, headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 403 and answer.get_json()["code"] == "forbidden"


def test_reading_the_release_without_its_row_inserts_nothing(app):
    with app.app_context():
        db.session.execute(delete(Release))
        db.session.commit()
    rows = row_counts(app)
    with app.app_context():
        state = release.current()
        assert (state.production, state.candidate, state.revision) == (None, None, 0)
        db.session.commit()
    client = app.test_client()
    assert client.get("/api/release").get_json()["production"] is None
    assert client.get("/api/models").status_code == 200
    assert row_counts(app) == rows and rows["release"] == 0


def test_the_migration_puts_back_a_missing_release_row(tmp_path):
    app = create_app(app_config(tmp_path))
    with app.app_context():
        upgrade(directory=MIGRATIONS_DIR, revision="0017")
        db.session.execute(delete(Release))
        db.session.commit()
    upgrade_schema(app)
    with app.app_context():
        row = db.session.get(Release, 1)
        assert row is not None and (row.production, row.candidate, row.revision) == (None, None, 0)
    upgrade_schema(app)  # again: still one row
    assert row_counts(app)["release"] == 1
