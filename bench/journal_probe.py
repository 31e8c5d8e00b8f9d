"""``python -m bench.journal_probe [--without-log] ARGS…``: ``reconcile ARGS`` with the time it
spends inside the change log measured, or, with ``--without-log``, with the change log replaced
by the null journal (the same run, recording nothing).

The bench's ``changelog`` scenario runs it through its launcher in place of ``reconcile``. The
last line it prints on stderr is ``change log seconds: S``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from reconciler.engine.context import NullJournal
from reconciler.store.changelog import ChangeLog

WITHOUT = "--without-log"
MARK = "change log seconds: "
METHODS = ("pulled", "pushed", "skipped", "failed")


def main(argv: list[str]) -> None:
    """Run ``reconcile`` in this process with every change-log method timed."""
    without = argv[:1] == [WITHOUT]
    spent = [0.0]

    def timed(inner: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(*args)
            finally:
                spent[0] += time.perf_counter() - started

        return wrapper

    source = NullJournal if without else ChangeLog
    for name in METHODS:
        setattr(ChangeLog, name, timed(getattr(source, name)))
    from reconciler.cli import main as reconcile

    try:
        reconcile(argv[1:] if without else argv)
    finally:
        sys.stderr.write(f"\n{MARK}{spent[0]:.6f}\n")


def seconds(stderr: str) -> float:
    """The time a probed run spent inside the change log, from its stderr."""
    return float(stderr.rsplit(MARK, 1)[1].split()[0])


if __name__ == "__main__":
    main(sys.argv[1:])
