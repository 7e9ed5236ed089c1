"""fewer event indexes: pending events by a partial index, timelines by (profile, time)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("status = 'pending'")
DROPPED = ("user_id", "anonymous_id", "timestamp", "status", "profile_id")


def upgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        for column in DROPPED:
            batch_op.drop_index(f"ix_event_{column}")
        batch_op.create_index("ix_event_pending", ["id"], postgresql_where=PENDING, sqlite_where=PENDING)
        batch_op.create_index("ix_event_profile_timestamp", ["profile_id", "timestamp"])


def downgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index("ix_event_profile_timestamp")
        batch_op.drop_index("ix_event_pending")
        for column in DROPPED:
            batch_op.create_index(f"ix_event_{column}", [column])
