"""sessions: a per-user secret, a server-side record of each signed-in session, token expiry

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 16:00:00

"""
import secrets

from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


# On SQLite every change here is a plain ALTER TABLE: recreating `users` (batch mode) would drop it, and with
# foreign keys on that deletes every row that references it (tokens, sessions) by ON DELETE CASCADE.
def upgrade():
    op.add_column('users', sa.Column('session_secret', sa.String(length=64), nullable=False, server_default=''))
    users = sa.table('users', sa.column('id', sa.Integer()), sa.column('session_secret', sa.String()))
    connection = op.get_bind()
    for (user_id,) in connection.execute(sa.select(users.c.id)).all():
        connection.execute(users.update().where(users.c.id == user_id)
                           .values(session_secret=secrets.token_hex(32)))
    op.drop_column('users', 'session_version')
    op.create_table(
        'user_sessions',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_user_sessions_user_id', 'user_sessions', ['user_id'])
    op.add_column('api_tokens', sa.Column('expires_at', sa.DateTime(), nullable=True))


def downgrade():
    op.drop_column('api_tokens', 'expires_at')
    op.drop_index('ix_user_sessions_user_id', table_name='user_sessions')
    op.drop_table('user_sessions')
    op.add_column('users', sa.Column('session_version', sa.Integer(), nullable=False, server_default='1'))
    op.drop_column('users', 'session_secret')
