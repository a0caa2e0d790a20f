"""Every SQLite connection runs in WAL mode with a busy timeout and foreign keys on."""
from sqlalchemy import text

from webapp.extensions import db


def test_sqlite_pragmas_on_every_connection(app):
    with app.app_context():
        for _ in range(2):
            with db.engine.connect() as connection:
                assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
                assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
                assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 15000


def test_migrations_create_the_tables(app):
    with app.app_context():
        with db.engine.connect() as connection:
            tables = {row[0] for row in connection.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
            version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert {"datasets", "dataset_images"} <= tables
    assert version is not None
