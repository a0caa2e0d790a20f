"""job attempts, automatic retries, resume from checkpoints; test split results, per-image answers

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 18:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempt', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('retries', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('resumed_from_epoch', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('checkpoint_bytes', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('test', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('predictions', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('predictions')
        batch_op.drop_column('test')
        batch_op.drop_column('checkpoint_bytes')
        batch_op.drop_column('resumed_from_epoch')
        batch_op.drop_column('retries')
        batch_op.drop_column('attempt')
