"""The review queue: off by default and silent then, doubtful answers sampled (margin, abstention, rate, the
hourly cap across processes, anonymous callers only when allowed), images under the feedback store's cap,
one-click labelling, and the labelled images added to a new revision of the training dataset."""
from __future__ import annotations

import io
import uuid

import pytest
from sqlalchemy import event

from tests.images import class_files, noisy_image, zip_bytes
from tests.postgres import new_database
from tests.stack import app_config
from webapp import create_app
from webapp.database import upgrade_schema
from webapp.extensions import db
from webapp.feedback import review, review_settings
from webapp.models import ModelVersion, ReviewItem, ReviewSettings
from webapp.storage import DataDir

CLASSES = ["red", "green", "blue"]


def answer(first: float, second: float, abstained: bool = False, classes=("red", "green")) -> dict:
    """An answer of /api/predict as the predict view hands it to the queue."""
    return {"class": None if abstained else classes[0], "confidence": first, "abstained": abstained,
            "top_k": [{"class": classes[0], "confidence": first}, {"class": classes[1], "confidence": second}],
            "model_version": 1, "runtime": "onnx"}


def offer(app, result: dict, seed: int = 1, signed_in: bool = True) -> str:
    """Offer one answer to the queue as the predict view does; the prediction's id."""
    prediction_id = str(uuid.uuid4())
    app.config["AUTH_REQUIRED"] = not signed_in  # sign-in off: the one local person, never anonymous
    with app.test_request_context("/api/predict", method="POST"):
        review.offer(prediction_id, 1, "production", result, noisy_image(seed, (200, 40, 40)))
    return prediction_id


def turn_on(client, **settings) -> dict:
    response = client.put("/api/review/settings", json={"enabled": True, "margin": 0.3, "sample_rate": 1,
                                                        **settings})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def items(app) -> list[ReviewItem]:
    with app.app_context():
        rows = list(db.session.query(ReviewItem).order_by(ReviewItem.id))
        db.session.expunge_all()
        return rows


@pytest.fixture
def version_one(app):
    """A model version row (no bundle): the queue needs only its classes."""
    with app.app_context():
        db.session.add(ModelVersion(version=1, backbone="mobilenet_v3_small", image_size=32, class_names=CLASSES,
                                    val_acc=1.0, bundle_bytes=1))
        db.session.commit()
    return app


def test_off_by_default_it_reads_nothing_and_keeps_nothing(version_one):
    app = version_one
    settings = app.test_client().get("/api/review/settings").get_json()
    assert (settings["enabled"], settings["keep_anonymous"], settings["taken_this_hour"]) == (False, False, 0)
    offer(app, answer(0.4, 0.39))  # reads the settings once: this process's copy
    statements = []
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    for seed in range(5):
        offer(app, answer(0.34, 0.33, abstained=True), seed)
    assert statements == [] and items(app) == []
    assert not DataDir(app.config["DATA_DIR"]).feedback.exists()
    with app.app_context():
        assert db.session.get(ReviewSettings, 1) is None  # nobody turned it on: no row was even written


def test_the_margin_and_abstention_decide_what_is_doubtful():
    policy = review_settings.ReviewPolicy(enabled=True, margin=0.2)
    assert review.is_doubtful(answer(0.5, 0.35), policy)  # margin 0.15
    assert not review.is_doubtful(answer(0.6, 0.35), policy)  # margin 0.25
    assert review.is_doubtful(answer(0.9, 0.05, abstained=True), policy)
    one_class = {"abstained": False, "top_k": [{"class": "red", "confidence": 0.15}]}
    assert review.is_doubtful(one_class, policy) and review.margin_of(one_class["top_k"]) == 0.15


