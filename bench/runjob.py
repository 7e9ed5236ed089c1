"""Running the processing job in a fresh process: ``python -m bench.runjob --tenant SLUG``.

Imports Tessera and loads the plugins first (not timed), then calls
:func:`core.profiles.jobs.process_events`, which folds every pending event of the tenant into
profiles, and prints one JSON object: the job's wall time, and this process's peak resident
memory (``ru_maxrss``) before and after it.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from core.plugins import get_host
from core.profiles.jobs import process_events


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    """Run the job once and print its wall time and the peak memory."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenant", required=True)
    args = parser.parse_args()
    get_host()  # loads the plugins: not part of the job's time
    before = _peak_rss_mib()
    started = time.perf_counter()
    process_events(args.tenant, {})
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_rss_mib": _peak_rss_mib(), "rss_before_mib": before}))


if __name__ == "__main__":
    main()
