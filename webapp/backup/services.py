"""Create, verify and restore a backup archive (webapp.backup.archive) of the current app's install."""
from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from alembic.script import ScriptDirectory
from flask import current_app
from flask_migrate import upgrade
from sqlalchemy import inspect, update

from engine.errors import StudioError
from engine.messages import N_, Message
from webapp.backup.archive import (DATABASE_PREFIX, FILES_PREFIX, About, ArchiveWriter, Manifest, Member,
                                   read_about, read_archive)
from webapp.backup.database_copy import (DUMP_MEMBER, SQLITE_MEMBER, database_kind, load, place_sqlite_copy,
                                         snapshot)
from webapp.backup.referenced import keys_folder, referenced_files
from webapp.database import MIGRATIONS_DIR
from webapp.extensions import db
from webapp.installation import check_data_dir
from webapp.messages import stored
from webapp.models import Backup, iso, utcnow
from webapp.statuses import BackupStatus
from webapp.storage import DataDir, data_dir, write_whole

log = logging.getLogger(__name__)
STAGING_PREFIX = ".restore-"


def studio_version() -> str:
    try:
        return importlib.metadata.version("paddle-image-studio")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def known_revisions() -> list[str]:
    """This code's schema revisions, oldest first."""
    return [script.revision for script in reversed(list(ScriptDirectory(MIGRATIONS_DIR).walk_revisions()))]


def _member_name(folders: DataDir, path: Path) -> str:
    return FILES_PREFIX + path.relative_to(folders.root).as_posix()


def create_backup(target: Path, with_keys: bool = False) -> Manifest:
    """Write one archive of the install at `target`: the database as it is now, exactly the files that copy
    references (a file removed meanwhile is listed as missing in the manifest and logged), the install id
    and, `with_keys`, the keys. Runs while the studio runs; nothing of the studio waits for it."""
    folders, target = data_dir(), Path(target).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".backup-") as work, \
            snapshot(db.engine, Path(work)) as taken:
        if taken.revision is None:
            raise StudioError("backup_refused", "The database has no schema yet (run the migrations first): there "
                                                "is nothing to back up.")
        about = About(studio_version(), taken.kind, taken.revision, iso(utcnow()), with_keys)
        writer = ArchiveWriter(target, about)
        try:
            writer.add_file(taken.member, taken.copy)
            for item in referenced_files(taken.connection, folders, with_keys):
                writer.add_file(_member_name(folders, item.path), item.path, item.limit)
            manifest = writer.close()
        except BaseException:
            writer.abandon()
            raise
    for name in manifest.missing:
        log.warning("%s was removed while the backup was taken (deleted or purged); the archive lacks it", name)
    return manifest


@dataclass
class Checked:
    """What reading an archive found: its manifest (None when the archive ended before it), the problems (in
    words, empty when it is whole) and, when it was unpacked, where."""

    manifest: Manifest | None = None
    problems: list[Message] = field(default_factory=list)
    members: dict[str, Member] = field(default_factory=dict)


def _refuse_unknown(about: About) -> None:
    """A schema this code does not know was written by newer code: its data cannot be read here."""
    if about.schema_revision not in known_revisions():
        raise StudioError("backup_refused", "The backup's database is at schema revision %(revision)s, which this "
                                            "version of the studio does not know (its newest is %(head)s): restore it "
                                            "with the studio's version %(version)s or newer.",
                          {"revision": about.schema_revision, "head": known_revisions()[-1],
                           "version": about.studio_version})


def check_archive(path: Path, into: Path | None = None,
                  keep: Callable[[str], bool] = lambda name: True) -> Checked:
    """Read the whole archive and compare every member with its manifest (digest and size, none missing,
    none extra); with `into`, the members `keep` names are written under it."""
    checked, about = Checked(), None
    try:
        for item in read_archive(Path(path), into, keep):
            if isinstance(item, About):
                about = item
                _refuse_unknown(about)
            elif isinstance(item, Manifest):
                checked.manifest = item
            else:
                checked.members[item.path] = item
    except StudioError:
        raise
    except Exception as exc:  # not a tar, cut short, a path that leaves the folder
        checked.problems.append(Message(N_("The archive cannot be read to its end (%(problem)s)."),
                                        {"problem": str(exc) or type(exc).__name__}))
        return checked
    if checked.manifest is None or about is None or checked.manifest.about != about:
        checked.problems.append(Message(N_("The archive has no manifest: it is not a whole studio backup.")))
        return checked
    checked.problems += _compared(checked.manifest, checked.members)
    return checked


def _compared(manifest: Manifest, members: dict[str, Member]) -> list[Message]:
    problems = []
    listed = {entry.path: entry for entry in manifest.entries}
    for name in sorted(set(listed) | set(members)):
        entry, member = listed.get(name), members.get(name)
        if entry is None:
            problems.append(Message(N_("%(path)s is in the archive but not in its manifest."), {"path": name}))
        elif member is None:
            problems.append(Message(N_("%(path)s is in the manifest but not in the archive."), {"path": name}))
        elif (member.sha256, member.size) != (entry.sha256, entry.size):
            problems.append(Message(N_("%(path)s does not match its digest in the manifest: the archive was changed "
                                       "or damaged."), {"path": name}))
    return problems


