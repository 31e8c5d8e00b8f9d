"""How big each scenario is, and the bench's progress line."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from bench.lab import REALISTIC, Conditions


@dataclass(frozen=True)
class Scale:
    """How big each scenario is, how often a side-by-side pair is repeated, and the conditions
    of the realistic scenarios.

    Pairs measured side by side (a command and its reference) run interleaved, A B A B, for
    ``*_rounds`` rounds; the table shows their medians.
    """

    name: str
    startup_rounds: int = 9
    noop: int = 10_000
    noop_rounds: int = 5
    pull: int = 10_000
    push: int = 1_000
    bases: int = 1_000
    bases_count: int = 4
    bases_rounds: int = 3
    throughput: int = 50_000
    throughput_rounds: int = 2
    memory: tuple[int, int] = (10_000, 100_000)
    changelog: int = 50_000
    changelog_rounds: int = 3
    conditions: Conditions = REALISTIC


FULL = Scale("full")
QUICK = Scale(
    "quick",
    startup_rounds=3,
    noop=1_000,
    noop_rounds=3,
    pull=1_000,
    push=200,
    bases=200,
    bases_rounds=1,
    throughput=5_000,
    throughput_rounds=1,
    memory=(2_000, 20_000),
    changelog=5_000,
    changelog_rounds=2,
)

_STARTED = time.perf_counter()


def say(message: str) -> None:
    """Progress on stderr (the table goes to stdout), with the seconds since the bench started."""
    print(f"{time.perf_counter() - _STARTED:6.1f} s  {message}", file=sys.stderr, flush=True)
