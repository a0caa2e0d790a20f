"""who asked: jobs and promotions record the person or token that asked; an append-only audit log of
deletions, role changes and token changes

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 16:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.add_column(sa.Column('created_by', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('promote_requested_by', sa.String(length=200), nullable=True))
    op.create_table(
        'audit_entries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=False),
        sa.Column('action', sa.String(length=40), nullable=False),
        sa.Column('subject_type', sa.String(length=40), nullable=False),
        sa.Column('subject_id', sa.String(length=64), nullable=True),
        sa.Column('details', sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_audit_entries_at', 'audit_entries', ['at'])


def downgrade():
    op.drop_index('ix_audit_entries_at', table_name='audit_entries')
    op.drop_table('audit_entries')
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.drop_column('promote_requested_by')
        batch_op.drop_column('created_by')
