"""The module dramatiq worker processes import: broker first, then the actors and the spread lane."""

from core.queue.broker import setup_broker

broker = setup_broker()

from core.plugins import get_host  # noqa: E402
from core.queue import actors  # noqa: E402,F401
from core.queue.spread import SpreadLane  # noqa: E402

broker.add_middleware(SpreadLane())
# The plugins are imported now rather than by the first job, which would wait seconds for them.
get_host()
