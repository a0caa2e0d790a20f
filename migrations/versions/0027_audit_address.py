"""audit address: each audit entry keeps the client address the request came from

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06 06:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('audit_entries') as batch_op:
        batch_op.add_column(sa.Column('address', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('audit_entries') as batch_op:
        batch_op.drop_column('address')
