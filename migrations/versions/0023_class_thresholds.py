"""per-class abstain thresholds on model versions (and the calibration they came from), and what a
threshold change changed in the release history

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 03:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('class_thresholds', sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column('class_thresholds_calibration', sa.JSON(none_as_null=True), nullable=True))
    with op.batch_alter_table('release_changes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('details', sa.JSON(none_as_null=True), nullable=True))


def downgrade():
    with op.batch_alter_table('release_changes', schema=None) as batch_op:
        batch_op.drop_column('details')
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_column('class_thresholds_calibration')
        batch_op.drop_column('class_thresholds')
