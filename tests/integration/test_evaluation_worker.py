"""A real worker evaluates two versions on the same held-out split; the threshold follows that split."""
import io
import time

import pytest
from sqlalchemy import func, select

from tests.factories import register_bundle
from tests.images import class_files, zip_bytes
from webapp.extensions import db
from webapp.models import ModelVersion
from tests.stack import upload_dataset

pytestmark = pytest.mark.integration


def test_worker_compares_versions_on_a_test_split(stack_app, stack_client, trained):
    with stack_app.app_context():
        newest = db.session.scalar(select(func.max(ModelVersion.version))) or 0
    versions = [newest + 1, newest + 2]
    for version in versions:
        register_bundle(stack_app, trained[1], version)
    colours = {"red": 3, "green": 3, "blue": 3}
    files = {**class_files(colours, prefix="train/"), **class_files(colours, prefix="val/", seed=40),
             **class_files({k: 4 for k in colours}, prefix="test/", seed=80)}
    dataset_id = upload_dataset(stack_client, {"name": "held-out",
                                               "archive": (io.BytesIO(zip_bytes(files)), "held-out.zip")})["id"]
    ids = []
    for version in versions:
        answer = stack_client.post("/api/evaluations", json={"version": version, "dataset_id": dataset_id})
        assert answer.status_code == 202 and answer.get_json()["split"] == "test"
        ids.append(answer.get_json()["id"])
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        rows = [stack_client.get(f"/api/evaluations/{i}").get_json() for i in ids]
        if all(row["status"] in ("succeeded", "failed") for row in rows):
            break
        time.sleep(0.3)
    assert [row["status"] for row in rows] == ["succeeded", "succeeded"], rows
    assert rows[0]["images"] == rows[1]["images"] == 12
    assert rows[0]["accuracy"] == rows[1]["accuracy"] >= 0.8 and rows[0]["worker"]
    suggestion = stack_client.get(f"/api/models/{versions[0]}").get_json()["suggested_threshold"]
    assert suggestion["calibrated_on"] == "test split of revision 1 of dataset 'held-out'" and suggestion["samples"] == 12
