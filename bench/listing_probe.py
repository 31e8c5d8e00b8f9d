"""``python -P bench/listing_probe.py ARGS…``: ``reconcile ARGS`` with the Airtable remote's
reading kept apart from the local work and timed.

The remote's ``prepare`` (its schema read) is timed, and its ``list_changed`` reads the whole
window before handing over the first page, timed too: that is the run's listing time, the pages
read and typed as the tool reads them. The rest of the run's duration is its local time: what
the run does beyond reading, measured without any overlap with the reading, however the engine
interleaves the two. The last line on stderr is ``listing seconds: S``.

The bench's ``throughput`` scenario runs it through its launcher in place of ``reconcile``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

MARK = "listing seconds: "


def main(argv: list[str]) -> None:
    """Run ``reconcile`` in this process with the Airtable remote's reading timed apart."""
    from reconciler.remotes.airtable import AirtableRemote

    spent = [0.0]
    prepare, list_changed = AirtableRemote.prepare, AirtableRemote.list_changed

    def timed_prepare(self: AirtableRemote, cached: Any | None) -> None:
        started = time.perf_counter()
        try:
            prepare(self, cached)
        finally:
            spent[0] += time.perf_counter() - started

    def read_first(
        self: AirtableRemote, since: datetime | None, until: datetime | None = None
    ) -> Iterator[Any]:
        started = time.perf_counter()
        try:
            pages = list(list_changed(self, since, until))
        finally:
            spent[0] += time.perf_counter() - started
        yield from pages

    AirtableRemote.prepare = timed_prepare  # type: ignore[method-assign]
    AirtableRemote.list_changed = read_first  # type: ignore[method-assign]
    from reconciler.cli import main as reconcile

    try:
        reconcile(argv)
    finally:
        sys.stderr.write(f"\n{MARK}{spent[0]:.6f}\n")


def seconds(stderr: str) -> float:
    """The time a probed run spent reading, from its stderr."""
    return float(stderr.rsplit(MARK, 1)[1].split()[0])


if __name__ == "__main__":
    main(sys.argv[1:])
