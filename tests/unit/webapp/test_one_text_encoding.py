"""Texts stored before migration 0020 (English, with the template beside it in `text_templates` or in a
rejected file's "reason_template") read after it as they read before, in each reader's language; a text
kept without a template keeps its English words. Downgrading gives the old rows back."""
from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from tests.marked_catalog import EN, MARK, ZH, marked_chinese  # noqa: F401 (an autouse fixture)
from tests.postgres import new_database
from tests.stack import app_config
from webapp import create_app
from webapp.database import MIGRATIONS_DIR
from webapp.extensions import db

PLAIN = {int: 0, float: 0.0, str: "x", bool: False, datetime: datetime(2026, 12, 1), object: {}}  # object: JSON
IMBALANCED = ("Classes are strongly imbalanced: '%(big)s' has %(largest)s training images, '%(small)s' only "
              "%(smallest)s. Consider adding images to the small classes.")
IMBALANCED_PARAMS = {"big": "many", "largest": 30, "small": "few", "smallest": 2}
CANCELLED = "Cancelled on request during epoch %(epoch)s."
NOT_A_ZIP = "The file is not a readable .zip archive."
GAVE_UP = "The worker stopped while evaluating (attempts made: %(count)s); start the evaluation again."

# Rows as a studio at 0019 holds them: (table, values), texts in English with or without their templates.
OLD_ROWS = [
    ("datasets", {"id": 1, "name": "set", "status": "ready", "layout": "classes", "error": None,
                  "warnings": [IMBALANCED % IMBALANCED_PARAMS],
                  "text_templates": {"warnings": [{"template": IMBALANCED, "params": IMBALANCED_PARAMS}]},
                  "rejected": [{"path": "readme.txt", "reason": "not inside a class folder",
                                "reason_template": "not inside a class folder", "reason_params": {}},
                               {"path": "b.png", "reason": "words kept before templates"}]}),
    ("datasets", {"id": 2, "name": "broken", "status": "failed", "layout": "classes", "error": NOT_A_ZIP,
                  "warnings": [], "rejected": [], "text_templates": {"error": {"template": NOT_A_ZIP, "params": {}}}}),
    ("datasets", {"id": 3, "name": "old", "status": "ready", "layout": "splits", "error": None,
                  "warnings": ["an old warning"], "rejected": [], "text_templates": None}),
    ("jobs", {"id": 1, "dataset_id": 1, "dataset_name": "set", "status": "cancelled", "config": {},
              "error": CANCELLED % {"epoch": 3}, "suggested": {"epochs": "Few images: 30 epochs."},
              "text_templates": {"error": {"template": CANCELLED, "params": {"epoch": 3}},
                                 "suggested": {"epochs": {"template": "Few images: 30 epochs.", "params": {}}}}}),
    ("jobs", {"id": 2, "dataset_id": 1, "dataset_name": "set", "status": "failed", "config": {},
              "error": "MemoryError: boom", "suggested": {"image_size": "an old reason"}, "text_templates": None}),
    ("evaluations", {"id": 1, "version": 1, "dataset_name": "set", "split": "val", "status": "failed",
                     "error": GAVE_UP % {"count": 3},
                     "text_templates": {"error": {"template": GAVE_UP, "params": {"count": 3}}}}),
    ("evaluations", {"id": 2, "version": 1, "dataset_name": "set", "split": "val", "status": "failed",
                     "error": "KeyError: 'x'", "text_templates": None}),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def app_at_0019(request, tmp_path):
    database = {}
    if request.param == "postgresql":
        database["SQLALCHEMY_DATABASE_URI"] = new_database(request.getfixturevalue("postgres_server"))
    app = create_app(app_config(tmp_path, **database))
    with app.app_context():
        upgrade(directory=MIGRATIONS_DIR, revision="0019")
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def insert(connection, name: str, values: dict) -> None:
    """A row with `values` and a plain value in every other required column, as the schema stands."""
    table = sa.Table(name, sa.MetaData(), autoload_with=connection)
    required = {column.name: PLAIN[column.type.python_type] for column in table.columns
                if not (column.nullable or column.primary_key or column.server_default is not None)}
    connection.execute(table.insert().values({**required, **values}))


def old_rows(connection) -> list:
    """Every text column of OLD_ROWS as it is stored now (JSON read as JSON on both databases)."""
    rows = []
    for name, values in OLD_ROWS:
        table = sa.Table(name, sa.MetaData(), autoload_with=connection)
        columns = [table.c[column] for column in values if column in ("id", "error", "text_templates", "warnings",
                                                                       "rejected", "suggested")]
        rows.append((name, dict(connection.execute(sa.select(*columns).where(table.c.id == values["id"]))
                                .mappings().one())))
    return rows


def test_old_texts_read_the_same_in_each_language_after_the_upgrade_and_come_back_after_a_downgrade(app_at_0019):
    app = app_at_0019
    with app.app_context():
        with db.engine.begin() as connection:
            for name, values in OLD_ROWS:
                insert(connection, name, values)
            before = old_rows(connection)
        upgrade(directory=MIGRATIONS_DIR)
    client = app.test_client()
    datasets = {lang: [client.get(f"/api/datasets/{n}", headers=h).get_json() for n in (1, 2, 3)]
                for lang, h in (("en", EN), ("zh", ZH))}
    jobs = {lang: [client.get(f"/api/jobs/{n}", headers=h).get_json() for n in (1, 2)]
            for lang, h in (("en", EN), ("zh", ZH))}
    evaluations = {lang: client.get("/api/evaluations", headers=h).get_json()["evaluations"]
                   for lang, h in (("en", EN), ("zh", ZH))}

    english, chinese = datasets["en"], datasets["zh"]
    assert english[0]["warnings"] == [IMBALANCED % IMBALANCED_PARAMS]
    assert chinese[0]["warnings"] == [MARK + IMBALANCED % IMBALANCED_PARAMS]
    assert english[0]["rejected"] == [{"path": "readme.txt", "reason": "not inside a class folder"},
                                      {"path": "b.png", "reason": "words kept before templates"}]
    assert chinese[0]["rejected"] == [{"path": "readme.txt", "reason": MARK + "not inside a class folder"},
                                      {"path": "b.png", "reason": "words kept before templates"}]
    assert (english[1]["error"], chinese[1]["error"]) == (NOT_A_ZIP, MARK + NOT_A_ZIP)
    assert english[2]["warnings"] == chinese[2]["warnings"] == ["an old warning"]
    assert [job["error"] for job in jobs["en"]] == ["Cancelled on request during epoch 3.", "MemoryError: boom"]
    assert [job["error"] for job in jobs["zh"]] == [MARK + "Cancelled on request during epoch 3.", "MemoryError: boom"]
    assert [job["suggested"] for job in jobs["zh"]] == [{"epochs": MARK + "Few images: 30 epochs."},
                                                        {"image_size": "an old reason"}]
    assert [row["error"] for row in evaluations["en"]] == ["KeyError: 'x'", GAVE_UP % {"count": 3}]
    assert [row["error"] for row in evaluations["zh"]] == ["KeyError: 'x'", MARK + GAVE_UP % {"count": 3}]

    with app.app_context():
        downgrade(directory=MIGRATIONS_DIR, revision="0019")
        with db.engine.begin() as connection:
            assert old_rows(connection) == before
