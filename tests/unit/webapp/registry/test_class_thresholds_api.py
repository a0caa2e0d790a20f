"""Per-class abstain thresholds through the API: set and refuse, suggest from an evaluation, apply in serving,
and the release history of every threshold change."""
from __future__ import annotations

import io

import numpy as np

from tests.factories import CLASSES
from tests.images import noisy_image
from webapp.extensions import db
from webapp.models import Evaluation


def add_evaluation(app, split: str, seed: int = 0, calibration: dict | None = None) -> int:
    """A finished evaluation of version 1 whose answers are simulated: red 40 images (the model calls 8 blues red
    at low confidence), green 30 images always right, blue 10 images (too few)."""
    rng = np.random.default_rng(seed)
    label = [0] * 40 + [1] * 30 + [2] * 10
    predicted = [0] * 40 + [1] * 30 + [0] * 8 + [2] * 2
    confidence = np.r_[rng.uniform(0.7, 1.0, 70), rng.uniform(0.4, 0.6, 8), [0.9, 0.9]].round(5).tolist()
    sample = calibration or {"confidence": confidence, "correct": [int(p == t) for p, t in zip(predicted, label)],
                             "predicted": predicted, "label": label}
    with app.app_context():
        row = Evaluation(version=1, dataset_id=None, dataset_name="colours", revision=2, split=split,
                         status="succeeded", progress=1.0, report={"accuracy": 0.9, "calibration": sample})
        db.session.add(row)
        db.session.commit()
        return row.id


def predict(client):
    form = {"image": (io.BytesIO(noisy_image(42, (40, 200, 60))), "g.png"), "version": "1"}
    return client.post("/api/predict", data=form, content_type="multipart/form-data").get_json()


def test_a_class_threshold_makes_answers_naming_that_class_abstain(served):
    client = served.test_client()
    assert predict(client)["class"] == "green"
    saved = client.put("/api/models/1", json={"class_thresholds": {"green": 0.999, "red": 0.5}}).get_json()
    assert saved["class_thresholds"] == {"red": 0.5, "green": 0.999} and saved["class_thresholds_calibration"] is None
    body = predict(client)
    assert (body["class"], body["abstained"], body["abstained_by"]) == (None, True, "class")
    assert body["top_k"][0]["class"] == "green"
    assert client.put("/api/models/1", json={"abstain_threshold": 0.9999}).status_code == 200
    assert predict(client)["abstained_by"] == "version"  # the version's own threshold is looked at first
    cleared = client.put("/api/models/1", json={"abstain_threshold": None, "class_thresholds": {"green": None}})
    assert cleared.get_json()["class_thresholds"] == {"red": 0.5}
    body = predict(client)
    assert (body["class"], body["abstained"], body["abstained_by"]) == ("green", False, None)
    listed = client.get("/api/models").get_json()["models"][0]
    assert listed["class_thresholds"] == {"red": 0.5}


def test_bad_class_thresholds_are_refused_and_change_nothing(served):
    client = served.test_client()
    unknown = client.put("/api/models/1", json={"class_thresholds": {"green": 0.8, "violet": 0.5, "pink": 0.4}})
    body = unknown.get_json()
    assert unknown.status_code == 400 and body["code"] == "unknown_class" and body["field"] == "class_thresholds"
    assert "'pink', 'violet'" in body["error"] and "red, green, blue" in body["error"]
    assert body["unknown_classes"] == ["pink", "violet"]
    for bad in (0, 1, 1.5, -0.2, "0.5", True, [0.5]):
        refused = client.put("/api/models/1", json={"class_thresholds": {"green": bad}})
        assert refused.status_code == 400 and refused.get_json()["field"].startswith("class_thresholds"), bad
    assert client.put("/api/models/1", json={"class_thresholds": [0.5]}).get_json()["field"] == "class_thresholds"
    assert client.put("/api/models/1", json={"class_thresholds": None}).status_code == 400
    no_values = client.put("/api/models/1", json={"calibration": {"precision": 0.9, "evaluation_id": 1}})
    assert no_values.status_code == 400 and no_values.get_json()["field"] == "class_thresholds"
    assert client.get("/api/models/1").get_json()["class_thresholds"] == {}
    assert [c["action"] for c in client.get("/api/release").get_json()["history"]] == ["first_version"]


