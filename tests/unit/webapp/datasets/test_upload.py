"""Dataset upload through the API: what is stored, what is rejected, and why."""
from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

from PIL import Image

from tests.images import class_files, gbk_zip_bytes, image_bytes, zip_bytes
from webapp.datasets.schemas import DatasetOut
from webapp.extensions import db
from webapp.models import Dataset, DatasetImage
from webapp.storage import data_dir


def documented(response):
    """`response`, once an accepted upload's answer is seen to have the documented shape: the contract
    does not check the answers of a streamed route itself."""
    if response.status_code in (201, 202):
        DatasetOut.model_validate(response.get_json())
    return response


def post_zip(client, data: bytes, name: str | None = "flowers", filename="flowers.zip"):
    form = {"archive": (io.BytesIO(data), filename)}
    if name:
        form["name"] = name
    return documented(client.post("/api/datasets", data=form, content_type="multipart/form-data"))


def post_files(client, files: dict[str, bytes], name="folder"):
    form = {"name": name, "files": [(io.BytesIO(data), path) for path, data in files.items()]}
    return documented(client.post("/api/datasets", data=form, content_type="multipart/form-data"))


def counts(body) -> dict:
    return {c["name"]: (c["train"], c["val"], c["test"]) for c in body["classes"]}


def stored_images(app, dataset_id):
    with app.app_context():
        return db.session.scalars(db.select(DatasetImage).where(DatasetImage.dataset_id == dataset_id)).all()


def test_class_folder_zip_is_stored_with_auto_split(app, client):
    response = post_zip(client, zip_bytes(class_files({"rose": 10, "tulip": 5})))
    assert response.status_code == 201
    body = response.get_json()
    assert body["status"] == "ready" and body["layout"] == "classes"
    assert counts(body) == {"rose": (8, 2, 0), "tulip": (4, 1, 0)}
    assert body["num_images"] == 15
    assert any("No validation split" in w for w in body["warnings"])
    images = stored_images(app, body["id"])
    assert len(images) == 15
    folder = Path(app.config["DATA_DIR"], "datasets", str(body["id"]))
    for image in images:
        assert (folder / "images" / image.stored_name).read_bytes()[:4] == b"\x89PNG"
        assert (folder / "thumbs" / f"{image.sha256}.jpg").read_bytes()[:2] == b"\xff\xd8"
        assert image.original_path.startswith(("rose/", "tulip/"))


def test_auto_split_is_deterministic(client):
    files = class_files({"a": 7, "b": 7})
    first = post_zip(client, zip_bytes(files)).get_json()
    second = post_zip(client, zip_bytes(dict(reversed(list(files.items()))))).get_json()
    assert first["content_hash"] == second["content_hash"]


def test_split_folders_with_wrapping_folder(client):
    files = {**class_files({"cat": 4, "dog": 4}, prefix="pets/train/"),
             **class_files({"cat": 2, "dog": 2}, prefix="pets/val/", seed=100),
             **class_files({"cat": 1, "dog": 1}, prefix="pets/test/", seed=200)}
    body = post_zip(client, zip_bytes(files)).get_json()
    assert body["layout"] == "splits"
    assert counts(body) == {"cat": (4, 2, 1), "dog": (4, 2, 1)}
    assert body["warnings"] == []


def test_folder_upload_keeps_unicode_class_names(app, client):
    files = class_files({"玫瑰": 3, "郁金香 红": 3}, prefix="我的花/")
    response = post_files(client, files, name="花 数据")
    assert response.status_code == 201
    body = response.get_json()
    assert body["name"] == "花 数据"
    assert counts(body) == {"玫瑰": (2, 1, 0), "郁金香 红": (2, 1, 0)}
    images = stored_images(app, body["id"])
    assert {i.original_path.split("/")[0] for i in images} == {"我的花"}
    assert all(i.stored_name.isascii() for i in images)


def test_gbk_names_in_zip_are_decoded(client):
    body = post_zip(client, gbk_zip_bytes(class_files({"玫瑰": 2, "菊花": 2}))).get_json()
    assert sorted(counts(body)) == ["玫瑰", "菊花"]


