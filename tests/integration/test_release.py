"""Release control on the production server (two web processes): a promotion made through one process
is followed by all; a 25% experiment; sticky clients; 20 changes under load without a failed request."""
from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.factories import register_bundle
from tests.images import noisy_image
from tests.stack import fresh_app, production_server
from webapp.release.routing import takes_candidate

pytestmark = pytest.mark.integration
IMAGE = noisy_image(5, (220, 40, 40))


@pytest.fixture
def server(stack, trained, tmp_path):
    """gunicorn with two processes over a data folder holding versions 1 (production) and 2."""
    app = fresh_app(stack, tmp_path)
    register_bundle(app, trained[1], 1)
    register_bundle(app, trained[1], 2)
    with production_server(stack, app, threads=16, WEB_PROCESSES="2", STATS_FLUSH_SECONDS="0.5") as port:
        yield port


def call(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """One request on a new connection (so successive calls reach either web process)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def predict(port: int, client_id: str | None = None) -> tuple[int, dict]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n".encode()
            + IMAGE + f"\r\n--{boundary}--\r\n".encode())
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if client_id:
        headers["X-Client-Id"] = client_id
    return call(port, "POST", "/api/predict", body, headers)


def put_release(port: int, **change) -> dict:
    status, body = call(port, "PUT", "/api/release", json.dumps(change).encode(),
                        {"Content-Type": "application/json"})
    assert status == 200, body
    return body


def settled(port: int, check, timeout: float = 120) -> None:
    """Wait until every process answers as `check` wants (a process warms a new version before using it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(check(predict(port)[1]) for _ in range(6)):
            return
        time.sleep(0.2)
    raise AssertionError("the release change never reached every web process")


def test_promote_rollback_experiment_and_stickiness(server):
    port = server
    assert predict(port)[1]["model_version"] == 1
    put_release(port, production=2)
    settled(port, lambda body: body["model_version"] == 2 and body["arm"] == "production")
    status, state = call(port, "POST", "/api/release/rollback")
    assert status == 200 and state["production"] == 1
    settled(port, lambda body: body["model_version"] == 1)

    put_release(port, candidate=2, candidate_share=25)
    settled(port, lambda body: body["model_version"] in (1, 2))
    # a process routes by the release the database holds and loads the candidate first if it must:
    # each keyed client's arm is the release's choice for its key, whichever process answers, warm or not
    answers = [predict(port, f"client-{i}")[1] for i in range(400)]
    assert [(a["arm"], a["model_version"]) for a in answers] == [
        ("candidate", 2) if takes_candidate(f"client-{i}", 2, 25) else ("production", 1) for i in range(400)]
    on_candidate = [a for a in answers if a["arm"] == "candidate"]
    assert 75 <= len(on_candidate) <= 125  # 25% of 400 keyed clients
    for i in range(0, 400, 40):  # each client keeps its arm, whichever process answers
        again = {predict(port, f"client-{i}")[1]["arm"] for _ in range(3)}
        assert again == {answers[i]["arm"]}

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the figures of both processes arrive within a few flushes
        figures = {item["version"]: item for item in call(port, "GET", "/api/release/stats?hours=1")[1]["versions"]}
        if (figures.get(2, {}).get("by_arm", {}).get("candidate", 0) >= len(on_candidate)
                and figures.get(1, {}).get("by_arm", {}).get("production", 0) >= 400 - len(on_candidate)):
            break
        time.sleep(0.3)
    assert figures[2]["by_arm"]["candidate"] >= len(on_candidate)
    assert figures[1]["by_arm"]["production"] >= 400 - len(on_candidate)


def test_twenty_release_changes_under_eight_clients_fail_no_request(server):
    port = server
    for version in (1, 2):  # both processes hold both versions: the changes below only move traffic
        put_release(port, production=version)
        settled(port, lambda body, v=version: body["model_version"] == v)
    stop = threading.Event()
    failures: list = []
    answered: list = []  # one entry per answer (list.append is atomic; a shared `+= 1` loses counts)

    def client(index: int) -> None:
        while not stop.is_set():
            status, body = predict(port, f"load-{index}-{len(answered) % 7}")
            answered.append(status)
            if status != 200 or body.get("class") != "red":
                failures.append((status, body))

    def answers_after(count: int, timeout: float = 120) -> None:
        """Wait until two more requests have been answered, so each change lands among requests."""
        deadline = time.monotonic() + timeout
        while len(answered) < count + 2:
            assert time.monotonic() < deadline, "the clients stopped getting answers"
            time.sleep(0.02)

    changes = [{"production": 1}, {"candidate": 2, "candidate_share": 5}, {"candidate_share": 25},
               {"candidate_share": 50}, {"production": 2}]
    with ThreadPoolExecutor(max_workers=8) as pool:
        running = [pool.submit(client, i) for i in range(8)]
        for n in range(20):
            put_release(port, **changes[n % len(changes)])
            answers_after(len(answered))
        stop.set()
        for future in running:
            future.result()
    assert failures == []
    assert len(answered) >= 40
    status, state = call(port, "GET", "/api/release")
    assert status == 200 and len(state["history"]) >= 20


def test_feedback_reaches_the_process_that_answered(server):
    """Predictions and their feedback on separate connections land on either process; all are kept."""
    port = server
    answers = [predict(port, f"client-{n}")[1] for n in range(16)]
    for n, answer in enumerate(answers):
        payload = {"correct": False, "label": f"类{n % 2}"} if n % 2 else {"correct": True}
        status, body = call(port, "POST", f"/api/predictions/{answer['id']}/feedback", json.dumps(payload).encode(),
                            {"Content-Type": "application/json"})
        assert status == 201, body
        assert body["image_kept"] is True and body["version"] == answer["model_version"]
    status, listed = call(port, "GET", "/api/feedback")
    assert listed["totals"]["feedback"] == 16 and listed["totals"]["marked_wrong"] == 8
    assert listed["totals"]["images_kept"] == 16


def test_a_hold_finds_a_prediction_another_process_holds(stack):
    from webapp.feedback.holding import HeldPrediction, PredictionHold

    url = stack["config"]["REDIS_URL"]
    answering = PredictionHold(url, max_bytes=10**6, seconds=60, lookup_seconds=2)
    # an asker that would wait 120 s for a listener that does not answer, far beyond what a loaded
    # machine takes to answer
    asking = PredictionHold(url, max_bytes=10**6, seconds=60, lookup_seconds=120)
    held = HeldPrediction(str(uuid.uuid4()), 3, "candidate", "红", 0.42, True, "png", time.time(), IMAGE)
    answering.keep(held)  # starts its listener
    deadline = time.monotonic() + 60
    found = None
    while found is None and time.monotonic() < deadline:
        found = asking.find(held.prediction_id)
    assert found == held
    started = time.monotonic()
    assert asking.find(str(uuid.uuid4())) is None
    assert time.monotonic() - started < 60  # every listener answered "not here": no waiting for the timeout
