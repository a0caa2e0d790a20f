"""Feedback on predictions: verdicts, kept images under a cap, counts in the live figures, datasets made
from corrections (never changing the source dataset), purge, and bad input."""
from __future__ import annotations

import io
import time
import uuid

import pytest

from tests.images import class_files, noisy_image, zip_bytes
from webapp.extensions import db
from webapp.feedback.holding import HeldPrediction, PredictionHold
from webapp.models import Dataset, Feedback, ModelVersion
from webapp.storage import DataDir


def predict(client, seed: int = 1, color=(220, 40, 40)) -> dict:
    form = {"image": (io.BytesIO(noisy_image(seed, color)), "x.png")}
    response = client.post("/api/predict", data=form, content_type="multipart/form-data")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def feedback(client, prediction_id: str, **payload):
    return client.post(f"/api/predictions/{prediction_id}/feedback", json=payload)


@pytest.fixture
def client(served):
    return served.test_client()


def test_wrong_answer_with_the_right_class_keeps_the_image_and_counts(served, client):
    answer = predict(client)
    response = feedback(client, answer["id"], correct=False, label=" 玫瑰 ")
    assert response.status_code == 201
    body = response.get_json()
    assert (body["prediction_id"], body["version"], body["arm"]) == (answer["id"], 1, "production")
    assert (body["predicted_class"], body["correct"], body["label"]) == (answer["class"], False, "玫瑰")
    assert body["image_kept"] is True and body["confidence"] == pytest.approx(answer["confidence"], abs=1e-6)
    kept = DataDir(served.config["DATA_DIR"]).feedback
    assert sorted(p.name for p in kept.iterdir()) == [f"{answer['id']}.png", f"{answer['id']}.thumb.jpg"]
    image = client.get(body["image_url"])
    assert image.status_code == 200 and image.data == noisy_image(1, (220, 40, 40))
    assert client.get(body["thumbnail_url"]).data[:2] == b"\xff\xd8"

    listed = client.get("/api/feedback").get_json()
    assert [item["label"] for item in listed["items"]] == ["玫瑰"]
    totals = listed["totals"]
    assert (totals["feedback"], totals["marked_wrong"], totals["images_kept"]) == (1, 1, 1)
    assert totals["corrections_not_in_a_dataset"] == 1 and totals["disk_bytes"] == len(noisy_image(1, (220, 40, 40)))

    figures = {v["version"]: v for v in client.get("/api/release/stats?hours=1").get_json()["versions"]}
    assert (figures[1]["feedback"], figures[1]["marked_wrong"], figures[1]["feedback_accuracy"]) == (1, 1, 0.0)


def test_marking_right_then_changing_the_verdict_updates_one_row(served, client):
    answer = predict(client)
    first = feedback(client, answer["id"], correct=True)
    assert first.status_code == 201 and first.get_json()["label"] == answer["class"]
    changed = feedback(client, answer["id"], correct=False, label="blue" if answer["class"] != "blue" else "red")
    assert changed.status_code == 200 and changed.get_json()["correct"] is False
    with served.app_context():
        assert db.session.query(Feedback).count() == 1
    stats = client.get("/api/release/stats").get_json()["versions"][0]
    assert (stats["feedback"], stats["marked_wrong"]) == (1, 1)
    unknown = feedback(client, answer["id"], correct=False, label=None)
    assert unknown.status_code == 200 and unknown.get_json()["label"] is None


def test_contradictions_and_bad_bodies_are_refused_and_change_nothing(served, client):
    answer = predict(client)
    other = "blue" if answer["class"] != "blue" else "red"
    cases = [
        ({"correct": True, "label": other}, 400, "conflicting_fields"),
        ({"correct": False, "label": answer["class"]}, 400, "conflicting_fields"),
        ({"correct": "yes"}, 400, "invalid_field"),
        ({}, 400, "invalid_field"),
        ({"correct": False, "label": "a/b"}, 400, "invalid_field"),
        ({"correct": False, "label": ".hidden"}, 400, "invalid_field"),
        ({"correct": False, "label": "x" * 256}, 400, "invalid_field"),
        ({"correct": False, "label": "tab\there"}, 400, "invalid_field"),
        ({"correct": False, "label": 7}, 400, "invalid_field"),
        ({"correct": False, "label": "ok", "extra": 1}, 400, "unknown_option"),
    ]
    for payload, status, code in cases:
        response = feedback(client, answer["id"], **payload)
        assert (response.status_code, response.get_json()["code"]) == (status, code), payload
    for body in (b"[1, 2]", b"not json", b'"text"'):
        response = client.post(f"/api/predictions/{answer['id']}/feedback", data=body, content_type="application/json")
        assert response.status_code == 400 and response.get_json()["code"] == "invalid_body"
    with served.app_context():
        assert db.session.query(Feedback).count() == 0
    assert feedback(client, answer["id"], correct=True).status_code == 201


