"""The `studio` command line against a running studio (HTTP server, Redis, a real worker), with sign-in on
and an API token: upload a folder, train and follow, list versions, promote, predict a folder."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.client_package import CLIENT_DIR
from studio_client import Studio
from tests.images import class_files, scene_files
from tests.stack import serving
from webapp import create_app
from webapp.accounts import services

pytestmark = pytest.mark.integration
FAST_OPTIONS = ["--backbone", "mobilenet_v3_small", "--epochs", "2", "-o", "pretrained=false", "-o", "batch_size=8",
                "-o", "image_size=32", "-o", "learning_rate=0.003", "-o", "warmup_epochs=0"]


@pytest.fixture
def signed_studio(stack):
    """The stack's studio with sign-in on, served over HTTP: (its URL, an admin's API token)."""
    app = create_app({**stack["config"], "AUTH": "on"})
    with app.app_context():
        user = services.find_user("cli-admin") or services.create_user("cli-admin", "a long cli password", "admin")
        _, secret = services.create_token(user, "cli test")
    with serving(app) as url:
        yield url, secret


def studio(url: str, token: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(CLIENT_DIR), "STUDIO_URL": url, "STUDIO_TOKEN": token}
    return subprocess.run([sys.executable, "-m", "studio_client.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def write_folder(root, files: dict[str, bytes]):
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return root


def test_upload_train_follow_and_predict_a_folder(signed_studio, tmp_path):
    url, token = signed_studio
    files = scene_files({"玫瑰": 6, "tulip": 6})
    files["tulip/copy.png"] = files["tulip/scene0.png"]  # an exact copy: revision 2 removes it
    folder = write_folder(tmp_path / "flowers", files)

    uploaded = studio(url, token, "upload", str(folder), "--name", "花 flowers")
    assert uploaded.returncode == 0, uploaded.stderr
    assert "100%" in uploaded.stderr
    dataset_id = int(uploaded.stdout.split()[1])
    assert "ready" in uploaded.stdout and "玫瑰" in uploaded.stdout and "tulip" in uploaded.stdout

    client = Studio(url, token)
    second = client.revise(dataset_id, fix="remove_duplicates", comment="from the command line")
    assert (second.number, second.parent, second.changes["removed"], second.num_images) == (2, 1, 1, 12)
    listed = studio(url, token, "revisions", str(dataset_id))
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert [(row[0], row[2]) for row in rows] == [("2", "12"), ("1", "13")]

    trained = studio(url, token, "train", str(dataset_id), "--revision", "1", *FAST_OPTIONS, "--follow")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    lines = trained.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["1/2", "2/2"]
    assert "succeeded: model version" in lines[-1]
    version = lines[-1].split("model version ")[1].split(",")[0]
    assert client.version(int(version)).raw["revision"] == 1  # the revision asked for, not the newest

    versions = studio(url, token, "versions")
    assert versions.returncode == 0 and any(line.split()[0] == version for line in versions.stdout.splitlines()[1:])
    promoted = studio(url, token, "promote", version)
    assert promoted.returncode == 0, promoted.stderr
    assert f"production {version}" in promoted.stdout
    before = Studio(url, token).release()
    rolled_back = studio(url, token, "rollback")
    if before.previous_production is None:  # the first version of this studio: nothing to go back to
        assert rolled_back.returncode == 1 and "[release_conflict]" in rolled_back.stderr
    else:
        assert rolled_back.returncode == 0, rolled_back.stderr
        assert f"production {before.previous_production}" in rolled_back.stdout

    predicted = studio(url, token, "predict", str(folder), "--json", "--version", version)
    assert predicted.returncode == 0, predicted.stderr
    answers = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert len(answers) == len(files) == 13 and {a["model_version"] for a in answers} == {int(version)}
    assert {a["class"] for a in answers} <= {"玫瑰", "tulip"}
    table = studio(url, token, "predict", str(folder / "玫瑰"))
    assert table.returncode == 0 and table.stdout.splitlines()[0].split() == ["path", "class", "confidence",
                                                                             "version", "arm"]


def test_follow_polls_when_the_studio_has_no_stream_to_give(stack, tmp_path):
    app = create_app({**stack["config"], "EVENT_STREAMS_TOTAL": 0})  # every stream is refused: 429
    folder = write_folder(tmp_path / "shapes", class_files({"圆": 4, "square": 4}, seed=100))
    with serving(app) as url:
        uploaded = studio(url, "", "upload", str(folder))
        assert uploaded.returncode == 0, uploaded.stderr
        trained = studio(url, "", "train", uploaded.stdout.split()[1], *FAST_OPTIONS, "--follow")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    lines = trained.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["1/2", "2/2"]
    assert "succeeded: model version" in lines[-1]


def test_a_bad_token_is_exit_code_1_with_the_studios_message(signed_studio):
    url, _ = signed_studio
    refused = studio(url, "isk_not-a-token", "versions")
    assert refused.returncode == 1
    assert "[invalid_token]" in refused.stderr and "API token is unknown" in refused.stderr
