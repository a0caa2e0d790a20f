"""What a batch run reads: an upload listed as a dataset upload is (hostile archives refused whole, files refused
by their path listed first with why), each file read within its size limit."""
from __future__ import annotations

import io
import zipfile

import pytest

from engine.errors import StudioError
from tests.images import image_bytes, zip_bytes
from webapp.batch.inputs import Item, Refused, read_item, upload_items
from webapp.datasets.receive import receive_upload

LIMITS = {"max_entries": 100, "max_total_bytes": 10**8, "max_file_bytes": 10**6, "max_ratio": 200}
BOUNDARY = "xyz"


def multipart(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


def received(tmp_path, parts):
    folder = tmp_path / "in"
    upload = receive_upload(io.BytesIO(multipart(parts)), f"multipart/form-data; boundary={BOUNDARY}", folder, 100)
    return folder, upload


def test_an_archive_lists_refused_paths_first_then_its_files_in_order(tmp_path):
    archive = zip_bytes({"b/2.jpg": image_bytes(), "../evil.jpg": image_bytes(), "a/1.jpg": b"not an image",
                         "__MACOSX/._a.jpg": b"x", ".hidden.jpg": b"x"})
    folder, upload = received(tmp_path, [("archive", "photos.zip", archive), ("top_k", None, b"3")])
    assert upload.fields == {"top_k": "3"}
    with upload_items(folder, LIMITS) as items:
        assert [(item.path, item.refusal is not None) for item in items] == [
            ("../evil.jpg", True), ("b/2.jpg", False), ("a/1.jpg", False)]
        assert read_item(items[1], LIMITS["max_file_bytes"]) == image_bytes()
        refused = read_item(items[0], LIMITS["max_file_bytes"])
        assert refused == Refused("path_refused", items[0].refusal) and "(..)" in refused.reason


def test_a_folder_upload_keeps_each_files_path(tmp_path):
    folder, _ = received(tmp_path, [("files", "trip/day1/a.jpg", image_bytes()), ("files", "trip/b.png", b"png?")])
    with upload_items(folder, LIMITS) as items:
        assert [item.path for item in items] == ["trip/day1/a.jpg", "trip/b.png"]
        assert read_item(items[1], 100) == b"png?"


def test_a_zip_bomb_is_refused_whole(tmp_path):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("big.bmp", b"\0" * 5_000_000)
    folder, _ = received(tmp_path, [("archive", "bomb.zip", out.getvalue())])
    with pytest.raises(StudioError) as refused:
        with upload_items(folder, LIMITS):
            pass
    assert refused.value.code == "zip_bomb"


def test_a_file_over_the_limit_or_empty_or_unreadable_is_refused_with_the_reason(tmp_path):
    big = tmp_path / "big.jpg"
    big.write_bytes(b"x" * 2048)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    assert read_item(Item("big.jpg", lambda: open(big, "rb")), 1024).code == "file_too_large"
    assert read_item(Item("big.jpg", lambda: open(big, "rb"), size=2048), 1024).reason == \
        "The file is larger than 0.000976562 MB."
    assert read_item(Item("empty.jpg", lambda: open(empty, "rb")), 1024).code == "empty_file"
    gone = read_item(Item("gone.jpg", lambda: open(tmp_path / "gone.jpg", "rb")), 1024)
    assert gone.code == "unreadable" and "FileNotFoundError" in gone.reason
