"""Release control through the API: promote, rollback, candidate and share, conflicts, bad input."""
from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest

from tests.factories import register_bundle
from tests.images import noisy_image


def predict(client, client_id: str | None = None, **fields):
    form = {"image": (io.BytesIO(noisy_image(1, (220, 40, 40))), "x.png"), **{k: str(v) for k, v in fields.items()}}
    headers = {"X-Client-Id": client_id} if client_id else {}
    return client.post("/api/predict", data=form, content_type="multipart/form-data", headers=headers)


@pytest.fixture
def three(served, trained):
    """Versions 1 (production, the first), 2 and 3 (registered, not promoted)."""
    register_bundle(served, trained[1], 2)
    register_bundle(served, trained[1], 3)
    return served.test_client()


def test_first_version_is_production_and_new_ones_wait_to_be_promoted(three):
    state = three.get("/api/release").get_json()
    assert (state["production"], state["candidate"], state["candidate_share"]) == (1, None, 0)
    assert [(c["action"], c["to"], c["by"]) for c in state["history"]] == [("first_version", 1, "测试员")]
    listed = three.get("/api/models").get_json()
    assert listed["default_version"] == 1
    assert [(m["version"], m["release_role"], m["is_default"]) for m in listed["models"]] == \
        [(3, None, False), (2, None, False), (1, "production", True)]
    body = predict(three).get_json()
    assert (body["model_version"], body["arm"]) == (1, "production")
    assert uuid.UUID(body["id"]) and body["abstained"] is False


def test_promote_then_roll_back_in_one_call(three):
    promoted = three.put("/api/release", json={"production": 3}).get_json()
    assert promoted["production"] == 3 and promoted["previous_production"] == 1
    assert predict(three).get_json()["model_version"] == 3
    assert three.put("/api/release", json={"production": 2}).get_json()["previous_production"] == 3
    back = three.post("/api/release/rollback").get_json()
    assert back["production"] == 3 and back["previous_production"] == 1
    assert predict(three).get_json()["model_version"] == 3
    assert three.post("/api/release/rollback").get_json()["production"] == 1
    none_left = three.post("/api/release/rollback")
    assert none_left.status_code == 409 and none_left.get_json()["code"] == "release_conflict"
    actions = [(c["action"], c["from"], c["to"]) for c in three.get("/api/release").get_json()["history"]]
    assert actions == [("rollback", 3, 1), ("rollback", 2, 3), ("promote", 3, 2), ("promote", 1, 3),
                       ("first_version", None, 1)]


def test_candidate_share_changes_and_promotion_of_the_candidate(three):
    state = three.put("/api/release", json={"candidate": 2, "candidate_share": 25}).get_json()
    assert (state["candidate"], state["candidate_share"]) == (2, 25) and state["experiment_started_at"]
    arms = {predict(three, f"key-{i}").get_json()["arm"] for i in range(40)}
    assert arms == {"production", "candidate"}
    assert three.put("/api/release", json={"candidate_share": 50}).get_json()["candidate_share"] == 50
    pinned = predict(three, "key-1", version=3).get_json()
    assert (pinned["model_version"], pinned["arm"]) == (3, "pinned")
    promoted = three.put("/api/release", json={"production": 2}).get_json()
    assert (promoted["production"], promoted["candidate"], promoted["candidate_share"]) == (2, None, 0)
    assert three.get("/api/release").get_json()["history"][0]["action"] == "promote_candidate"
    assert three.put("/api/release", json={"candidate": 3, "candidate_share": 5}).get_json()["candidate"] == 3
    stopped = three.put("/api/release", json={"candidate": None}).get_json()
    assert (stopped["candidate"], stopped["candidate_share"]) == (None, 0)
    assert {predict(three, f"key-{i}").get_json()["model_version"] for i in range(10)} == {2}


def test_a_keyed_client_keeps_its_arm(three):
    three.put("/api/release", json={"candidate": 3, "candidate_share": 50})
    for key in ("alpha", "beta", "gamma", "delta"):
        seen = {predict(three, key).get_json()["model_version"] for _ in range(6)}
        assert len(seen) == 1
    three.set_cookie("studio_client", "from-the-page")
    seen = {predict(three).get_json()["model_version"] for _ in range(6)}
    assert len(seen) == 1


@pytest.mark.parametrize("body,status,code,field", [
    ({"production": 99}, 404, "model_version_not_found", "production"),
    ({"production": 2**63}, 404, "model_version_not_found", "production"),
    ({"production": None}, 400, "invalid_field", "production"),
    ({"production": "2"}, 400, "invalid_field", "production"),
    ({"production": True}, 400, "invalid_field", "production"),
    ({"candidate": 1}, 400, "candidate_is_production", "candidate"),
    ({"candidate": 2, "candidate_share": 101}, 400, "invalid_field", "candidate_share"),
    ({"candidate": 2, "candidate_share": -1}, 400, "invalid_field", "candidate_share"),
    ({"candidate": 2, "candidate_share": 2.5}, 400, "invalid_field", "candidate_share"),
    ({"candidate_share": 10}, 400, "no_candidate", "candidate_share"),
    ({"weights": 3}, 400, "unknown_option", "weights"),
    ({}, 400, "invalid_body", "body"),
    ({"revision": 0}, 400, "invalid_body", "body"),
    ([1, 2], 400, "invalid_body", "body"),
    ({"production": 2, "revision": -5}, 400, "invalid_field", "revision"),
    ({"production": 2, "revision": "0"}, 400, "invalid_field", "revision"),
    ({"candidate": "2"}, 400, "invalid_field", "candidate"),
    ({"candidate": 2, "candidate_share": True}, 400, "invalid_field", "candidate_share"),
])
def test_bad_changes_are_refused_and_change_nothing(three, body, status, code, field):
    before = three.get("/api/release").get_json()
    response = three.put("/api/release", json=body)
    assert response.status_code == status
    assert (response.get_json()["code"], response.get_json().get("field")) == (code, field)
    assert three.get("/api/release").get_json() == before


