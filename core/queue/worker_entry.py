"""The module dramatiq worker processes import: broker first, then the actors and the spread lane."""

import gc
import logging

from core.queue.broker import setup_broker
from core.settings import get_settings

# dramatiq's command line sets its worker processes' logging to INFO (or DEBUG with -v): the
# operator's level is TESSERA_LOG_LEVEL, as in every other Tessera process.
logging.getLogger().setLevel(get_settings().logging_level)

broker = setup_broker()

from core.plugins import get_host  # noqa: E402
from core.queue import actors  # noqa: E402,F401
from core.queue.spread import SpreadLane  # noqa: E402

broker.add_middleware(SpreadLane())
# The plugins are imported now rather than by the first job, which would wait seconds for them.
get_host()
# What is loaded by now (modules, plugins, schemas: about 200,000 objects) lives as long as the
# process: frozen, it is left out of the cyclic collector's full passes. Those stopped every
# thread of the process for about 200 ms every 20 s during a campaign (45-70 ms once frozen):
# paced sends missed their slots, and journeys' real-time triggers waited.
gc.freeze()