def test_doubtful_answers_are_kept_with_their_top_two_and_image(version_one):
    app, client = version_one, version_one.test_client()
    turn_on(client, margin=0.2)
    sure = offer(app, answer(0.8, 0.1), seed=1)
    doubtful = offer(app, answer(0.45, 0.4), seed=2)
    abstained = offer(app, answer(0.7, 0.2, abstained=True), seed=3)
    kept = items(app)
    assert [item.prediction_id for item in kept] == [doubtful, abstained]
    assert sure not in {item.prediction_id for item in kept}
    listed = client.get("/api/review/items").get_json()
    first = listed["items"][1]
    assert first["top"] == [{"class": "red", "confidence": 0.45}, {"class": "green", "confidence": 0.4}]
    assert first["margin"] == pytest.approx(0.05) and (first["abstained"], first["anonymous"]) == (False, False)
    assert listed["items"][0]["abstained"] is True and first["status"] == "waiting"
    assert listed["versions"] == [{"version": 1, "classes": CLASSES, "dataset_id": None, "dataset_name": None}]
    assert client.get(first["image_url"]).data == noisy_image(2, (200, 40, 40))
    assert client.get(first["thumbnail_url"]).data[:2] == b"\xff\xd8"
    totals = listed["totals"]
    assert (totals["waiting"], totals["labelled"], totals["dismissed"]) == (2, 0, 0)
    assert totals["disk_bytes"] == sum(len(noisy_image(seed, (200, 40, 40))) for seed in (2, 3))
    assert client.get("/api/review/settings").get_json()["taken_this_hour"] == 2


def test_the_sampling_rate_zero_keeps_none(version_one):
    turn_on(version_one.test_client(), sample_rate=0)
    offer(version_one, answer(0.4, 0.39))
    assert items(version_one) == []


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, app, tmp_path) -> str:
    """The test app's SQLite database, or a new PostgreSQL database with every migration applied."""
    if request.param == "sqlite":
        return app.config["SQLALCHEMY_DATABASE_URI"]
    url = new_database(request.getfixturevalue("postgres_server"))
    upgrade_schema(create_app(app_config(tmp_path / "postgresql", SQLALCHEMY_DATABASE_URI=url)))
    return url


def test_the_hourly_cap_holds_across_processes(database_url, tmp_path):
    app = create_app(app_config(tmp_path / "one", SQLALCHEMY_DATABASE_URI=database_url))
    turn_on(app.test_client(), hourly_cap=3)
    # a second web process on the same database
    other = create_app(app_config(tmp_path / "other", SQLALCHEMY_DATABASE_URI=database_url))
    for seed in range(8):
        offer(app if seed % 2 else other, answer(0.4, 0.39), seed)
    assert len(items(app)) == 3
    settings = other.test_client().get("/api/review/settings").get_json()
    assert (settings["taken_this_hour"], settings["hourly_cap"]) == (3, 3)


def test_anonymous_answers_are_kept_only_when_allowed(version_one):
    app, client = version_one, version_one.test_client()
    turn_on(client)
    offer(app, answer(0.4, 0.39), signed_in=False)
    assert items(app) == []
    app.config["AUTH_REQUIRED"] = False
    turn_on(client, keep_anonymous=True)
    kept = offer(app, answer(0.4, 0.39), signed_in=False)
    assert [(item.prediction_id, item.anonymous) for item in items(app)] == [(kept, True)]


def test_settings_are_checked_and_changed_partly(version_one):
    client = version_one.test_client()
    for payload in ({"margin": 1.5}, {"sample_rate": -0.1}, {"hourly_cap": 2.5}, {"enabled": "yes"},
                    {"hourly_cap": 10**9}, {"keep_anonymous": None}):
        response = client.put("/api/review/settings", json=payload)
        assert (response.status_code, response.get_json()["code"]) == (400, "invalid_field"), payload
    unknown = client.put("/api/review/settings", json={"rate": 1})
    assert unknown.get_json()["code"] == "unknown_option"
    turn_on(client, margin=0.25)
    changed = client.put("/api/review/settings", json={"hourly_cap": 7}).get_json()
    assert (changed["enabled"], changed["margin"], changed["hourly_cap"], changed["updated_by"]) == (True, 0.25, 7, "local")


def test_one_click_labels_an_item_and_the_choice_is_checked(version_one):
    app, client = version_one, version_one.test_client()
    turn_on(client)
    offer(app, answer(0.4, 0.39))
    item_id = items(app)[0].id
    labelled = client.post(f"/api/review/items/{item_id}", json={"label": "green"}).get_json()
    assert (labelled["status"], labelled["label"], labelled["labelled_by"]) == ("labelled", "green", "local")
    other = client.post(f"/api/review/items/{item_id}", json={"label": "blue"})  # another class of the version
    assert other.status_code == 200 and other.get_json()["label"] == "blue"
    cases = [({"label": "purple"}, 400, "invalid_field"), ({"label": "red", "dismiss": True}, 400, "conflicting_fields"),
             ({}, 400, "conflicting_fields"), ({"dismiss": "yes"}, 400, "invalid_field"),
             ({"label": 3}, 400, "invalid_field"), ({"colour": "red"}, 400, "unknown_option")]
    for payload, status, code in cases:
        response = client.post(f"/api/review/items/{item_id}", json=payload)
        assert (response.status_code, response.get_json()["code"]) == (status, code), payload
    assert client.post("/api/review/items/999", json={"dismiss": True}).get_json()["code"] == "review_item_not_found"
    dismissed = client.post(f"/api/review/items/{item_id}", json={"dismiss": True}).get_json()
    assert (dismissed["status"], dismissed["label"]) == ("dismissed", None)
    listed = client.get("/api/review/items?status=dismissed").get_json()
    assert [entry["id"] for entry in listed["items"]] == [item_id] and listed["totals"]["dismissed"] == 1


