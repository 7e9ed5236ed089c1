"""Run the benchmarks and rewrite their sections of docs/benchmarks.md.

scripts/bench [--runs N] [--only startup,ingest,processing,resolution,audiences,orchestration,loyalty,passes,wallet_google,
              wallet_operation,fcm_sends,whatsapp_sends]
              [--quick] [--backends ...]

``--quick`` is a smoke check of the harness (small sizes, one run; about a minute or two) and
writes nothing unless ``--write`` is given. Progress goes to stderr, the sections to stdout.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import traceback
from collections.abc import Callable

from bench import (
    audiences,
    channel_sends,
    ingest,
    loyalty,
    orchestration,
    passes,
    processing,
    resolution,
    startup,
    wallet_google,
    wallet_operation,
)
from bench.config import Config, make_config
from bench.installation import BACKENDS
from bench.report import block, progress, write_section

SECTIONS: dict[str, Callable[[Config], list[str]]] = {
    startup.NAME: startup.run,
    ingest.NAME: ingest.run,
    processing.NAME: processing.run,
    resolution.NAME: resolution.run,
    audiences.NAME: audiences.run,
    orchestration.NAME: orchestration.run,
    loyalty.NAME: loyalty.run,
    passes.NAME: passes.run,
    wallet_google.NAME: wallet_google.run,
    wallet_operation.NAME: wallet_operation.run,
    channel_sends.FCM_NAME: channel_sends.run_fcm,
    channel_sends.WHATSAPP_NAME: channel_sends.run_whatsapp,
}

SIZES = [  # option, Config field, type, help; the default is the field's
    ("--runs", "runs", int, "runs per figure of startup, ingest and processing"),
    ("--duration", "duration_s", float, "ingest: measured seconds"),
    ("--warmup", "warmup_s", float, "ingest: warm-up seconds"),
    ("--batch-connections", "batch_connections", int, "ingest: connections for /v1/batch"),
    ("--track-connections", "track_connections", int, "ingest: connections for /v1/track"),
    ("--processing-events", "processing_events", int, "processing: backlog size"),
    ("--resolution-events", "resolution_events", int, "resolution: events"),
    ("--resolution-people", "resolution_people", int, "resolution: people"),
    ("--resolution-runs", "resolution_runs", int, "resolution: runs per backend"),
    ("--resolution-timeout", "resolution_timeout_s", float, "resolution: give up after this many seconds"),
    (
        "--audience-profiles",
        "audience_profiles",
        int,
        "audiences (PostgreSQL only): profiles of the data set",
    ),
    ("--audience-events", "audience_events", int, "audiences: events of the data set"),
    ("--audience-runs", "audience_runs", int, "audiences: refits"),
    ("--audience-count-runs", "audience_count_runs", int, "audiences: timed segment counts"),
    ("--audience-realtime-profiles", "audience_realtime_profiles", int, "audiences: real-time samples"),
    ("--orchestration-recipients", "orchestration_recipients", int, "orchestration: campaign recipients"),
    ("--orchestration-runs", "orchestration_runs", int, "orchestration: campaigns measured"),
    ("--orchestration-threads", "orchestration_threads", int, "orchestration: threads per worker process"),
    (
        "--orchestration-prefetch",
        "orchestration_prefetch",
        int,
        "orchestration: dramatiq queue prefetch per worker process (0: dramatiq's default)",
    ),
    (
        "--orchestration-journey-after",
        "orchestration_journey_after",
        str,
        "orchestration: the step after the timers' wait, update_trait or exit",
    ),
    ("--orchestration-latency-events", "orchestration_latency_events", int, "orchestration: latency events"),
    (
        "--orchestration-event-rate",
        "orchestration_event_rate",
        float,
        "orchestration: latency events per second",
    ),
    ("--loyalty-events", "loyalty_events", int, "loyalty (PostgreSQL + Redis only): purchase events"),
    ("--loyalty-profiles", "loyalty_profiles", int, "loyalty: profiles the purchases are spread over"),
    ("--loyalty-runs", "loyalty_runs", int, "loyalty: timed runs (the loyalty tables emptied between them)"),
    ("--loyalty-threads", "loyalty_threads", int, "loyalty: threads per worker process"),
    (
        "--loyalty-prefetch",
        "loyalty_prefetch",
        int,
        "loyalty: dramatiq queue prefetch per worker process (0: dramatiq's default)",
    ),
    ("--loyalty-timeout", "loyalty_timeout_s", float, "loyalty: give up a run after this many seconds"),
    ("--pass-latency-customers", "pass_latency_customers", int, "passes: customers with a pass on a device"),
    ("--pass-latency-purchases", "pass_latency_purchases", int, "passes: purchases timed to the APNs push"),
    ("--pass-latency-interval", "pass_latency_interval_s", float, "passes: seconds between two purchases"),
    (
        "--operation-profiles",
        "operation_profiles",
        int,
        "wallet_operation (PostgreSQL): profiles of the operation",
    ),
    ("--operation-runs", "operation_runs", int, "wallet_operation: runs, a fresh installation each"),
    (
        "--channel-recipients",
        "channel_recipients",
        int,
        "fcm_sends, whatsapp_sends (PostgreSQL + Redis only): campaign recipients",
    ),
    ("--channel-runs", "channel_runs", int, "fcm_sends, whatsapp_sends: campaigns measured"),
    ("--channel-threads", "channel_threads", int, "fcm_sends, whatsapp_sends: threads per worker process"),
    ("--whatsapp-limit", "whatsapp_limit", int, "whatsapp_sends: the number's messages per second"),
]


def _names(value: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown)}; choose from {', '.join(allowed)}"
        )
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only",
        type=lambda v: _names(v, tuple(SECTIONS), "benchmark"),
        metavar="NAMES",
        default=tuple(SECTIONS),
        help="comma-separated benchmarks to run (default: all)",
    )
    parser.add_argument(
        "--backends",
        type=lambda v: _names(v, BACKENDS, "backend"),
        metavar="NAMES",
        default=None,
        help=f"comma-separated backends (default: {','.join(BACKENDS)})",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes and one run: a smoke check")
    parser.add_argument(
        "--rebuild",
        action="store_true",
        default=None,
        help="audiences: build the data set again even if a complete one of the same sizes is kept",
    )
    parser.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="update docs/benchmarks.md (default: yes, but not with --quick)",
    )
    for option, name, kind, text in SIZES:
        metavar = "S" if kind is float else "N"
        default = getattr(Config, name)
        default = f"{default:g}" if isinstance(default, float) else default
        parser.add_argument(option, dest=name, type=kind, metavar=metavar, help=f"{text} ({default})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks; print each section and (unless told not to) write it. The exit code."""
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: servers stopped, temporary databases dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    config = make_config(**vars(args))
    write = not args.quick if args.write is None else args.write
    failed = []
    for name in args.only:
        progress(f"--- {name}")
        started = time.perf_counter()
        try:
            lines = SECTIONS[name](config)
        except Exception:  # one broken benchmark must not cost the others' figures
            traceback.print_exc()
            failed.append(name)
            continue
        progress(f"--- {name} took {time.perf_counter() - started:.0f} s")
        print(block(name, lines), flush=True)
        if write:
            write_section(name, lines)
    if failed:
        progress(f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
