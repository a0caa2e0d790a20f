"""the release row exists from the start, so reading it never writes

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 16:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    # 0003 made the row; a database that lost it gets it back here, serving the newest version as 0003
    # would have, so that reading the release never has to write it.
    release = sa.table('release', sa.column('id', sa.Integer()), sa.column('production', sa.Integer()),
                       sa.column('candidate', sa.Integer()), sa.column('candidate_share', sa.Integer()),
                       sa.column('revision', sa.Integer()), sa.column('experiment_started_at', sa.DateTime()))
    bind = op.get_bind()
    if bind.scalar(sa.select(sa.func.count()).select_from(release).where(release.c.id == 1)):
        return
    newest = bind.scalar(sa.text('SELECT MAX(version) FROM model_versions'))
    op.bulk_insert(release, [{'id': 1, 'production': newest, 'candidate': None, 'candidate_share': 0,
                              'revision': 0, 'experiment_started_at': None}])


def downgrade():
    # The row is the release itself, which the schema before 0018 has as well: it stays.
    pass
