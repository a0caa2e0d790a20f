"""Every kind of background work lives the same life (webapp.lifecycle): the same suite runs on jobs,
evaluations and upload checks, against a real Redis without workers."""
from __future__ import annotations

import base64
import json
import re
import shutil
from datetime import datetime, timedelta, timezone

import pytest
import redis
from flask_migrate import upgrade

from engine.errors import StudioError
from sqlalchemy import text

from tests.stack import DATABASE_FILE, app_config
from webapp import create_app, lifecycle, redis_keys
from webapp.database import MIGRATIONS_DIR
from webapp.backup.schedule import BACKUPS
from webapp.batch.services import BATCH_PREDICTIONS
from webapp.datasets.quality import QUALITY_SCANS
from webapp.datasets.services import UPLOAD_CHECKS
from webapp.extensions import db
from webapp.messages import english
from webapp.jobs.label_search import LABEL_SEARCHES
from webapp.jobs.work import JOBS
from webapp.models import Backup
from webapp.models import BatchPrediction, Dataset, Evaluation, Job, LabelSearch, QualityScan, utcnow
from webapp.models import WebhookDelivery, WebhookEndpoint
from webapp.release.evaluation import EVALUATIONS
from webapp.webhooks.delivery import WEBHOOK_DELIVERIES
from webapp.workers import IDLE_SINCE, TASK, idle_queues
from worker.beacon import WorkerBeacon, mark_busy
from worker.loops import watch_once

KINDS = {"job": JOBS, "evaluation": EVALUATIONS, "upload check": UPLOAD_CHECKS, "quality scan": QUALITY_SCANS,
         "label search": LABEL_SEARCHES, "batch prediction": BATCH_PREDICTIONS,
         "webhook delivery": WEBHOOK_DELIVERIES, "backup": BACKUPS}
LONG_AGO = timedelta(hours=1)


@pytest.fixture
def app(tmp_path, migrated_sqlite, redis_url_empty):
    shutil.copyfile(migrated_sqlite, tmp_path / DATABASE_FILE)
    return create_app(app_config(tmp_path, REDIS_URL=redis_url_empty, JOB_MAX_ATTEMPTS=3,
                                 EVALUATION_MAX_ATTEMPTS=3, INGEST_MAX_ATTEMPTS=3))


@pytest.fixture
def broker(app):
    return redis.Redis.from_url(app.config["REDIS_URL"])


@pytest.fixture(params=sorted(KINDS))
def kind(request):
    return KINDS[request.param]


def waiting_row(kind: lifecycle.Kind, queued_at=None, sent_at=None) -> int:
    """A row of `kind` that waits for a worker (inside an app context)."""
    queued_at = queued_at or utcnow()
    if kind is UPLOAD_CHECKS:
        row = Dataset(name="upload", status="processing", queued_at=queued_at, sent_at=sent_at)
    elif kind is BACKUPS:
        row = Backup(queued_at=queued_at, sent_at=sent_at)
    else:
        dataset = Dataset(name="pets", status="ready")
        db.session.add(dataset)
        db.session.flush()
        if kind is JOBS:
            row = Job(dataset_id=dataset.id, dataset_name="pets", status="queued", config={"epochs": 1},
                      queued_at=queued_at, sent_at=sent_at)
        elif kind is QUALITY_SCANS:
            row = QualityScan(dataset_id=dataset.id, queued_at=queued_at, sent_at=sent_at)
        elif kind is BATCH_PREDICTIONS:
            row = BatchPrediction(source="revision", input_name="pets", dataset_id=dataset.id, version=1, top_k=5,
                                  summary={}, queued_at=queued_at, sent_at=sent_at)
        elif kind is LABEL_SEARCHES:
            row = LabelSearch(dataset_id=dataset.id, revision=1, config={"folds": 2, "options": {}},
                              queued_at=queued_at, sent_at=sent_at)
        elif kind is WEBHOOK_DELIVERIES:
            endpoint = WebhookEndpoint(url="http://hooks.example/in", events=["test"])
            db.session.add(endpoint)
            db.session.flush()
            row = WebhookDelivery(message_id=f"msg_{dataset.id}", endpoint_id=endpoint.id, event="test", body="{}",
                                  queued_at=queued_at, sent_at=sent_at)
        else:
            row = Evaluation(version=1, dataset_id=dataset.id, dataset_name="pets", split="val",
                             queued_at=queued_at, sent_at=sent_at)
    db.session.add(row)
    db.session.commit()
    return row.id


