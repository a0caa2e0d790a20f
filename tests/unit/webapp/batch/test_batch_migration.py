"""Migration 0022 adds the batch predictions' table and its downgrade removes it again, leaving the rest."""
from __future__ import annotations

import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from tests.stack import app_config
from webapp import create_app
from webapp.database import MIGRATIONS_DIR
from webapp.extensions import db


def tables(app) -> set[str]:
    with app.app_context():
        return set(sa.inspect(db.engine).get_table_names())


def test_0022_adds_the_batch_table_and_its_downgrade_removes_it(tmp_path):
    app = create_app(app_config(tmp_path))
    with app.app_context():
        upgrade(directory=MIGRATIONS_DIR, revision="0022")
        with db.engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO batch_predictions (id, status, progress, source, input_name, version, top_k, total, "
                "done, refused, csv_bytes, jsonl_bytes, summary, cancel_requested, created_at, attempt, retries) "
                "VALUES (1, 'succeeded', 1, 'upload', 'photos.zip', 1, 5, 3, 3, 0, 5000000000, 10, '{}', 0, "
                "'2026-12-06', 1, 0)"))
            assert connection.execute(sa.text("SELECT csv_bytes FROM batch_predictions")).scalar() == 5_000_000_000
    assert "batch_predictions" in tables(app)
    with app.app_context():
        downgrade(directory=MIGRATIONS_DIR, revision="0021")
    assert "batch_predictions" not in tables(app) and "label_searches" in tables(app)
    with app.app_context():
        upgrade(directory=MIGRATIONS_DIR)
        db.engine.dispose()
    assert "batch_predictions" in tables(app)
