"""Tessera plugin ``sample_channel``: a small third-party channel, written as a partner would.

It only imports the public plugin API from Tessera (``core.plugin_api``) and exercises every kind
of contribution: a channel with a secret config and a sandbox, a durable job type, a public route,
a dashboard panel, a segment condition type, and the per-tenant ``on_*`` hooks.
"""

from __future__ import annotations

import html
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from core.plugin_api import (
    Capabilities,
    Channel,
    ChannelContext,
    DeliveryResult,
    DeliveryStatus,
    JobType,
    OutboundMessage,
    PermanentDeliveryError,
    Preview,
    ProfileSnapshot,
    SegmentConditionType,
    TransientDeliveryError,
    UIPanel,
    hookimpl,
)

KEY = "sample_channel"
LIVE_URL = "https://api.sample-provider.example/v1"

# What the per-tenant hooks saw, in call order (tests read these).
PROFILE_CHANGES: list[tuple[str, str, list[str]]] = []
ENABLED_FOR: list[str] = []


class SampleConfig(BaseModel):
    """The provider account: an API key (a secret, encrypted at rest) and the sender name."""

    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr = Field(description="API key of the Sample provider account.")
    sender: str = Field(default="Tessera", max_length=40, description="Name shown as the sender.")


class SampleTemplate(BaseModel):
    """What a marketer writes: one line of text, with ``{first_name}`` style variables."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=500)


class SampleChannel(Channel):
    """Sends one text per recipient through the Sample provider's ``POST /messages``."""

    key = KEY
    label = "Sample channel"
    Config = SampleConfig
    Template = SampleTemplate
    capabilities = Capabilities(preview=True, rate_limit_per_second=10.0, address_identifier="email")

    def render_preview(self, ctx: ChannelContext, template: BaseModel, profile: ProfileSnapshot) -> Preview:
        assert isinstance(template, SampleTemplate)
        text = template.text.format_map(_Defaulting(profile.traits))
        return Preview(html=f"<p class='sample-message'>{html.escape(text)}</p>")

    def deliver(self, ctx: ChannelContext, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        if not isinstance(ctx.config, SampleConfig):
            raise PermanentDeliveryError(
                "The Sample channel is not configured.", reason_code="not_configured"
            )
        base = ctx.sandbox_url if ctx.sandbox else LIVE_URL
        headers = {"Authorization": f"Bearer {ctx.config.api_key.get_secret_value()}"}
        results = []
        with httpx.Client(base_url=base, headers=headers, timeout=10.0) as client:
            for message in batch:
                text = str(message.template.get("text", "")).format_map(_Defaulting(message.variables))
                body = {"to": message.address, "from": ctx.config.sender, "text": text}
                try:
                    answer = client.post(
                        "/messages", json=body, headers={"Idempotency-Key": message.idempotency_key}
                    )
                except httpx.TransportError as exc:
                    raise TransientDeliveryError(f"Sample provider unreachable: {exc}") from exc
                if answer.status_code == 429 or answer.status_code >= 500:
                    retry_after = float(answer.headers.get("retry-after", "0") or 0) or None
                    raise TransientDeliveryError(
                        f"Sample provider answered {answer.status_code}",
                        reason_code="provider_unavailable",
                        retry_after=retry_after,
                    )
                if answer.status_code >= 400:
                    results.append(
                        DeliveryResult(
                            delivery_id=message.delivery_id,
                            status=DeliveryStatus.failed,
                            reason_code="rejected",
                            detail=answer.text[:200],
                        )
                    )
                    continue
                results.append(
                    DeliveryResult(
                        delivery_id=message.delivery_id,
                        status=DeliveryStatus.sent,
                        provider_id=answer.json()["id"],
                    )
                )
        return results

    def sandbox_app(self) -> Any:
        return _sandbox()


class _Defaulting(dict):
    """``str.format_map`` helper: an unknown variable renders as empty text."""

    def __missing__(self, key: str) -> str:
        return ""


def _sandbox() -> FastAPI:
    """The fake Sample provider: same endpoint, same auth rule, same errors."""
    app = FastAPI()

    @app.post("/messages")
    async def send(request: Request) -> Any:
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return JSONResponse({"error": "missing API key"}, status_code=401)
        body = await request.json()
        if "@" not in str(body.get("to", "")):
            return JSONResponse({"error": "invalid recipient"}, status_code=400)
        return {"id": f"sample-{uuid.uuid4().hex[:12]}", "status": "queued"}

    return app


def touch(tenant: str, payload: dict[str, Any]) -> None:
    """Job ``sample_channel.touch``: mark the start, wait ``sleep`` seconds, then append a line.

    The line is the effect; a worker killed during the wait leaves only the ``.started`` marker.
    """
    path = Path(payload["path"])
    Path(f"{path}.started").write_text(f"{tenant}\n", encoding="utf-8")
    time.sleep(float(payload.get("sleep", 0)))
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"{tenant} touched\n")


router = APIRouter()


@router.get("/ping")
def ping(tenant: str) -> dict[str, str]:
    """A public endpoint, served at ``/x/{tenant}/sample_channel/ping`` for enabling tenants only."""
    return {"tenant": tenant}


def _dashboard_panel(tenant: str, context: dict[str, Any]) -> str:
    return f"<p data-plugin='sample_channel'>Sample channel is ready for {html.escape(tenant)}.</p>"


@hookimpl
def register_channels(register: Callable[[Channel], None]) -> None:
    """Register the Sample channel."""
    register(SampleChannel())


@hookimpl
def register_jobs(register: Callable[[JobType], None]) -> None:
    """Register ``sample_channel.touch``."""
    register(JobType(key="sample_channel.touch", handler=touch))


class OptedInParams(BaseModel):
    """Which Sample lists count: profiles whose ``sample_lists`` trait names one of them."""

    model_config = ConfigDict(extra="forbid")

    profile_ids: list[str] = Field(min_length=1, max_length=1000, description="Profiles on the Sample list.")


def _on_list_sql(params: BaseModel, profile_table: Any) -> Any:
    assert isinstance(params, OptedInParams)
    return profile_table.c.id.in_(params.profile_ids)


def _on_list(params: BaseModel, profile: ProfileSnapshot) -> bool:
    assert isinstance(params, OptedInParams)
    return profile.id in params.profile_ids


@hookimpl
def register_segment_conditions(register: Callable[[SegmentConditionType], None]) -> None:
    """Register "is on the Sample list" (the provider's own opt-in list, kept by profile id)."""
    register(SegmentConditionType(key="sample_channel.on_list", label="Is on the Sample list",
                                  Params=OptedInParams, to_sql=_on_list_sql, evaluate=_on_list))  # fmt: skip


@hookimpl
def register_routes() -> list[Any]:
    """Serve ``GET /ping`` under ``/x/{tenant}/sample_channel``."""
    return [router]


@hookimpl
def register_ui_panels(register: Callable[[UIPanel], None]) -> None:
    """Show a status card on the dashboard."""
    register(UIPanel(key="sample_channel.status", label="Sample channel", location="dashboard",
                     render=_dashboard_panel))  # fmt: skip


@hookimpl
def on_profile_changed(tenant: str, profile: ProfileSnapshot, changed: list[str]) -> None:
    """Remember the change (a real channel would enqueue a job to refresh what it sent)."""
    PROFILE_CHANGES.append((tenant, profile.id, list(changed)))


@hookimpl
def on_plugin_enabled(tenant: str) -> None:
    """Remember that a tenant enabled the plugin."""
    ENABLED_FOR.append(tenant)