def test_unknown_or_malformed_prediction_ids_are_not_found(client):
    for raw in (str(uuid.uuid4()), "not-a-uuid", "9" * 300, "%00", "١٢٣"):
        response = feedback(client, raw, correct=True)
        assert response.status_code == 404, raw
        assert response.get_json()["code"] == "prediction_not_found"
        assert "minutes" in response.get_json()["error"]


def test_the_disk_cap_keeps_the_verdict_but_not_the_image(served, client):
    served.config["FEEDBACK_MAX_BYTES"] = 10
    answer = predict(client)
    body = feedback(client, answer["id"], correct=True).get_json()
    assert body["image_kept"] is False and body["image_url"] is None
    assert client.get("/api/feedback").get_json()["totals"]["feedback"] == 1
    assert not DataDir(served.config["DATA_DIR"]).feedback.exists()


def _correct(client, label_for: dict[str, int]) -> list[str]:
    """Predict and mark wrong with the given classes, `count` images each; returns prediction ids."""
    ids, seed = [], 0
    for label, count in label_for.items():
        for _ in range(count):
            seed += 1
            answer = predict(client, seed)
            assert feedback(client, answer["id"], correct=False, label=label).status_code == 201
            ids.append(answer["id"])
    return ids


def test_corrections_become_a_new_dataset_once(served, client):
    _correct(client, {"玫瑰": 2, "郁金香": 3})
    made = client.post("/api/feedback/dataset", json={"mode": "new", "name": "纠正"})
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert body["feedback_images"] == 5 and body["dataset"]["name"] == "纠正"
    classes = {c["name"]: c["train"] + c["val"] for c in body["dataset"]["classes"]}
    assert classes == {"玫瑰": 2, "郁金香": 3}
    listed = client.get("/api/feedback").get_json()
    assert {item["dataset_id"] for item in listed["items"]} == {body["dataset"]["id"]}
    assert listed["totals"]["corrections_not_in_a_dataset"] == 0
    again = client.post("/api/feedback/dataset", json={"mode": "new"})
    assert again.status_code == 400 and again.get_json()["code"] == "no_feedback_images"


def test_corrections_added_as_a_new_revision_of_the_training_dataset(served, client):
    upload = client.post("/api/datasets", data={"archive": (io.BytesIO(zip_bytes(class_files({"red": 4, "green": 4}))),
                                                            "colours.zip")}, content_type="multipart/form-data")
    source = upload.get_json()
    with served.app_context():
        db.session.get(ModelVersion, 1).dataset_id = source["id"]
        db.session.commit()
    _correct(client, {"green": 2, "orange": 2})
    made = client.post("/api/feedback/dataset", json={"mode": "append", "version": 1})
    assert made.status_code == 201, made.get_json()
    answer = made.get_json()
    dataset = answer["dataset"]
    assert (dataset["id"], dataset["name"], answer["revision"], dataset["revision"]) == (source["id"], "colours", 2, 2)
    assert answer["feedback_images"] == 4
    counts = {c["name"]: (c["train"], c["val"]) for c in dataset["classes"]}
    source_counts = {c["name"]: (c["train"], c["val"]) for c in source["classes"]}
    assert counts["red"] == source_counts["red"]
    assert counts["green"] == (source_counts["green"][0] + 2, source_counts["green"][1])
    assert counts["orange"] == (2, 0)  # into the training split
    revision = client.get(f"/api/datasets/{source['id']}/revisions/2").get_json()
    assert revision["parent"] == 1 and revision["changes"]["added"] == 4
    assert revision["note"] == "Added 4 images from feedback on version 1."
    first = client.get(f"/api/datasets/{source['id']}/revisions/1").get_json()  # never changed
    assert first["num_images"] == 8 and first["content_hash"] == source["content_hash"]
    diff = client.get(f"/api/datasets/{source['id']}/revisions/2/diff").get_json()
    assert diff["counts"] == {"added": 4, "removed": 0, "relabelled": 0, "moved": 0}
    assert all(item["path"].startswith("train/") and "/feedback-" in item["path"] for item in diff["added"])


