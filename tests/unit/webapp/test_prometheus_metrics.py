"""GET /metrics: who may read it, what the figures say after requests and predictions, and the install's
shared state read at scrape time (queues, background work by status, workers, uploads)."""
from __future__ import annotations

import io
import shutil
import urllib.request

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from launcher import (batch_worker_process, free_port, ingest_worker_process, number_metrics_ports,
                      worker_process)
from tests.factories import app_with_user
from tests.images import image_bytes
from tests.stack import DATABASE_FILE, app_config
from webapp import create_app, metrics, process_metrics
from webapp.background import KINDS
from webapp.accounts import services
from webapp.extensions import db
from webapp.models import Dataset, Job
from webapp.storage import DataDir
from worker.beacon import WorkerBeacon

SCRAPE_TOKEN = "scrape-3f9c1b7e"


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of a scrape."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(text: str, name: str, **labels) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def signed_in_app(tmp_path, redis_url_empty):
    return app_with_user(tmp_path, "ada-admin", "correct horse battery", "admin", METRICS_TOKEN=SCRAPE_TOKEN,
                         REDIS_URL=redis_url_empty)


def token_of(app, username: str, role: str | None = None) -> str:
    with app.app_context():
        user = services.find_user(username) or services.create_user(username, "correct horse battery", role)
        return services.create_token(user, "scraper")[1]


def test_admins_tokens_and_the_scrape_token_read_the_figures_and_nobody_else(signed_in_app):
    client = signed_in_app.test_client()
    admin, viewer = token_of(signed_in_app, "ada-admin"), token_of(signed_in_app, "vic-viewer", "viewer")
    for headers in (bearer(admin), bearer(SCRAPE_TOKEN)):
        answer = client.get("/metrics", headers=headers)
        assert answer.status_code == 200 and answer.content_type.startswith("text/plain; version=0.0.4")
        assert "studio_background_work" in answer.get_data(as_text=True)
    refusals = {"nobody": client.get("/metrics"), "viewer": client.get("/metrics", headers=bearer(viewer)),
                "wrong": client.get("/metrics", headers=bearer(SCRAPE_TOKEN + "x"))}
    assert {who: (answer.status_code, answer.get_json()["code"]) for who, answer in refusals.items()} == {
        "nobody": (401, "unauthorized"), "viewer": (403, "forbidden"), "wrong": (401, "invalid_token")}
    # the scrape token opens nothing else
    assert client.get("/api/models", headers=bearer(SCRAPE_TOKEN)).get_json()["code"] == "invalid_token"


def test_without_sign_in_this_machine_reads_them(client):
    answer = client.get("/metrics")
    assert answer.status_code == 200 and "studio_source_up" in answer.get_data(as_text=True)


def test_requests_are_counted_by_endpoint_and_status_never_by_path(client):
    before = client.get("/metrics").get_data(as_text=True)
    for dataset_id in (101, 102, 103):
        assert client.get(f"/api/datasets/{dataset_id}").status_code == 404
    client.get("/no/such/page")
    text = client.get("/metrics").get_data(as_text=True)
    counted = {"endpoint": "datasets_api.show", "method": "GET", "status": "404"}
    assert value(text, "studio_http_requests_total", **counted) - value(
        before, "studio_http_requests_total", **counted) == 3
    assert value(text, "studio_http_request_seconds_count", endpoint="datasets_api.show", method="GET") >= 3
    assert value(text, "studio_http_requests_total", endpoint="unmatched", method="GET", status="404") >= 1
    assert "/api/datasets/101" not in text


def test_predictions_are_counted_per_version_arm_and_runtime(served):
    client = served.test_client()
    labels = None
    before = client.get("/metrics").get_data(as_text=True)
    for _ in range(3):
        answer = client.post("/api/predict", data={"image": (io.BytesIO(image_bytes()), "red.jpg")},
                             content_type="multipart/form-data").get_json()
        labels = {"version": str(answer["model_version"]), "arm": answer["arm"], "runtime": answer["runtime"]}
    text = client.get("/metrics").get_data(as_text=True)
    assert value(text, "studio_predictions_total", **labels) - value(before, "studio_predictions_total", **labels) == 3
    assert value(text, "studio_prediction_seconds_count", **labels) - value(
        before, "studio_prediction_seconds_count", **labels) == 3


@pytest.fixture
def state_app(tmp_path, migrated_sqlite, redis_url_empty):
    shutil.copyfile(migrated_sqlite, tmp_path / DATABASE_FILE)
    return create_app(app_config(tmp_path, REDIS_URL=redis_url_empty))


