"""A worker must see the data folder its database belongs to."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.stack import app_config
from tests.threads import at_once
from webapp import create_app
from webapp.database import upgrade_schema
from webapp.installation import WrongDataDir, check_data_dir, folder_install_id
from webapp.storage import DataDir

ROOT = Path(__file__).resolve().parents[3]


def test_the_first_process_records_the_folder_and_others_must_match(tmp_path):
    database = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    first = create_app(app_config(tmp_path / "a", SQLALCHEMY_DATABASE_URI=database))
    assert check_data_dir(first)  # before the migrations there is nothing to compare with
    upgrade_schema(first)
    install_id = check_data_dir(first)
    assert (tmp_path / "a" / "install.id").read_text() == install_id
    assert check_data_dir(create_app(app_config(tmp_path / "a", SQLALCHEMY_DATABASE_URI=database))) == install_id

    stranger = create_app(app_config(tmp_path / "b", SQLALCHEMY_DATABASE_URI=database))
    with pytest.raises(WrongDataDir) as refusal:
        check_data_dir(stranger)
    assert str(tmp_path / "b") in str(refusal.value) and install_id in str(refusal.value)
    assert "Mount the shared data folder" in str(refusal.value)


def test_a_worker_on_the_wrong_data_folder_refuses_to_start(tmp_path):
    database = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    owner = create_app(app_config(tmp_path / "a", SQLALCHEMY_DATABASE_URI=database))
    upgrade_schema(owner)
    check_data_dir(owner)
    env = {**os.environ, "DATA_DIR": str(tmp_path / "elsewhere"), "DATABASE_URL": database,
           "REDIS_URL": "redis://127.0.0.1:1/0"}
    started = subprocess.run([sys.executable, "-c", "import worker.celery_app"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert started.returncode == 1
    assert "This worker will not start: DATA_DIR" in started.stderr and "elsewhere" in started.stderr


def test_processes_that_start_together_read_one_whole_install_id(tmp_path):
    """The first to ask makes the id; others asking at the same moment read it whole, never an empty file."""
    for round_ in range(30):
        folder = DataDir(tmp_path / str(round_))
        ids = at_once(lambda: folder_install_id(folder))
        assert len(set(ids)) == 1 and len(ids[0]) == 32, ids
        assert sorted(path.name for path in folder.root.iterdir()) == ["install.id"]