def test_dataset_requests_that_cannot_work_say_why(served, client):
    cases = [
        ({"mode": "append"}, 400, "missing_field"),
        ({"mode": "append", "version": 1}, 409, "source_dataset_gone"),
        ({"mode": "append", "version": 99}, 404, "model_version_not_found"),
        ({"mode": "append", "version": 2**70}, 404, "model_version_not_found"),
        ({"mode": "sideways"}, 400, "invalid_field"),
        ({"include": "some"}, 400, "invalid_field"),
        ({"version": "1"}, 400, "invalid_field"),
        ({"version": True}, 400, "invalid_field"),
        ({"name": 5}, 400, "invalid_field"),
        ({"colour": "red"}, 400, "unknown_option"),
        ({"mode": "new"}, 400, "no_feedback_images"),
    ]
    for payload, status, code in cases:
        response = client.post("/api/feedback/dataset", json=payload)
        assert (response.status_code, response.get_json()["code"]) == (status, code), payload
    _correct(client, {"only": 2})
    one_class = client.post("/api/feedback/dataset", json={})
    assert one_class.status_code == 422 and one_class.get_json()["code"] == "too_few_classes"
    with served.app_context():
        assert db.session.query(Dataset).count() == 0
        assert db.session.query(Feedback).filter(Feedback.dataset_id.is_not(None)).count() == 0


def test_purge_deletes_images_but_keeps_the_counts(served, client):
    _correct(client, {"a": 2, "b": 2})
    client.post("/api/feedback/dataset", json={})
    extra = predict(client, 50)
    feedback(client, extra["id"], correct=True)
    folder = DataDir(served.config["DATA_DIR"]).feedback
    assert len(list(folder.glob("*.thumb.jpg"))) == 5
    added = client.post("/api/feedback/purge", json={"scope": "added"}).get_json()
    assert added["purged"] == 4 and added["images_kept"] == 1 and added["freed_bytes"] > 0
    assert len(list(folder.glob("*.thumb.jpg"))) == 1
    rest = client.post("/api/feedback/purge", json={"scope": "all"}).get_json()
    assert (rest["purged"], rest["images_kept"], rest["disk_bytes"], rest["feedback"]) == (1, 0, 0, 5)
    assert list(folder.iterdir()) == []
    gone = client.get(f"/api/feedback/{client.get('/api/feedback').get_json()['items'][0]['id']}/image")
    assert gone.status_code == 404 and gone.get_json()["code"] == "image_not_found"
    bad = client.post("/api/feedback/purge", json={"scope": "everything"})
    assert bad.status_code == 400 and bad.get_json()["field"] == "scope"


def test_listing_filters_and_bounds(client):
    _correct(client, {"a": 1})
    right = predict(client, 9)
    feedback(client, right["id"], correct=True)
    assert len(client.get("/api/feedback?kind=corrections").get_json()["items"]) == 1
    assert len(client.get("/api/feedback?version=1&limit=1").get_json()["items"]) == 1
    assert client.get("/api/feedback?version=2").get_json()["items"] == []
    for query in ("version=0", "version=-1", f"version={2**64}", "limit=0", "limit=501", "kind=odd", "limit=x"):
        response = client.get(f"/api/feedback?{query}")
        assert response.status_code == 400 and response.get_json()["code"] == "invalid_field", query
    assert client.get(f"/api/feedback/{2**70}/image").status_code == 404
    assert client.get("/api/feedback/12345/image").get_json()["code"] == "feedback_not_found"


def held(prediction_id: str, size: int, age: float = 0.0) -> HeldPrediction:
    return HeldPrediction(prediction_id, 1, "production", "red", 0.9, False, "png", time.time() - age, b"x" * size)


def test_the_hold_drops_the_oldest_beyond_its_bytes_and_age():
    hold = PredictionHold("redis://127.0.0.1:1/0", max_bytes=100, seconds=60, lookup_seconds=0.2)
    hold.keep(held("old", 40, age=120))
    assert hold.local("old") is None
    for name in ("a", "b", "c"):
        hold.keep(held(name, 40))
    assert hold.local("a") is None and hold.local("b") is not None and hold.local("c") is not None
    hold.keep(held("huge", 101))
    assert hold.local("huge") is None and hold.local("c") is not None
    assert hold.find("missing") is None  # Redis is unreachable here: the lookup gives up, it does not raise


def test_a_held_prediction_survives_the_trip_through_redis_encoding():
    original = held("id-1", 0)
    original.image = bytes(range(256)) + b"\n\n"
    copy = HeldPrediction.decode(original.encode())
    assert copy == original
