"""``python -m bench.markdown [--how] < TABLE``: the table a bench run printed, as markdown.

For the README: its figures are pasted from one ``make bench`` run, exactly as printed. The
columns are found from the header line (every cell of a column is padded to the same width);
``--how`` keeps the last column, which is dropped by default.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from bench.measure import HEADER


def convert(lines: Iterable[str], *, how: bool = False) -> str:
    """The printed table (its title lines, header, rule, rows and summary) as markdown."""
    text = [line.rstrip("\n") for line in lines]
    at = next(i for i, line in enumerate(text) if line.split()[:2] == list(HEADER[:2]))
    header = text[at]
    starts = [header.index(name) for name in HEADER]
    keep = len(HEADER) if how else len(HEADER) - 1
    out = [f"| {' | '.join(HEADER[:keep])} |", "|" + "---|" * keep]
    for line in text[at + 2 :]:
        if line.startswith("targets met:") or not line.strip():
            break
        cells = [
            line[start : starts[i + 1] if i + 1 < len(starts) else None].strip()
            for i, start in enumerate(starts)
        ]
        out.append(f"| {' | '.join(cells[:keep])} |")
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(convert(sys.stdin, how="--how" in sys.argv[1:]) + "\n")
