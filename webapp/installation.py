"""One install: a data folder and the database that describes it. Workers on other hosts must see the same
DATA_DIR as the database says, or they would train on files that are not there; each process checks at
start that the folder's `install.id` is the one the database recorded."""
from __future__ import annotations

import os
import uuid

from flask import Flask
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from webapp.extensions import db
from webapp.models import Installation
from webapp.storage import DataDir


class WrongDataDir(RuntimeError):
    """This process's DATA_DIR is not the data folder its database belongs to."""


def folder_install_id(folder: DataDir) -> str:
    """The data folder's id, made by whichever process asks first. The id is written to a file of its own and
    then linked into place, which fails if another process linked first: nobody ever reads a half-written id
    (processes that start together, such as a training and an ingest worker, both ask at once)."""
    path = folder.install_id
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    draft.write_text(uuid.uuid4().hex)
    try:
        os.link(draft, path)
    except FileExistsError:  # another process made it first
        pass
    finally:
        draft.unlink()
    return path.read_text().strip()


def check_data_dir(app: Flask) -> str:
    """The install id, after checking that DATA_DIR is the database's data folder (the first process to
    check records it); WrongDataDir, with what to do, otherwise. Before the migrations ran there is
    nothing to check against."""
    folder = DataDir(app.config["DATA_DIR"])
    mine = folder_install_id(folder)
    with app.app_context():
        if not inspect(db.engine).has_table(Installation.__tablename__):
            return mine
        row = db.session.get(Installation, 1)
        if row is None:
            db.session.add(Installation(id=1, install_id=mine))
            try:
                db.session.commit()
            except IntegrityError:  # another process recorded it first
                db.session.rollback()
            row = db.session.get(Installation, 1)
        if row.install_id != mine:
            raise WrongDataDir(
                f"DATA_DIR {folder.root} is not the data folder of the database at "
                f"{db.engine.url.render_as_string(hide_password=True)} (its install id is {row.install_id}, this "
                f"folder's is {mine}). Mount the shared data folder at DATA_DIR on this host, or point "
                "DATABASE_URL at this folder's database.")
        return mine
