"""Figures, their targets, and the one table the bench prints.

Every figure is a :class:`Row`: what was measured, what it is compared with (something measured
side by side in the same bench run, a minimum or floor computed from what the run did, or a
fixed target), the ratio of the two, the target that ratio is judged by, and whether it is met.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.emulators.base import EmulatorServer

# The targets, each on a ratio. Request counts and wall times are compared with what the rate
# limits make physically necessary; start-up and apply times with what they are measured beside.
REQUEST_RATIO_MAX = 1.05  # requests made / the fewest that can do the work
FLOOR_RATIO_MAX = 1.05  # wall time, process start included / the rate-limit floor
HELP_RATIO_MAX = 3.0  # `reconcile --help` / `python -c "import typer, rich"`
NOOP_RATIO_MAX = 1.3  # a run with nothing to do / importing the modules such a run loads
BASES_RATIO_MAX = 1.25  # 4 bases x N pushed / one base x N pushed
LOCAL_RATIO_MAX = 1.0  # local time of a no-latency pull / its listing time
TCP_APPLY_MIN = 2_000.0  # records applied per second over TCP, synchronous_commit on
THROUGHPUT_MIN = 5_000.0  # records applied per second through the unix socket
BASELINE_RATIO_MIN = 20.0  # naive push requests / ours
RSS_MAX_MB = 250.0  # peak RSS of the large pull
RSS_GROWTH_MAX = 1.3  # large pull peak RSS / small pull peak RSS
CHANGELOG_SHARE_MAX = 0.10  # time inside the change log / the run's duration, large pull

OK, MISS, NA = "\N{CHECK MARK}", "\N{BALLOT X}", "\N{EN DASH}"
TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass(frozen=True)
class Row:
    """One line of the table.

    Attributes:
        group: ``start``, ``airtable``, ``twenty``, ``bases`` or ``local``.
        figure: what was measured.
        measured: the measured value, formatted.
        reference: what it is compared with, formatted (``floor 20.1 s``, ``min 10``).
        ratio: measured over reference (None when there is nothing to divide).
        target: the target on the ratio (``≤ 1.05`` times), or on the value without a ratio.
        ok: whether the target is met; None when the figure has no target.
        note: how the figure and its reference came about.
    """

    group: str
    figure: str
    measured: str
    reference: str
    ratio: float | None
    target: str
    ok: bool | None
    note: str = ""

    @property
    def mark(self) -> str:
        """A check mark, a cross, or a dash when the figure has no target."""
        return NA if self.ok is None else OK if self.ok else MISS


def at_most(
    group: str,
    figure: str,
    measured: str,
    reference: str,
    ratio: float,
    limit: float | None,
    note: str = "",
) -> Row:
    """A row whose ratio must stay at or under ``limit`` (None: no target, information)."""
    if limit is None:
        return Row(group, figure, measured, reference, ratio, "", None, note)
    return Row(
        group, figure, measured, reference, ratio, f"≤ {limit:g}{TIMES}", ratio <= limit, note
    )


def at_least(
    group: str,
    figure: str,
    measured: str,
    reference: str,
    ratio: float,
    limit: float,
    note: str = "",
) -> Row:
    """A row whose ratio must reach ``limit``."""
    return Row(
        group, figure, measured, reference, ratio, f"≥ {limit:g}{TIMES}", ratio >= limit, note
    )


# -- request counts ------------------------------------------------------------------------------


def minimum_requests(records: int, per_request: int) -> int:
    """The fewest requests that can move ``records`` records at ``per_request`` a request."""
    return max(1, math.ceil(records / per_request))


def requests_row(
    group: str,
    what: str,
    requests: int,
    records: int,
    minimum: int,
    how_minimum: str,
    note: str = "",
) -> Row:
    """Requests per 1,000 records next to the fewest that can do the work."""
    figure = f"requests per 1,000 {what}"
    if records <= 0:
        return Row(group, figure, "no records", "", None, "", False, note)
    measured = requests * 1000 / records
    least = minimum * 1000 / records
    return at_most(
        group,
        figure,
        num(measured),
        f"min {num(least)} ({how_minimum})",
        measured / least,
        REQUEST_RATIO_MAX,
        note,
    )


# -- the rate-limit floor ------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A remote's rate limit, as the remote counts requests.

    Attributes:
        limit: requests in any ``period`` (a sliding window), or the bucket's capacity.
        period: the window (seconds), or the seconds the bucket takes to refill ``limit``.
        bucket: a token bucket (Twenty's emulator) instead of a sliding window (Airtable's).
    """

    limit: int
    period: float
    bucket: bool = False

    def describe(self) -> str:
        """The rule in words."""
        if self.bucket:
            return f"a bucket of {self.limit} refilled at {self.limit} a {self.period:g} s"
        return f"≤ {self.limit} in any {self.period:g} s"

    def schedule(self, answers: Sequence[float]) -> float:
        """When the last of these requests is answered at the earliest: each request starts
        once the previous one is answered and the rule lets it, and takes its answer time."""
        starts: list[float] = []
        tokens, refilled = float(self.limit), 0.0
        answered = 0.0
        for answer in answers:
            start = answered
            if self.bucket:
                rate = self.limit / self.period
                tokens = min(float(self.limit), tokens + (start - refilled) * rate)
                if tokens < 1.0:
                    start += (1.0 - tokens) / rate
                    tokens = 1.0
                tokens, refilled = tokens - 1.0, start
            elif len(starts) >= self.limit:
                start = max(start, starts[-self.limit] + self.period)
            starts.append(start)
            answered = start + answer
        return answered

    def alone(self, requests: int) -> float:
        """When the last of ``requests`` may start under the rule alone (answers taking no
        time)."""
        return self.schedule([0.0] * requests)


