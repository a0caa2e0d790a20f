"""The webhook API and a delivery's life, run in this process against a receiver on loopback: endpoints
registered with their secret shown once, events queued in the caller's transaction, tries logged, retried
on a schedule, resent with the same message id."""
from __future__ import annotations

import json
import shutil
import stat
from datetime import timedelta

import pytest
import redis
from standardwebhooks import Webhook

from tests.stack import DATABASE_FILE, app_config
from tests.webhook_receiver import receiving
from webapp import create_app, lifecycle, redis_keys, webhooks
from webapp.extensions import db
from webapp.jobs.work import JOBS
from webapp.models import AuditEntry, Dataset, Job, WebhookDelivery, WebhookEndpoint, utcnow
from webapp.statuses import JobStatus
from webapp.storage import data_dir
from webapp.webhooks.delivery import WEBHOOK_DELIVERIES, next_try_at, retry_delay, run_delivery
from worker.beacon import WorkerBeacon
from worker.loops import watch_once


@pytest.fixture
def app(tmp_path, migrated_sqlite, redis_url_empty):
    shutil.copyfile(migrated_sqlite, tmp_path / DATABASE_FILE)
    return create_app(app_config(tmp_path, REDIS_URL=redis_url_empty, WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
                                 WEBHOOK_RETRY_BASE_SECONDS=0.2, WEBHOOK_RETRY_MAX_DELAY_SECONDS=60,
                                 WEBHOOK_RETRY_FOR_SECONDS=3600))


def register(client, url: str, events=("test",), **fields) -> dict:
    answer = client.post("/api/webhooks", json={"url": url, "events": list(events), **fields})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def test_the_retry_schedule_doubles_up_to_the_longest_wait_and_ends_after_a_day(app):
    assert [retry_delay(n, 30, 3 * 3600) for n in (1, 2, 3, 4, 10, 30)] == [30, 60, 120, 240, 10800, 10800]
    with app.app_context():
        app.config.update(WEBHOOK_RETRY_BASE_SECONDS=30, WEBHOOK_RETRY_MAX_DELAY_SECONDS=3 * 3600,
                          WEBHOOK_RETRY_FOR_SECONDS=24 * 3600)
        start = utcnow()
        assert next_try_at(start, 3, start + timedelta(seconds=90)) == start + timedelta(seconds=210)
        assert next_try_at(start, 12, start + timedelta(hours=20)) == start + timedelta(hours=23)
        assert next_try_at(start, 13, start + timedelta(hours=22)) is None  # past the day: the delivery fails


def test_an_endpoint_is_registered_with_its_secret_shown_once(app, client):
    created = register(client, "http://127.0.0.1:9/in", events=["job.failed", "job.succeeded", "job.failed"],
                       description="CI")
    assert created["secret"].startswith("whsec_") and created["events"] == ["job.failed", "job.succeeded"]
    assert created["enabled"] is True and created["description"] == "CI"
    with app.app_context():
        path = data_dir().webhook_secret(created["id"])
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and created["secret"] in path.read_text()
    listed = client.get("/api/webhooks").get_json()
    assert listed["events"] == list(webhooks.EVENTS)
    assert [endpoint["url"] for endpoint in listed["endpoints"]] == ["http://127.0.0.1:9/in"]
    assert "secret" not in listed["endpoints"][0] and "secret" not in client.get(f"/api/webhooks/{created['id']}").get_json()
    changed = client.put(f"/api/webhooks/{created['id']}", json={"enabled": False, "events": ["batch.done"]}).get_json()
    assert changed["enabled"] is False and changed["events"] == ["batch.done"] and changed["description"] == "CI"
    rotated = client.post(f"/api/webhooks/{created['id']}/rotate").get_json()
    assert rotated["secret"] != created["secret"] and rotated["rotated_at"]
    assert client.delete(f"/api/webhooks/{created['id']}").get_json() == {"deleted": created["id"]}
    assert client.get(f"/api/webhooks/{created['id']}").get_json()["code"] == "webhook_not_found"
    with app.app_context():
        assert not path.exists()
        logged = db.session.execute(db.select(AuditEntry.action, AuditEntry.details).where(
            AuditEntry.subject_type == "webhook").order_by(AuditEntry.id)).all()
    assert [action for action, _ in logged] == ["webhook.create", "webhook.change", "webhook.rotate",
                                                "webhook.delete"]
    assert logged[1][1] == {"enabled": False, "events": ["batch.done"]}
    assert all("whsec_" not in json.dumps(details) for _, details in logged)  # never the secret


