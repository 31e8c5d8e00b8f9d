"""Where a mapping's pull window lies, on the remote's own clock.

Remote modified times come from the remote's clock, so a window placed on this host's clock
misses edits when the two disagree (a host 25 minutes fast reads a window that has not happened
yet on the remote, every run). Each remote's clock offset is learned from the ``Date`` header of
its answers (kept between runs, checked again on the first answer of every listing), and the
window and watermark are placed on the remote's clock. An offset too large to trust stops the
mapping with a message naming the clock, instead of a run that silently reads nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from reconciler.errors import MappingError

# The offset comes from ``Date`` headers, which carry whole seconds (RFC 9110 §5.6.7, IMF-fixdate),
# centred (``RemoteClock``): it is known to half a second either way.
DATE_UNCERTAINTY = timedelta(milliseconds=500)
MIN_TOLERANCE = timedelta(seconds=5)
MAX_TOLERANCE = timedelta(seconds=60)


class WindowMoved(Exception):
    """The remote's clock, as its first answer shows it, is not where the window assumed."""


@dataclass(frozen=True)
class Window:
    """A pull window on the remote's clock.

    Attributes:
        since: the start (None: a full sweep reads every record).
        until: the end, which becomes the watermark once the window is read completely.
        offset: the remote's clock minus this host's, as assumed when placing the window.
        tolerance: how far the offset may turn out to be off before the window is placed anew;
            half the overlap, so that the next window still covers whatever this one missed.
    """

    since: datetime | None
    until: datetime
    offset: timedelta
    tolerance: timedelta

    def holds(self, offset: timedelta | None) -> bool:
        """Whether an offset seen now still agrees with the one the window was placed with."""
        return offset is None or abs(offset - self.offset) <= self.tolerance


def truncate_ms(moment: datetime) -> datetime:
    """The moment without its sub-millisecond part (both remotes stamp milliseconds)."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def place(
    started_at: datetime,
    offset: timedelta,
    *,
    lookback: timedelta,
    watermark: datetime | None,
    overlap: timedelta,
    full: bool,
) -> Window:
    """The window of a run that started at ``started_at`` (this host's clock).

    It ends at the start of the run on the remote's clock, at the earliest that clock can have
    read then (the offset less its uncertainty): never past it, so ``until`` does not run ahead
    of ``started_at`` when the two clocks agree, and what the half second leaves out the next
    window's overlap reads. It starts ``lookback`` earlier, or earlier still when the last
    complete window ended before that (catch-up after missed runs).
    """
    until = truncate_ms(started_at + offset - DATE_UNCERTAINTY)
    tolerance = min(MAX_TOLERANCE, max(MIN_TOLERANCE, overlap / 2))
    if full:
        return Window(None, until, offset, tolerance)
    since = until - lookback
    if watermark is not None:
        since = min(since, watermark - overlap)
    return Window(truncate_ms(since), until, offset, tolerance)


def describe(offset: timedelta, remote: str) -> str:
    """``this host is 25 min ahead of Airtable`` (the offset is the remote's clock minus this
    host's)."""
    seconds = offset.total_seconds()
    if abs(seconds) < 1:
        return f"this host's clock agrees with {remote}'s"
    side = "behind" if seconds > 0 else "ahead of"
    return f"this host is {_span(abs(seconds))} {side} {remote}"


def _span(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def check_offset(offset: timedelta, remote: str, *, limit: timedelta) -> None:
    """Refuse a clock offset beyond ``limit``: windows placed across it cannot be trusted."""
    if abs(offset) > limit:
        raise MappingError(
            f"clock: {describe(offset, remote)} (from its Date header), more than the "
            f"{limit.total_seconds() / 60:.0f} min RECONCILER_MAX_CLOCK_OFFSET_MINUTES allows: "
            "set this host's clock right (NTP) and run again"
        )
