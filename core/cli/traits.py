"""``tessera traits fit --tenant SLUG [--as-of DATE]``: refit the lifetime-value models now."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from core.cli.output import fail, handle_errors, print_json, print_panel
from core.cli.tenant import JsonOption, ensure_control_database

app = typer.Typer(
    help="Computed traits: RFM, churn risk, purchase propensity, lifetime value.", no_args_is_help=True
)


def _as_of(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--as-of {value!r} is not a date (YYYY-MM-DD) or date-time (ISO 8601).")
    if len(value) == 10:  # a date: the whole day is observed
        moment = moment.replace(hour=23, minute=59, second=59)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command("fit")
@handle_errors
def fit(
    tenant: Annotated[str, typer.Option("--tenant", help="Slug of the tenant.")],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="End of the observation period (YYYY-MM-DD), at which every buyer is scored; default now.",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Fit the purchase (BG/NBD) and spend (Gamma-Gamma) models, then rescore every buyer."""
    from core.db.engines import control_session
    from core.tenancy.tenants import get_tenant, provision_database
    from core.traits.jobs import refit
    from core.traits.service import fit_json

    moment = _as_of(as_of)
    ensure_control_database()
    with control_session() as control:
        provision_database(get_tenant(control, tenant))
    fitted, buyers = refit(tenant, moment)
    shown = fit_json(fitted)
    if json_output:
        print_json({**shown, "buyers": buyers})
        return
    bgnbd, spend = shown["bgnbd"] or {}, shown["gamma_gamma"] or {}
    print_panel(
        [
            ("status", shown["status"]),
            ("observed until", fitted.as_of.isoformat()),
            ("buyers", buyers),
            ("repeat buyers", fitted.repeat_buyers),
            (
                "BG/NBD r, alpha, a, b",
                ", ".join(f"{bgnbd[k]:.4g}" for k in ("r", "alpha", "a", "b")) if bgnbd else "-",
            ),
            (
                "Gamma-Gamma p, q, gamma",
                ", ".join(f"{spend[k]:.4g}" for k in ("p", "q", "gamma")) if spend else "-",
            ),
            ("time unit", fitted.time_unit),
        ],
        title=f"Lifetime-value models of {tenant}",
        note=fitted.message or None,
    )
