"""Jobs say when the sweeper sends their message again (``resend_at``), so that a job waiting
behind a long queue is not sent again every half minute. Existing rows have none: a pending one is
sent again once, at the first sweep.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 08:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resend_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_job_resend_at'), ['resend_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_resend_at'))
        batch_op.drop_column('resend_at')
