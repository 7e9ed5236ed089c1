"""events: every accepted (Segment-compatible) event, stored before processing

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 06:02:39.328934
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENT_TYPE = sa.Enum('identify', 'track', 'page', 'screen', 'group', 'alias', name='eventtype')
EVENT_STATUS = sa.Enum('pending', 'processed', 'failed', name='eventstatus')


def upgrade() -> None:
    op.create_table('event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('type', EVENT_TYPE, nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('anonymous_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('previous_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('group_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('event', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('properties', sa.JSON(), nullable=False),
    sa.Column('traits', sa.JSON(), nullable=False),
    sa.Column('context', sa.JSON(), nullable=False),
    sa.Column('integrations', sa.JSON(), nullable=False),
    sa.Column('timestamp', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('received_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('status', EVENT_STATUS, nullable=False),
    sa.Column('profile_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_id')
    )
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_anonymous_id'), ['anonymous_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_event_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_event_timestamp'), ['timestamp'], unique=False)
        batch_op.create_index(batch_op.f('ix_event_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_user_id'))
        batch_op.drop_index(batch_op.f('ix_event_timestamp'))
        batch_op.drop_index(batch_op.f('ix_event_status'))
        batch_op.drop_index(batch_op.f('ix_event_anonymous_id'))

    op.drop_table('event')
    # PostgreSQL keeps the enum types after the table is gone (no-op on SQLite).
    EVENT_STATUS.drop(op.get_bind(), checkfirst=True)
    EVENT_TYPE.drop(op.get_bind(), checkfirst=True)