def test_malformed_json_is_a_400(three):
    response = three.put("/api/release", data=b"{not json", content_type="application/json")
    assert response.status_code == 400 and response.get_json()["code"] == "invalid_body"


def test_a_stale_revision_gets_409_with_the_current_state(three):
    revision = three.get("/api/release").get_json()["revision"]
    assert three.put("/api/release", json={"production": 2, "revision": revision}).status_code == 200
    stale = three.put("/api/release", json={"production": 3, "revision": revision})
    assert stale.status_code == 409
    body = stale.get_json()
    assert body["code"] == "release_conflict" and body["release"]["production"] == 2
    assert body["release"]["revision"] == revision + 1


def test_a_refused_bundle_cannot_be_promoted(three, served):
    params = Path(served.config["DATA_DIR"], "models", "3", "model.pdiparams")
    params.write_bytes(params.read_bytes()[:-8] + b"tampered")
    for body in ({"production": 3}, {"candidate": 3, "candidate_share": 5}):
        response = three.put("/api/release", json=body)
        assert response.status_code == 409 and response.get_json()["code"] == "model_bundle_rejected"
    assert three.get("/api/release").get_json()["production"] == 1


def test_production_and_candidate_cannot_be_deleted(three):
    three.put("/api/release", json={"candidate": 2, "candidate_share": 5})
    for version, role in ((1, "production"), (2, "candidate")):
        response = three.delete(f"/api/models/{version}")
        assert response.status_code == 409 and f"serves as {role}" in response.get_json()["error"]
    assert three.delete("/api/models/3").get_json() == {"deleted": 3}
    assert three.put("/api/release", json={"production": 3}).status_code == 404


def test_rollback_skips_a_deleted_previous_version(three):
    three.put("/api/release", json={"production": 2})
    three.put("/api/release", json={"production": 3})
    assert three.delete("/api/models/2").status_code == 200
    assert three.post("/api/release/rollback").get_json()["production"] == 1


def test_abstain_threshold_answers_no_class_below_it(three):
    confident = predict(three).get_json()
    assert confident["class"] == "red"
    response = three.put("/api/models/1", json={"abstain_threshold": 0.999999})
    assert response.status_code == 200 and response.get_json()["abstain_threshold"] == 0.999999
    unsure = predict(three).get_json()
    assert unsure["class"] is None and unsure["abstained"] is True
    assert unsure["top_k"][0]["class"] == "red" and unsure["confidence"] == confident["confidence"]
    for bad in (0, 1, 1.5, -0.1, "0.5", True):
        refused = three.put("/api/models/1", json={"abstain_threshold": bad})
        assert refused.status_code == 400 and refused.get_json()["field"] == "abstain_threshold"
    assert three.put("/api/models/1", json={"colour": 1}).status_code == 400
    assert three.put("/api/models/77", json={"abstain_threshold": 0.5}).status_code == 404
    assert three.put("/api/models/1", json={"abstain_threshold": None}).get_json()["abstain_threshold"] is None
    assert predict(three).get_json()["class"] == "red"


def test_live_statistics_add_up_per_version_and_arm(three, served):
    three.put("/api/release", json={"candidate": 2, "candidate_share": 50})
    answered = [predict(three, f"k{i}").get_json() for i in range(30)]
    predict(three, "k0", version=3)
    served.extensions["serving_stats"].flush()
    figures = three.get("/api/release/stats?hours=1").get_json()
    by_version = {item["version"]: item for item in figures["versions"]}
    production = sum(1 for a in answered if a["model_version"] == 1)
    assert by_version[1]["requests"] == production and by_version[1]["by_arm"] == {"production": production}
    assert by_version[2]["by_arm"] == {"candidate": 30 - production}
    assert by_version[3]["by_arm"] == {"pinned": 1}
    assert 0 < by_version[1]["p50_ms"] <= by_version[1]["p95_ms"]
    assert by_version[1]["mean_confidence"] > 0.5 and by_version[1]["errors"] == 0
    assert three.get("/api/release/stats?hours=0").status_code == 400
    assert three.get("/api/release/stats?hours=abc").status_code == 400


def test_promote_when_done_is_validated_on_the_job_request(client):
    response = client.post("/api/jobs", json={"dataset_id": 1, "promote_when_done": "yes"})
    assert response.status_code == 400 and response.get_json()["field"] == "promote_when_done"
