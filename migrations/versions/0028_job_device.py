"""job device: where each job trained (the device and its model) and in which precision

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06 09:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.add_column(sa.Column('trained_on', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('device_model', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('precision', sa.String(length=20), nullable=True))


def downgrade():
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.drop_column('precision')
        batch_op.drop_column('device_model')
        batch_op.drop_column('trained_on')
