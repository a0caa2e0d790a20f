"""`backup verify` catches a changed byte; `backup restore` refuses a target that is not empty and a schema
newer than the code, migrates an older one, and changes nothing when the archive is damaged."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from flask_migrate import upgrade

from tests.stack import app_config
from webapp import create_app
from webapp.backup import services
from webapp.backup.archive import ABOUT, MANIFEST
from webapp.database import MIGRATIONS_DIR
from webapp.extensions import db
from webapp.models import Backup, Installation
from webapp.storage import DataDir


def invoke(app, *args):
    return app.test_cli_runner().invoke(args=["backup", *args])


@pytest.fixture
def archive(app, tmp_path_factory) -> Path:
    """A backup of a studio with one version (a bundle of one file) and its install id."""
    folders = DataDir(app.config["DATA_DIR"])
    (folders.model(1)).mkdir(parents=True)
    (folders.model(1) / "meta.json").write_text('{"classes": ["a"]}')
    folders.install_id.write_text("install-a")
    with app.app_context():
        from webapp.models import ModelVersion

        db.session.add(ModelVersion(version=1, backbone="resnet18", image_size=32, class_names=["a"], val_acc=1.0,
                                    bundle_bytes=1))
        db.session.add(Installation(id=1, install_id="install-a"))
        db.session.commit()
    path = tmp_path_factory.mktemp("archives") / "studio.tar"
    assert invoke(app, "create", str(path)).exit_code == 0
    return path


def rewritten(source: Path, target: Path, change) -> Path:
    """A copy of the archive whose members pass through `change(name, data) -> data`."""
    with tarfile.open(source) as reading, tarfile.open(target, "w") as writing:
        for info in reading:
            data = change(info.name, reading.extractfile(info).read())
            info.size = len(data)
            writing.addfile(info, io.BytesIO(data))
    return target


def test_verify_passes_a_whole_archive_and_catches_a_changed_byte(app, archive, tmp_path):
    assert archive.stat().st_mode & 0o777 == 0o600  # it holds password hashes and secrets
    whole = invoke(app, "verify", str(archive))
    # three files: the database copy, the bundle's file and the install id
    assert whole.exit_code == 0 and "3 files" in whole.output and "is whole" in whole.output

    def flip(name, data):
        return data.replace(b'"a"', b'"b"') if name == "files/models/1/meta.json" else data

    damaged = invoke(app, "verify", str(rewritten(archive, tmp_path / "damaged.tar", flip)))
    assert damaged.exit_code == 1
    assert "files/models/1/meta.json does not match its digest in the manifest" in damaged.output

    cut = tmp_path / "cut.tar"
    cut.write_bytes(archive.read_bytes()[:4096])
    assert invoke(app, "verify", str(cut)).exit_code == 1


def test_a_damaged_archive_restores_nothing(app, archive, tmp_path):
    def flip(name, data):
        return data + b"x" if name == "files/install.id" else data

    empty = create_app(app_config(tmp_path / "empty"))
    refused = invoke(empty, "restore", str(rewritten(archive, tmp_path / "damaged.tar", flip)))
    assert refused.exit_code == 1 and "files/install.id does not match its digest" in refused.output
    assert not DataDir(tmp_path / "empty").install_id.exists()
    assert not DataDir(tmp_path / "empty").model(1).exists()
    assert [path.name for path in (tmp_path / "empty").iterdir() if path.name.startswith(".restore-")] == []


def test_restore_refuses_a_database_or_a_data_folder_that_is_not_empty(app, archive, tmp_path):
    refused = invoke(app, "restore", str(archive))  # the studio it came from: migrated and holding data
    assert refused.exit_code == 1 and "is not empty" in refused.output and "tables" in refused.output

    target = tmp_path / "other"
    DataDir(target).model(7).mkdir(parents=True)
    (DataDir(target).model(7) / "model.json").write_text("{}")
    refused = invoke(create_app(app_config(target)), "restore", str(archive))
    assert refused.exit_code == 1 and f"{DataDir(target).models} holds files" in refused.output


def test_restore_refuses_a_newer_schema_and_names_it(app, archive, tmp_path):
    def newer(name, data):
        if name not in (ABOUT, MANIFEST):
            return data
        content = json.loads(data)
        (content["about"] if name == MANIFEST else content)["schema_revision"] = "9999"
        return json.dumps(content).encode()

    refused = invoke(create_app(app_config(tmp_path / "empty")), "restore",
                     str(rewritten(archive, tmp_path / "newer.tar", newer)))
    assert refused.exit_code == 1 and "schema revision 9999" in refused.output
    assert services.known_revisions()[-1] in refused.output


def test_a_scheduled_backup_that_ran_in_the_archive_is_ended_by_the_restore(app, tmp_path, tmp_path_factory):
    with app.app_context():
        db.session.add(Backup(status="running", worker="batch-studio@box", attempt=1))
        db.session.commit()
    path = tmp_path_factory.mktemp("archives") / "running.tar"
    assert invoke(app, "create", str(path)).exit_code == 0
    target = create_app(app_config(tmp_path / "restored"))
    assert invoke(target, "restore", str(path)).exit_code == 0
    with target.app_context():
        row = db.session.scalars(db.select(Backup)).one()
        assert row.status == "failed" and "restored from a backup" in row.error["template"]


def test_an_older_schema_is_restored_then_migrated(tmp_path, tmp_path_factory):
    older = services.known_revisions()[-2]
    app = create_app(app_config(tmp_path / "old"))
    with app.app_context():
        upgrade(directory=MIGRATIONS_DIR, revision=older)
    path = tmp_path_factory.mktemp("archives") / "old.tar"
    made = invoke(app, "create", str(path))
    assert made.exit_code == 0 and f"schema revision {older}" in made.output

    target = create_app(app_config(tmp_path / "new"))
    restored = invoke(target, "restore", str(path))
    assert restored.exit_code == 0, restored.output
    assert f"schema revision {older}, now {services.known_revisions()[-1]}" in restored.output
    with target.app_context():
        assert db.session.execute(db.text("SELECT version_num FROM alembic_version")).scalar() == \
            services.known_revisions()[-1]
        assert db.session.get(Installation, 1).install_id == DataDir(tmp_path / "new").install_id.read_text()


def test_keys_come_back_only_when_asked_for(app, tmp_path, tmp_path_factory):
    source = DataDir(app.config["DATA_DIR"])
    path = tmp_path_factory.mktemp("archives") / "keys.tar"
    assert invoke(app, "create", "--with-keys", str(path)).exit_code == 0
    target = create_app(app_config(tmp_path / "restored"))  # its start made keys of its own
    restored = DataDir(tmp_path / "restored")
    assert restored.key_file("session.key").read_bytes() != source.key_file("session.key").read_bytes()
    assert invoke(target, "restore", str(path)).exit_code == 0
    assert restored.key_file("session.key").read_bytes() == source.key_file("session.key").read_bytes()
    assert restored.key_file("session.key").stat().st_mode & 0o777 == 0o600


def test_restore_refuses_another_database_kind_before_unpacking(app, archive, tmp_path):
    def postgresql(name, data):
        return data.replace(b'"sqlite"', b'"postgresql"') if name in (ABOUT, MANIFEST) else data

    target = tmp_path / "empty"
    refused = invoke(create_app(app_config(target)), "restore",
                     str(rewritten(archive, tmp_path / "other.tar", postgresql)))
    assert refused.exit_code == 1 and "holds a postgresql database; this studio uses sqlite" in refused.output
    assert not [path for path in target.iterdir() if path.name.startswith(".restore-")]
