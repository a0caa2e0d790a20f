"""The models and the migrations describe the same schema, on SQLite and on PostgreSQL: unit tests start
from a copy of one migrated database, so a column added to a model without its migration (or the other
way round) must fail here."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from webapp.extensions import db


def test_models_and_migrations_give_the_same_schema(app_on_each_database):
    with app_on_each_database.app_context(), db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), db.metadata)
    assert differences == []