def test_new_items_make_room_from_dismissed_then_waiting_ones_never_labelled(version_one):
    app, client = version_one, version_one.test_client()
    turn_on(client)
    size = len(noisy_image(1, (200, 40, 40)))
    app.config["FEEDBACK_MAX_BYTES"] = 3 * size
    for _ in range(3):
        offer(app, answer(0.4, 0.39))  # the same image each time: equal sizes
    first, second, third = (item.id for item in items(app))
    client.post(f"/api/review/items/{first}", json={"label": "red"})
    client.post(f"/api/review/items/{third}", json={"dismiss": True})
    offer(app, answer(0.4, 0.39))  # takes the dismissed one's place
    offer(app, answer(0.4, 0.39))  # then the oldest waiting one's
    left = items(app)
    assert [item.id for item in left][:1] == [first] and second not in {item.id for item in left}
    assert third not in {item.id for item in left} and len(left) == 3
    folder = DataDir(app.config["DATA_DIR"]).feedback
    assert len([path for path in folder.iterdir() if not path.name.endswith(".thumb.jpg")]) == 3


def test_labelled_items_become_a_new_revision_of_the_training_dataset(served):
    client = served.test_client()
    upload = client.post("/api/datasets", data={"archive": (io.BytesIO(zip_bytes(class_files({"red": 4, "green": 4}))),
                                                            "colours.zip")}, content_type="multipart/form-data")
    source = upload.get_json()
    turn_on(client, margin=1.0)  # every answer is doubtful
    for seed in (1, 2, 3):
        response = client.post("/api/predict", data={"image": (io.BytesIO(noisy_image(seed, (40, 60, 220))), "x.png")},
                               content_type="multipart/form-data")
        assert response.status_code == 200
    listed = client.get("/api/review/items").get_json()["items"]
    assert len(listed) == 3 and all(entry["version"] == 1 for entry in listed)
    gone = client.post("/api/review/revision", json={"version": 1})  # version 1 names no dataset yet
    assert (gone.status_code, gone.get_json()["code"]) == (409, "source_dataset_gone")
    with served.app_context():
        db.session.get(ModelVersion, 1).dataset_id = source["id"]
        db.session.commit()
    for entry, label in zip(listed, ("blue", "blue", None)):
        client.post(f"/api/review/items/{entry['id']}", json={"label": label} if label else {"dismiss": True})
    ready = client.get("/api/review/items").get_json()["totals"]["ready"]
    assert ready == [{"version": 1, "labelled": 2, "dataset_id": source["id"], "dataset_name": "colours"}]

    made = client.post("/api/review/revision", json={"version": 1})
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert (body["dataset"]["id"], body["revision"], body["review_images"]) == (source["id"], 2, 2)
    counts = {c["name"]: c["train"] for c in body["dataset"]["classes"]}
    assert counts["blue"] == 2 and counts["red"] == {c["name"]: c["train"] for c in source["classes"]}["red"]
    revision = client.get(f"/api/datasets/{source['id']}/revisions/2").get_json()
    assert revision["note"] == "Added 2 labelled images from the review queue of version 1."
    added = client.get("/api/review/items?status=added").get_json()
    assert {(entry["revision"], entry["dataset_id"], entry["image_url"]) for entry in added["items"]} == \
        {(2, source["id"], None)}
    assert client.post(f"/api/review/items/{added['items'][0]['id']}", json={"label": "red"}).status_code == 409
    again = client.post("/api/review/revision", json={"version": 1})
    assert (again.status_code, again.get_json()["code"]) == (400, "no_labelled_review_items")
    assert client.post("/api/review/revision", json={"version": 9}).get_json()["code"] == "model_version_not_found"
