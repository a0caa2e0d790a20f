"""release state, its history and per-version serving statistics

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 13:40:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    release = op.create_table(
        'release',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('production', sa.Integer(), nullable=True),
        sa.Column('candidate', sa.Integer(), nullable=True),
        sa.Column('candidate_share', sa.Integer(), nullable=False),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.Column('experiment_started_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'))
    op.create_table(
        'release_changes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('action', sa.String(length=30), nullable=False),
        sa.Column('from_version', sa.Integer(), nullable=True),
        sa.Column('to_version', sa.Integer(), nullable=True),
        sa.Column('share', sa.Integer(), nullable=True),
        sa.Column('by', sa.String(length=200), nullable=False),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id'))
    op.create_table(
        'serving_stats',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('process', sa.String(length=64), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('arm', sa.String(length=20), nullable=False),
        sa.Column('hour', sa.DateTime(), nullable=False),
        sa.Column('requests', sa.Integer(), nullable=False),
        sa.Column('errors', sa.Integer(), nullable=False),
        sa.Column('confidence_sum', sa.Double(), nullable=False),
        sa.Column('low_confidence', sa.Integer(), nullable=False),
        sa.Column('abstained', sa.Integer(), nullable=False),
        sa.Column('latency_histogram', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('process', 'version', 'arm', 'hour'))
    with op.batch_alter_table('serving_stats', schema=None) as batch_op:
        batch_op.create_index('ix_serving_stats_hour', ['hour'], unique=False)
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('promote_when_done', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('abstain_threshold', sa.Double(), nullable=True))

    # An install that already has versions keeps serving what it served: the newest one.
    newest = op.get_bind().scalar(sa.text('SELECT MAX(version) FROM model_versions'))
    op.bulk_insert(release, [{'id': 1, 'production': newest, 'candidate': None, 'candidate_share': 0,
                              'revision': 0, 'experiment_started_at': None}])


def downgrade():
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_column('abstain_threshold')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('promote_when_done')
    with op.batch_alter_table('serving_stats', schema=None) as batch_op:
        batch_op.drop_index('ix_serving_stats_hour')
    op.drop_table('serving_stats')
    op.drop_table('release_changes')
    op.drop_table('release')
