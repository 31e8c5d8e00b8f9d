"""``python bench/modules_probe.py OUT ARGS…``: ``reconcile ARGS`` in this process, then the
names of every module it had loaded, in the order they were loaded, written to OUT as JSON.

The bench's ``noop`` scenario runs it in place of ``reconcile`` to learn which modules a run
with nothing to do needs, so that importing them can be timed beside such a run.
"""

from __future__ import annotations

import atexit
import json
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    """Run ``reconcile`` with ``argv[1:]``; at exit, write the loaded modules to ``argv[0]``."""
    out = Path(argv[0])
    atexit.register(lambda: out.write_text(json.dumps(list(sys.modules))))
    from reconciler.cli import main as reconcile

    reconcile(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
