"""The Workers page and GET /api/workers: the workers announced in a real Redis, what each one is doing
(from the job rows), how many jobs wait; 503 without Redis; nothing for anonymous callers."""
from __future__ import annotations

import json
import re
import socket
import threading

import pytest

from tests.stack import app_config
from webapp import create_app, redis_keys
from webapp.accounts import services as accounts
from webapp.database import upgrade_schema
from webapp.extensions import db
from webapp.models import Job
from worker.beacon import WorkerBeacon

HAN = re.compile(r"[\u4e00-\u9fff]")
TRAINER, GPU_TRAINER, INGEST = "trainer-2@box", "trainer-1@gpu-box", "ingest-studio@box"


@pytest.fixture
def workers_app(tmp_path, redis_url_empty):
    app = create_app(app_config(tmp_path, REDIS_URL=redis_url_empty))
    upgrade_schema(app)
    return app


def announce(url: str, name: str, queues: list[str], device: str | None) -> WorkerBeacon:
    """Write the worker's entry as a running worker does."""
    beacon = WorkerBeacon(url, name, queues, device)
    beacon.beat()
    return beacon


def add_job(app, status: str, worker: str | None = None) -> int:
    with app.app_context():
        job = Job(dataset_name="flowers", status=status, worker=worker, config={"epochs": 1})
        db.session.add(job)
        db.session.commit()
        return job.id


