"""dataset revisions: a dataset's content becomes a series of immutable revisions (each image row belongs to
one revision's manifest), jobs, versions and evaluations name the revision they read, each image keeps the
signature the quality report reads, and two kinds of background work: quality scans and label-error searches

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 00:10:00

Every ready dataset becomes its revision 1, and every job, version and evaluation of it names that
revision. Its images were measured before the report existed: a quality scan waits for each such dataset,
sent by the first sweep of the outbox (the migration sends no task itself).
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

NAMING_TABLES = ('jobs', 'model_versions', 'evaluations')
UPLOADED = {'template': 'Uploaded: %(count)s images.', 'params': {}}


def _lifecycle_columns() -> list:
    return [sa.Column('progress', sa.Double(), nullable=False),
            sa.Column('worker', sa.String(length=200), nullable=True),
            sa.Column('error', sa.JSON(none_as_null=True), nullable=True),
            sa.Column('created_at', sa.DateTime(), nullable=False),
            sa.Column('heartbeat_at', sa.DateTime(), nullable=True),
            sa.Column('finished_at', sa.DateTime(), nullable=True),
            sa.Column('attempt', sa.Integer(), nullable=False),
            sa.Column('retries', sa.Integer(), nullable=False),
            sa.Column('queued_at', sa.DateTime(), nullable=True),
            sa.Column('sent_at', sa.DateTime(), nullable=True)]


def upgrade():
    op.create_table(
        'dataset_revisions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('dataset_id', sa.Integer(), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('parent', sa.Integer(), nullable=True),
        sa.Column('note', sa.JSON(none_as_null=True), nullable=True),
        sa.Column('comment', sa.String(length=500), nullable=True),
        sa.Column('changes', sa.JSON(), nullable=False),
        sa.Column('num_images', sa.Integer(), nullable=False),
        sa.Column('content_hash', sa.String(length=64), nullable=True),
        sa.Column('quality', sa.JSON(), nullable=True),
        sa.Column('created_by', sa.String(length=200), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('dataset_id', 'number', name='uq_dataset_revisions_number'),
        sqlite_autoincrement=True)
    op.create_table(
        'quality_scans',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('dataset_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        *_lifecycle_columns(),
        sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sqlite_autoincrement=True)
    op.create_table(
        'label_searches',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('dataset_id', sa.Integer(), nullable=True),
        sa.Column('revision_id', sa.Integer(), nullable=True),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('phase', sa.String(length=20), nullable=True),
        sa.Column('config', sa.JSON(), nullable=False),
        sa.Column('estimate_seconds', sa.Double(), nullable=True),
        sa.Column('issues', sa.JSON(), nullable=True),
        sa.Column('cancel_requested', sa.Boolean(), nullable=False),
        sa.Column('created_by', sa.String(length=200), nullable=True),
        sa.Column('started_at', sa.DateTime(), nullable=True),
        *_lifecycle_columns(),
        sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['revision_id'], ['dataset_revisions.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sqlite_autoincrement=True)
    with op.batch_alter_table('datasets') as batch_op:
        batch_op.add_column(sa.Column('revision_count', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('dataset_images', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.add_column(sa.Column('revision_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('signature', sa.JSON(), nullable=True))
    _add_revision_links()
    _first_revisions()
    with op.batch_alter_table('dataset_images', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.alter_column('revision_id', existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key('fk_dataset_images_revision', 'dataset_revisions', ['revision_id'], ['id'],
                                    ondelete='CASCADE')
        batch_op.create_index('ix_dataset_images_revision_class', ['revision_id', 'class_name'])


def _add_revision_links(drop: bool = False) -> None:
    """A nullable link to a revision and its number on each of NAMING_TABLES (or their removal). SQLite
    adds a link to another table by rebuilding the table, which runs with foreign keys off (dropping a
    parent table with them on would set its children's links to NULL), in one transaction, and checks
    every foreign key before it commits (as 0020 does)."""
    if op.get_bind().dialect.name != 'sqlite':
        _change_links(drop)
        return
    with op.get_context().autocommit_block():
        bind = op.get_bind()
        bind.exec_driver_sql('PRAGMA foreign_keys=OFF')
        try:
            bind.exec_driver_sql('BEGIN IMMEDIATE')
            try:
                broken_before = set(bind.exec_driver_sql('PRAGMA foreign_key_check').fetchall())
                _change_links(drop)
                broken = set(bind.exec_driver_sql('PRAGMA foreign_key_check').fetchall()) - broken_before
                if broken:
                    raise RuntimeError(f'the rebuild would break these links: {sorted(broken)[:5]}')
            except BaseException:
                bind.exec_driver_sql('ROLLBACK')
                raise
            bind.exec_driver_sql('COMMIT')
        finally:
            bind.exec_driver_sql('PRAGMA foreign_keys=ON')


def _change_links(drop: bool) -> None:
    if drop:  # a rebuild of datasets, the parent of most tables: only with foreign keys off
        with op.batch_alter_table('datasets', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
            batch_op.drop_column('revision_count')
    for table in NAMING_TABLES:
        with op.batch_alter_table(table, table_kwargs={'sqlite_autoincrement': True}) as batch_op:
            if drop:
                batch_op.drop_constraint(f'fk_{table}_revision', type_='foreignkey')
                batch_op.drop_column('revision_id')
                batch_op.drop_column('revision')
            else:
                batch_op.add_column(sa.Column('revision_id', sa.Integer(), nullable=True))
                batch_op.add_column(sa.Column('revision', sa.Integer(), nullable=True))
                batch_op.create_foreign_key(f'fk_{table}_revision', 'dataset_revisions', ['revision_id'], ['id'],
                                            ondelete='SET NULL')


def _first_revisions() -> None:
    """Each dataset's images so far as its revision 1; a ready dataset's scan waits to be sent."""
    bind = op.get_bind()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    datasets = bind.execute(sa.text('SELECT id, num_images, content_hash, status, created_at FROM datasets')).all()
    revisions = sa.table('dataset_revisions', *(sa.column(name) for name in (
        'dataset_id', 'number', 'note', 'changes', 'num_images', 'content_hash', 'created_at')))
    revisions.c.note.type = sa.JSON(none_as_null=True)
    revisions.c.changes.type = sa.JSON()
    scans = sa.table('quality_scans', *(sa.column(name) for name in (
        'dataset_id', 'status', 'progress', 'created_at', 'attempt', 'retries', 'queued_at')))
    for dataset_id, num_images, content_hash, status, created_at in datasets:
        if status != 'ready':
            continue  # an upload still to check, or failed: its revision 1 comes with its check
        bind.execute(revisions.insert().values(
            dataset_id=dataset_id, number=1, note={**UPLOADED, 'params': {'count': num_images}},
            changes={'added': num_images}, num_images=num_images, content_hash=content_hash, created_at=created_at))
        revision_id = bind.execute(sa.text('SELECT id FROM dataset_revisions WHERE dataset_id = :d AND number = 1'),
                                   {'d': dataset_id}).scalar_one()
        bind.execute(sa.text('UPDATE dataset_images SET revision_id = :r WHERE dataset_id = :d'),
                     {'r': revision_id, 'd': dataset_id})
        bind.execute(sa.text('UPDATE datasets SET revision_count = 1 WHERE id = :d'), {'d': dataset_id})
        for table in NAMING_TABLES:
            bind.execute(sa.text(f'UPDATE {table} SET revision_id = :r, revision = 1 WHERE dataset_id = :d'),
                         {'r': revision_id, 'd': dataset_id})
        bind.execute(scans.insert().values(dataset_id=dataset_id, status='queued', progress=0.0, created_at=now,
                                           attempt=0, retries=0, queued_at=now))
    # Images of a dataset that never became ready have no revision: they go with it.
    bind.execute(sa.text('DELETE FROM dataset_images WHERE revision_id IS NULL'))


def downgrade():
    # Before revisions a dataset had one set of images: its newest revision's.
    op.execute('DELETE FROM dataset_images WHERE revision_id NOT IN (SELECT r.id FROM dataset_revisions r WHERE '
               'r.number = (SELECT max(n.number) FROM dataset_revisions n WHERE n.dataset_id = r.dataset_id))')
    with op.batch_alter_table('dataset_images', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_index('ix_dataset_images_revision_class')
        batch_op.drop_constraint('fk_dataset_images_revision', type_='foreignkey')
        batch_op.drop_column('signature')
        batch_op.drop_column('revision_id')
    _add_revision_links(drop=True)
    op.drop_table('label_searches')
    op.drop_table('quality_scans')
    op.drop_table('dataset_revisions')
