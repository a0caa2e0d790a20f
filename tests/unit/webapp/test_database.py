"""Every SQLite connection runs in WAL mode with a busy timeout and foreign keys on; the migrations build
the same schema on SQLite and on PostgreSQL."""
from pathlib import Path

from sqlalchemy import inspect, text

from webapp.extensions import db

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations" / "versions"


def test_sqlite_pragmas_on_every_connection(app):
    with app.app_context():
        for _ in range(2):
            with db.engine.connect() as connection:
                assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
                assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
                assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 15000


def test_migrations_create_every_table_of_the_models(app_on_each_database):
    with app_on_each_database.app_context():
        tables = set(inspect(db.engine).get_table_names())
        with db.engine.connect() as connection:
            version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert set(db.metadata.tables) <= tables
    assert version == sorted(path.name.split("_")[0] for path in MIGRATIONS.glob("0*.py"))[-1]
