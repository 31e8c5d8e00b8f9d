"""The server's counts against the records a Twenty listing read: where the oldest-first
reader followed the server's cursor through a millisecond, the ranges it passed records over in
(see :class:`Tally`)."""

from __future__ import annotations

import bisect
from datetime import datetime

from reconciler.model import parse_datetime
from reconciler.remotes.twenty_pages import FORWARD, TICK, Ask, Page, Raw, stamp


class Tally:
    """The server's counts against the records read, where the oldest-first reader followed the
    server's cursor through a millisecond (``twenty_ends.OldestFirst``): on a server comparing the
    cursor at the millisecond, a record of that millisecond stored after the cursor's row with
    a lower ``id`` is on no page, and only the counts show it.

    Each oldest-first page asked from a bound ``s`` (``updatedAt[gte]``, less the ``k`` records
    it names) tells how many records the filter matches from ``s`` on: its ``totalCount`` plus
    ``k`` (``common-find-many-query-runner.service.ts``: the count is taken on the filter alone,
    before the cursor's condition is added). When the reader moves its bound from ``s1`` to
    ``s2``, the records from ``s1`` to ``s2`` are the difference of the two counts; fewer of
    them read means some were passed over, and that range is read again by ``id`` (exact,
    whatever the times). At the end, every record from the last bound on must have been read.
    A range the reader paged through by bounds alone is exact and not checked: a record deleted
    meanwhile would only cost a range read for nothing. A record created while the listing runs
    may hide one passed over (it adds to the later count): the counts are a check, not a proof.
    """

    def __init__(self) -> None:
        self.gaps: list[tuple[datetime | None, datetime | None]] = []  # ranges to read again
        self._bound: datetime | None = None  # the reader's bound the count is of (None: all)
        self._count: int | None = None  # records from ``_bound`` on, by the server's count
        self._cursor = False  # whether the reader followed the cursor since ``_bound``
        # Times of the records read from ``_bound`` on: the oldest-first reader's in ascending
        # order, the newest-first reader's as they come (descending), so that those before the
        # next bound are found from one end without scanning the rest.
        self._oldest: list[datetime] = []
        self._newest: list[datetime] = []

    def add(self, records: list[Raw], *, newest_first: bool = False) -> None:
        """Note records read for the first time (each is counted once): by the newest-first
        reader, or else by the oldest-first one or in a range read again."""
        for raw in records:
            moment = stamp(raw)
            if moment is None:
                continue
            if self._bound is not None and moment < self._bound:
                continue  # before the bound: its range is already checked
            if newest_first:
                self._newest.append(moment)
            else:
                bisect.insort(self._oldest, moment)

    def measure(self, ask: Ask, page: Page) -> None:
        """Take the server's count from an oldest-first page read as ``ask`` asked."""
        if ask.order_by != FORWARD or ask.before is not None or page.total is None:
            return  # a millisecond read by id: exact, and not a count from a bound
        bound = parse_datetime(ask.since) if ask.since else None
        count = page.total + len(ask.skip)
        if self._count is not None and bound is not None and bound != self._bound:
            passed = self._passed(bound)
            if self._cursor and passed < self._count - count:
                self.gaps.append((self._bound, bound))
            self._cursor = False
        self._bound, self._count = bound, count
        self._cursor = self._cursor or ask.cursor is not None

    def _passed(self, bound: datetime) -> int:
        """How many records read lie before ``bound``; they are dropped."""
        older = bisect.bisect_left(self._oldest, bound)
        del self._oldest[:older]
        newer = 0
        while self._newest and self._newest[-1] < bound:
            self._newest.pop()
            newer += 1
        return older + newer

    def last_gap(self, last: datetime | None) -> tuple[datetime | None, datetime | None] | None:
        """At the listing's end (``last``: the oldest-first reader's last record): the range
        from the last bound on, when fewer records of it were read than the server counted."""
        read = len(self._oldest) + len(self._newest)
        if not self._cursor or self._count is None or read >= self._count:
            return None
        return self._bound, (last + TICK if last is not None else None)