@pytest.mark.parametrize("body,code,field", [
    ({"url": "ftp://hooks.example/", "events": ["test"]}, "webhook_url_refused", "url"),
    ({"url": "https://me:pw@hooks.example/", "events": ["test"]}, "webhook_url_refused", "url"),
    ({"url": "https://hooks.example/", "events": ["job.exploded"]}, "invalid_field", "events.0"),
    ({"url": "https://hooks.example/", "events": []}, "invalid_field", "events"),
    ({"events": ["test"]}, "invalid_field", "url"),
])
def test_bad_endpoints_are_refused_with_a_code(client, body, code, field):
    answer = client.post("/api/webhooks", json=body)
    refused = answer.get_json()
    assert answer.status_code == 400 and refused["code"] == code and refused["field"] == field and refused["error"]


def test_events_are_queued_in_the_callers_transaction_for_the_endpoints_that_want_them(app, client):
    wants = register(client, "http://127.0.0.1:9/a", events=["version.created"])
    register(client, "http://127.0.0.1:9/b", events=["job.failed"])
    register(client, "http://127.0.0.1:9/c", events=["version.created"], enabled=False)
    with app.app_context():
        webhooks.emit("version.created", {"version": 4})
        db.session.rollback()  # the caller's transaction did not happen: neither did its event
        assert db.session.query(WebhookDelivery).count() == 0
        [row] = webhooks.emit("version.created", {"version": 5})
        db.session.commit()
        row = db.session.get(WebhookDelivery, row.id)
        assert row.endpoint_id == wants["id"] and row.message_id.startswith("msg_") and row.status == "pending"
        assert row.sent_at is not None  # its task went to the broker right after the commit
        with pytest.raises(ValueError):
            webhooks.emit("job.exploded", {})


def test_a_lost_worker_is_told_once(app, client):
    register(client, "http://127.0.0.1:9/a", events=["worker.lost"])
    with app.app_context():
        webhooks.worker_lost("training@box")
        webhooks.worker_lost("training@box")
        webhooks.worker_lost("other@box")
        db.session.commit()
        assert sorted(row.subject for row in db.session.query(WebhookDelivery)) == ["worker:other@box",
                                                                                    "worker:training@box"]