def queue_of(kind: lifecycle.Kind) -> str:
    """The queue a waiting row of `kind` (as waiting_row makes it) is sent to."""
    if kind is WEBHOOK_DELIVERIES:
        return "webhooks"
    if kind is BACKUPS:
        return "maintenance"
    return "batch" if kind is BATCH_PREDICTIONS else "ingest" if kind in (UPLOAD_CHECKS, QUALITY_SCANS) else "training"


def messages(broker, queue: str) -> list[tuple[str, int]]:
    """(task, first argument) of each message waiting on `queue`."""
    return [(message["headers"]["task"], json.loads(base64.b64decode(message["body"]))[0][0])
            for message in map(json.loads, broker.lrange(queue, 0, -1))]


def stall(kind: lifecycle.Kind, row_id: int) -> None:
    """The worker holding the row stopped stamping it long ago (killed with -9, out of memory, host down)."""
    db.session.execute(kind.model.__table__.update().where(kind.model.id == row_id)
                       .values({kind.heartbeat_column: utcnow() - LONG_AGO}))
    db.session.commit()


def status_of(kind, row_id):
    row = db.session.get(kind.model, row_id)
    db.session.refresh(row)
    return row


def test_a_row_is_claimed_once(app, kind):
    with app.app_context():
        row_id = waiting_row(kind)
        first = lifecycle.claim(kind, row_id, "worker-a")
        assert first is not None and getattr(first, kind.attempt_column) == 1 and first.worker == "worker-a"
        assert lifecycle.claim(kind, row_id, "worker-b") is None  # a second delivery of the same task
        assert status_of(kind, row_id).worker == "worker-a"


def test_a_late_worker_changes_nothing(app, kind):
    with app.app_context():
        row_id = waiting_row(kind)
        row = lifecycle.claim(kind, row_id, "worker-a")
        stall(kind, row_id)
        assert lifecycle.reap(kind) == [row_id]  # worker-a was given up on
        assert lifecycle.claim(kind, row_id, "worker-b") is not None
        assert not lifecycle.stamp(kind, row_id, 1)  # worker-a's progress and heartbeat
        with pytest.raises(lifecycle.Superseded):
            lifecycle.fenced_commit(kind, row_id, 1)
        beat = lifecycle.Heartbeat(kind, row_id, 1, interval=60)
        assert beat.beat() is False
        assert lifecycle.finish(kind, row, 1, kind.failed, error="late") is False
        done = sorted(kind.finished - {kind.failed})[0]
        assert lifecycle.finish(kind, row, 1, done) is False
        row = status_of(kind, row_id)
        assert (row.status, row.worker, getattr(row, kind.attempt_column), row.error) == (
            kind.running, "worker-b", 2, None)
        assert lifecycle.finish(kind, row, 2, done) is True and status_of(kind, row_id).status == done


class _Stopped(Exception):
    """A cancellation as a worker's run raises it."""


def test_how_a_run_ends_when_its_work_raises(app, kind):
    """lifecycle.ending: a cancellation ends the row as asked, a StudioError fails it with its words, anything
    else fails it with the run's words naming the error's kind, and an attempt given up on changes nothing."""
    ended_as = sorted(kind.finished - {kind.failed})[0]
    with app.app_context():
        for raised, status, words in ((_Stopped(), ended_as, None), (StudioError("broken", "It broke."), kind.failed,
                                                                     "It broke."),
                                      (KeyError("k"), kind.failed, "Stopped on an unexpected KeyError.")):
            row_id = waiting_row(kind)
            row = lifecycle.claim(kind, row_id, "worker-a")
            with lifecycle.ending(kind, row, 1, "Stopped on an unexpected %(kind)s.", (_Stopped, ended_as)):
                raise raised
            row = status_of(kind, row_id)
            assert row.status == status and (words is None or english(row.error) == words), (raised, row.error)
        row_id = waiting_row(kind)
        row = lifecycle.claim(kind, row_id, "worker-a")
        stall(kind, row_id)
        lifecycle.reap(kind)
        lifecycle.claim(kind, row_id, "worker-b")
        with lifecycle.ending(kind, row, 1, "Stopped on an unexpected %(kind)s."):
            lifecycle.fenced_commit(kind, row_id, 1)  # worker-a, given up on
        row = status_of(kind, row_id)
        assert (row.status, row.worker, row.error) == (kind.running, "worker-b", None)


