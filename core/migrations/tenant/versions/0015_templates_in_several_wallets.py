"""Pass templates issued in several wallets: other_channels, and one pass per template, profile and wallet.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 16:46:44.851901
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('pass_template', schema=None) as batch_op:
        batch_op.add_column(sa.Column('other_channels', sa.JSON(), server_default='[]', nullable=False))

    with op.batch_alter_table('wallet_pass', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_wallet_pass_template_profile'), type_='unique')
        batch_op.create_unique_constraint('uq_wallet_pass_template_profile_channel', ['template_id', 'profile_id', 'channel'])



def downgrade() -> None:
    with op.batch_alter_table('wallet_pass', schema=None) as batch_op:
        batch_op.drop_constraint('uq_wallet_pass_template_profile_channel', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_wallet_pass_template_profile'), ['template_id', 'profile_id'])

    with op.batch_alter_table('pass_template', schema=None) as batch_op:
        batch_op.drop_column('other_channels')