def test_corrupt_disguised_and_unsupported_files_are_rejected_rest_kept(client):
    files = class_files({"rose": 3, "tulip": 3})
    good_jpeg = image_bytes(fmt="JPEG", size=(64, 64))
    files.update({
        "rose/notes.jpg": b"this is a text file",
        "rose/truncated.jpg": good_jpeg[: len(good_jpeg) // 2],
        "tulip/photo.tif": image_bytes(fmt="TIFF"),
        "tulip/really_png.jpg": image_bytes(fmt="PNG", color=(1, 2, 3)),
        "readme.txt": b"hello",
        ".DS_Store": b"\0\0",
        "__MACOSX/rose/._img0.png": b"junk",
        "rose/.ipynb_checkpoints/img.png": image_bytes(fmt="PNG"),
        "Thumbs.db": b"junk",
    })
    body = post_zip(client, zip_bytes(files)).get_json()
    reasons = {r["path"]: r["reason"] for r in body["rejected"]}
    assert reasons["rose/notes.jpg"] == "The file is not an image; send a JPEG, PNG, GIF, BMP or WEBP."
    assert reasons["rose/truncated.jpg"] == "The image is truncated or corrupt."
    assert reasons["tulip/photo.tif"].startswith("TIFF images are not supported")
    assert reasons["readme.txt"] == "not inside a class folder"
    assert len(reasons) == 4
    assert counts(body) == {"rose": (2, 1, 0), "tulip": (3, 1, 0)}


def test_decompression_bomb_is_rejected(app, client):
    app.config["INGEST_LIMITS"] = {**app.config["INGEST_LIMITS"], "max_pixels": 10_000}
    files = class_files({"rose": 2, "tulip": 2})
    files["rose/huge.png"] = image_bytes(fmt="PNG", size=(200, 200), mode="1", color=0)
    body = post_zip(client, zip_bytes(files)).get_json()
    assert body["rejected"] == [{"path": "rose/huge.png",
                                 "reason": "The image is 200x200 pixels; the limit is 0.01 megapixels."}]


def test_exact_duplicates_are_kept_under_their_own_paths_stored_once_and_reported(app, client):
    files = class_files({"rose": 3, "tulip": 3})
    files["rose/zcopy.png"] = files["rose/img0.png"]
    files["tulip/stolen.png"] = files["rose/img1.png"]
    body = post_zip(client, zip_bytes(files)).get_json()
    assert body["num_images"] == 8  # no copy silently dropped: each path keeps its class
    assert {d["path"]: d["same_class"] for d in body["duplicates"]} == {
        "rose/zcopy.png": True, "tulip/stolen.png": False}
    assert any("2 files are exact copies" in w and "1 of them under a different class" in w
               for w in body["warnings"])
    images = stored_images(app, body["id"])
    assert len({i.sha256 for i in images}) == 6
    with app.app_context():
        assert len(list(data_dir().dataset_files(body["id"]).images.iterdir())) == 6  # bytes stored once
    by_path = {image.original_path: image for image in images}
    # copies of one content go to one split together: the automatic split leaks nothing
    assert by_path["rose/zcopy.png"].split == by_path["rose/img0.png"].split
    quality = client.get(f"/api/datasets/{body['id']}/quality").get_json()
    conflict = [pair for pair in quality["report"]["conflicts"] if pair["exact"]]
    assert [(quality["images"][str(pair["a"])]["path"], quality["images"][str(pair["b"])]["path"])
            for pair in conflict] == [("rose/img1.png", "tulip/stolen.png")]


def test_imbalance_is_a_warning(client):
    body = post_zip(client, zip_bytes(class_files({"many": 30, "few": 2}))).get_json()
    assert any("imbalanced" in w and "'many'" in w for w in body["warnings"])


def test_single_class_is_422(client):
    response = post_zip(client, zip_bytes(class_files({"only": 5})))
    assert response.status_code == 422
    assert "at least 2 classes" in response.get_json()["error"]


def test_class_with_one_image_is_422_naming_it(app, client):
    response = post_zip(client, zip_bytes(class_files({"rose": 5, "郁金香": 1})))
    assert response.status_code == 422
    body = response.get_json()
    assert "'郁金香'" in body["error"] and body["class_name"] == "郁金香"
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Dataset)) == 0


def test_not_a_zip_is_400(client):
    response = post_zip(client, b"PK\x03\x04 but not really a zip")
    assert response.status_code == 400
    assert "not a readable .zip" in response.get_json()["error"]


def test_traversal_and_absolute_paths_never_leave_the_dataset(app, client, tmp_path):
    files = class_files({"rose": 2, "tulip": 2})
    files["../../evil/img.png"] = image_bytes(fmt="PNG")
    files["/etc/evil.png"] = image_bytes(fmt="PNG")
    body = post_zip(client, zip_bytes(files)).get_json()
    reasons = {r["path"]: r["reason"] for r in body["rejected"]}
    assert reasons["../../evil/img.png"].startswith("path leaves")
    assert reasons["/etc/evil.png"] == "absolute path"
    assert not (tmp_path.parent / "evil").exists()
    assert body["num_images"] == 4


