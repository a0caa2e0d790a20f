"""jobs: the queue a job's task goes to, for jobs routed to a kind of device

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29 12:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.add_column(sa.Column('queue', sa.String(length=40), nullable=False, server_default='training'))


def downgrade():
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.drop_column('queue')
