"""Helpers shared by tests: signing in through the real forms, bearer headers, running due jobs,
connecting the recording test channel to a fake provider."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

PASSWORD = "correct-horse-1"


def bearer(token: str) -> dict[str, str]:
    """Headers for an API call with a token."""
    return {"Authorization": f"Bearer {token}"}


def login(client: TestClient, email: str, password: str = PASSWORD) -> None:
    """Sign a test client in through the real login form (with its CSRF token)."""
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, "the login page carries a CSRF token"
    answer = client.post("/login", data={"email": email, "password": password, "csrf_token": token.group(1)})
    assert answer.status_code == 200, answer.text


def csrf_of(client: TestClient, path: str) -> str:
    """The CSRF token a signed-in page carries."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert match
    return match.group(1)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(env: dict[str, str], log: Path) -> Iterator[str]:
    """Run `tessera serve` on a free port with ``env`` until healthy; yields its base URL.

    The server's public URL is that base URL (unless ``env`` says otherwise), so the links it makes
    and the sandboxes its plugins call lead back to it. Output goes to ``log`` (a file, not a pipe
    nobody reads, which could fill and block).
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tessera = str(Path(sys.executable).with_name("tessera"))
    with open(log, "wb") as output:
        process = subprocess.Popen([tessera, "serve", "--port", str(port)],
                                   env={**os.environ, "TESSERA_PUBLIC_URL": base, **env},
                                   stdout=output, stderr=output)  # fmt: skip
    try:
        for _ in range(300):
            if process.poll() is not None:
                pytest.fail(f"tessera serve exited: {log.read_text()}")
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("tessera serve did not become healthy")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


def run_due_jobs(tenant: str, database: str, rounds: int = 50) -> int:
    """Run the tenant's due pending jobs as a worker would, again until none is left; how many ran."""
    from sqlmodel import Session, col, select

    from core.db.base import utcnow
    from core.db.engines import tenant_engine
    from core.queue.actors import execute_job
    from core.queue.models import Job, JobStatus

    ran = 0
    for _ in range(rounds):
        with Session(tenant_engine(database)) as session:
            due = session.exec(
                select(Job.id).where(Job.status == JobStatus.pending, col(Job.due_at) <= utcnow())
            ).all()
        if not due:
            break
        for job_id in due:
            assert job_id is not None
            execute_job(tenant, job_id)
            ran += 1
    return ran


RECORDING_CHANNEL = "recording_channel"


def use_recording_channel(tenant: str, provider_url: str, **config: str) -> None:
    """Enable the recording test channel for ``tenant`` (live mode), sending to the fake provider."""
    from core.db.engines import control_session
    from core.plugins import get_host
    from core.tenancy.plugin_settings import save_channel_config, set_enabled
    from core.tenancy.tenants import get_tenant
    from tests.fakes.provider import DEFAULT_API_KEY

    with control_session() as control:
        row = get_tenant(control, tenant)
        set_enabled(control, row, get_host(), RECORDING_CHANNEL, True, sandbox=False)
        values = {"endpoint": provider_url, "api_key": DEFAULT_API_KEY, **config}
        save_channel_config(control, row, get_host(), RECORDING_CHANNEL, values)
        control.commit()


def use_whatsapp_with_synced_templates(tenant: str) -> None:
    """Enable WhatsApp (sandbox) for ``tenant``, as if its last template sync had found an approved
    ``order_update`` and a paused ``spring_sale``."""
    from core.db.engines import control_session
    from core.plugin_api import plugin_data
    from core.plugins import get_host
    from core.tenancy.plugin_settings import set_enabled
    from core.tenancy.tenants import get_tenant

    with control_session() as control:
        set_enabled(control, get_tenant(control, tenant), get_host(), "whatsapp", True, sandbox=True)
        control.commit()
    body = [{"type": "BODY", "text": "Hi {{1}}, order {{2}} has shipped."}]
    plugin_data(tenant, "whatsapp").put("templates", {"templates": [
        {"name": "order_update", "language": "en_US", "category": "UTILITY", "status": "APPROVED", "components": body},
        {"name": "spring_sale", "language": "en_US", "category": "MARKETING", "status": "PAUSED", "components": []},
    ]})  # fmt: skip


WHATSAPP_OFFERED = (
    '<option value="order_update">en_US · UTILITY · Hi {{1}}, order {{2}} has shipped.</option>'
)


def launch_to_consenting(session: Any, tenant: str, channel: str, name: str, content: dict[str, Any]) -> int:
    """Launch campaign ``name`` (``content``: a MessageTemplate) to everyone consenting on ``channel``,
    as a marketer confirms it; its id. The sends are then due jobs (:func:`run_due_jobs`)."""
    from core.campaigns import service as campaigns
    from core.db.engines import control_session
    from core.segments.service import create_segment, tenant_scope
    from core.tenancy.tenants import get_tenant

    with control_session() as control:
        row = get_tenant(control, tenant)
        scope = tenant_scope(control, row)
    segment = create_segment(session, f"{name} audience", {"type": "consent", "channel": channel}, "test", {})
    session.commit()
    assert segment.id is not None
    data = campaigns.CampaignIn(name=name, segment_id=segment.id, channel=channel, content=content)
    campaign = campaigns.create_campaign(session, row, scope, data, "marketer")
    campaigns.launch(session, row, scope, campaign, "marketer")
    session.commit()
    assert campaign.id is not None
    return int(campaign.id)


def make_due(session: Any) -> None:
    """Let time pass for the core's timers: every waiting delivery and job is due now."""
    import sqlalchemy as sa

    from core.db.base import utcnow
    from core.delivery.models import Delivery
    from core.queue.models import Job

    session.connection().execute(sa.update(Delivery.__table__).values(due_at=utcnow()))
    session.connection().execute(sa.update(Job.__table__).values(due_at=utcnow()))
    session.commit()
