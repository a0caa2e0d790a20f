"""ids and version numbers are never reused: AUTOINCREMENT tables and a version counter

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 16:00:00

SQLite gives a deleted newest row's id to the next row unless the table is AUTOINCREMENT, which only a
rebuilt table can become. The rebuild runs with foreign keys off (dropping a parent table with them on
deletes or orphans its children's rows through ON DELETE), in one transaction, and checks every foreign
key before it commits. PostgreSQL's sequences never go back: nothing to do for ids there.

Version numbers are not a primary key, so they come from a counter row that only ever goes up.
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

# Every table whose integer id is shown, sent or referenced; the one-row tables (release, installation) are not.
TABLES = ('datasets', 'dataset_images', 'jobs', 'epoch_metrics', 'model_versions', 'release_changes',
          'serving_stats', 'evaluations', 'feedback', 'step_timings', 'users', 'api_tokens')

counters = sa.table('counters', sa.column('name', sa.String()), sa.column('value', sa.Integer()))


def upgrade():
    # The rebuild commits on its own (foreign keys can only be switched off outside a transaction), so it
    # comes first: if it fails, nothing of this revision is left behind and the upgrade can run again.
    if op.get_bind().dialect.name == 'sqlite':
        _rebuild_with_autoincrement(TABLES)
    op.create_table(
        'counters',
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('value', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )
    op.bulk_insert(counters, [{'name': 'model_version', 'value': _newest_version_named()}])


def _newest_version_named() -> int:
    """The highest version number any row names: a version deleted before this upgrade may still have
    evaluations, feedback, serving figures or release history, and its number must not come back."""
    named = ' UNION ALL '.join(f'SELECT MAX({column}) AS v FROM {table}' for table, column in (
        ('model_versions', 'version'), ('evaluations', 'version'), ('feedback', 'version'),
        ('serving_stats', 'version'), ('release_changes', 'from_version'), ('release_changes', 'to_version'),
        ('release', 'production'), ('release', 'candidate')))
    return op.get_bind().scalar(sa.text(f'SELECT COALESCE(MAX(v), 0) FROM ({named}) AS named')) or 0


def _rebuild_with_autoincrement(tables):
    """Rebuild each table as AUTOINCREMENT (rows, indexes and constraints kept) with foreign keys off,
    which SQLite allows only outside a transaction; the rebuild itself is one transaction."""
    context = op.get_context()
    with context.autocommit_block():
        bind = op.get_bind()
        bind.exec_driver_sql('PRAGMA foreign_keys=OFF')
        try:
            bind.exec_driver_sql('BEGIN IMMEDIATE')
            try:
                broken_before = set(bind.exec_driver_sql('PRAGMA foreign_key_check').fetchall())
                for table in tables:
                    with op.batch_alter_table(table, recreate='always',
                                              table_kwargs={'sqlite_autoincrement': True}):
                        pass
                broken = set(bind.exec_driver_sql('PRAGMA foreign_key_check').fetchall()) - broken_before
                if broken:
                    raise RuntimeError(f'the rebuild would break these links: {sorted(broken)[:5]}')
            except BaseException:
                bind.exec_driver_sql('ROLLBACK')
                raise
            bind.exec_driver_sql('COMMIT')
        finally:
            bind.exec_driver_sql('PRAGMA foreign_keys=ON')


def downgrade():
    op.drop_table('counters')
