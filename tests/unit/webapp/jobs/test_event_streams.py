"""Live job event streams are capped per caller and per web process, and a closed stream frees its place."""
from __future__ import annotations

import json
import threading

import pytest
from flask import g, request

from webapp.extensions import db
from webapp.jobs.events import StreamSlots
from webapp.models import Dataset, Job


class FakePubSub:
    """Subscribes without Redis; yields one message when given one, then nothing."""

    def __init__(self, messages: list[dict]) -> None:
        self.messages, self.closed = list(messages), False

    def subscribe(self, channel: str) -> None:
        self.channel = channel

    def get_message(self, timeout: float):
        if self.messages:
            return {"type": "message", "data": json.dumps(self.messages.pop(0))}
        return None

    def close(self) -> None:
        self.closed = True


class FakeRedis:
    def __init__(self) -> None:
        self.pubsubs: list[FakePubSub] = []
        self.messages: list[dict] = []

    def pubsub(self, **_) -> FakePubSub:
        self.pubsubs.append(FakePubSub(self.messages))
        return self.pubsubs[-1]


@pytest.fixture
def redis_fake(monkeypatch):
    fake = FakeRedis()
    monkeypatch.setattr("webapp.jobs.api.redis_client", lambda url: fake)
    return fake


@pytest.fixture
def callers(app):
    """Requests name their caller in a header, as the sign-in's before_request would in `g.caller_key`."""
    @app.before_request
    def _caller():
        if "X-Caller" in request.headers:
            g.caller_key = request.headers["X-Caller"]
    return app


def _job(app, status: str = "running") -> int:
    with app.app_context():
        dataset = Dataset(name="d", status="ready")
        db.session.add(dataset)
        db.session.flush()
        job = Job(dataset_id=dataset.id, dataset_name="d", status=status, config={"epochs": 1})
        db.session.add(job)
        db.session.commit()
        return job.id


def _open(client, job_id: int, caller: str | None = None, address: str = "127.0.0.1"):
    headers = {"X-Caller": caller} if caller else {}
    return client.get(f"/api/jobs/{job_id}/events", headers=headers, environ_base={"REMOTE_ADDR": address})


def _first_event(response) -> str:
    return next(iter(response.response)).decode()


def _assert_refused(response) -> None:
    assert response.status_code == 429
    assert response.get_json()["code"] == "too_many_streams"
    assert int(response.headers["Retry-After"]) > 0


def test_slots_cap_each_caller_and_the_total_and_come_back_once_released():
    slots = StreamSlots(per_caller=2, total=3)
    first, second = slots.acquire("a"), slots.acquire("a")
    assert first and second and slots.acquire("a") is None
    third = slots.acquire("b")
    assert third and slots.acquire("b") is None and slots.acquire("c") is None
    first.release()
    first.release()  # a second release of the same place frees nothing more
    assert (slots.open_streams("a"), slots.open_streams()) == (1, 2)
    assert slots.acquire("c") and slots.acquire("c") is None


