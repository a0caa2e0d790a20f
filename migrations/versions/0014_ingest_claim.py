"""datasets: which attempt is checking an upload and when it last made progress, so a check is claimed once

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29 12:45:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('datasets') as batch_op:
        batch_op.add_column(sa.Column('ingest_attempt', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('ingest_heartbeat_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('datasets') as batch_op:
        batch_op.drop_column('ingest_heartbeat_at')
        batch_op.drop_column('ingest_attempt')
