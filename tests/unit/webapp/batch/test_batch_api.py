"""The batch prediction API in one process: a run asked for (an upload or a revision), run here by the worker's
own function, its answers equal to POST /api/predict's, its results downloaded, a resumed attempt that goes on
from the committed point, cancel, delete, and the watcher removing results kept long enough."""
from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest

from tests.factories import register_bundle
from tests.images import image_bytes, zip_bytes
from webapp.batch.results import CSV_NAME, JSONL_NAME
from webapp.batch.services import expire_results
from webapp.extensions import db
from webapp.models import BatchPrediction, utcnow
from webapp.storage import DataDir
from worker.batch import run_batch

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}


class _Sent:
    id = "task-id"


@pytest.fixture
def sent(app, monkeypatch):
    """Tasks the app sends, kept instead of going to a broker."""
    tasks = []

    def send_task(name, args, **_):
        tasks.append((name, args[0]))
        return _Sent()

    monkeypatch.setattr(app.extensions["celery"], "send_task", send_task)
    return tasks


@pytest.fixture
def model(app, trained):
    register_bundle(app, trained[1], 1)
    return app


def photos() -> dict[str, bytes]:
    files = {f"{name}/{n}.png": image_bytes(colour, size=(40 + n, 30), fmt="PNG")
             for name, colour in COLOURS.items() for n in range(3)}
    return {**files, "notes/readme.txt": b"not an image", "../escape.jpg": image_bytes()}


def start(client, files: dict[str, bytes], **fields) -> dict:
    answer = client.post("/api/batch-predictions", content_type="multipart/form-data",
                         data={"archive": (io.BytesIO(zip_bytes(files)), "photos.zip"), **fields})
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()


def run(app, batch_id: int) -> str:
    with app.app_context():
        return run_batch(batch_id, "batch-test@here")


def jsonl(client, batch_id: int) -> list[dict]:
    answer = client.get(f"/api/batch-predictions/{batch_id}/results.jsonl")
    assert answer.status_code == 200
    return [json.loads(line) for line in answer.get_data(as_text=True).splitlines()]


def test_a_run_answers_each_image_as_predict_does_and_lists_the_refused_files(model, sent):
    client = model.test_client()
    files = photos()
    batch = start(client, files, top_k="2")
    assert (batch["status"], batch["total"], batch["version"], batch["top_k"], batch["results"]) == \
        ("queued", 11, 1, 2, None)
    assert sent == [("worker.predict_batch", batch["id"])]
    assert client.get(f"/api/batch-predictions/{batch['id']}/results.csv").get_json()["code"] == "results_not_ready"
    assert run(model, batch["id"]) == "succeeded"
    done = client.get(f"/api/batch-predictions/{batch['id']}").get_json()
    assert (done["status"], done["done"], done["refused"], done["progress"]) == ("succeeded", 11, 2, 1.0)
    assert done["summary"]["refused"] == {"not_an_image": 1, "path_refused": 1}
    assert sum(done["summary"]["classes"].values()) + done["summary"]["abstained"] == 9
    rows = jsonl(client, batch["id"])
    assert rows[0]["path"] == "../escape.jpg" and rows[0]["error"] == "path_refused"
    refused = next(row for row in rows if row["path"] == "notes/readme.txt")
    assert refused["error"] == "not_an_image" and refused["reason"].startswith("The file is not an image")
    for row in rows:
        if row["error"] is None:
            answer = client.post("/api/predict", data={"image": (io.BytesIO(files[row["path"]]), "x.png"),
                                                       "top_k": "2"}).get_json()
            assert {key: row[key] for key in ("class", "confidence", "abstained", "top_k")} == \
                {key: answer[key] for key in ("class", "confidence", "abstained", "top_k")}
    table = client.get(f"/api/batch-predictions/{batch['id']}/results.csv")
    assert table.headers["Content-Disposition"] == f'attachment; filename="batch-{batch["id"]}-results.csv"'
    assert table.get_data(as_text=True).splitlines()[0] == "path,class,confidence,abstained,top_k,error,reason"
    assert len(table.get_data(as_text=True).splitlines()) == 12
    assert not (DataDir(model.config["DATA_DIR"]).batch(batch["id"]) / "input").exists()  # the upload went


def test_an_attempt_after_a_lost_worker_goes_on_from_the_committed_rows(model, sent):
    client = model.test_client()
    files = photos()
    reference = start(client, files)
    run(model, reference["id"])
    expected = jsonl(client, reference["id"])
    resumed = start(client, files)
    folder = DataDir(model.config["DATA_DIR"]).batch(resumed["id"])
    lines = {name: (DataDir(model.config["DATA_DIR"]).batch(reference["id"]) / name).read_bytes().splitlines(True)
             for name in (CSV_NAME, JSONL_NAME)}
    committed = {CSV_NAME: b"".join(lines[CSV_NAME][:5]), JSONL_NAME: b"".join(lines[JSONL_NAME][:4])}
    for name, data in committed.items():  # four rows committed, then a fifth written half before the kill
        (folder / name).write_bytes(data + b'"half a row')
    with model.app_context():
        row = db.session.get(BatchPrediction, resumed["id"])
        row.done, row.refused, row.attempt, row.retries = 4, 1, 1, 1
        row.csv_bytes, row.jsonl_bytes = len(committed[CSV_NAME]), len(committed[JSONL_NAME])
        row.summary = {"classes": {}, "abstained": 0, "refused": {"path_refused": 1}, "seconds": 1.0}
        db.session.commit()
    assert run(model, resumed["id"]) == "succeeded"
    assert jsonl(client, resumed["id"]) == expected
    shown = client.get(f"/api/batch-predictions/{resumed['id']}").get_json()
    assert (shown["attempt"], shown["done"], shown["refused"]) == (2, 11, 2)


