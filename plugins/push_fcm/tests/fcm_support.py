"""Helpers of the FCM plugin tests: the fake FCM served on a port, contexts and messages."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import httpx
import uvicorn
from tessera_push_fcm.channel import FcmConfig
from tessera_push_fcm.sandbox import create_sandbox_app
from tessera_push_fcm.testkeys import PROJECT_ID, test_service_account

from core.plugin_api import ChannelContext, OutboundMessage, ProfileSnapshot


class FakeServer:
    """The sandbox app on 127.0.0.1 in a background thread; ``url`` is its base address."""

    def __init__(self) -> None:
        # No trusted accounts: the channel must introduce its own, as with a sandbox in another process.
        self.app = create_sandbox_app(trusted_keys={})
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake FCM did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def post(self, path: str, body: dict[str, Any] | None = None) -> None:
        """Call a ``/_sandbox/...`` control endpoint."""
        httpx.post(f"{self.url}/_sandbox/{path}", json=body).raise_for_status()

    def state(self) -> dict[str, Any]:
        """The fake's recorded state."""
        result: dict[str, Any] = httpx.get(f"{self.url}/_sandbox/state").json()
        return result


def config(**extra: Any) -> FcmConfig:
    """A config with the test project and test service account."""
    key = json.dumps(test_service_account())
    return FcmConfig.model_validate({"project_id": PROJECT_ID, "service_account_json": key, **extra})


def context(fake: FakeServer, **extra: Any) -> ChannelContext:
    """A sandboxed channel context pointing at ``fake``."""
    return ChannelContext(
        tenant="t", config=config(**extra), sandbox=True, sandbox_url=fake.url, public_url="http://x"
    )


def outbound(
    delivery_id: str,
    token: str,
    *,
    devices: list[str] | None = None,
    open_url: str | None = None,
    **template: Any,
) -> OutboundMessage:
    """One message as the core hands it to ``deliver`` (template already rendered).

    ``devices`` are the profile's live registration tokens, as the core lists them (``token`` first).
    """
    fields = {"title": "Hello", "body": "Your order shipped", **template}
    identifiers = {"fcm_token": devices} if devices is not None else {}
    return OutboundMessage(
        delivery_id=delivery_id,
        idempotency_key=f"idem-{delivery_id}",
        profile=ProfileSnapshot(id="p1", identifiers=identifiers),
        address=token,
        template=fields,
        open_url=open_url,
    )
