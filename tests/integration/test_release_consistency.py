"""Two web processes over one database and models folder: once a release change has answered (through
either of them), both route by it on their next request, and a client keeps its arm while the release
stands still, even when the process must load the candidate first."""
from __future__ import annotations

import http.client
import json
import os
import uuid
from contextlib import ExitStack

import pytest

from launcher import free_port, wait_for_port, web_process
from tests.factories import register_bundle
from tests.images import noisy_image
from tests.stack import app_config
from webapp import create_app
from webapp.database import upgrade_schema
from webapp.release.routing import takes_candidate
from webapp.storage import DataDir

pytestmark = pytest.mark.integration
IMAGE = noisy_image(5, (220, 40, 40))
KEYS = [f"client-{n}" for n in range(400)]


class Process:
    """One web process, reached over one keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method: str, path: str, body: bytes, headers: dict) -> tuple[int, dict]:
        self.connection.request(method, path, body, headers)
        response = self.connection.getresponse()
        return response.status, json.loads(response.read())

    def predict(self, key: str) -> tuple[str, int]:
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n"
                .encode() + IMAGE + f"\r\n--{boundary}--\r\n".encode())
        status, answer = self.call("POST", "/api/predict", body, {
            "Content-Type": f"multipart/form-data; boundary={boundary}", "X-Client-Id": key})
        assert status == 200, answer
        return answer["arm"], answer["model_version"]

    def put_release(self, change: dict) -> dict:
        status, state = self.call("PUT", "/api/release", json.dumps(change).encode(),
                                  {"Content-Type": "application/json"})
        assert status == 200, state
        return state


@pytest.fixture
def processes(trained, tmp_path):
    """Processes A and B (each its own server) over versions 1 (production), 2 and 3; each process keeps
    two versions loaded, so a new candidate is one it must load."""
    app = create_app(app_config(tmp_path))
    upgrade_schema(app)
    for version in (1, 2, 3):
        register_bundle(app, trained[1], version)
    env = {**os.environ, "DATA_DIR": str(tmp_path), "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
           "REDIS_URL": app.config["REDIS_URL"], "SERVING_MAX_VERSIONS": "2", "SERVING_THREADS": "1"}
    with ExitStack() as stack:
        started = []
        for name in ("a", "b"):
            port = free_port()
            server = web_process(DataDir(tmp_path / name), "127.0.0.1", port, env, processes=1, threads=4).start()
            stack.callback(server.stop)
            started.append((port, server))
        for port, server in started:
            wait_for_port("127.0.0.1", port, server)
        yield [Process(port) for port, _ in started]


def chosen_keys(candidate: int, share: int) -> list[str]:
    """Four keys the release sends to the candidate and four it keeps on production."""
    taken = [key for key in KEYS if takes_candidate(key, candidate, share)]
    kept = [key for key in KEYS if not takes_candidate(key, candidate, share)]
    return taken[:4] + kept[:4]


def test_every_process_routes_by_the_release_just_changed_and_a_key_keeps_its_arm(processes):
    a, b = processes
    changes = [{"candidate": 2, "candidate_share": 25}, {"candidate_share": 50},
               {"candidate": 3, "candidate_share": 25}, {"candidate_share": 5}]
    for round_ in range(20):
        state = a.put_release(changes[round_ % len(changes)])
        production, candidate, share = state["production"], state["candidate"], state["candidate_share"]
        keys = chosen_keys(candidate, share)
        expected = {key: ("candidate", candidate) if takes_candidate(key, candidate, share)
                    else ("production", production) for key in keys}
        for process in (b, a, b, a):
            answers = {key: process.predict(key) for key in keys}
            assert answers == expected, (round_, state)
