"""Run every benchmark and rewrite the results table in docs/benchmarks.md.

scripts/bench [--runs N]
"""

from __future__ import annotations

import argparse
import platform
import re
from datetime import UTC, datetime

import psutil

from bench.startup import ROOT, run_backend, summarize

DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- startup:begin -->", "<!-- startup:end -->"


def table(rows: list[dict[str, object]], runs: int) -> str:
    """The Markdown block that replaces the one between the markers."""
    cores, memory = psutil.cpu_count(), psutil.virtual_memory().total / 2**30
    lines = [
        BEGIN,
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, {cores} cores, "
        f"{memory:.0f} GiB, Python {platform.python_version()}; median of {runs} runs.",
        "",
        "| backend | start to healthy /healthz (s) | idle memory, process tree (MiB) | start ratio | memory ratio |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['backend']} | {row['startup_s']:.2f} | {row['idle_rss_mib']:.0f} | "
            f"{row['startup_ratio']:.2f} | {row['rss_ratio']:.2f} |"
        )
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    """Measure both backends and update docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results = {name: run_backend(name, args.runs) for name in ("embedded", "postgres+redis")}
    block = table(summarize(results), args.runs)
    print(block)
    text = DOC.read_text()
    DOC.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), block, text, flags=re.DOTALL))


if __name__ == "__main__":
    main()
