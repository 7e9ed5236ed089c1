"""The computed-traits API: the fitted lifetime-value models."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from core.db.engines import tenant_session
from core.tenancy.roles import Permission
from core.traits.service import fit_json, latest_fit
from web.auth import Principal, require

router = APIRouter(prefix="/api/v1/traits", tags=["traits"])
Reader = Annotated[Principal, Depends(require(Permission.read_data, api=True))]


@router.get("/models")
def models(principal: Reader) -> dict[str, Any]:
    """The latest fit: ``bgnbd`` {r, alpha, a, b, time_unit, as_of} and ``gamma_gamma`` {p, q, gamma}.

    ``status`` is ``fitted``, ``not_enough_history`` (``message`` says why; a model that could not
    be fitted is null) or ``never_fitted``.
    """
    with tenant_session(principal.tenant.database) as session:
        return fit_json(latest_fit(session))
