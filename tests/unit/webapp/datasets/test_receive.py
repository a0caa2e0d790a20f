"""Receiving an upload: streamed to files, refused cleanly when the body is wrong."""
from __future__ import annotations

import io

import pytest

from engine.errors import StudioError
from tests.images import class_files, zip_bytes
from webapp.datasets.receive import receive_upload


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "b0und") -> bytes:
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


CONTENT_TYPE = "multipart/form-data; boundary=b0und"


def test_files_are_written_one_by_one_with_their_paths(tmp_path):
    body = multipart([("name", None, "花 数据".encode()), ("files", "玫瑰/a.png", b"abc"),
                      ("files", "郁金香/b.png", b"defg"), ("other", "ignored.bin", b"zzz")])
    upload = receive_upload(io.BytesIO(body), CONTENT_TYPE, tmp_path / "in", max_files=10)
    assert upload.name == "花 数据" and upload.files == ["玫瑰/a.png", "郁金香/b.png"]
    assert (tmp_path / "in" / "files" / "1").read_bytes() == b"defg"
    assert sorted(p.name for p in (tmp_path / "in" / "files").iterdir()) == ["0", "1"]


@pytest.mark.parametrize("body, content_type, code", [
    (b"--b0und\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a/b.png\"\r\n\r\nabc", CONTENT_TYPE,
     "invalid_body"),  # cut off mid-part
    (b"not multipart at all", CONTENT_TYPE, "invalid_body"),
    (b"{}", "application/json", "missing_field"),
    (b"", "multipart/form-data", "invalid_body"),
    (multipart([("name", None, b"x" * 5000)]), CONTENT_TYPE, "invalid_field"),
    (multipart([("files", f"c/{i}.png", b"1") for i in range(4)]), CONTENT_TYPE, "archive_too_large"),
    (multipart([("archive", "a.zip", b"1"), ("archive", "b.zip", b"2")]), CONTENT_TYPE, "conflicting_fields"),
])
def test_bad_bodies_are_refused_and_leave_nothing(tmp_path, body, content_type, code):
    with pytest.raises(StudioError) as refused:
        receive_upload(io.BytesIO(body), content_type, tmp_path / "in", max_files=3)
    assert refused.value.code == code
    assert not (tmp_path / "in").exists()


def test_a_refused_upload_in_the_request_leaves_no_dataset(client):
    response = client.post("/api/datasets", content_type="multipart/form-data",
                           data={"archive": (io.BytesIO(zip_bytes(class_files({"only": 3}))), "one.zip")})
    assert response.status_code == 422
    assert client.get("/api/datasets").get_json() == {"datasets": [], "next_before": None}


def test_class_folders_with_control_characters_are_refused_by_file(client):
    files = {**class_files({"rose": 3, "tulip": 3}), "bad\x07class/x.png": class_files({"a": 1})["a/img0.png"]}
    response = client.post("/api/datasets", content_type="multipart/form-data",
                           data={"archive": (io.BytesIO(zip_bytes(files)), "f.zip")})
    assert response.status_code == 201
    assert response.get_json()["rejected"] == [
        {"path": "bad\x07class/x.png", "reason": "the class folder's name contains control characters"}]


def test_dataset_names_refuse_control_characters(client):
    response = client.post("/api/datasets", content_type="multipart/form-data", data={
        "name": "line\x1b[31m", "archive": (io.BytesIO(zip_bytes(class_files({"a": 2, "b": 2}))), "x.zip")})
    assert response.status_code == 400 and response.get_json()["field"] == "name"


def test_without_a_queue_the_upload_is_refused_in_words(app, client):
    app.config["INGEST_IN_REQUEST"] = False  # the unit tests' Redis address answers nothing
    response = client.post("/api/datasets", content_type="multipart/form-data",
                           data={"archive": (io.BytesIO(zip_bytes(class_files({"a": 2, "b": 2}))), "x.zip")})
    assert response.status_code == 503 and response.get_json()["code"] == "queue_unavailable"
    failed = client.get("/api/datasets").get_json()["datasets"][0]
    assert failed["status"] == "failed"
    assert "upload it again" in client.get(f"/api/datasets/{failed['id']}").get_json()["error"]


def test_a_dataset_being_checked_cannot_be_deleted(app, client):
    from webapp.extensions import db
    from webapp.models import Dataset

    with app.app_context():
        db.session.add(Dataset(name="pending", status="processing", ingest_total=40, ingest_done=10))
        db.session.commit()
    refused = client.delete("/api/datasets/1")
    assert refused.status_code == 409 and "still being checked" in refused.get_json()["error"]
    checking = client.get("/api/datasets/1").get_json()  # the contract checks this answer against DatasetOut
    assert (checking["status"], checking["progress"], checking["classes"]) == (
        "processing", {"done": 10, "total": 40}, [])
    assert (checking["content_hash"], checking["error"]) == (None, None)
    page = client.get("/datasets/1").get_data(as_text=True)
    assert "Checking every image" in page and 'data-status="processing"' in page


def test_a_text_part_without_a_name_is_left_out(tmp_path):
    """A text part whose headers give it no name (a fuzzer's) is dropped; the named fields beside it are kept."""
    body = b"--b0und\r\nContent-Disposition: form-data\r\n\r\n{\"a\": 1}\r\n" + multipart([("version", None, b"3")])
    upload = receive_upload(io.BytesIO(body), CONTENT_TYPE, tmp_path / "in", max_files=10)
    assert upload.fields == {"version": "3"} and upload.files == []
