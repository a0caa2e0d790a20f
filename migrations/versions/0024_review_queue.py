"""review queue: doubtful production answers sampled for labelling, and its run-time settings

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 03:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'review_items',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('prediction_id', sa.String(length=36), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('arm', sa.String(length=20), nullable=False),
        sa.Column('first_class', sa.String(length=255), nullable=False),
        sa.Column('first_confidence', sa.Double(), nullable=False),
        sa.Column('second_class', sa.String(length=255), nullable=True),
        sa.Column('second_confidence', sa.Double(), nullable=True),
        sa.Column('margin', sa.Double(), nullable=False),
        sa.Column('abstained', sa.Boolean(), nullable=False),
        sa.Column('anonymous', sa.Boolean(), nullable=False),
        sa.Column('image_name', sa.String(length=80), nullable=True),
        sa.Column('image_bytes', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('label', sa.String(length=255), nullable=True),
        sa.Column('labelled_by', sa.String(length=200), nullable=True),
        sa.Column('labelled_at', sa.DateTime(), nullable=True),
        sa.Column('dataset_id', sa.Integer(), nullable=True),
        sa.Column('revision', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('prediction_id'),
        sqlite_autoincrement=True)
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.create_index('ix_review_items_status', ['status', 'id'], unique=False)
    op.create_table(
        'review_settings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('margin', sa.Double(), nullable=False),
        sa.Column('sample_rate', sa.Double(), nullable=False),
        sa.Column('hourly_cap', sa.Integer(), nullable=False),
        sa.Column('keep_anonymous', sa.Boolean(), nullable=False),
        sa.Column('hour', sa.Integer(), nullable=False),
        sa.Column('taken', sa.Integer(), nullable=False),
        sa.Column('updated_by', sa.String(length=200), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'))


def downgrade():
    op.drop_table('review_settings')
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.drop_index('ix_review_items_status')
    op.drop_table('review_items')
