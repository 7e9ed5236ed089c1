"""A channel plugin's ``deliver`` alone, no database: ``python -m bench.channel_sendsjobs client ...``.

``--threads`` threads of this process each deliver ``--batches`` batches of 200 messages built
from ``--template`` (JSON, the channel's template fields) to addresses made from ``--address``
(a format string of ``n``, a number unique in the run), with the channel's config read from the
JSON file ``--config`` (live mode). Prints one JSON object: messages sent per second, the
median milliseconds per batch, the results by status and reason.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

BATCH = 200


def client(tenant: str, channel_key: str, config: dict[str, Any], template: dict[str, Any], address: str,
           threads: int, batches: int) -> dict[str, Any]:  # fmt: skip
    """``threads`` threads each deliver ``batches`` batches of 200 through the channel's ``deliver``."""
    import itertools
    import uuid

    from core.plugin_api import ChannelContext, DeliveryStatus, OutboundMessage, ProfileSnapshot
    from core.plugins import get_host

    channel = get_host().channels[channel_key].item
    ctx = ChannelContext(tenant=tenant, config=channel.Config.model_validate(config), sandbox=False,
                         sandbox_url="", public_url="http://127.0.0.1:9")  # fmt: skip
    run, numbers = uuid.uuid4().hex[:8], itertools.count()
    kind = channel.capabilities.address_identifier or "id"

    def batch() -> list[OutboundMessage]:
        messages = []
        for _ in range(BATCH):
            n = next(numbers)
            to = address.format(n=n)
            messages.append(OutboundMessage(delivery_id=str(n), idempotency_key=f"client:{run}:{n}",
                                            profile=ProfileSnapshot(id=f"p{n}", identifiers={kind: [to]}),
                                            address=to, template=template))  # fmt: skip
        return messages

    outcomes: Counter[str] = Counter()
    first = channel.deliver(ctx, batch())  # opens the connections, fetches a token: not timed
    outcomes.update(f"warm-up {r.status} {r.reason_code or ''}".strip() for r in first)

    def work(_: int) -> tuple[list[float], Counter[str]]:
        seconds, seen = [], Counter[str]()
        for _ in range(batches):
            messages = batch()
            started = time.perf_counter()
            results = channel.deliver(ctx, messages)
            seconds.append(time.perf_counter() - started)
            seen.update(f"{r.status} {r.reason_code or ''}".strip() for r in results)
        return seconds, seen

    started, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        done = list(pool.map(work, range(threads)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    per_batch = [s for seconds, _ in done for s in seconds]
    for _, seen in done:
        outcomes.update(seen)
    sent = outcomes.get(str(DeliveryStatus.sent), 0)
    return {"threads": threads, "batches": len(per_batch), "sent": sent, "seconds": wall, "cpu_s": cpu,
            "per_second": sent / wall, "cpu_ms_per_message": cpu * 1000 / max(1, len(per_batch) * BATCH),
            "median_batch_ms": statistics.median(per_batch) * 1000, "outcomes": dict(outcomes)}  # fmt: skip


def main() -> None:
    """Parse the options, run the job, print the JSON result."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("job", choices=("client",))
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--channel", required=True)
    parser.add_argument("--config", required=True, help="a JSON file with the channel's config")
    parser.add_argument("--template", required=True, help="the channel's template fields, as JSON")
    parser.add_argument("--address", required=True, help="a format string of n, e.g. 'c{n:09d}'")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, default=10)
    args = parser.parse_args()
    from core.plugins import get_host

    get_host()  # loads the plugins, as a worker has
    with open(args.config) as file:
        config = json.load(file)
    result = client(args.tenant, args.channel, config, json.loads(args.template), args.address, args.threads,
                    args.batches)  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
