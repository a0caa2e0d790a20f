"""The `studio` command line and its client without a server: argument parsing, and the streamed multipart
body as the studio's own upload reader takes it apart."""
from __future__ import annotations

import io
import json
import tomllib

import pytest
import requests

from tests.client_package import CLIENT_DIR  # puts the client on sys.path, installed or not
from tests.images import class_files
from webapp.datasets.receive import receive_upload

from studio_client.cli import build_parser, main, option
from studio_client.client import PAGE_LIMIT, Studio, StudioAPIError, folder_parts
from studio_client.multipart import CHUNK, FilePart, MultipartBody
from studio_client.progress import ProgressBar


def test_the_package_names_its_command_and_pins_what_the_studio_installs():
    project = tomllib.loads((CLIENT_DIR / "pyproject.toml").read_text())["project"]
    assert (project["name"], project["scripts"]) == ("image-studio-client", {"studio": "studio_client.cli:main"})
    assert project["dependencies"] == [f"requests=={requests.__version__}"]


def test_train_options_are_read_as_json_values():
    args = build_parser().parse_args(["--url", "http://s:1", "train", "3", "--epochs", "2", "--backbone", "resnet18",
                                      "-o", "image_size=64", "-o", "pretrained=false", "-o", "optimizer=sgd",
                                      "--follow"])
    assert (args.command, args.dataset_id, args.epochs, args.backbone, args.follow) == ("train", 3, 2, "resnet18", True)
    assert dict(args.option) == {"image_size": 64, "pretrained": False, "optimizer": "sgd"}
    assert option("note=a=b") == ("note", "a=b")


@pytest.mark.parametrize("argv", [[], ["train"], ["train", "x"], ["train", "1", "-o", "novalue"],
                                  ["predict"], ["promote", "0"], ["nonsense"], ["batch"],
                                  ["batch", "photos.zip", "--dataset", "1"], ["batch", "--dataset", "x"]])
def test_usage_errors_exit_with_2(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert "usage: studio" in capsys.readouterr().err


def test_every_command_has_its_help(capsys):
    for command in ("upload", "train", "jobs", "cancel", "resume", "versions", "promote", "rollback", "predict",
                    "batch"):
        with pytest.raises(SystemExit) as stopped:
            main([command, "--help"])
        assert stopped.value.code == 0
        assert f"usage: studio {command}" in capsys.readouterr().out


def test_an_unreachable_studio_is_an_api_error(capsys):
    assert main(["--url", "http://127.0.0.1:1", "--timeout", "2", "versions"]) == 1
    assert "Cannot reach the studio" in capsys.readouterr().err


def test_the_folder_body_is_read_by_the_studios_upload_reader(tmp_path):
    folder = tmp_path / "花"
    images = class_files({"玫瑰": 2, '郁金香 "红"': 2}, fmt="PNG")
    for path, data in images.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    seen = []
    body = MultipartBody({"name": "花 flowers"}, folder_parts(folder), lambda sent, total: seen.append((sent, total)))
    data = b"".join(body)
    assert len(data) == len(body) and seen[-1] == (len(body), len(body))

    upload = receive_upload(io.BytesIO(data), body.content_type, tmp_path / "received", max_files=10)
    assert upload.name == "花 flowers"
    assert sorted(upload.files) == sorted(f"花/{path}" for path in images)
    for index, path in enumerate(upload.files):
        assert (tmp_path / "received" / "files" / str(index)).read_bytes() == images[path.removeprefix("花/")]


def test_an_archive_is_streamed_in_chunks(tmp_path):
    archive = tmp_path / "big.zip"
    archive.write_bytes(b"z" * (3 * CHUNK + 5))
    body = MultipartBody({"name": "big"}, [FilePart("archive", archive.name, archive)])
    chunks = list(body)
    assert max(map(len, chunks)) == CHUNK and sum(map(len, chunks)) == len(body)
    upload = receive_upload(io.BytesIO(b"".join(chunks)), body.content_type, tmp_path / "received", max_files=10)
    assert upload.archive_filename == "big.zip"
    assert (tmp_path / "received" / "archive.zip").read_bytes() == archive.read_bytes()


def _response(status: int, body: bytes, content_type: str = "application/json") -> requests.Response:
    response = requests.Response()
    response.status_code, response._content = status, body
    response.headers["Content-Type"] = content_type
    return response


def test_refusals_become_one_error_type():
    error = StudioAPIError.of(_response(400, json.dumps({"error": "Bad epochs.", "code": "invalid_option",
                                                         "field": "epochs"}).encode()))
    assert (error.status, error.code, error.message, error.field) == (400, "invalid_option", "Bad epochs.", "epochs")
    assert str(error) == "Bad epochs. (epochs) [invalid_option]"
    page = StudioAPIError.of(_response(502, b"<html>Bad Gateway</html>", "text/html"))
    assert (page.status, page.code, page.field) == (502, "http_error", None)


def test_a_listing_follows_next_before_to_its_last_page(monkeypatch):
    """Five running jobs answered two a page: the client asks with each page's cursor and keeps the filter."""
    asked = []

    def answer(method, path, params):
        asked.append(params)
        below = [job for job in range(5, 0, -1) if job < params.get("before", 6)]
        return {"jobs": [{"id": job, "status": "running"} for job in below[:2]],
                "next_before": below[1] if len(below) > 2 else None}

    studio = Studio("http://studio.invalid")
    monkeypatch.setattr(studio, "_json", answer)
    assert [job.id for job in studio.jobs(status="running")] == [5, 4, 3, 2, 1]
    first = {"status": "running", "limit": PAGE_LIMIT}
    assert asked == [first, {**first, "before": 4}, {**first, "before": 2}]


def test_the_progress_bar_writes_its_last_state_to_a_log():
    stream = io.StringIO()
    bar = ProgressBar("upload", in_bytes=True, stream=stream)
    bar.update(512, 2 * 2**20)
    bar.update(2 * 2**20, 2 * 2**20)
    bar.done()
    assert stream.getvalue().startswith("upload [####") and "100% 2.0 MB/2.0 MB" in stream.getvalue()
    assert "\033" not in stream.getvalue() and stream.getvalue().count("\n") == 1


def test_a_batch_of_a_dataset_revision_is_a_form_the_studios_reader_takes(monkeypatch, tmp_path):
    sent = {}

    def request(method, url, data=None, headers=None, **_):
        sent.update(url=url, body=b"".join(data), content_type=headers["Content-Type"])
        raise requests.ConnectionError("stop here")

    studio = Studio("http://studio.test")
    monkeypatch.setattr(studio.session, "request", request)
    with pytest.raises(StudioAPIError):
        studio.start_batch(dataset_id=4, revision=2, version=3, top_k=1)
    upload = receive_upload(io.BytesIO(sent["body"]), sent["content_type"], tmp_path / "received", max_files=10)
    assert sent["url"] == "http://studio.test/api/batch-predictions" and upload.files == []
    assert upload.fields == {"version": "3", "top_k": "1", "dataset_id": "4", "revision": "2"}