def test_a_row_past_its_deadline_waits_again_to_be_sent_then_fails_after_its_attempts(app, kind, broker):
    with app.app_context():
        row_id = waiting_row(kind)
        for attempt in (1, 2, 3):
            assert lifecycle.claim(kind, row_id, f"worker-{attempt}") is not None
            assert lifecycle.reap(kind) == []  # its heartbeat is fresh
            stall(kind, row_id)
            assert lifecycle.reap(kind) == [row_id]
            row = status_of(kind, row_id)
            if attempt < 3:
                assert (row.status, row.retries, row.error) == (kind.waiting, attempt, None)
                assert row.sent_at is not None  # sent to the next worker at once
                assert lifecycle.claim(kind, row_id, "x") is not None and lifecycle.reap(kind) == []
                row.status = kind.waiting  # back as it was reaped, for the next round
                db.session.execute(kind.model.__table__.update().where(kind.model.id == row_id).values(
                    status=kind.waiting, worker=None))
                db.session.commit()
        row = status_of(kind, row_id)
        assert row.status == kind.failed and re.search(r"\b3\b", english(row.error))
        assert lifecycle.reap(kind) == []


def test_a_commit_without_a_send_is_sent_by_the_sweep(app, kind, broker):
    queue = queue_of(kind)
    with app.app_context():
        fresh = waiting_row(kind)  # its request is sending it now
        lost = waiting_row(kind, queued_at=utcnow() - timedelta(seconds=60))  # its web process died
        assert lifecycle.sweep_outbox(kind, lambda seconds: set(), grace=30) == [lost]
        assert messages(broker, queue) == [(kind.task, lost)]
        assert status_of(kind, lost).sent_at is not None and status_of(kind, fresh).sent_at is None
        assert lifecycle.sweep_outbox(kind, lambda seconds: set(), grace=30) == []  # sent once
        assert lifecycle.claim(kind, lost, "worker") is not None  # and a worker takes it


def test_a_flushed_broker_loses_nothing_and_a_long_wait_is_never_sent_twice(app, kind, broker):
    queue = queue_of(kind)
    with app.app_context():
        row_id = waiting_row(kind)
        lifecycle.send(kind, status_of(kind, row_id))
        broker.flushdb()  # Redis restarted without its data
        idle_for = {}

        def idle(seconds):
            idle_for["asked"] = seconds
            return idle_for.get("queues", set())

        assert lifecycle.sweep_outbox(kind, idle, grace=30) == []  # sent moments ago
        db.session.execute(kind.model.__table__.update().where(kind.model.id == row_id)
                           .values(sent_at=utcnow() - LONG_AGO))
        db.session.commit()
        assert lifecycle.sweep_outbox(kind, idle, grace=30) == []  # its queue's worker is busy (a long job)
        assert idle_for["asked"] == kind.stale_seconds()
        idle_for["queues"] = {queue}
        assert lifecycle.sweep_outbox(kind, idle, grace=30) == [row_id]  # idle that long: the message was lost
        assert messages(broker, queue) == [(kind.task, row_id)]
        assert lifecycle.sweep_outbox(kind, idle, grace=30) == []  # at most once per deadline


def test_what_a_worker_runs_decides_whether_its_queue_is_idle(app, broker):
    beacon = WorkerBeacon(app.config["REDIS_URL"], "training@box", ["training"], "cpu")
    beacon.beat()
    assert broker.hget(redis_keys.worker("training@box"), TASK) is None
    assert idle_queues(broker, 0) == {"training"} and idle_queues(broker, 3600) == set()  # idle since now
    long_ago = (datetime.now(timezone.utc) - LONG_AGO).isoformat(timespec="seconds")
    broker.hset(redis_keys.worker("training@box"), IDLE_SINCE, long_ago)
    beacon.beat()  # a beat keeps when the worker became idle
    assert idle_queues(broker, 3600) == {"training"}
    mark_busy(app.config["REDIS_URL"], "training@box", "worker.train", 7)
    assert broker.hget(redis_keys.worker("training@box"), TASK) == b"worker.train:7"
    assert idle_queues(broker, 0) == set()


