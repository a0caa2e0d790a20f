"""Dataset revisions and the quality report through the API: immutable revisions, fixes, comparison,
download, deletion, the report's findings with their images, and the scan of datasets uploaded before it."""
from __future__ import annotations

import io
import zipfile

from PIL import Image

from tests.images import encoded, near_copy, scene, scene_files, zip_bytes
from webapp.datasets import quality
from webapp.extensions import db
from webapp.models import DatasetImage, DatasetRevision, ModelVersion, QualityScan
from webapp.statuses import ScanStatus
from webapp.storage import data_dir

LEAKED_SEED = 2  # the second scene of class "a": its near copy is planted in the validation split


def upload(client, files: dict[str, bytes], name="parts") -> dict:
    response = client.post("/api/datasets", data={"archive": (io.BytesIO(zip_bytes(files)), f"{name}.zip")},
                           content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def planted() -> dict[str, bytes]:
    """Train and val splits of two classes; a val image near-copies a train image (resized, re-encoded), and
    a train image is filed twice, byte for byte, under its class."""
    files = scene_files({"a": 4, "b": 4}, prefix="train/") | scene_files({"a": 2, "b": 2}, prefix="val/", seed=50)
    files["val/a/leak.jpg"] = near_copy(scene(LEAKED_SEED))
    files["train/b/again.png"] = files["train/b/scene1.png"]
    return files


def paths(answer: dict, pair: dict) -> tuple[str, str]:
    return answer["images"][str(pair["a"])]["path"], answer["images"][str(pair["b"])]["path"]


def test_the_report_names_the_leak_and_the_exact_copy_with_their_images(client):
    dataset = upload(client, planted())
    answer = client.get(f"/api/datasets/{dataset['id']}/quality").get_json()
    report = answer["report"]
    assert answer["revision"] == 1 and report["measured_at"] > 0
    assert [paths(answer, pair) for pair in report["leakage"]] == [("train/a/scene1.png", "val/a/leak.jpg")]
    assert report["leakage"][0]["splits"] == ["train", "val"] and 0 < report["leakage"][0]["distance"] < 0.1
    exact = [pair for pair in report["duplicates"] if pair["exact"]]
    assert [paths(answer, pair) for pair in exact] == [("train/b/again.png", "train/b/scene1.png")]
    assert exact[0]["distance"] == 0.0
    image = answer["images"][str(report["leakage"][0]["b"])]
    assert (image["class_name"], image["split"]) == ("a", "val")
    assert client.get(image["thumbnail_url"]).headers["Content-Type"] == "image/jpeg"
    assert report["balance"]["train"] == {"a": 4, "b": 5}


def test_a_fix_makes_a_new_revision_and_leaves_the_old_one_as_it_was(client):
    dataset = upload(client, planted())
    first = client.get(f"/api/datasets/{dataset['id']}/revisions/1").get_json()
    made = client.post(f"/api/datasets/{dataset['id']}/revisions", json={"fix": "move_leaked_to_train",
                                                                         "comment": "leak found"})
    assert made.status_code == 201, made.get_json()
    second = made.get_json()
    assert (second["number"], second["parent"], second["comment"]) == (2, 1, "leak found")
    assert second["changes"] == {"added": 0, "removed": 0, "relabelled": 0, "moved": 1}
    assert "Moved 1 validation or test images" in second["note"]
    assert {row["name"]: row["val"] for row in second["classes"]} == {"a": 2, "b": 2}
    assert client.get(f"/api/datasets/{dataset['id']}/revisions/1").get_json() == first  # immutable
    assert client.get(f"/api/datasets/{dataset['id']}/quality?revision=2").get_json()["report"]["leakage"] == []
    diff = client.get(f"/api/datasets/{dataset['id']}/revisions/2/diff").get_json()
    assert diff["counts"] == {"added": 0, "removed": 0, "relabelled": 0, "moved": 1}
    assert [(item["path"], item["from"], item["to"]) for item in diff["moved"]] == [("val/a/leak.jpg", "val",
                                                                                      "train")]
    listing = client.get(f"/api/datasets/{dataset['id']}/revisions").get_json()["revisions"]
    assert [revision["number"] for revision in listing] == [2, 1]
    assert client.get(f"/api/datasets/{dataset['id']}").get_json()["revision"] == 2  # the newest is shown


def test_explicit_changes_relabel_move_and_drop_and_are_refused_when_they_change_nothing(app, client):
    dataset = upload(client, planted())
    with app.app_context():
        rows = {row.original_path: row.id for row in db.session.scalars(
            db.select(DatasetImage).where(DatasetImage.dataset_id == dataset["id"]))}
    made = client.post(f"/api/datasets/{dataset['id']}/revisions", json={
        "drop": [rows["train/b/again.png"]], "relabel": [{"image": rows[f"train/a/scene{n}.png"], "class_name": "新类"} for n in (0, 3)],
        "move": [{"image": rows["val/b/scene1.png"], "split": "test"}]}).get_json()
    assert "changes" in made, made
    assert made["changes"] == {"added": 0, "removed": 1, "relabelled": 2, "moved": 1}
    assert made["note"] == "Removed 1, relabelled 2, moved 1 images."
    counts = {row["name"]: (row["train"], row["val"], row["test"]) for row in made["classes"]}
    assert counts == {"a": (2, 3, 0), "b": (4, 1, 1), "新类": (2, 0, 0)}
    again = client.post(f"/api/datasets/{dataset['id']}/revisions", json={"base": 1, "move": [
        {"image": rows["val/b/scene1.png"], "split": "val"}]})
    assert again.status_code == 409 and again.get_json()["code"] == "nothing_to_change"
    foreign = client.post(f"/api/datasets/{dataset['id']}/revisions", json={"base": 2, "drop": [rows["train/b/again.png"]]})
    assert foreign.status_code == 400 and foreign.get_json()["code"] == "image_not_in_revision"
    unusable = client.post(f"/api/datasets/{dataset['id']}/revisions", json={
        "base": 1, "drop": [row_id for path, row_id in rows.items() if path.startswith("train/b/")]})
    assert unusable.status_code == 422 and unusable.get_json()["code"] == "class_without_training_images"
    listing = client.get(f"/api/datasets/{dataset['id']}/revisions").get_json()["revisions"]
    assert [revision["number"] for revision in listing] == [2, 1]  # nothing made by a refusal


def test_duplicates_removed_keep_one_of_each_group(client):
    dataset = upload(client, planted())
    made = client.post(f"/api/datasets/{dataset['id']}/revisions", json={"fix": "remove_duplicates"}).get_json()
    assert made["changes"]["removed"] == 1 and "near-duplicate" in made["note"]
    diff = client.get(f"/api/datasets/{dataset['id']}/revisions/2/diff").get_json()
    assert [item["path"] for item in diff["removed"]] == ["train/b/scene1.png"]  # the first path is kept


def test_a_revision_downloads_in_the_upload_layout_and_uploads_again_as_the_same_content(client):
    dataset = upload(client, planted())
    client.post(f"/api/datasets/{dataset['id']}/revisions", json={"fix": "drop_leaked"})
    response = client.get(f"/api/datasets/{dataset['id']}/revisions/2/archive")
    assert response.headers["Content-Type"] == "application/zip"
    assert f"dataset-{dataset['id']}-revision-2.zip" in response.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        names = sorted(archive.namelist())
        assert "val/a/leak.jpg" not in names and "train/b/again.png" in names and len(names) == 13
        assert archive.read("train/a/scene0.png") == planted()["train/a/scene0.png"]
    again = upload(client, {name: zipfile.ZipFile(io.BytesIO(response.data)).read(name) for name in names}, "again")
    second = client.get(f"/api/datasets/{dataset['id']}/revisions/2").get_json()
    assert again["content_hash"] == second["content_hash"]


def test_deleting_a_revision_keeps_the_files_other_revisions_hold_and_never_reuses_its_number(app, client):
    dataset = upload(client, planted())
    client.post(f"/api/datasets/{dataset['id']}/revisions", json={"fix": "drop_leaked"})
    only = client.delete(f"/api/datasets/{dataset['id']}/revisions/1")
    assert only.status_code == 200 and only.get_json() == {"dataset_id": dataset["id"], "deleted": 1}
    last = client.delete(f"/api/datasets/{dataset['id']}/revisions/2")
    assert last.status_code == 409 and "only revision" in last.get_json()["error"]
    with app.app_context():  # revision 1's leaked image is in no other revision: its file went with it
        files = data_dir().dataset_files(dataset["id"])
        kept = set(db.session.scalars(db.select(DatasetImage.stored_name).where(
            DatasetImage.dataset_id == dataset["id"])))
        assert {path.name for path in files.images.iterdir()} == kept and len(kept) == 12  # 13 images
    third = client.post(f"/api/datasets/{dataset['id']}/revisions", json={"fix": "remove_duplicates"}).get_json()
    assert third["number"] == 3 and third["parent"] == 2
    assert client.get(f"/api/datasets/{dataset['id']}/revisions/1").status_code == 404


def test_a_revision_a_version_was_trained_on_cannot_be_deleted(app, client):
    dataset = upload(client, planted())
    client.post(f"/api/datasets/{dataset['id']}/revisions", json={"fix": "drop_leaked"})
    with app.app_context():
        revision = db.session.scalar(db.select(DatasetRevision).where(DatasetRevision.number == 1))
        db.session.add(ModelVersion(version=1, dataset_id=dataset["id"], revision_id=revision.id, revision=1,
                                    backbone="resnet18", image_size=32, class_names=["a", "b"], val_acc=1.0,
                                    bundle_bytes=1))
        db.session.commit()
    refused = client.delete(f"/api/datasets/{dataset['id']}/revisions/1")
    assert refused.status_code == 409 and refused.get_json()["code"] == "revision_in_use"
    assert "1 model version(s)" in refused.get_json()["error"]


def test_a_dataset_uploaded_before_the_report_is_measured_by_a_scan(app, client, monkeypatch):
    dataset = upload(client, planted())
    with app.app_context():  # as the upgrade leaves it: no signatures, no report, a scan to send
        db.session.execute(db.update(DatasetImage).values(signature=None))
        db.session.execute(db.update(DatasetRevision).values(quality=None))
        db.session.commit()
    waiting = client.get(f"/api/datasets/{dataset['id']}/quality").get_json()
    assert waiting["report"] is None and waiting["unmeasured"] == 13 and waiting["scan"] is None
    refused = client.post(f"/api/datasets/{dataset['id']}/revisions", json={"fix": "drop_leaked"})
    assert refused.status_code == 409 and refused.get_json()["code"] == "report_not_ready"
    sent = []
    monkeypatch.setattr(quality.lifecycle, "send", lambda kind, row: sent.append(row.id))
    started = client.post(f"/api/datasets/{dataset['id']}/quality/scan")
    assert started.status_code == 202 and started.get_json()["status"] == "queued" and sent == [started.json["id"]]
    assert client.post(f"/api/datasets/{dataset['id']}/quality/scan").get_json()["id"] == sent[0]  # the same one
    with app.app_context():
        assert quality.run_scan(sent[0], "ingest-test") == ScanStatus.SUCCEEDED
        assert db.session.get(QualityScan, sent[0]).progress == 1.0
    measured = client.get(f"/api/datasets/{dataset['id']}/quality").get_json()
    assert measured["scan"]["status"] == "succeeded" and measured["report"]["counts"]["leakage"] == 1
    again = client.post(f"/api/datasets/{dataset['id']}/quality/scan")
    assert again.status_code == 409 and again.get_json()["code"] == "nothing_to_scan"


def test_image_issues_say_what_was_measured(client):
    files = scene_files({"a": 3, "b": 3}, prefix="train/")
    files["train/a/night.png"] = encoded(Image.new("RGB", (64, 48), (6, 6, 8)))
    files["train/b/blank.png"] = encoded(Image.new("RGB", (64, 48), (128, 128, 128)).point(lambda v: v))
    dataset = upload(client, files)
    answer = client.get(f"/api/datasets/{dataset['id']}/quality").get_json()
    kinds = {(answer["images"][str(issue["key"])]["path"], issue["kind"]) for issue in answer["report"]["issues"]}
    assert ("train/a/night.png", "dark") in kinds and ("train/b/blank.png", "low_information") in kinds
    dark = next(issue for issue in answer["report"]["issues"] if issue["kind"] == "dark")
    assert dark["value"] < dark["limit"] == answer["report"]["thresholds"]["dark"]


def test_revisions_of_ids_out_of_range_and_bad_bodies_are_refused_in_words(client):
    dataset = upload(client, planted())
    base = f"/api/datasets/{dataset['id']}"
    cases = [
        ("get", f"{base}/revisions/0", None, 404, "revision_not_found"),
        ("get", f"{base}/revisions/{2**63}", None, 404, "revision_not_found"),
        ("get", f"{base}/revisions/1/diff?against=-1", None, 400, "invalid_field"),
        ("get", f"{base}/revisions/1/diff?against=7", None, 404, "revision_not_found"),
        ("get", f"{base}/quality?revision=x", None, 400, "invalid_field"),
        ("get", "/api/datasets/987654/quality", None, 404, "dataset_not_found"),
        ("post", f"{base}/revisions", {"fix": "everything"}, 400, "invalid_field"),
        ("post", f"{base}/revisions", {"drop": ["1"]}, 400, "invalid_field"),
        ("post", f"{base}/revisions", {"relabel": [{"image": 1, "class_name": ""}]}, 400, "invalid_field"),
        ("post", f"{base}/revisions", {"relabel": [{"image": 1, "class_name": ".hidden"}]}, 400, "invalid_field"),
        ("post", f"{base}/revisions", {"move": [{"image": 1, "split": "holdout"}]}, 400, "invalid_field"),
        ("post", f"{base}/revisions", {"base": 9}, 404, "revision_not_found"),
        ("post", f"{base}/revisions", {"kinds": ["fuzzy"]}, 400, "invalid_field"),
        ("post", f"{base}/revisions", {"comment": "x" * 501}, 400, "invalid_field"),
        ("post", f"{base}/revisions", {"drop": [2**70]}, 400, "image_not_in_revision"),
        ("post", f"{base}/revisions", {}, 409, "nothing_to_change"),
    ]
    for method, url, body, status, code in cases:
        response = getattr(client, method)(url, **({"json": body} if body is not None else {}))
        assert (response.status_code, response.get_json()["code"]) == (status, code), (url, body)
        assert response.get_json()["error"]


def test_a_revision_too_large_to_report_on_in_its_request_gets_its_report_from_a_scan(app, client, monkeypatch):
    dataset = upload(client, planted())
    app.config["QUALITY_REPORT_IN_REQUEST_MAX_IMAGES"] = 5
    sent = []
    monkeypatch.setattr(quality.lifecycle, "send", lambda kind, row: sent.append(row.id))
    made = client.post(f"/api/datasets/{dataset['id']}/revisions", json={"fix": "move_leaked_to_train"}).get_json()
    assert made["number"] == 2 and made["quality_ready"] is False and len(sent) == 1
    waiting = client.get(f"/api/datasets/{dataset['id']}/quality").get_json()
    assert waiting["report"] is None and waiting["unmeasured"] == 0 and waiting["scan"]["status"] == "queued"
    with app.app_context():
        assert quality.run_scan(sent[0], "ingest-test") == ScanStatus.SUCCEEDED
    report = client.get(f"/api/datasets/{dataset['id']}/quality").get_json()["report"]
    assert report["counts"]["leakage"] == 0 and report["counts"]["duplicates"] == 2  # the moved copy, the twins
    first = client.get(f"/api/datasets/{dataset['id']}/quality?revision=1").get_json()["report"]
    assert first["counts"]["leakage"] == 1  # an older revision's report is left as it was
