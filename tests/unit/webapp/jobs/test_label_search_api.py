"""Likely label errors through the API and on their page: the plan before a search, starting and cancelling
one, the refusals, the review of a finished search and the revision its decisions make; and the job page's
notice when near copies of training images inflate its figures."""
from __future__ import annotations

import io
import re

import pytest

from tests.factories import app_with_user
from tests.images import class_files, zip_bytes
from webapp import lifecycle
from webapp.extensions import db
from webapp.jobs.recommendation import record_timing
from webapp.models import DatasetImage, DatasetRevision, Job, LabelSearch, ModelVersion, utcnow
from webapp.taskqueue import LABEL_SEARCH_TASK


@pytest.fixture
def dataset_id(client):
    response = client.post("/api/datasets", content_type="multipart/form-data", data={
        "archive": (io.BytesIO(zip_bytes(class_files({"猫": 5, "狗": 5}))), "pets.zip")})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


@pytest.fixture
def sent(monkeypatch):
    """The tasks the requests send, instead of a broker."""
    tasks = []
    monkeypatch.setattr(lifecycle, "send", lambda kind, row: tasks.append((kind.task, row.id)))
    return tasks


def images_of(app, dataset_id: int) -> tuple[int, list[DatasetImage]]:
    """The first revision's id and its images."""
    with app.app_context():
        revision = db.session.scalar(db.select(DatasetRevision).where(DatasetRevision.dataset_id == dataset_id))
        rows = db.session.scalars(db.select(DatasetImage).where(DatasetImage.revision_id == revision.id)
                                  .order_by(DatasetImage.id)).all()
        db.session.expunge_all()
        return revision.id, rows


def finished_search(app, dataset_id: int, issues: list[dict]) -> int:
    """A search row that ended with these findings, as the worker leaves it."""
    revision_id, _ = images_of(app, dataset_id)
    with app.app_context():
        search = LabelSearch(dataset_id=dataset_id, revision_id=revision_id, revision=1, status="succeeded",
                             progress=1.0, phase="done", config={"folds": 2, "options": {"backbone": "resnet18"}},
                             issues=issues, finished_at=utcnow())
        db.session.add(search)
        db.session.commit()
        return search.id


def test_the_plan_has_no_estimate_until_a_worker_measured_its_speed(app, client, dataset_id):
    plan = client.get(f"/api/datasets/{dataset_id}/label-searches/plan?folds=3").get_json()
    assert plan["revision"] == 1 and plan["folds"] == 3 and plan["images"] >= 6
    assert plan["backbone"] and plan["epochs"] >= 1 and plan["image_size"] >= 32
    assert plan["estimate_seconds"] is None and plan["measured_on"] is None
    with app.app_context():
        record_timing("cpu-box@lab", "cpu", plan["backbone"], plan["image_size"], 16, 0.01, "job")
        db.session.commit()
    measured = client.get(f"/api/datasets/{dataset_id}/label-searches/plan?folds=3").get_json()
    assert measured["measured_on"] == "cpu-box@lab" and measured["estimate_seconds"] > 0


def test_a_search_is_sent_to_a_training_worker_and_a_waiting_one_cancels_at_once(client, dataset_id, sent):
    started = client.post(f"/api/datasets/{dataset_id}/label-searches", json={"folds": 2})
    assert started.status_code == 202
    search = started.get_json()
    assert search["status"] == "queued" and search["revision"] == 1 and search["folds"] == 2
    assert sent == [(LABEL_SEARCH_TASK, search["id"])]
    listed = client.get(f"/api/datasets/{dataset_id}/label-searches").get_json()["searches"]
    assert [row["id"] for row in listed] == [search["id"]]

    cancelled = client.post(f"/api/datasets/{dataset_id}/label-searches/{search['id']}/cancel").get_json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"]
    again = client.post(f"/api/datasets/{dataset_id}/label-searches/{search['id']}/cancel")
    assert again.status_code == 409 and "has ended" in again.get_json()["error"]


