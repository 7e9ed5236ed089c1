"""The module dramatiq worker processes import: broker first, then the actors."""

from core.queue.broker import setup_broker

setup_broker()

from core.queue import actors  # noqa: E402,F401
