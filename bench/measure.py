"""Figures, their targets, and the one table the bench prints.

Every figure is a :class:`Row`: what was measured, what it is compared with (a theoretical
minimum, a rate-limit floor or a target), the ratio of the two, and whether the target is met.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from reconciler.emulators.base import EmulatorServer

# The targets. Request counts and wall times are compared with what the rate limits make
# physically necessary; the rest are the targets.
REQUEST_RATIO_MAX = 1.05  # requests made / theoretical minimum
FLOOR_RATIO_MAX = 1.20  # wall time / (requests made / allowed rate)
BASELINE_RATIO_MIN = 20.0  # naive push requests / ours
THROUGHPUT_MIN = 5_000.0  # records applied per second on a large pull
RSS_MAX_MB = 250.0  # peak RSS of the large pull
RSS_GROWTH_MAX = 1.3  # large pull peak RSS / small pull peak RSS
NOOP_MAX_S = 1.5  # wall time of a run with nothing to do, process start included
CHANGELOG_SHARE_MAX = 0.10  # time inside the change log / the run's duration, large pull

OK, MISS, NA = "\N{CHECK MARK}", "\N{BALLOT X}", "\N{EN DASH}"
TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass(frozen=True)
class Row:
    """One line of the table.

    Attributes:
        remote: ``airtable``, ``twenty`` or ``local``.
        figure: what was measured.
        measured: the measured value, formatted.
        reference: what it is compared with, formatted (``min 10``, ``floor 20.0 s``, ``< 250``).
        ratio: measured over reference (or the other way round where bigger is better).
        ok: whether the target is met; None when the figure has no target.
        note: how the figure came about (request breakdown, split of the time).
    """

    remote: str
    figure: str
    measured: str
    reference: str
    ratio: str
    ok: bool | None
    note: str = ""

    @property
    def mark(self) -> str:
        """A check mark, a cross, or a dash when the figure has no target."""
        return NA if self.ok is None else OK if self.ok else MISS


def minimum_requests(records: int, per_request: int) -> int:
    """The fewest requests that can move ``records`` records at ``per_request`` a request."""
    return max(1, math.ceil(records / per_request))


def requests_row(
    remote: str, what: str, requests: int, records: int, per_request: int, note: str = ""
) -> Row:
    """Requests per 1,000 records next to the theoretical minimum."""
    if records <= 0:
        return Row(remote, f"requests per 1,000 {what}", "no records", "", NA, False, note)
    measured = requests * 1000 / records
    minimum = minimum_requests(records, per_request) * 1000 / records
    ratio = measured / minimum
    return Row(
        remote,
        f"requests per 1,000 {what}",
        _num(measured),
        f"min {_num(minimum)}",
        times(ratio),
        ratio <= REQUEST_RATIO_MAX,
        note,
    )


def floor_row(
    remote: str, what: str, wall: float, requests: int, per_second: float, note: str = ""
) -> Row:
    """Wall time of a run next to the rate-limit floor (requests / allowed rate)."""
    figure = f"wall time, {what} (s)"
    if per_second <= 0:
        return Row(remote, figure, f"{wall:.1f}", "no limit", NA, None, note)
    floor = requests / per_second
    ratio = wall / floor if floor else math.inf
    return Row(
        remote,
        figure,
        f"{wall:.1f}",
        f"floor {floor:.1f}",
        times(ratio),
        ratio <= FLOOR_RATIO_MAX,
        note,
    )


def throttled_row(remote: str, answers: int, note: str = "") -> Row:
    """429 answers received (target: none)."""
    return Row(remote, "429 answers received", str(answers), "0", NA, answers == 0, note)


def baseline_row(remote: str, baseline: int, ours: int, note: str = "") -> Row:
    """The naive push's requests, and how many times ours that is."""
    ratio = baseline / ours if ours else math.inf
    return Row(
        remote,
        "naive push requests (GET+PATCH each)",
        str(baseline),
        f"≥ {BASELINE_RATIO_MIN:g}{TIMES} ours ({ours})",
        times(ratio, 1),
        ratio >= BASELINE_RATIO_MIN,
        note,
    )


def at_least_row(remote: str, figure: str, measured: float, target: float, note: str = "") -> Row:
    """A figure where bigger is better; the ratio is measured / target."""
    return Row(
        remote,
        figure,
        _num(measured),
        f"≥ {_num(target)}",
        times(measured / target),
        measured >= target,
        note,
    )


def at_most_row(
    remote: str, figure: str, measured: float, target: float | None, note: str = ""
) -> Row:
    """A figure where smaller is better; the ratio is measured / target (no target: info)."""
    if target is None:
        return Row(remote, figure, _num(measured), "", NA, None, note)
    return Row(
        remote,
        figure,
        _num(measured),
        f"< {_num(target)}",
        times(measured / target),
        measured < target,
        note,
    )


def request_kinds(em: EmulatorServer) -> Counter[str]:
    """The emulator's logged requests by kind: window listings (``list``), reads by id, writes."""
    kinds: Counter[str] = Counter()
    for request in em.requests:
        query = " ".join(v for values in request.query.values() for v in values)
        body = str(request.body) if request.path.endswith("/listRecords") else ""
        by_id = any(mark in query + body for mark in ("RECORD_ID()", "id[in]"))
        if request.method == "GET" or request.path.endswith("/listRecords"):
            kinds["read by id" if by_id else "list"] += 1
        else:
            kinds[request.method] += 1
    return kinds


def breakdown(em: EmulatorServer) -> str:
    """The emulator's logged requests by kind, e.g. ``100 PATCH + 10 read by id``."""
    kinds = request_kinds(em)
    return " + ".join(f"{n} {kind}" for kind, n in kinds.most_common()) or "no requests"


def render(rows: list[Row], title: str) -> str:
    """The rows as one aligned plain-text table."""
    header = ("remote", "figure", "measured", "vs", "ratio", "ok", "how")
    cells = [header] + [
        (r.remote, r.figure, r.measured, r.reference, r.ratio, r.mark, r.note) for r in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header) - 1)]
    lines = []
    for n, line in enumerate(cells):
        parts = [
            cell.rjust(width) if i in (2, 4) and n else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=False))
        ]
        lines.append("  ".join([*parts, line[-1]]).rstrip())
        if n == 0:
            lines.append("-" * max(len(lines[0]), sum(widths) + 2 * len(widths)))
    met = sum(r.ok is True for r in rows)
    missed = sum(r.ok is False for r in rows)
    return "\n".join([title, *lines, f"targets met: {met}, missed: {missed}"])


def times(ratio: float, digits: int = 2) -> str:
    """A ratio followed by a multiplication sign, e.g. ``1.05`` and the sign."""
    return f"{ratio:.{digits}f}{TIMES}"


def _num(value: float) -> str:
    """A number with thousands separators and at most one decimal (none when whole)."""
    if float(value).is_integer() or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.1f}"