def test_a_delivery_is_signed_retried_on_schedule_logged_and_resent_with_its_id(app, client):
    codes = iter([500, 200, 204])
    with receiving(lambda request: next(codes)) as (url, received):
        endpoint = register(client, url + "/hook")
        delivery = client.post(f"/api/webhooks/{endpoint['id']}/test").get_json()
        assert delivery["status"] == "pending" and delivery["payload"]["type"] == "test"
        with app.app_context():
            assert run_delivery(delivery["id"], "ingest@box") == "pending"  # 500: waits for its backoff
            row = db.session.get(WebhookDelivery, delivery["id"])
            assert row.failures == 1 and row.last_status_code == 500 and row.sent_at is None
            waited = (row.next_attempt_at - row.queued_at).total_seconds()
            assert 0.15 <= waited <= 0.25
            assert lifecycle.sweep_outbox(WEBHOOK_DELIVERIES, lambda seconds: set(), grace=0) == []  # not yet due
            db.session.execute(db.update(WebhookDelivery).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
            db.session.commit()
            assert lifecycle.sweep_outbox(WEBHOOK_DELIVERIES, lambda seconds: set(), grace=0) == [delivery["id"]]
            assert run_delivery(delivery["id"], "ingest@box") == "delivered"
            assert run_delivery(delivery["id"], "ingest@box") == "taken"  # a second message finds it taken
        shown = client.get(f"/api/webhooks/{endpoint['id']}/deliveries").get_json()
        [listed] = shown["deliveries"]
        assert listed["status"] == "delivered" and listed["last_status_code"] == 200 and listed["error"] is None
        assert [one["status_code"] for one in listed["tries"]] == [500, 200]
        assert shown["next_before"] is None
        resent = client.post(f"/api/webhooks/{endpoint['id']}/deliveries/{delivery['id']}/resend").get_json()
        assert resent["status"] == "pending" and resent["message_id"] == delivery["message_id"]
        again = client.post(f"/api/webhooks/{endpoint['id']}/deliveries/{delivery['id']}/resend").get_json()
        assert again["code"] == "webhook_delivery_pending"
        with app.app_context():
            assert run_delivery(delivery["id"], "ingest@box") == "delivered"
    ids = {request["headers"]["webhook-id"] for request in received.requests}
    assert ids == {delivery["message_id"]} and len(received.requests) == 3
    for request in received.requests:
        assert Webhook(endpoint["secret"]).verify(request["body"], request["headers"])["type"] == "test"


def test_a_delivery_to_a_refused_address_fails_its_try_in_words(app, client):
    app.config["WEBHOOK_ALLOWED_NETWORKS"] = ""
    endpoint = register(client, "http://127.0.0.1:9/hook")
    delivery = client.post(f"/api/webhooks/{endpoint['id']}/test").get_json()
    with app.app_context():
        run_delivery(delivery["id"], "ingest@box")
    [shown] = client.get(f"/api/webhooks/{endpoint['id']}/deliveries").get_json()["deliveries"]
    assert shown["status"] == "pending" and shown["tries"][0]["status_code"] is None
    assert "loopback address" in shown["tries"][0]["error"] and "loopback address" in shown["error"]


def test_a_job_ending_tells_its_event_in_the_moves_own_transaction(app, client):
    wanted = register(client, "http://127.0.0.1:9/a", events=["job.succeeded", "job.failed"])
    with app.app_context():
        dataset = Dataset(name="pets", status="ready")
        db.session.add(dataset)
        db.session.flush()
        job = Job(dataset_id=dataset.id, dataset_name="pets", status="queued", config={"epochs": 1})
        db.session.add(job)
        db.session.commit()
        job = lifecycle.claim(JOBS, job.id, "training@box")
        assert db.session.query(WebhookDelivery).count() == 0  # running is no event
        assert lifecycle.finish(JOBS, job, job.attempt, JobStatus.SUCCEEDED)
        [row] = db.session.query(WebhookDelivery).all()
        assert (row.endpoint_id, row.event) == (wanted["id"], "job.succeeded")
        assert json.loads(row.body)["data"] == {"job_id": job.id, "dataset_id": dataset.id, "status": "succeeded",
                                                "error": None}
        failing = Job(dataset_id=dataset.id, dataset_name="pets", status="queued", config={"epochs": 1})
        db.session.add(failing)
        db.session.commit()
        failing = lifecycle.claim(JOBS, failing.id, "training@box")
        assert lifecycle.finish(JOBS, failing, failing.attempt, JobStatus.FAILED, error="CUDA out of memory")
        told = db.session.query(WebhookDelivery).filter_by(event="job.failed").one()
        assert json.loads(told.body)["data"]["error"] == "CUDA out of memory"


def test_the_watcher_tells_of_a_worker_that_stopped_once(app, client):
    register(client, "http://127.0.0.1:9/a", events=["worker.lost", "test"])
    with app.app_context():
        endpoint = db.session.query(WebhookEndpoint).one()
        rows = [webhooks.events.queue(endpoint, "test", {}) for _ in range(2)]
        db.session.commit()
        for row in rows:
            lifecycle.claim(WEBHOOK_DELIVERIES, row.id, "ingest@gone")
        db.session.execute(db.update(WebhookDelivery).values(heartbeat_at=utcnow() - timedelta(hours=1)))
        db.session.commit()
        assert lifecycle.reap(WEBHOOK_DELIVERIES, on_lost=webhooks.worker_lost) == [row.id for row in rows]
        lost = db.session.query(WebhookDelivery).filter_by(event="worker.lost").all()
        assert [json.loads(row.body)["data"] for row in lost] == [{"worker": "ingest@gone"}]


def test_a_worker_whose_announcement_expired_is_told_once_and_a_clean_stop_never(app, client):
    register(client, "http://127.0.0.1:9/a", events=["worker.lost"])
    lost, stopped, alive = (WorkerBeacon(app.config["REDIS_URL"], name, ["training"], "cpu")
                            for name in ("training@killed", "training@stopped", "training@alive"))
    for beacon in (lost, stopped, alive):
        beacon.beat()
    stopped.stop()
    broker = redis.Redis.from_url(app.config["REDIS_URL"])
    broker.delete(redis_keys.worker(lost.name))  # what its entry's expiry does when the beacon stops beating
    with app.app_context():
        assert watch_once(broker, 0.2)["webhook delivery"] == {"reaped": [], "sent": []}
        broker.delete(redis_keys.SWEEP_LOCK)
        watch_once(broker, 0.2)  # a second pass tells nothing more
        told = [json.loads(row.body)["data"] for row in db.session.query(WebhookDelivery).filter_by(
            event="worker.lost")]
    assert told == [{"worker": "training@killed"}]


def test_a_delivery_to_a_disabled_endpoint_fails_untried(app, client):
    endpoint = register(client, "http://127.0.0.1:9/hook")
    delivery = client.post(f"/api/webhooks/{endpoint['id']}/test").get_json()
    client.put(f"/api/webhooks/{endpoint['id']}", json={"enabled": False})
    with app.app_context():
        assert run_delivery(delivery["id"], "ingest@box") == "failed"
    [shown] = client.get(f"/api/webhooks/{endpoint['id']}/deliveries").get_json()["deliveries"]
    assert shown["error"] == "The endpoint is disabled." and shown["tries"] == []


def test_a_delivery_whose_secret_is_gone_fails_in_words_and_is_not_left_sending(app, client):
    endpoint = register(client, "http://127.0.0.1:9/hook")
    delivery = client.post(f"/api/webhooks/{endpoint['id']}/test").get_json()
    with app.app_context():
        data_dir().webhook_secret(endpoint["id"]).unlink()
        assert run_delivery(delivery["id"], "ingest@box") == "failed"
    [shown] = client.get(f"/api/webhooks/{endpoint['id']}/deliveries").get_json()["deliveries"]
    assert "FileNotFoundError" in shown["error"] and shown["status"] == "failed"
