"""The bench's command line: pick a scale and scenarios, run them in one lab, print the table."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Sequence

from bench.lab import Lab
from bench.measure import Row, render
from bench.scenarios import FULL, QUICK, SCENARIOS, Scale, say


def collect(scale: Scale, only: Sequence[str] = (), admin_url: str | None = None) -> list[Row]:
    """Run the chosen scenarios (all by default) in one lab and return their rows in order.

    Args:
        scale: how big each scenario is.
        only: scenario names to run (empty: all).
        admin_url: an existing Postgres server to use instead of starting an embedded one.
    """
    names = list(only) or list(SCENARIOS)
    rows: list[Row] = []
    with Lab(admin_url) as lab:
        for name in names:
            rows += SCENARIOS[name](lab, scale)
    return sorted(rows, key=lambda r: ("airtable", "twenty", "local").index(r.remote))


def title(scale: Scale) -> str:
    """The table's heading: scale and conditions."""
    c = scale.conditions
    return (
        f"reconcile bench ({scale.name}): latency {c.latency * 1000:.0f} ms, Airtable "
        f"{c.airtable_rate} req/s (lockout {c.airtable_lockout:g} s), Twenty "
        f"{c.twenty_per_minute:g} req/min (burst {c.twenty_burst:g}); throughput, memory and "
        f"no-op runs without latency or limits; {os.cpu_count()} CPU(s)"
    )


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run the real `reconcile` command against the emulators and print one table.",
    )
    parser.add_argument("--quick", action="store_true", help="smaller scales, for iteration")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(SCENARIOS),
        metavar="NAME",
        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--profile",
        choices=["pull", "push", "noop"],
        help="instead of the table: cProfile of one run done in-process",
    )
    parser.add_argument(
        "--records", type=int, metavar="N", help="with --profile: records to use instead"
    )
    parser.add_argument(
        "--postgres", metavar="URL", help="use this Postgres server instead of an embedded one"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench; returns the process exit code (0 even when targets are missed)."""
    args = parse(argv)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # from pgserver's imports
    scale = QUICK if args.quick else FULL
    started = time.perf_counter()
    if args.profile:
        from bench.profile import profile

        print(profile(args.profile, scale, args.postgres, args.records))
        return 0
    rows = collect(scale, args.only or (), args.postgres)
    say(f"done in {time.perf_counter() - started:.0f} s")
    sys.stdout.write(render(rows, title(scale)) + "\n")
    return 0
