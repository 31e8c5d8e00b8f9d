"""The bench's command line: pick a scale and scenarios, run them in one lab, print the table."""

from __future__ import annotations

import argparse
import compileall
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.lab import Lab
from bench.measure import Row, render
from bench.scale import FULL, QUICK, Scale, say
from bench.scenarios import GROUPS, SCENARIOS


def collect(scale: Scale, only: Sequence[str] = (), admin_url: str | None = None) -> list[Row]:
    """Run the chosen scenarios (all by default) in one lab and return their rows in order.

    Args:
        scale: how big each scenario is.
        only: scenario names to run (empty: all).
        admin_url: an existing Postgres server to use instead of starting one.
    """
    names = list(only) or list(SCENARIOS)
    rows: list[Row] = []
    with Lab(admin_url) as lab:
        for name in names:
            rows += SCENARIOS[name](lab, scale)
    return sorted(rows, key=lambda r: GROUPS.index(r.group))


def compiled() -> None:
    """Compile the tool's modules to bytecode first, as an installed package has them: an
    editable install under ``PYTHONDONTWRITEBYTECODE`` would otherwise compile them from source
    in every process the bench starts, while the libraries it is compared with were compiled
    when pip installed them."""
    root = Path(__file__).resolve().parent.parent / "reconciler"
    compileall.compile_dir(root, quiet=1, workers=1)


def title(scale: Scale) -> str:
    """The table's heading: which run it is, its scale and conditions."""
    c = scale.conditions
    return (
        f"reconcile bench ({scale.name}), {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"commit {commit()}, {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}\n"
        f"real limits: latency {c.latency * 1000:.0f} ms, Airtable {c.airtable_rate} req/s per "
        f"base (lockout {c.airtable_lockout:g} s), Twenty {c.twenty_per_minute:g} req/min "
        f"(bucket of {c.twenty_burst:g}); start, throughput, memory and change log without "
        "latency or limits; Postgres defaults, runs over TCP 127.0.0.1 unless the row says; the "
        "tool's modules compiled to bytecode first, as installed"
    )


def commit() -> str:
    """The checked-out commit, ``+changes`` when the tree differs from it."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


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
        "--postgres", metavar="URL", help="use this Postgres server instead of starting one"
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
    heading = title(scale)
    compiled()
    rows = collect(scale, args.only or (), args.postgres)
    say(f"done in {time.perf_counter() - started:.0f} s")
    sys.stdout.write(render(rows, heading) + "\n")
    return 0
