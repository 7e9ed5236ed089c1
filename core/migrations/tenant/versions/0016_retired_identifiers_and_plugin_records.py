"""Retired identifiers (addresses a provider called gone) and plugins' own records.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 19:35:46.364553
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('plugin_record',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plugin', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('value', sa.JSON(), nullable=True),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('plugin', 'key', name='uq_plugin_record_key')
    )
    with op.batch_alter_table('identity', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retired_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('identity', schema=None) as batch_op:
        batch_op.drop_column('retired_at')

    op.drop_table('plugin_record')
