"""The dramatiq broker: Redis when ``TESSERA_REDIS_URL`` is set, in-process otherwise.

The broker must be set before any actor is declared, so :mod:`core.queue.actors` imports this
module and calls :func:`setup_broker` first.
"""

from __future__ import annotations

import sys

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from core.settings import get_settings

_broker: dramatiq.Broker | None = None


def setup_broker() -> dramatiq.Broker:
    """Create the process's broker from the settings (once) and make it dramatiq's global broker."""
    global _broker
    if _broker is None:
        settings = get_settings()
        if settings.uses_redis:
            _broker = RedisBroker(url=settings.redis_url, namespace="tessera")
        else:
            _broker = StubBroker()
            _broker.emit_after("process_boot")
        dramatiq.set_broker(_broker)
        _rebind_actors(_broker)
    return _broker


def _rebind_actors(broker: dramatiq.Broker) -> None:
    # Actors bind to the broker current when declared; after a reset (tests), move them over.
    actors = sys.modules.get("core.queue.actors")
    for name in ("run_job", "run_spread_job"):
        actor = getattr(actors, name, None)
        if actor is not None:  # None while the actors module is still being imported
            actor.broker = broker
            broker.declare_actor(actor)


def reset_broker() -> None:
    """Forget the broker, so the next :func:`setup_broker` reads the settings again (tests)."""
    global _broker
    if _broker is not None:
        _broker.close()
    _broker = None


def broker_state() -> tuple[bool, str]:
    """(healthy, description) of the broker, for ``/healthz``."""
    broker = setup_broker()
    if isinstance(broker, RedisBroker):
        try:
            broker.client.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
            return False, f"redis unreachable: {exc}"
        return True, "redis"
    return True, "in-process"