def test_the_shared_state_is_read_at_scrape_time(state_app):
    broker = redis.Redis.from_url(state_app.config["REDIS_URL"])
    broker.rpush("training", "a", "b", "c")
    broker.rpush("ingest", "d")
    WorkerBeacon(state_app.config["REDIS_URL"], "trainer-1@box", ["training", "training.cpu"], "cpu").beat()
    fell_back = WorkerBeacon(state_app.config["REDIS_URL"], "trainer-gpu0@box", ["training", "training.cpu"], "cpu")
    fell_back.device_problem = "gpu:0 failed its check: RuntimeError: Cannot load cudnn shared library"
    fell_back.beat()
    with state_app.app_context():
        dataset = Dataset(name="pets", status="processing", ingest_done=7, ingest_total=20)
        db.session.add(dataset)
        db.session.flush()
        db.session.add_all([Job(dataset_id=dataset.id, dataset_name="pets", status=status, config={"epochs": 1})
                            for status in ("queued", "queued", "running", "failed")])
        db.session.commit()
        dataset_id = dataset.id
    text = state_app.test_client().get("/metrics").get_data(as_text=True)
    assert {queue: value(text, "studio_queue_depth", queue=queue) for queue in metrics.QUEUES} == {
        "training": 3, "training.cpu": 0, "training.gpu": 0, "ingest": 1, "batch": 0, "webhooks": 0,
        "maintenance": 0}
    assert {status: value(text, "studio_background_work", kind="job", status=status)
            for status in ("queued", "running", "succeeded", "failed", "cancelled")} == {
        "queued": 2, "running": 1, "succeeded": 0, "failed": 1, "cancelled": 0}
    assert value(text, "studio_background_work", kind="upload_check", status="processing") == 1
    assert value(text, "studio_upload_images_checked", dataset=str(dataset_id)) == 7
    assert value(text, "studio_upload_images", dataset=str(dataset_id)) == 20
    assert value(text, "studio_workers", queue="training") == 2 and value(text, "studio_workers", queue="batch") == 0
    beats = {dict(labels)["worker"]: age for (name, labels), age in samples(text).items()
             if name == "studio_worker_heartbeat_age_seconds"}
    assert sorted(beats) == ["trainer-1@box", "trainer-gpu0@box"] and 0 <= beats["trainer-1@box"] < 60
    problems = {dict(labels)["worker"]: flag for (name, labels), flag in samples(text).items()
                if name == "studio_worker_device_problem"}
    assert problems == {"trainer-1@box": 0, "trainer-gpu0@box": 1}
    assert value(text, "studio_source_up", source="redis") == 1


def test_a_source_that_does_not_answer_is_said_so_and_the_scrape_still_answers(client):
    text = client.get("/metrics").get_data(as_text=True)  # the unit tests' Redis address refuses
    assert value(text, "studio_source_up", source="redis") == 0
    assert value(text, "studio_source_up", source="database") == 1
    assert "studio_queue_depth" not in text


def test_every_kind_of_background_work_is_reported_with_every_status(state_app):
    text = state_app.test_client().get("/metrics").get_data(as_text=True)
    reported = {(dict(labels)["kind"], dict(labels)["status"]) for (name, labels) in samples(text)
                if name == "studio_background_work"}
    assert reported == {(kind.name.replace(" ", "_"), status.value) for kind in KINDS for status in type(kind.waiting)}
    assert {"job", "webhook_delivery"} <= {kind for kind, _ in reported}


def test_a_process_tree_gets_a_fresh_folder_and_the_gone_ones_are_removed(tmp_path, monkeypatch):
    monkeypatch.setenv(process_metrics.MULTIPROCESS_FOLDER, "")
    root = tmp_path / "figures"
    gone = root / "web-thishost-999999999"
    gone.mkdir(parents=True)
    monkeypatch.setattr(process_metrics.socket, "gethostname", lambda: "thishost")
    folder = process_metrics.prepare_folder("web", {"METRICS_DIR": str(root)})
    assert folder.is_dir() and list(folder.iterdir()) == [] and not gone.exists()
    assert process_metrics.os.environ[process_metrics.MULTIPROCESS_FOLDER] == str(folder)
    process_metrics.remove_folder()
    assert not folder.exists()


def test_the_figures_folder_is_under_the_data_dir_and_never_a_leftover(tmp_path):
    from webapp.config import data_dir_from_env
    from webapp.storage import DataDir

    assert process_metrics.figures_root({"DATA_DIR": str(tmp_path)}) == data_dir_from_env(str(tmp_path)).metrics
    folders = DataDir(tmp_path)
    folders.metrics.mkdir(parents=True)
    (folders.tmp / "incoming-x").mkdir()
    assert folders.leftovers() == [folders.tmp / "incoming-x"]


def test_a_worker_serves_its_own_figures_on_its_port():
    port = free_port()
    server = process_metrics.serve(port, "127.0.0.1")
    try:
        process_metrics.figures().tasks.labels("worker.train", "SUCCESS").inc()
        process_metrics.figures().epoch_seconds.labels("resnet18", "cpu").observe(42.0)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    finally:
        server.shutdown()
    assert value(text, "studio_worker_tasks_total", task="worker.train", state="SUCCESS") >= 1
    assert value(text, "studio_training_epoch_seconds_bucket", backbone="resnet18", device="cpu", le="60.0") >= 1
    assert value(text, "process_resident_memory_bytes") > 0


def test_the_launcher_gives_each_worker_a_port_of_its_own(tmp_path):
    folders = DataDir(tmp_path)
    workers = [worker_process(folders, {"WORKER_METRICS_PORT": "9310"}),
               ingest_worker_process(folders, {"WORKER_METRICS_PORT": "9310"}),
               batch_worker_process(folders, {"WORKER_METRICS_PORT": "9310"})]
    number_metrics_ports(workers)
    assert [worker.env["WORKER_METRICS_PORT"] for worker in workers] == ["9310", "9311", "9312"]
    silent = [worker_process(folders, {})]
    number_metrics_ports(silent)
    assert "WORKER_METRICS_PORT" not in silent[0].env