def test_slots_hold_their_caps_under_concurrent_acquires():
    slots = StreamSlots(per_caller=10, total=15)
    granted: list = []
    start = threading.Barrier(40)

    def take(caller: str) -> None:
        start.wait()
        slot = slots.acquire(caller)
        if slot:
            granted.append(slot)

    threads = [threading.Thread(target=take, args=("a" if n % 2 else "b",)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 15 and slots.open_streams() == 15
    assert slots.open_streams("a") <= 10 and slots.open_streams("b") <= 10
    for slot in granted:
        slot.release()
    assert slots.open_streams() == 0


def test_one_caller_beyond_its_cap_is_refused_while_another_still_streams(app, client, callers, redis_fake):
    job_id = _job(app)
    per_caller = app.config["EVENT_STREAMS_PER_CALLER"]
    streams = [_open(client, job_id, "user:1") for _ in range(per_caller)]
    assert all(s.status_code == 200 and s.mimetype == "text/event-stream" for s in streams)
    assert _first_event(streams[0]).startswith("event: snapshot\n")
    refused = _open(client, job_id, "user:1")
    _assert_refused(refused)
    assert f"/api/jobs/{job_id}" in refused.get_json()["error"]
    other = _open(client, job_id, "user:2")  # same address, another signed-in caller
    assert other.status_code == 200 and _first_event(other).startswith("event: snapshot\n")
    assert app.extensions["event_streams"].open_streams("user:1") == per_caller
    assert len(redis_fake.pubsubs) == per_caller + 1  # the refused request never subscribed


def test_without_a_signed_in_caller_the_address_is_the_caller(app, client, redis_fake):
    job_id = _job(app)
    streams = [_open(client, job_id, address="10.0.0.1") for _ in range(app.config["EVENT_STREAMS_PER_CALLER"])]
    assert all(s.status_code == 200 for s in streams)
    _assert_refused(_open(client, job_id, address="10.0.0.1"))
    assert _open(client, job_id, address="10.0.0.2").status_code == 200


def test_the_total_cap_applies_across_callers(app, client, callers, redis_fake):
    job_id = _job(app)
    per_caller, total = app.config["EVENT_STREAMS_PER_CALLER"], app.config["EVENT_STREAMS_TOTAL"]
    opened = [_open(client, job_id, f"user:{n // per_caller}") for n in range(total)]
    assert all(s.status_code == 200 for s in opened)
    newcomer = f"user:{total}"  # has no stream open yet
    _assert_refused(_open(client, job_id, newcomer))
    opened[0].close()
    admitted = _open(client, job_id, newcomer)
    assert admitted.status_code == 200
    _assert_refused(_open(client, job_id, newcomer))


def test_a_closed_stream_frees_its_place_read_or_not(app, client, redis_fake):
    job_id = _job(app)
    slots_needed = app.config["EVENT_STREAMS_PER_CALLER"]
    streams = [_open(client, job_id) for _ in range(slots_needed)]
    _assert_refused(_open(client, job_id))
    streams[0].close()  # never read: the generator never ran
    again = _open(client, job_id)
    assert again.status_code == 200
    _first_event(again)
    again.close()  # closed after its first event, as when the browser leaves
    assert redis_fake.pubsubs[0].closed and redis_fake.pubsubs[-1].closed
    assert app.extensions["event_streams"].open_streams() == slots_needed - 1
    assert _open(client, job_id).status_code == 200


def test_a_stream_that_ends_with_the_job_frees_its_place(app, client, redis_fake):
    job_id = _job(app)
    redis_fake.messages.append({"type": "status", "status": "succeeded", "finished": True})
    body = _open(client, job_id).get_data(as_text=True)
    assert body.startswith("event: snapshot\n") and "event: status\n" in body
    assert app.extensions["event_streams"].open_streams() == 0


def test_a_refused_subscription_frees_its_place(app, client):
    """Unit tests have no Redis: the stream answers 503 and keeps no place."""
    job_id = _job(app)
    response = _open(client, job_id)
    assert response.status_code == 503 and response.get_json()["code"] == "queue_unavailable"
    assert app.extensions["event_streams"].open_streams() == 0


def test_a_finished_job_gets_its_snapshot_without_redis_or_a_place(app, client, redis_fake):
    running, finished = _job(app), _job(app, "succeeded")
    streams = [_open(client, running) for _ in range(app.config["EVENT_STREAMS_PER_CALLER"])]
    assert all(s.status_code == 200 for s in streams)
    _assert_refused(_open(client, running))
    response = _open(client, finished)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    body = response.get_data(as_text=True)
    assert body.startswith("event: snapshot\n") and json.loads(body.split("data: ", 1)[1])["id"] == finished
    assert len(redis_fake.pubsubs) == app.config["EVENT_STREAMS_PER_CALLER"]


def test_a_response_closed_before_its_stream_starts_frees_its_place(app, client, redis_fake):
    """A HEAD answer never runs the stream: closing the response must free the place all the same."""
    job_id = _job(app)
    response = client.head(f"/api/jobs/{job_id}/events")
    assert response.status_code == 200
    assert app.extensions["event_streams"].open_streams() == 1
    response.close()
    assert app.extensions["event_streams"].open_streams() == 0 and redis_fake.pubsubs[0].closed


def test_a_job_that_finishes_while_its_stream_subscribes_ends_the_stream_at_once(app, client, redis_fake,
                                                                                    monkeypatch):
    """The job's final event can be sent between the first read and the subscription, where the stream
    cannot hear it: the snapshot is read again after subscribing, so it is the finished job's, alone."""
    job_id = _job(app)
    subscribe = redis_fake.pubsub

    def finishing_meanwhile(**options):
        with app.app_context():
            db.session.get(Job, job_id).status = "succeeded"
            db.session.commit()
        return subscribe(**options)

    monkeypatch.setattr(redis_fake, "pubsub", finishing_meanwhile)
    monkeypatch.setattr("webapp.jobs.api.STREAM_SECONDS", 2)  # a stream that missed the end would wait this long
    response = _open(client, job_id)
    events_sent = [chunk.decode() for chunk in response.response]
    assert len(events_sent) == 1 and events_sent[0].startswith("event: snapshot")
    assert json.loads(events_sent[0].split("data: ", 1)[1])["status"] == "succeeded"
    assert redis_fake.pubsubs[0].closed
