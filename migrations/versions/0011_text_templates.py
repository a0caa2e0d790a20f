"""datasets, jobs, evaluations: the templates of their stored texts, to show them in each reader's language

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 11:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

TABLES = ('datasets', 'jobs', 'evaluations')


def upgrade():
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('text_templates', sa.JSON(), nullable=True))


def downgrade():
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('text_templates')