def test_the_watcher_reaps_and_sends_every_kind_one_pass_at_a_time(app, broker):
    with app.app_context():
        rows = {}
        for kind in KINDS.values():
            rows[kind.name] = waiting_row(kind, queued_at=utcnow() - LONG_AGO)
        held = waiting_row(JOBS)
        lifecycle.claim(JOBS, held, "worker-a")
        stall(JOBS, held)
        done = watch_once(broker, interval=30)
        assert watch_once(broker, interval=30) == {}  # another process watched moments ago
        broker.delete(redis_keys.SWEEP_LOCK)
    assert done["job"] == {"reaped": [held], "sent": [rows["job"]]}
    assert sorted(messages(broker, "training")) == [("worker.evaluate", rows["evaluation"]),
                                                    ("worker.find_label_errors", rows["label search"]),
                                                    ("worker.train", rows["job"]), ("worker.train", held)]
    assert done["evaluation"] == {"reaped": [], "sent": [rows["evaluation"]]}
    assert done["upload check"] == {"reaped": [], "sent": [rows["upload check"]]}
    assert done["quality scan"] == {"reaped": [], "sent": [rows["quality scan"]]}
    assert sorted(messages(broker, "ingest")) == [("worker.ingest_dataset", rows["upload check"]),
                                                  ("worker.scan_dataset", rows["quality scan"])]
    assert done["batch prediction"] == {"reaped": [], "sent": [rows["batch prediction"]]}
    assert messages(broker, "batch") == [("worker.predict_batch", rows["batch prediction"])]
    assert done["backup"] == {"reaped": [], "sent": [rows["backup"]]}
    assert messages(broker, "maintenance") == [("worker.backup", rows["backup"])]


def test_a_request_that_cannot_send_fails_its_row_and_answers_503(app, kind, monkeypatch):
    def down(*args, **kwargs):
        raise OSError("connection refused")

    with app.app_context():
        monkeypatch.setattr(app.extensions["celery"], "send_task", down)
        row_id = waiting_row(kind)
        with pytest.raises(StudioError) as refused:
            lifecycle.send_or_refuse(kind, status_of(kind, row_id), StudioError("queue_unavailable", "down"))
        assert refused.value.code == "queue_unavailable"
        row = status_of(kind, row_id)
        assert row.status == kind.failed and "Redis" in english(row.error) and row.sent_at is None


def test_rows_queued_before_the_upgrade_are_picked_up(tmp_path, redis_url_empty):
    app = create_app(app_config(tmp_path, REDIS_URL=redis_url_empty))
    with app.app_context():
        upgrade(directory=MIGRATIONS_DIR, revision="0018")
        with db.engine.begin() as connection:
            connection.execute(text("INSERT INTO datasets (id, name, status, layout, num_images, rejected, warnings, "
                                    "duplicates, created_at, ingest_done, ingest_total, ingest_attempt, "
                                    "ingest_heartbeat_at) VALUES (1, 'pets', 'ready', 'classes', 4, '[]', '[]', "
                                    "'[]', '2026-01-01', 0, 0, 0, NULL), (2, 'upload', 'processing', 'classes', 0, "
                                    "'[]', '[]', '[]', '2026-01-01', 3, 9, 1, '2026-01-01')"))
            connection.execute(text("INSERT INTO jobs (id, dataset_id, dataset_name, status, config, class_names, "
                                    "queue, progress, epoch, step, steps, stopped_early, promote_when_done, "
                                    "cancel_requested, attempt, retries, checkpoint_bytes, created_at) VALUES "
                                    "(1, 1, 'pets', 'queued', '{}', '[]', 'training', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, "
                                    "'2026-01-01')"))
            connection.execute(text("INSERT INTO evaluations (id, version, dataset_id, dataset_name, split, status, "
                                    "progress, created_at) VALUES (1, 1, 1, 'pets', 'val', 'queued', 0, "
                                    "'2026-01-01')"))
        upgrade(directory=MIGRATIONS_DIR)
        broker = redis.Redis.from_url(redis_url_empty)
        done = watch_once(broker, interval=30)
    assert {name: result["sent"] for name, result in done.items()} == {
        "job": [1], "evaluation": [1], "upload check": [2], "quality scan": [], "label search": [],
        "batch prediction": [], "webhook delivery": [], "backup": []}
    assert sorted(messages(broker, "training")) == [("worker.evaluate", 1), ("worker.train", 1)]
