"""The web app and a real worker meet through a real Redis."""
import io

import pytest

from tests.images import class_files, zip_bytes
from tests.stack import upload_dataset
from webapp.taskqueue import DESCRIBE_TASK

pytestmark = pytest.mark.integration


def test_task_round_trip_runs_in_an_app_context(stack_app, stack_client):
    before = stack_app.extensions["celery"].send_task(DESCRIBE_TASK).get(timeout=60)
    dataset = upload_dataset(stack_client, {"archive": (io.BytesIO(zip_bytes(class_files({"a": 2, "b": 2}))), "x.zip")})
    assert dataset["status"] == "ready" and dataset["num_images"] == 4
    after = stack_app.extensions["celery"].send_task(DESCRIBE_TASK).get(timeout=60)
    assert after["datasets"] == before["datasets"] + 1
    assert after["device"] == "cpu" and after["paddle"].startswith("3.")


def test_health_sees_redis_and_the_worker(stack_client):
    response = stack_client.get("/api/health")
    body = response.get_json()
    assert response.status_code == 200
    assert body["status"] == "ok" and body["redis"] == "ok" and body["database"] == "ok"
    assert len(body["workers"]) == 2
    assert body["workers"][0].startswith("ingest-test") and body["workers"][1].startswith("test")
