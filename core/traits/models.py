"""Tables of computed traits (tenant database): the model fits, and each buyer's computed traits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field

from core.db.base import TenantModel, utcnow


class TraitFit(TenantModel, table=True):
    """One fit of the purchase (BG/NBD) and spend (Gamma-Gamma) models on the tenant's buyers.

    ``status`` is ``fitted`` when both models fitted, else ``not_enough_history`` with the reason
    in ``message`` (a model that did fit keeps its parameters). The batch computation that uses a
    fit keeps its RFM cut points on it.
    """

    __tablename__ = "trait_fit"

    id: int | None = Field(default=None, primary_key=True)
    fitted_at: datetime = Field(default_factory=utcnow, index=True)
    as_of: datetime = Field(description="End of the observation period.")
    time_unit: str = Field(default="days", max_length=10)
    status: str = Field(max_length=30)
    message: str = Field(default="", max_length=1000)
    customers: int = 0
    repeat_buyers: int = 0
    bgnbd: dict[str, float] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    gamma_gamma: dict[str, float] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    rfm_cuts: dict[str, list[float]] | None = Field(
        default=None,
        sa_column=Column(JSON, nullable=True),
        description="The RFM score cut points of the last batch computation (to score one buyer at once).",
    )


class ComputedTraits(TenantModel, table=True):
    """What Tessera computed for one buyer (profiles without a purchase have no row).

    RFM scores are 1-5 within the tenant (5 best); predictions need a fitted model and are null
    without one. ``days_since_last_order`` is counted at ``computed_at``.
    """

    __tablename__ = "computed_traits"

    profile_id: str = Field(primary_key=True, max_length=40)
    orders: int = 0
    revenue: float = Field(default=0.0, index=True)
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    days_since_last_order: float | None = None
    rfm_recency: int | None = None
    rfm_frequency: int | None = None
    rfm_monetary: int | None = None
    rfm_segment: str | None = Field(default=None, max_length=40, index=True)
    churn_risk: float | None = Field(default=None, description="1 - P(alive) under BG/NBD.")
    expected_purchases_30: float | None = None
    expected_purchases_90: float | None = None
    predicted_clv: float | None = Field(default=None, description="Expected revenue over the next 365 days.")
    computed_at: datetime = Field(default_factory=utcnow)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