def verify_backup(path: Path) -> Checked:
    """Check an archive without restoring it, in one read: its manifest, every digest, and that its
    database copy (the only member written out, to a temporary folder) opens at the schema revision the
    manifest names."""
    with tempfile.TemporaryDirectory(prefix="studio-verify-") as work:
        checked = check_archive(path, Path(work), keep=lambda name: name.startswith(DATABASE_PREFIX))
        if not checked.problems:
            checked.problems += _database_problems(checked)
    return checked


def _database_problems(checked: Checked) -> list[Message]:
    """Open the archive's database copy and compare its revision with the manifest's."""
    about = checked.manifest.about
    copy = checked.members.get(SQLITE_MEMBER if about.database == "sqlite" else DUMP_MEMBER)
    try:
        revision = _copy_revision(copy.written, about.database)
    except Exception as exc:
        return [Message(N_("The database copy does not open (%(problem)s)."), {"problem": str(exc) or
                                                                                type(exc).__name__})]
    if revision != about.schema_revision:
        return [Message(N_("The database copy is at revision %(found)s, not %(revision)s as the manifest says."),
                        {"found": revision, "revision": about.schema_revision})]
    return []


def _copy_revision(copy: Path, kind: str) -> str:
    if kind == "sqlite":
        with closing(sqlite3.connect(f"file:{copy}?mode=ro", uri=True)) as connection:
            if connection.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise ValueError("quick_check failed")
            return connection.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    with open(copy, encoding="utf-8") as stream:
        return json.loads(stream.readline())["revision"]


def _not_empty(folders: DataDir) -> Iterator[Path]:
    """The folders of DATA_DIR that a restore fills and that already hold a file."""
    for folder in (folders.datasets, folders.models, folders.feedback, folders.batch(0).parent,
                   folders.webhook_secret(0).parent, folders.checkpoints(0).parent):
        if folder.is_dir() and any(path.is_file() for path in folder.rglob("*")):
            yield folder


def refuse_unless_empty(folders: DataDir) -> None:
    """A restore goes only into an empty database and a DATA_DIR without data: say which is not."""
    tables = inspect(db.engine).get_table_names()
    if tables:
        raise StudioError("backup_refused", "The database at %(url)s is not empty (it has %(count)s tables): restore "
                                            "into a new, empty database.",
                          {"url": db.engine.url.render_as_string(hide_password=True), "count": len(tables)})
    for folder in _not_empty(folders):
        raise StudioError("backup_refused", "DATA_DIR %(root)s is not empty: %(folder)s holds files. Restore into an "
                                            "empty data folder.", {"root": str(folders.root), "folder": str(folder)})


def restore_backup(path: Path) -> Manifest:
    """Restore an archive into the current app's empty database and DATA_DIR: every digest is checked
    before anything is put in place; the database comes back at the archive's revision and is then
    migrated to this code's; the data folder's install id then matches the database's."""
    folders = data_dir()
    refuse_unless_empty(folders)
    _refuse_other_kind(read_about(Path(path)))
    staging = folders.root / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    try:
        checked = check_archive(path, staging)
        if checked.problems:
            raise StudioError("backup_damaged", "The archive cannot be restored (nothing was changed): %(problem)s",
                              {"problem": checked.problems[0]})
        about = checked.manifest.about
        _put_database(about, staging)
        _put_files(folders, staging, checked.manifest)
        upgrade(directory=MIGRATIONS_DIR)
        _end_interrupted_backups()
        check_data_dir(current_app._get_current_object())
        return checked.manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _refuse_other_kind(about: About | None) -> None:
    """A SQLite backup restores into SQLite, a PostgreSQL one into PostgreSQL (checked before unpacking)."""
    if about is not None and about.database != database_kind(db.engine):
        raise StudioError("backup_refused", "The backup holds a %(kind)s database; this studio uses %(ours)s.",
                          {"kind": about.database, "ours": database_kind(db.engine)})


def _put_database(about: About, staging: Path) -> None:
    if about.database == "sqlite":
        db.engine.dispose()
        place_sqlite_copy(staging / SQLITE_MEMBER, Path(db.engine.url.database))
        return
    upgrade(directory=MIGRATIONS_DIR, revision=about.schema_revision)
    with db.engine.begin() as connection, open(staging / DUMP_MEMBER, encoding="utf-8") as stream:
        load(connection, stream)


def _put_files(folders: DataDir, staging: Path, manifest: Manifest) -> None:
    """Move every file of the archive to its place in DATA_DIR; the keys replace the ones a start made."""
    keys = keys_folder(folders)
    for entry in manifest.entries:
        if not entry.path.startswith(FILES_PREFIX):
            continue
        target = folders.root / entry.path[len(FILES_PREFIX):]
        staged = staging / entry.path
        if target.parent == keys:  # in the archive only when it was made --with-keys
            write_whole(target, staged.read_bytes())
            continue
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.replace(staged, target)


def _end_interrupted_backups() -> None:
    """A scheduled backup that waited or ran when the archive was taken (the archive's own, often) fails
    with the reason, rather than being taken up again by the restored studio's workers."""
    reason = stored(Message(N_("The studio was restored from a backup taken while this one waited or ran.")))
    db.session.execute(update(Backup).where(Backup.status.in_([BackupStatus.QUEUED, BackupStatus.RUNNING]))
                       .values(status=BackupStatus.FAILED, error=reason, finished_at=utcnow()))
    db.session.commit()