def test_the_api_lists_each_worker_with_its_device_kind_and_job(workers_app):
    url = workers_app.config["REDIS_URL"]
    announce(url, GPU_TRAINER, ["training", "training.gpu"], "gpu:0")
    announce(url, TRAINER, ["training"], None)  # its device is not probed yet
    announce(url, INGEST, ["ingest"], None)
    running = add_job(workers_app, "running", GPU_TRAINER)
    add_job(workers_app, "succeeded", TRAINER)
    add_job(workers_app, "running", "gone@elsewhere")  # its worker is not announced
    add_job(workers_app, "queued")
    add_job(workers_app, "queued")

    body = workers_app.test_client().get("/api/workers").get_json()
    assert body["queued_jobs"] == 2
    ingest, gpu_trainer, trainer = body["workers"]  # by name
    host = socket.gethostname()
    assert gpu_trainer == {"name": GPU_TRAINER, "host": host, "device": "gpu:0", "queues": ["training", "training.gpu"],
                           "heartbeat_at": gpu_trainer["heartbeat_at"], "job_id": running, "busy": True,
                           "kind": "training"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", gpu_trainer["heartbeat_at"])
    assert (trainer["name"], trainer["device"], trainer["queues"]) == (TRAINER, None, ["training"])
    assert (trainer["busy"], trainer["job_id"], trainer["kind"]) == (False, None, "training")
    assert (ingest["name"], ingest["queues"], ingest["kind"], ingest["busy"]) == (INGEST, ["ingest"], "ingest", False)


def test_a_worker_that_signs_off_leaves_the_list(workers_app):
    url = workers_app.config["REDIS_URL"]
    leaving = announce(url, GPU_TRAINER, ["training"], "cpu")
    announce(url, TRAINER, ["training"], "cpu")
    client = workers_app.test_client()
    assert [w["name"] for w in client.get("/api/workers").get_json()["workers"]] == [GPU_TRAINER, TRAINER]
    leaving.stop()
    body = client.get("/api/workers").get_json()
    assert [w["name"] for w in body["workers"]] == [TRAINER] and body["queued_jobs"] == 0


def test_a_beat_under_way_when_the_worker_signs_off_does_not_bring_it_back(workers_app):
    """stop() waits for a beat that has started, then deletes the entry; a beat asked for later does nothing.
    (The result holds whichever of the two threads gets there first.)"""
    import redis as redis_lib

    url = workers_app.config["REDIS_URL"]
    beacon = WorkerBeacon(url, TRAINER, ["training"], "cpu")
    started, go = threading.Event(), threading.Event()
    real_beat = beacon.beat

    def slow_beat():
        started.set()
        go.wait(30)
        real_beat()

    beacon.beat = slow_beat
    beating = threading.Thread(target=beacon._beat_logged)
    beating.start()
    assert started.wait(30)
    stopping = threading.Thread(target=beacon.stop)
    stopping.start()
    stopping.join(0.5)  # the old stop() deleted the entry here, before the beat under way wrote it
    go.set()
    beating.join(30)
    stopping.join(30)
    beacon._beat_logged()  # a beat asked for after the stop (beat_soon) writes nothing
    assert redis_lib.Redis.from_url(url).exists(redis_keys.worker(TRAINER)) == 0
    assert [w["name"] for w in workers_app.test_client().get("/api/workers").get_json()["workers"]] == []


def test_without_redis_the_api_says_so_in_words(app):
    client = app.test_client()
    english = client.get("/api/workers", headers={"Accept-Language": "en"})
    assert english.status_code == 503
    assert english.get_json() == {"code": "queue_unavailable", "error": "The workers announce themselves in Redis, "
                                  "which is not reachable; check that Redis is running."}
    chinese = client.get("/api/workers", headers={"Accept-Language": "zh-CN"}).get_json()
    assert chinese["code"] == "queue_unavailable" and HAN.search(chinese["error"]) and "Redis" in chinese["error"]


def workers_table(html: str) -> str:
    """The page's workers table (an admin's page also lists the scheduled backups, in a table of their own)."""
    return re.search(r'<table class="table" id="workers-table">.*?</table>', html, re.S).group(0)


def test_the_page_is_a_table_skeleton_its_script_fills(app):
    page = app.test_client().get("/workers", headers={"Accept-Language": "en"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert '<table class="table" id="workers-table">' in html and "<tbody></tbody>" in html
    headings = re.findall(r"<th>([^<]*)</th>", workers_table(html))
    assert headings == ["Name", "Host", "Device", "Queues", "Doing", "Last heartbeat"]
    assert 'src="/static/js/workers.js"' in html and "<script>" not in html and "style=" not in html
    assert 'id="workers-empty" hidden' in html  # the script shows how to start a worker when there is none
    assert "-Q training -c 1 -n trainer-1@%h" in html and "-Q training.gpu -c 1" in html
    assert re.search(r'<a href="/workers" class="active">Workers</a>', html)
    assert '<a href="/workers" class="">' in app.test_client().get("/datasets").get_data(as_text=True)


def test_the_chinese_page_carries_its_script_words(app):
    html = app.test_client().get("/workers", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    catalog = json.loads(re.search(r'<script type="application/json" id="i18n-catalog">(.*?)</script>', html,
                                   re.S).group(1))["messages"]
    for words in ("checking…", "idle", "checks uploads, sends webhooks", "Job %(id)s", "%(count)s training workers",
                  "%(count)s busy", "%(count)s jobs waiting", "%(error)s Retrying…"):
        assert HAN.search(catalog.get(words, "")), words
    headings = re.findall(r"<th>([^<]*)</th>", workers_table(html))
    assert headings == ["名称", "主机", "设备", "队列", "当前工作", "最近心跳"]


def test_anonymous_callers_get_nothing_and_viewers_get_the_list(tmp_path, redis_url_empty):
    app = create_app(app_config(tmp_path, AUTH="on", REDIS_URL=redis_url_empty))
    upgrade_schema(app)
    with app.app_context():
        _, secret = accounts.create_token(accounts.create_user("viewer-ann", "a password 1", "viewer"), "script")
    announce(redis_url_empty, TRAINER, ["training"], "cpu")
    client = app.test_client()

    refused = client.get("/api/workers")
    assert refused.status_code == 401 and refused.get_json()["code"] == "unauthorized"
    assert socket.gethostname() not in refused.get_data(as_text=True)
    page = client.get("/workers")
    assert page.status_code == 302 and page.headers["Location"].startswith("/sign-in?next=/workers")
    assert 'href="/workers"' not in client.get("/sign-in").get_data(as_text=True)

    viewer = client.get("/api/workers", headers={"Authorization": f"Bearer {secret}"}).get_json()
    assert [(w["name"], w["host"]) for w in viewer["workers"]] == [(TRAINER, socket.gethostname())]


def test_health_counts_the_workers_that_take_jobs_for_any_device(workers_app):
    url = workers_app.config["REDIS_URL"]
    announce(url, GPU_TRAINER, ["training.gpu"], "gpu:0")  # kept for GPU jobs only
    announce(url, INGEST, ["ingest"], None)
    client = workers_app.test_client()
    health = client.get("/api/health")
    assert health.status_code == 503 and health.json["training_workers"] == 0  # 'any' jobs would wait
    assert len(health.json["workers"]) == 2
    announce(url, TRAINER, ["training", "training.cpu"], "cpu")
    workers_app.extensions.pop("health_workers", None)
    health = client.get("/api/health")
    assert health.status_code == 200 and health.json["status"] == "ok" and health.json["training_workers"] == 1
