"""The issue's target with a real Redis and a real ingest worker (which serves the webhooks queue and runs
the watcher): a receiver on loopback, down for the first 5 tries and then answering 500 at random, gets
every event accepted exactly once per message id (retries reuse it), each signature verified by the
Standard Webhooks reference library."""
from __future__ import annotations

import os
import random
import time

import pytest
from standardwebhooks import Webhook

from launcher import free_port, ingest_worker_process, redis_password, redis_process, redis_url, wait_for_redis
from tests.stack import app_config
from tests.webhook_receiver import receiving
from webapp import create_app, webhooks
from webapp.database import upgrade_schema
from webapp.extensions import db
from webapp.models import WebhookDelivery, WebhookTry
from webapp.storage import DataDir

SETTINGS = {"WEBHOOK_RETRY_BASE_SECONDS": 0.2, "WEBHOOK_RETRY_MAX_DELAY_SECONDS": 0.8,
            "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8", "REAPER_INTERVAL_SECONDS": 0.2, "WEBHOOK_TIMEOUT_SECONDS": 2}
EVENTS = {"job.succeeded": {"job_id": 1}, "version.created": {"version": 3}, "release.changed": {"revision": 2},
          "batch.done": {"batch_id": 5, "status": "cancelled"}}


@pytest.fixture
def hooks_stack(tmp_path):
    """Redis and one ingest worker with the test's webhook settings, and an app on the same database."""
    folders = DataDir(tmp_path)
    port = free_port()
    redis = redis_process(folders, port, redis_password(folders)).start()
    worker = None
    try:
        url = redis_url(port, redis_password(folders))
        wait_for_redis(url)
        app = create_app(app_config(tmp_path, REDIS_URL=url, QUEUE_PUBLISH_RETRIES=2, **SETTINGS))
        upgrade_schema(app)
        env = {"DATA_DIR": str(tmp_path), "REDIS_URL": url, "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
               **{key: str(value) for key, value in SETTINGS.items()}}
        worker = ingest_worker_process(folders, {**os.environ, **env}, name=f"hooks{port}").start()
        yield app
    finally:
        if worker is not None:
            worker.stop()
        redis.stop()


def wait_until(test, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not test():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def tries(app) -> int:
    with app.app_context():
        return db.session.query(WebhookTry).count()


def test_every_event_is_accepted_once_per_id_through_downtime_and_random_500s(hooks_stack):
    app, port, chance = hooks_stack, free_port(), random.Random(27)
    client = app.test_client()
    endpoint = client.post("/api/webhooks", json={"url": f"http://127.0.0.1:{port}/hook",
                                                  "events": sorted(EVENTS)}).get_json()
    with app.app_context():
        for event, data in EVENTS.items():
            webhooks.emit(event, data)
        db.session.commit()
        ids = {row.message_id for row in db.session.query(WebhookDelivery)}
    assert len(ids) == len(EVENTS)
    wait_until(lambda: tries(app) >= 5, 20, "the worker never tried the receiver while it was down")
    with receiving(lambda request: chance.choice([200, 500]), port=port) as (_, received):
        accepted = lambda requests: {r["headers"]["webhook-id"] for r in requests if r["code"] == 200} == ids
        assert received.wait_for(accepted, timeout=25), "not every event was accepted"
        wait_until(lambda: _all_delivered(app), 5, "a delivery was accepted but not recorded")
    by_id = {}
    for request in received.requests:
        payload = Webhook(endpoint["secret"]).verify(request["body"], request["headers"])
        assert EVENTS[payload["type"]] == payload["data"]
        by_id.setdefault(request["headers"]["webhook-id"], []).append(request["code"])
    assert set(by_id) == ids and all(codes.count(200) == 1 and codes[-1] == 200 for codes in by_id.values())
    with app.app_context():
        logged = db.session.query(WebhookTry).all()
        assert sum(1 for one in logged if one.status_code is None and "Connection" in one.error) >= 5
        assert len(logged) == tries(app) >= len(received.requests) + 5


def _all_delivered(app) -> bool:
    with app.app_context():
        return {row.status for row in db.session.query(WebhookDelivery)} == {"delivered"}
