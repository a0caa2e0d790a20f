"""An archive's central directory is measured from its end record before any parser reads it: an archive
that lists too many entries, or whose directory is too large, is refused without building a ZipFile."""
from __future__ import annotations

import io
import struct
import zipfile

import pytest

from tests.images import class_files, zip_bytes
from webapp.datasets import archive
from webapp.models import Dataset
from webapp.extensions import db

END = struct.Struct("<4s4H2LH")
END64 = struct.Struct("<4sQ2H2L4Q")
LOCATOR64 = struct.Struct("<4sLQL")


def end_record(entries: int, size: int, offset: int = 0) -> bytes:
    return END.pack(b"PK\x05\x06", 0, 0, entries, entries, size, offset, 0)


def zip64_end(entries: int, size: int) -> bytes:
    """The zip64 end record, its locator and the classic record pointing at them, as zipfile writes
    them for archives of 65,535 entries or more."""
    record = END64.pack(b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, size, 0)
    return record + LOCATOR64.pack(b"PK\x06\x07", 0, 0, 1) + end_record(0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF)


@pytest.fixture
def parser_never_runs(monkeypatch):
    """zipfile.ZipFile refuses to be built, and records that someone tried."""
    built = []

    def refuse(*args, **kwargs):
        built.append(args)
        raise zipfile.BadZipFile("the directory was parsed")

    monkeypatch.setattr(archive.zipfile, "ZipFile", refuse)
    return built


def post_zip(client, data: bytes):
    return client.post("/api/datasets", data={"archive": (io.BytesIO(data), "big.zip"), "name": "big"},
                       content_type="multipart/form-data")


def no_datasets(app) -> bool:
    with app.app_context():
        return db.session.scalar(db.select(db.func.count()).select_from(Dataset)) == 0


def test_million_entries_in_the_end_record_are_refused_before_parsing(app, client, parser_never_runs):
    response = post_zip(client, zip64_end(1_000_000, 47_000_000))
    assert response.status_code == 413
    body = response.get_json()
    assert body["code"] == "archive_too_large"
    assert body["error"] == "The archive holds 1000000 entries; the limit is 50000."
    assert parser_never_runs == [] and no_datasets(app)


def test_directory_larger_than_its_entries_need_is_refused_before_parsing(client, parser_never_runs):
    response = post_zip(client, end_record(1, 900_000_000))
    assert response.status_code == 413
    body = response.get_json()
    assert body["code"] == "archive_too_large"
    assert body["error"] == "The archive's list of contents takes 858 MB; the limit is 49 MB."
    assert parser_never_runs == []


def test_directory_that_lists_more_entries_than_its_end_record_claims_is_refused(app, client, request):
    app.config["INGEST_LIMITS"] = {**app.config["INGEST_LIMITS"], "max_entries": 5}
    honest = zip_bytes({f"rose/{n}.png": b"" for n in range(7)})
    lying = honest[:-END.size] + end_record(1, *END.unpack(honest[-END.size:])[5:7])
    parser_never_runs = request.getfixturevalue("parser_never_runs")
    response = post_zip(client, lying)
    assert response.status_code == 413
    assert response.get_json() == {"code": "archive_too_large",
                                   "error": "The archive holds more than 5 entries; the limit is 5."}
    assert parser_never_runs == []


def test_archive_within_the_limits_is_still_read(app, client):
    app.config["INGEST_LIMITS"] = {**app.config["INGEST_LIMITS"], "max_entries": 6}
    response = post_zip(client, zip_bytes(class_files({"rose": 3, "tulip": 3})))
    assert response.status_code == 201
    assert response.get_json()["num_images"] == 6


def test_directory_is_found_where_zipfile_finds_it_behind_a_stub_and_before_a_comment():
    stream = io.BytesIO()
    stream.write(b"#!/bin/sh stub of a self-extracting archive\n")
    with zipfile.ZipFile(stream, "a") as written:
        written.writestr("rose/a.png", b"x" * 10)
        written.writestr("rose/b.png", b"y" * 10)
        written.comment = b"c" * 300
    found = archive.find_directory(stream)
    with zipfile.ZipFile(stream) as read:
        assert (found.start, found.entries) == (read.start_dir, 2)
    assert archive.count_headers(stream, found, 10) == 2