def test_the_suggestion_meets_the_target_where_it_can_and_says_why_not(served):
    client = served.test_client()
    assert client.get("/api/models/1/class-thresholds/suggestion").get_json()["code"] == "no_calibration"
    add_evaluation(served, "val", seed=1)
    newest_test = add_evaluation(served, "test")
    answer = client.get("/api/models/1/class-thresholds/suggestion?precision=0.98")
    body = answer.get_json()
    assert answer.status_code == 200 and body["evaluation_id"] == newest_test and body["split"] == "test"
    assert body["calibrated_on"] == "test split of revision 2 of dataset 'colours'" and body["images"] == 80
    red, green, blue = body["classes"]
    assert [c["class"] for c in body["classes"]] == CLASSES
    assert red["status"] == "threshold" and 0.7 <= red["threshold"] < 0.71 and red["precision"] == 1.0  # 40/41 < 0.98
    assert (red["images"], red["answers"], red["kept"]) == (40, 48, 40) and red["coverage"] == round(40 / 48, 4)
    assert green["status"] == "not_needed" and green["threshold"] is None and green["precision"] == 1.0
    assert blue["status"] == "too_few_images" and blue["threshold"] is None and blue["images"] == 10
    assert blue["reason"] == "Only 10 images of 'blue' in the split; at least 20 are needed to set its threshold."
    validation = client.get("/api/models/1/class-thresholds/suggestion?split=val").get_json()
    assert validation["split"] == "val" and validation["evaluation_id"] == newest_test - 1
    chinese = client.get("/api/models/1/class-thresholds/suggestion", headers={"Accept-Language": "zh-CN"})
    assert "blue" in chinese.get_json()["classes"][2]["reason"] and "Only" not in chinese.get_json()["classes"][2]["reason"]
    for query in ("precision=1", "precision=0.2", "precision=x", "split=train"):
        refused = client.get(f"/api/models/1/class-thresholds/suggestion?{query}")
        assert refused.status_code == 400 and refused.get_json()["field"] == query.split("=")[0], query
    assert client.get("/api/models/9/class-thresholds/suggestion").status_code == 404


def test_an_evaluation_from_before_per_class_calibration_is_passed_over(served):
    add_evaluation(served, "test", calibration={"confidence": [0.9], "correct": [1]})
    answer = served.test_client().get("/api/models/1/class-thresholds/suggestion")
    assert answer.status_code == 409 and answer.get_json()["code"] == "no_calibration"
    assert "evaluate it" in answer.get_json()["error"]


def test_applying_a_suggestion_keeps_its_calibration_and_every_change_joins_the_history(served):
    client = served.test_client()
    evaluation_id = add_evaluation(served, "test")
    suggested = client.get("/api/models/1/class-thresholds/suggestion?precision=0.95").get_json()
    values = {c["class"]: c["threshold"] for c in suggested["classes"]}
    applied = client.put("/api/models/1", json={"class_thresholds": values,
                                                "calibration": {"precision": 0.95, "evaluation_id": evaluation_id}})
    body = applied.get_json()
    assert body["class_thresholds"] == {"red": values["red"]}
    assert body["class_thresholds_calibration"] == {"precision": 0.95, "evaluation_id": evaluation_id, "split": "test",
                                                    "dataset_id": None, "dataset_name": "colours", "revision": 2}
    by_hand = client.put("/api/models/1", json={"class_thresholds": {"green": 0.8}}).get_json()
    assert by_hand["class_thresholds"] == {"red": values["red"], "green": 0.8}
    assert by_hand["class_thresholds_calibration"] is None
    assert client.put("/api/models/1", json={"abstain_threshold": 0.4}).status_code == 200
    assert client.put("/api/models/1", json={"abstain_threshold": 0.4}).status_code == 200  # no change, no entry
    history = client.get("/api/release").get_json()["history"]
    assert [(c["action"], c["from"], c["to"]) for c in history] == [
        ("threshold", 1, 1), ("class_thresholds", 1, 1), ("class_thresholds", 1, 1), ("first_version", None, 1)]
    assert history[0]["details"] == {"from": None, "to": 0.4}
    assert history[1]["details"] == {"changes": {"green": {"from": None, "to": 0.8}}, "calibration": None}
    assert history[2]["details"]["changes"] == {"red": {"from": None, "to": values["red"]}}
    assert history[2]["details"]["calibration"]["evaluation_id"] == evaluation_id
    assert history[0]["by"] == history[2]["by"] and history[3]["details"] is None
    other = client.put("/api/models/1", json={"class_thresholds": {"red": 0.5},
                                              "calibration": {"precision": 0.95, "evaluation_id": 999}})
    assert other.status_code == 400 and other.get_json()["field"] == "calibration.evaluation_id"


def test_test_falls_back_to_the_validation_split(served):
    evaluation_id = add_evaluation(served, "val")
    body = served.test_client().get("/api/models/1/class-thresholds/suggestion?split=test").get_json()
    assert (body["split"], body["evaluation_id"]) == ("val", evaluation_id)
    assert body["calibrated_on"] == "validation split of revision 2 of dataset 'colours'"