def test_a_revision_run_the_list_cancel_and_delete(model, sent):
    client = model.test_client()
    dataset = client.post("/api/datasets", content_type="multipart/form-data", data={
        "archive": (io.BytesIO(zip_bytes({f"{name}/{n}.png": image_bytes(colour, size=(30 + n, 30), fmt="PNG")
                                          for name, colour in COLOURS.items() for n in range(4)})), "d.zip")}).get_json()
    answer = client.post("/api/batch-predictions", json={"dataset_id": dataset["id"], "top_k": 1})
    assert answer.status_code == 202, answer.get_json()
    batch = answer.get_json()
    assert (batch["source"], batch["revision"], batch["total"]) == ("revision", 1, 12)
    assert run(model, batch["id"]) == "succeeded"
    assert sorted(row["path"] for row in jsonl(client, batch["id"])) == sorted(
        f"{name}/{n}.png" for name in COLOURS for n in range(4))
    waiting = start(client, photos())
    listed = client.get("/api/batch-predictions?limit=1").get_json()
    assert [item["id"] for item in listed["batches"]] == [waiting["id"]] and listed["next_before"] == waiting["id"]
    cancelled = client.post(f"/api/batch-predictions/{waiting['id']}/cancel").get_json()
    assert (cancelled["status"], cancelled["cancel_requested"]) == ("cancelled", True)
    assert run(model, waiting["id"]) == "skipped"
    assert client.post(f"/api/batch-predictions/{waiting['id']}/cancel").get_json()["code"] == "batch_finished"
    assert client.delete(f"/api/batch-predictions/{batch['id']}").get_json() == {"deleted": batch["id"]}
    assert client.get(f"/api/batch-predictions/{batch['id']}").get_json()["code"] == "batch_prediction_not_found"
    assert not DataDir(model.config["DATA_DIR"]).batch(batch["id"]).exists()


@pytest.mark.parametrize("fields, code, field", [
    ({"version": "9"}, "model_version_not_found", "version"),
    ({"top_k": "0"}, "invalid_field", "top_k"),
    ({"dataset_id": "1"}, "conflicting_fields", "dataset_id"),
])
def test_a_run_is_refused_with_the_field_at_fault(model, sent, fields, code, field):
    answer = model.test_client().post("/api/batch-predictions", content_type="multipart/form-data", data={
        "archive": (io.BytesIO(zip_bytes({"a.png": image_bytes(fmt="PNG")})), "a.zip"), **fields})
    assert (answer.get_json()["code"], answer.get_json().get("field")) == (code, field)
    assert sent == []


def test_without_a_model_or_files_a_run_is_refused(app, sent):
    client = app.test_client()
    assert client.post("/api/batch-predictions", content_type="multipart/form-data", data={
        "archive": (io.BytesIO(zip_bytes({"a.png": image_bytes(fmt="PNG")})), "a.zip")}).get_json()["code"] == "no_model"
    assert client.post("/api/batch-predictions", content_type="multipart/form-data",
                       data={"top_k": "3"}).get_json()["code"] == "missing_field"
    assert client.post("/api/batch-predictions", json={"dataset_id": 5}).get_json()["code"] == "dataset_not_found"


def test_results_kept_long_enough_are_removed_by_the_watcher_pass(model, sent):
    client = model.test_client()
    batch = start(client, photos())
    run(model, batch["id"])
    with model.app_context():
        assert expire_results() == []
        row = db.session.get(BatchPrediction, batch["id"])
        row.finished_at = utcnow() - timedelta(hours=model.config["BATCH_RESULTS_KEEP_HOURS"] + 1)
        db.session.commit()
        assert expire_results() == [batch["id"]]
    shown = client.get(f"/api/batch-predictions/{batch['id']}").get_json()
    assert (shown["results_expired"], shown["results"]) == (True, None)
    assert client.get(f"/api/batch-predictions/{batch['id']}/results.jsonl").status_code == 410
    assert not DataDir(model.config["DATA_DIR"]).batch(batch["id"]).exists()


def test_a_batch_run_loads_its_version_where_the_web_tier_serves_not_on_the_training_gpu(app, monkeypatch):
    import worker.batch

    loads = []
    monkeypatch.setattr(worker.batch, "load_version",
                        lambda folder, version, options, device, device_note=None: loads.append((device, device_note)))
    with app.app_context():
        worker.batch.load_model(3)
        app.config["SERVING_DEVICE"] = "gpu"  # asked for, on this CPU build
        worker.batch.load_model(3)
    assert loads[0] == ("cpu", None)
    assert loads[1][0] == "cpu" and loads[1][1] == "SERVING_DEVICE=gpu, but this Paddle build has no CUDA; serving on " \
                                                  "the CPU."
