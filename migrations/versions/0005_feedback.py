"""feedback on predictions, with the images kept for them

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 17:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'feedback',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('prediction_id', sa.String(length=36), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('arm', sa.String(length=20), nullable=False),
        sa.Column('predicted_class', sa.String(length=255), nullable=False),
        sa.Column('confidence', sa.Double(), nullable=False),
        sa.Column('abstained', sa.Boolean(), nullable=False),
        sa.Column('correct', sa.Boolean(), nullable=False),
        sa.Column('label', sa.String(length=255), nullable=True),
        sa.Column('image_name', sa.String(length=80), nullable=True),
        sa.Column('image_bytes', sa.Integer(), nullable=False),
        sa.Column('image_sha256', sa.String(length=64), nullable=True),
        sa.Column('dataset_id', sa.Integer(), nullable=True),
        sa.Column('by', sa.String(length=200), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('prediction_id'))
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.create_index('ix_feedback_version_created', ['version', 'created_at'], unique=False)


def downgrade():
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.drop_index('ix_feedback_version_created')
    op.drop_table('feedback')
