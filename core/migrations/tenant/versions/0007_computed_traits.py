"""computed traits: model fits (BG/NBD, Gamma-Gamma) and each buyer's RFM, churn risk, propensity, value

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trait_fit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fitted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("as_of", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("time_unit", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("message", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("repeat_buyers", sa.Integer(), nullable=False),
        sa.Column("bgnbd", sa.JSON(), nullable=True),
        sa.Column("gamma_gamma", sa.JSON(), nullable=True),
        sa.Column("rfm_cuts", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("trait_fit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trait_fit_fitted_at"), ["fitted_at"], unique=False)
    op.create_table(
        "computed_traits",
        sa.Column("profile_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("revenue", sa.Float(), nullable=False),
        sa.Column("first_order_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("last_order_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("days_since_last_order", sa.Float(), nullable=True),
        sa.Column("rfm_recency", sa.Integer(), nullable=True),
        sa.Column("rfm_frequency", sa.Integer(), nullable=True),
        sa.Column("rfm_monetary", sa.Integer(), nullable=True),
        sa.Column("rfm_segment", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("churn_risk", sa.Float(), nullable=True),
        sa.Column("expected_purchases_30", sa.Float(), nullable=True),
        sa.Column("expected_purchases_90", sa.Float(), nullable=True),
        sa.Column("predicted_clv", sa.Float(), nullable=True),
        sa.Column("computed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("profile_id"),
    )
    with op.batch_alter_table("computed_traits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_computed_traits_revenue"), ["revenue"], unique=False)
        batch_op.create_index(batch_op.f("ix_computed_traits_rfm_segment"), ["rfm_segment"], unique=False)


def downgrade() -> None:
    op.drop_table("computed_traits")
    op.drop_table("trait_fit")