@pytest.mark.parametrize("folds", ["1", "11", "x"])
def test_folds_outside_two_to_ten_are_refused_in_words(client, dataset_id, sent, folds):
    plan = client.get(f"/api/datasets/{dataset_id}/label-searches/plan?folds={folds}")
    assert plan.status_code == 400 and "folds" in plan.get_json()["error"]
    started = client.post(f"/api/datasets/{dataset_id}/label-searches",
                          json={"folds": int(folds) if folds.isdigit() else folds})
    assert started.status_code == 400 and "'folds' must be a whole number from 2 to 10" in started.get_json()["error"]
    assert sent == []


def test_a_revision_that_is_not_there_is_refused_in_words(client, dataset_id, sent):
    plan = client.get(f"/api/datasets/{dataset_id}/label-searches/plan?revision=99")
    assert plan.status_code == 404 and "no revision 99" in plan.get_json()["error"]
    started = client.post(f"/api/datasets/{dataset_id}/label-searches", json={"revision": 99})
    assert started.status_code == 404 and "no revision 99" in started.get_json()["error"]
    assert sent == [] and client.get(f"/api/datasets/{dataset_id}/label-searches").get_json()["searches"] == []


def test_a_finished_search_is_reviewed_on_its_page(app, client, dataset_id):
    _, rows = images_of(app, dataset_id)
    cat, dog = next(r for r in rows if r.class_name == "猫"), next(r for r in rows if r.class_name == "狗")
    issues = [{"image_id": cat.id, "given": "猫", "suggested": "狗", "given_probability": 0.08,
               "suggested_probability": 0.92, "score": 0.9},
              {"image_id": dog.id, "given": "狗", "suggested": "猫", "given_probability": 0.3,
               "suggested_probability": 0.7, "score": 0.4}]
    search_id = finished_search(app, dataset_id, issues)
    page = client.get(f"/datasets/{dataset_id}/label-errors").get_data(as_text=True)
    assert f"Search #{search_id} of revision 1" in page
    rows_on_page = re.findall(r'<li class="issue" data-image="(\d+)" data-suggested="([^"]+)">', page)
    assert rows_on_page == [(str(cat.id), "狗"), (str(dog.id), "猫")]  # the most doubtful first
    assert f'src="/datasets/{dataset_id}/thumbs/{cat.id}.jpg"' in page and cat.original_path in page
    assert "given: 猫" in page and "suggested: 狗" in page and "92%" in page and "8%" in page
    assert f'name="decision-{cat.id}" value="accept"' in page and "Relabel as 狗" in page
    assert 'id="make-revision"' in page and 'id="start-search"' in page
    assert f'href="/datasets/{dataset_id}/label-errors?search={search_id}"' in page

    chinese = client.get(f"/datasets/{dataset_id}/label-errors?search={search_id}",
                         headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "可能的标注错误" in chinese and "改标为 狗" in chinese
    assert client.get(f"/datasets/{dataset_id}/label-errors?search=999").status_code == 404


def test_the_review_decisions_make_a_revision(app, client, dataset_id):
    _, rows = images_of(app, dataset_id)
    cat, dog = [r for r in rows if r.class_name == "猫"][:2]
    made = client.post(f"/api/datasets/{dataset_id}/revisions", json={
        "base": 1, "relabel": [{"image": cat.id, "class_name": "狗"}], "drop": [dog.id], "comment": "reviewed"})
    assert made.status_code == 201, made.get_json()
    revision = made.get_json()
    assert revision["number"] == 2 and revision["parent"] == 1 and revision["comment"] == "reviewed"
    assert revision["changes"]["relabelled"] == 1 and revision["changes"]["removed"] == 1
    diff = client.get(f"/api/datasets/{dataset_id}/revisions/2/diff").get_json()
    assert [(item["path"], item["from"], item["to"]) for item in diff["relabelled"]] == [(cat.original_path, "猫", "狗")]
    assert [item["path"] for item in diff["removed"]] == [dog.original_path]
    page = client.get(f"/datasets/{dataset_id}/label-errors").get_data(as_text=True)
    assert re.search(r'<option value="2" data-plain="[^"]+">revision 2 \(newest\)', page)


def test_the_job_page_tells_when_near_copies_of_training_images_inflate_its_figures(app, client, dataset_id):
    revision_id, rows = images_of(app, dataset_id)
    train = next(r for r in rows if r.split == "train")
    val = [r for r in rows if r.split == "val"]
    with app.app_context():
        revision = db.session.get(DatasetRevision, revision_id)
        revision.quality = {**(revision.quality or {}), "leakage": [
            {"a": train.id, "b": val[0].id, "distance": 0.02, "exact": False, "splits": ["train", "val"]}],
            "counts": {**((revision.quality or {}).get("counts") or {}), "leakage": 1}}
        answers = [{"key": image.sha256, "label": 0, "predicted": 0} for image in val]
        answers += [{"key": "other", "label": 1, "predicted": 0}]
        job = Job(dataset_id=dataset_id, dataset_name="pets", status="succeeded", revision_id=revision_id,
                  revision=1, config={"epochs": 3, "backbone": "resnet18"}, predictions={"val": answers},
                  finished_at=utcnow())
        db.session.add(job)
        db.session.commit()
        job_id = job.id
    body = client.get(f"/api/jobs/{job_id}").get_json()
    assert body["leakage"]["val"]["near_train"] == 1
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    notice = re.search(r'<section class="card notice" id="leakage-notice">.*?</section>', page, re.S).group(0)
    images = len(answers)
    with_them = f"{100 * (images - 1) / images:.1f}%"
    without = f"{100 * (images - 2) / (images - 1):.1f}%"
    assert (f"1 validation image is a near copy of a training image; validation accuracy is {with_them} with it, "
            f"{without} without.") in notice
    assert "revision 1" in notice and f'href="/datasets/{dataset_id}#quality"' in notice


def test_a_viewer_reads_the_findings_but_neither_starts_a_search_nor_decides(tmp_path):
    from webapp.accounts import services as accounts

    app = app_with_user(tmp_path, "ann", "a password 1", "member")
    with app.app_context():
        accounts.create_user("vic", "a password 2", "viewer")
        _, member = accounts.create_token(accounts.find_user("ann"), "script")
        _, viewer = accounts.create_token(accounts.find_user("vic"), "script")
    client = app.test_client()
    uploaded = client.post("/api/datasets", headers={"Authorization": f"Bearer {member}"},
                           content_type="multipart/form-data",
                           data={"archive": (io.BytesIO(zip_bytes(class_files({"猫": 3, "狗": 3}))), "pets.zip")})
    dataset_id = uploaded.get_json()["id"]
    _, rows = images_of(app, dataset_id)
    finished_search(app, dataset_id, [{"image_id": rows[0].id, "given": "猫", "suggested": "狗",
                                       "given_probability": 0.1, "suggested_probability": 0.9, "score": 0.8}])
    page = client.get(f"/datasets/{dataset_id}/label-errors", headers={"Authorization": f"Bearer {viewer}"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and rows[0].original_path in html and 'id="viewer-note"' in html
    assert 'id="start-search"' not in html and 'type="radio"' not in html and 'id="make-revision"' not in html
    refused = client.post(f"/api/datasets/{dataset_id}/label-searches", json={},
                          headers={"Authorization": f"Bearer {viewer}"})
    assert refused.status_code == 403


def test_the_models_page_names_the_revision_each_version_was_trained_on(app, client, dataset_id):
    revision_id, _ = images_of(app, dataset_id)
    with app.app_context():
        db.session.add(ModelVersion(version=1, backbone="resnet18", image_size=32, class_names=["狗", "猫"],
                                    val_acc=0.5, bundle_bytes=1, dataset_id=dataset_id, revision_id=revision_id,
                                    revision=1))
        db.session.commit()
    row = re.search(r'<tr data-version="1">.*?</tr>', client.get("/models").get_data(as_text=True), re.S).group(0)
    assert f'href="/datasets/{dataset_id}"' in row and "trained on revision 1</span> · 2 classes" in row