def test_folder_upload_traversal_is_refused(client):
    files = class_files({"rose": 2, "tulip": 2})
    files["a/../../x.png"] = image_bytes(fmt="PNG")
    body = post_files(client, files).get_json()
    assert body["rejected"] == [{"path": "a/../../x.png", "reason": "path leaves the dataset folder (..)"}]


def test_symlinks_in_zip_are_ignored(client):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for path, data in class_files({"rose": 2, "tulip": 2}).items():
            archive.writestr(path, data)
        link = zipfile.ZipInfo("rose/link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    body = post_zip(client, out.getvalue()).get_json()
    assert body["num_images"] == 4 and body["rejected"] == []


def test_zip_bomb_ratio_is_refused_quickly(client):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("rose/bomb.png", b"\0" * 50_000_000)
    response = post_zip(client, out.getvalue())
    assert response.status_code == 400
    assert "zip bomb" in response.get_json()["error"]


def test_too_many_entries_is_413(app, client):
    app.config["INGEST_LIMITS"] = {**app.config["INGEST_LIMITS"], "max_entries": 5}
    response = post_zip(client, zip_bytes(class_files({"rose": 3, "tulip": 3})))
    assert response.status_code == 413
    assert "6 entries" in response.get_json()["error"]


def test_total_uncompressed_size_is_413(app, client):
    app.config["INGEST_LIMITS"] = {**app.config["INGEST_LIMITS"], "max_total_bytes": 300}
    response = post_zip(client, zip_bytes(class_files({"rose": 3, "tulip": 3})))
    assert response.status_code == 413
    assert "unpacks to" in response.get_json()["error"]


def test_oversized_file_is_rejected_not_fatal(app, client):
    app.config["INGEST_LIMITS"] = {**app.config["INGEST_LIMITS"], "max_file_bytes": 20_000}
    files = class_files({"rose": 2, "tulip": 2})
    noisy = Image.effect_noise((200, 200), 80).convert("RGB")
    buffer = io.BytesIO()
    noisy.save(buffer, "PNG")
    files["rose/big.png"] = buffer.getvalue()
    body = post_files(client, files).get_json()
    assert body["rejected"] == [{"path": "rose/big.png", "reason": "file too large (over 0 MB)"}]


def test_request_over_the_limit_is_json_413(app, client):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    response = post_zip(client, zip_bytes(class_files({"rose": 3, "tulip": 3})))
    assert response.status_code == 413
    assert response.is_json and "larger than this server accepts" in response.get_json()["error"]


def test_empty_request_is_400(client):
    response = client.post("/api/datasets", data={"name": "x"}, content_type="multipart/form-data")
    assert response.status_code == 400
    assert response.get_json()["field"] == "archive"


def test_list_show_and_delete(app, client):
    body = post_zip(client, zip_bytes(class_files({"rose": 3, "tulip": 3}))).get_json()
    listed = client.get("/api/datasets").get_json()["datasets"]
    assert [(d["id"], d["num_classes"], d["num_images"]) for d in listed] == [(body["id"], 2, 6)]
    assert client.get(f"/api/datasets/{body['id']}").get_json()["classes"] == body["classes"]
    response = client.delete(f"/api/datasets/{body['id']}")
    assert response.get_json() == {"deleted": body["id"]}
    assert client.get(f"/api/datasets/{body['id']}").status_code == 404
    assert stored_images(app, body["id"]) == []
    assert not Path(app.config["DATA_DIR"], "datasets", str(body["id"])).exists()


def test_unknown_dataset_is_json_404(client):
    response = client.get("/api/datasets/999")
    assert response.status_code == 404
    assert response.get_json() == {"error": "Dataset 999 does not exist.", "code": "dataset_not_found"}


def test_the_document_describes_the_streamed_upload_and_its_refusals(app):
    from webapp.api_docs import document

    spec = document(app)
    upload = spec["paths"]["/api/datasets"]["post"]
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(spec["components"]["schemas"][form]["properties"]) == {"archive", "files", "name"}
    for status in ("201", "202"):
        assert upload["responses"][status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/DatasetOut"}
    refusals = {status: answer["description"] for status, answer in upload["responses"].items()}
    assert "`not_a_zip`" in refusals["400"] and "`zip_bomb`" in refusals["400"]
    assert "`archive_too_large`" in refusals["413"] and "`too_few_classes`" in refusals["422"]
    assert "`queue_unavailable`" in refusals["503"]