def floor_row(
    group: str,
    what: str,
    wall: float,
    answers: Sequence[float],
    rule: Rule | None,
    note: str = "",
) -> Row:
    """Wall time of a run (process start included) next to its rate-limit floor: the
    earliest its requests can all be answered under the remote's rule, each sent when the
    previous one is answered and taking the time its answer took on the server (latency and
    the emulator's work)."""
    figure = f"wall time, {what} (s)"
    if rule is None:
        return Row(group, figure, f"{wall:.1f}", "no limit", None, "", None, note)
    floor = rule.schedule(answers)
    how = (
        f"floor: {len(answers)} requests at {rule.describe()}, each after the previous answer, "
        f"answers as served (Σ {sum(answers):.1f} s); the rule alone "
        f"{rule.alone(len(answers)):.1f} s"
    )
    return at_most(
        group,
        figure,
        f"{wall:.1f}",
        f"floor {floor:.1f} s",
        wall / floor if floor else math.inf,
        FLOOR_RATIO_MAX,
        f"{how}; {note}" if note else how,
    )


def throttled_row(group: str, answers: int, note: str = "") -> Row:
    """429 answers received (target: none)."""
    return Row(group, "429 answers received", str(answers), "", None, "= 0", answers == 0, note)


def baseline_row(group: str, baseline: int, ours: int, note: str = "") -> Row:
    """The naive push's requests, and how many times ours that is."""
    ratio = baseline / ours if ours else math.inf
    return at_least(
        group,
        "naive push requests (GET+PATCH each)",
        str(baseline),
        f"ours {ours}",
        ratio,
        BASELINE_RATIO_MIN,
        note,
    )


# -- the emulators' request logs -----------------------------------------------------------------


def request_kinds(em: EmulatorServer) -> Counter[str]:
    """The emulator's logged requests by kind: schema reads (``meta``), window listings
    (``list``), reads by id, writes by method."""
    kinds: Counter[str] = Counter()
    for request in em.requests:
        query = " ".join(v for values in request.query.values() for v in values)
        body = str(request.body) if request.path.endswith("/listRecords") else ""
        # A Twenty listing's later pages name the records of a millisecond already read
        # (``not(id[in]:[…])``): they are still the listing.
        text = (query + body).replace("not(id[in]", "")
        by_id = any(mark in text for mark in ("RECORD_ID()", "id[in]"))
        if "/meta/" in request.path or request.path.startswith("/rest/metadata"):
            kinds["meta"] += 1
        elif request.method == "GET" or request.path.endswith("/listRecords"):
            kinds["read by id" if by_id else "list"] += 1
        else:
            kinds[request.method] += 1
    return kinds


def breakdown(em: EmulatorServer) -> str:
    """The emulator's logged requests by kind, e.g. ``100 PATCH + 10 read by id``."""
    kinds = request_kinds(em)
    return " + ".join(f"{n} {kind}" for kind, n in kinds.most_common()) or "no requests"


# -- the table -----------------------------------------------------------------------------------

HEADER = ("group", "figure", "measured", "vs", "ratio", "target", "ok", "how")


def cells(row: Row) -> tuple[str, ...]:
    """A row's cells, in the order of :data:`HEADER`."""
    ratio = "" if row.ratio is None else times(row.ratio)
    return (
        row.group,
        row.figure,
        row.measured,
        row.reference,
        ratio,
        row.target,
        row.mark,
        row.note,
    )


def render(rows: list[Row], title: str) -> str:
    """The rows as one aligned plain-text table."""
    lines_cells = [HEADER, *(cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines_cells) for i in range(len(HEADER) - 1)]
    lines = []
    for n, line in enumerate(lines_cells):
        parts = [
            cell.rjust(width) if i in (2, 4) and n else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=False))
        ]
        lines.append("  ".join([*parts, line[-1]]).rstrip())
        if n == 0:
            lines.append("-" * max(len(lines[0]), sum(widths) + 2 * len(widths)))
    return "\n".join([title, *lines, summary(rows)])


def summary(rows: list[Row]) -> str:
    """The last line: how many targets were met and missed, naming the missed ones."""
    met = sum(r.ok is True for r in rows)
    missed = [r for r in rows if r.ok is False]
    names = "; ".join(f"{r.group}: {r.figure}" for r in missed)
    return f"targets met: {met}, missed: {len(missed)}" + (f" ({names})" if names else "")


def times(ratio: float, digits: int = 2) -> str:
    """A ratio followed by a multiplication sign, e.g. ``1.05`` and the sign."""
    if math.isinf(ratio):
        return f"∞{TIMES}"
    return f"{ratio:.{digits}f}{TIMES}"


def num(value: float) -> str:
    """A number with thousands separators and at most one decimal (none when whole)."""
    if float(value).is_integer() or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.1f}"
