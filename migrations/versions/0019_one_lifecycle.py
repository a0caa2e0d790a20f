"""one lifecycle for background work: every row that mirrors a task records when it was queued and when its
task was last sent (an outbox the sweep reads instead of the broker), and evaluations and upload checks count
their attempts and automatic retries as jobs do

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 19:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.add_column(sa.Column('queued_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('sent_at', sa.DateTime(), nullable=True))
    with op.batch_alter_table('evaluations') as batch_op:
        batch_op.add_column(sa.Column('attempt', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('retries', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('queued_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('sent_at', sa.DateTime(), nullable=True))
    with op.batch_alter_table('datasets') as batch_op:
        batch_op.add_column(sa.Column('worker', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('retries', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('queued_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('sent_at', sa.DateTime(), nullable=True))
    # Work waiting before the upgrade: its task is sent again by the first sweep (a claim is idempotent),
    # whatever the broker kept. An upload in its check is waiting again: no check survives the upgrade.
    for table in ('jobs', 'evaluations', 'datasets'):
        op.execute(f"UPDATE {table} SET queued_at = created_at")
    op.execute("UPDATE datasets SET ingest_heartbeat_at = NULL WHERE status = 'processing'")


def downgrade():
    with op.batch_alter_table('datasets') as batch_op:
        for column in ('sent_at', 'queued_at', 'retries', 'worker'):
            batch_op.drop_column(column)
    with op.batch_alter_table('evaluations') as batch_op:
        for column in ('sent_at', 'queued_at', 'retries', 'attempt'):
            batch_op.drop_column(column)
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.drop_column('sent_at')
        batch_op.drop_column('queued_at')
