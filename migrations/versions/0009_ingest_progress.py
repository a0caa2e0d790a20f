"""datasets: ingest progress while an upload is checked in the background

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 09:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ingest_done', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('ingest_total', sa.Integer(), nullable=False, server_default='0'))


def downgrade():
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.drop_column('ingest_total')
        batch_op.drop_column('ingest_done')
