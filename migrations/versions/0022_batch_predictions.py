"""batch predictions: every image of an upload or a dataset revision classified by one model version in the
background, with how far its results files are committed

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 03:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'batch_predictions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('progress', sa.Double(), nullable=False),
        sa.Column('source', sa.String(length=20), nullable=False),
        sa.Column('input_name', sa.String(length=255), nullable=False),
        sa.Column('dataset_id', sa.Integer(), nullable=True),
        sa.Column('revision_id', sa.Integer(), nullable=True),
        sa.Column('revision', sa.Integer(), nullable=True),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('top_k', sa.Integer(), nullable=False),
        sa.Column('abstain_below', sa.Double(), nullable=True),
        sa.Column('class_thresholds', sa.JSON(), nullable=True),
        sa.Column('total', sa.Integer(), nullable=False),
        sa.Column('done', sa.Integer(), nullable=False),
        sa.Column('refused', sa.Integer(), nullable=False),
        sa.Column('csv_bytes', sa.BigInteger(), nullable=False),
        sa.Column('jsonl_bytes', sa.BigInteger(), nullable=False),
        sa.Column('summary', sa.JSON(), nullable=False),
        sa.Column('cancel_requested', sa.Boolean(), nullable=False),
        sa.Column('worker', sa.String(length=200), nullable=True),
        sa.Column('error', sa.JSON(none_as_null=True), nullable=True),
        sa.Column('created_by', sa.String(length=200), nullable=True),
        sa.Column('owner_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('started_at', sa.DateTime(), nullable=True),
        sa.Column('heartbeat_at', sa.DateTime(), nullable=True),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.Column('expired_at', sa.DateTime(), nullable=True),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('retries', sa.Integer(), nullable=False),
        sa.Column('queued_at', sa.DateTime(), nullable=True),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['revision_id'], ['dataset_revisions.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['owner_id'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sqlite_autoincrement=True)


def downgrade():
    op.drop_table('batch_predictions')
