"""The FastAPI application factory."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from core import __version__
from core.plugin_api import NO_TELEMETRY
from core.queue.broker import setup_broker
from core.settings import get_settings
from web.errors import install_error_handlers
from web.guard import check_routes_guarded
from web.routes import (
    api,
    auth,
    campaigns,
    campaigns_api,
    extensions,
    health,
    imports,
    ingest,
    journeys,
    journeys_api,
    links,
    loyalty,
    loyalty_api,
    loyalty_challenges,
    loyalty_engagement_api,
    loyalty_members,
    loyalty_offers,
    loyalty_rewards,
    loyalty_rewards_api,
    operations,
    pages,
    pass_links,
    passes_api,
    profiles,
    profiles_api,
    reports,
    segments,
    segments_api,
    sending_policy,
    settings,
    traits,
    traits_api,
    wallet,
    wallet_editor,
    wallet_passes,
)
from web.templating import build_templates


def create_app() -> FastAPI:
    """Tessera's web app: pages, JSON API, health, sandboxes, webhooks and plugin routers."""
    config = get_settings()
    setup_broker()
    app = FastAPI(title="Tessera", version=__version__, docs_url="/docs", redoc_url=None,
                  telemetry=None if config.opentelemetry else NO_TELEMETRY)  # fmt: skip
    app.state.templates = build_templates()
    app.add_middleware(
        SessionMiddleware, secret_key=config.resolved_secret_key(), session_cookie="tessera_session",
        max_age=config.session_max_age_seconds, same_site="lax", https_only=config.secure_cookies,
    )  # fmt: skip
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    for module in (
        health,
        auth,
        api,
        profiles_api,
        traits_api,
        segments_api,
        campaigns_api,
        journeys_api,
        loyalty_api,
        loyalty_rewards_api,
        loyalty_engagement_api,
        passes_api,
        ingest,
        extensions,
        settings,
        profiles,
        imports,
        traits,
        segments,
        campaigns,
        journeys,
        sending_policy,
        loyalty,
        loyalty_members,
        loyalty_rewards,
        loyalty_challenges,
        loyalty_offers,
        links,
        pass_links,
        wallet,
        wallet_editor,
        wallet_passes,
        operations,
        reports,
        pages,
    ):
        app.include_router(module.router)
    extensions.mount_plugin_routers(app)
    install_error_handlers(app)
    check_routes_guarded(app)
    return app
