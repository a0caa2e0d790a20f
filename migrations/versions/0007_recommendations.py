"""measured training speed per worker for pre-flight estimates; which job options came from the suggestion

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 06:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'step_timings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('worker', sa.String(length=200), nullable=False),
        sa.Column('device', sa.String(length=20), nullable=False),
        sa.Column('backbone', sa.String(length=40), nullable=False),
        sa.Column('image_size', sa.Integer(), nullable=False),
        sa.Column('batch_size', sa.Integer(), nullable=False),
        sa.Column('seconds_per_image', sa.Float(), nullable=False),
        sa.Column('source', sa.String(length=10), nullable=False),
        sa.Column('measured_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('worker', 'backbone', 'image_size', 'batch_size', name='uq_step_timings_combination'),
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('suggested', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('suggested')
    op.drop_table('step_timings')
