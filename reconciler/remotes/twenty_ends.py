"""A Twenty listing read by bounds on ``updatedAt``, from both of its ends at once.

Each page of a listing starts where the page before ended (Twenty's keyset cursor, or here a
bound taken from its last record), so the pages of one reader follow each other, one answer's
time each. The same window read newest first forms a second reader that can run beside the
first: each has read every record up to its last one in its own order, so once the two have
met, every record has been read by one of them.

Neither reader trusts the server's cursor across a millisecond. A cursor carries its row's
``updatedAt`` as the answers show it, to the millisecond, while the column (``timestamptz``,
default ``now()``) keeps microseconds, and servers have compared the two in two ways:

- older ones compare the stored time: going forward, ``updatedAt > t`` reads the records of
  that millisecond again, and a millisecond holding a whole page is answered again and again;
  going backward, ``updatedAt < t`` skips the records of that millisecond older than the row;
- newer ones (twentyhq/twenty#20520) compare at the millisecond (a ``DATE_TIME`` ``gt`` starts
  at the next one, ``eq`` takes the whole one) but still order by the stored time: past the
  cursor's row, its millisecond's records go by ``id``, and those stored later than the row
  with a lower ``id`` are on no page. A full sweep would take them for deleted.

So each newest-first page asks for the newest records before the end of the millisecond of
the last one read (``updatedAt[lt]`` that millisecond plus one): it reads that millisecond's
records again rather than skip any, and a millisecond holding a whole page stops it (the
oldest-first one reads on alone). Each oldest-first page asks for the records from the
millisecond of the last one read on (``updatedAt[gte]``), less those of it already read
(``not(id[in]:[…])``), or, past as many as the URL has room for, follows the cursor through
records that share one stored time, or reads the millisecond by ``id`` (see
:class:`OldestFirst`).
``gte`` and ``lt`` on a millisecond compare alike in both kinds of server.

Sources (packages/twenty-server/src/engine/):
- ``api/utils/compute-cursor-arg-filter.utils.ts`` and ``build-cursor-keyset-condition.utils.ts``:
  a cursor continues after the row it names under every ordering field (``gt``, or ``lt`` for
  descending ones, ``eq`` on the fields before), with the row's values, as filters;
- ``api/graphql/graphql-query-runner/utils/compute-where-condition-parts.ts``: those filters on
  a ``DATE_TIME`` field, by the column's own value (older) or at the millisecond (newer), and
  ``graphql-query-order/utils/build-order-by-column-expression.util.ts``: the ``ORDER BY`` is
  the bare column;
- ``metadata-modules/workspace-migration/utils/field-metadata-type-to-column-type.util.ts``:
  ``DATE_TIME`` columns are ``timestamptz``; the answers carry JavaScript ``Date`` values, to
  the millisecond;
- ``api/rest/core/handlers/rest-api-find-many.handler.ts``: the answer's ``totalCount`` counts
  every record the filter matches (a hint here: read as None when it is not a number), and
  ``api/common/common-query-runners/common-find-many-query-runner.service.ts``: it is counted
  on the filter alone, before the cursor's condition is added (:class:`Tally` relies on it).

Only the oldest-first reader runs while ``totalCount`` says one more page can finish the
listing, and meeting is proven by the records' times, never by the count. A listing costs one or
two requests more than one cursor would (the page that shows the two met, and the records each
newest-first page reads again; three when over a third of a page of records share each
millisecond, since each newest-first page then reads up to a whole group again), and a window
that fits in one page costs one; a millisecond read by ``id`` costs its pages. Where the
oldest-first reader followed the cursor, the server's counts from its bounds check that no
record was passed over (:class:`Tally`), and a range found short is read again by ``id``. A
record changed while the listing runs gets an ``updatedAt`` past this run's window, so the next
run's window reads it; one that could not be placed in the order (no readable ``updatedAt``)
stops the newest-first reader, and the oldest-first one follows the server's cursor from there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconciler.model import iso_ms
from reconciler.remotes.twenty_http import UUID_RE
from reconciler.remotes.twenty_pages import (
    BACKWARD,
    BY_ID,
    FORWARD,
    TICK,
    Ask,
    Page,
    Raw,
    stamp,
)
from reconciler.remotes.twenty_tally import Tally

_UNSEEN = object()


@dataclass
class End:
    """One reader of the listing, what both kinds share: the order it reads in, and where it
    stands."""

    order_by: str
    cursor: str | None = None  # the next page's ``starting_after``
    last: datetime | None = None  # ``updatedAt`` of the last record read
    finished: bool = False  # read to its end
    usable: bool = True  # every record it read could be placed, and it still moves

    def ask(self) -> Ask:
        """The next page's request."""
        raise NotImplementedError

    def took(self, page: Page, fresh: bool) -> None:
        """Note a page this reader read (``fresh``: it held a record not read before)."""
        raise NotImplementedError


@dataclass
class NewestFirst(End):
    """The newest-first reader (``BACKWARD``): it asks each next page for the records before
    the end of the millisecond of the last one it read (``updatedAt[lt]``), that
    millisecond's again included."""

    order_by: str = BACKWARD
    before: str | None = None  # the next page's ``updatedAt[lt]`` bound

    def ask(self) -> Ask:
        return Ask(self.order_by, self.cursor, before=self.before)

    def took(self, page: Page, fresh: bool) -> None:
        self.finished = page.cursor is None
        if not page.records:
            return
        self.last = stamp(page.records[-1])
        self.usable = self.usable and self.last is not None
        if self.last is not None:
            before = iso_ms(self.last + TICK)
            # A page within one millisecond, or the same bound again, means the next page would
            # be this one again: a millisecond holds a whole page.
            within = stamp(page.records[0]) == self.last and not self.finished
            self.usable = self.usable and before != self.before and not within
            self.before = before


@dataclass
class OldestFirst(End):
    """The oldest-first reader (``FORWARD``): it asks each next page for the records from the
    millisecond of the last one it read on (``updatedAt[gte]``), less those of that
    millisecond it has read (``not(id[in]:[…])``, at most ``skip_max``: what the URL has room
    for). Past more of them, it follows the server's cursor while they come in ``id`` order
    (records written together, which share one stored time and for which the cursor is
    exact); where they do not (several stored times) or the cursor makes no headway (a server
    comparing the cursor's millisecond with finer stored times, as older ones did, answers the
    same page again), it reads that millisecond's records by ``id`` (``BY_ID``: a cursor on
    ``id`` alone, exact whatever the times) and goes on from the next millisecond.
    """

    order_by: str = FORWARD
    since: datetime | None = None  # the next page's ``updatedAt[gte]`` bound
    skip: tuple[str, ...] = ()  # the records of ``since`` it has read
    within: datetime | None = None  # the millisecond its cursor is passing
    by_id: bool = False  # reading the millisecond ``within`` by ``id``
    skip_max: int = 0  # the most ids ``skip`` may hold (the URL's room)

    def ask(self) -> Ask:
        if self.by_id and self.within is not None:
            return Ask(BY_ID, self.cursor, iso_ms(self.within), iso_ms(self.within + TICK))
        since = iso_ms(self.since) if self.since is not None else None
        # A cursor passes the records ``skip`` names by itself: they come before its row.
        skip = self.skip if self.cursor is None else ()
        return Ask(self.order_by, self.cursor, since, skip=skip)

    def took(self, page: Page, fresh: bool) -> None:
        if self.by_id:  # a millisecond read by id: on past it once it is read
            self.cursor = page.cursor
            if page.cursor is None and self.within is not None:
                self.since, self.skip = self.within + TICK, ()
                self.within, self.by_id = None, False
            return
        self.finished = page.cursor is None
        if not page.records or self.finished:
            return
        last = self.last = stamp(page.records[-1])
        if last is None or not self.usable:
            # A record it cannot place: the server's cursor from here on.
            self.usable, self.cursor = False, page.cursor
            return
        within = self.within
        if within is not None and (not fresh or not _in_id_order(_ids_at(page.records, within))):
            # The cursor makes no headway, or the millisecond it is passing holds records of
            # several stored times: that millisecond by id.
            self.by_id, self.cursor = True, None
            return
        tail = _ids_at(page.records, last, from_end=True)
        named = (*(self.skip if within is None and self.since == last else ()), *tail)
        if len(named) <= self.skip_max and all(UUID_RE.fullmatch(i) for i in named):
            self.since, self.skip, self.within, self.cursor = last, named, None, None
        else:
            # Records written together share one stored time, and come in id order: the
            # cursor is exact for them. Any other order shows several stored times.
            self.within, self.cursor = last, page.cursor
            self.by_id = not _in_id_order(tail)
            if self.by_id:
                self.cursor = None


# The most records of one millisecond the oldest-first reader names to pass them (about 1.7 KB
# of URL); past that many, records written together (a batch, an import), which share one
# stored time and for which the cursor is exact.
SKIP_MAX = 40


def _ids_at(records: list[Raw], moment: datetime, *, from_end: bool = False) -> list[str]:
    """The ids of the page's first records of ``moment``'s millisecond (its last ones with
    ``from_end``), in the page's order."""
    ids: list[str] = []
    for raw in reversed(records) if from_end else records:
        if stamp(raw) != moment:
            break
        ids.append(str(raw.get("id")))
    return ids[::-1] if from_end else ids


def _in_id_order(ids: list[str]) -> bool:
    """Whether ids come in ascending order, as Postgres orders UUIDs (their lower-case text)."""
    keys = [i.lower() for i in ids]
    return keys == sorted(keys)


class Listing:
    """What the two readers have read, and whether together they have read everything.

    They have once one of them read to its end, or once the oldest-first reader's last record
    is a millisecond or more newer than the newest-first reader's: each has read every record
    up to its last one in its own order, and the two orders then cover every time between
    them. The answers carry ``updatedAt`` to the millisecond and the server orders by the
    stored, finer value, so equal last times prove nothing; nor does a record both have read,
    as the records sharing its time come in the server's tie order, the same for both readers.
    """

    def __init__(self, skip_max: int = SKIP_MAX) -> None:
        self.forward, self.backward = OldestFirst(skip_max=skip_max), NewestFirst()
        self.by_backward = 0  # records the newest-first reader read first
        self.tally = Tally()
        self._seen: dict[str, Any] = {}

    def fresh(self, end: End | None, page: Page, ask: Ask | None = None) -> list[Raw]:
        """Note a page ``end`` read (None: a range read again by id, see :class:`Tally`), as
        ``ask`` asked for it; its records not read before, or read before with another
        ``updatedAt`` (changed in between: the pull keeps the newer reading)."""
        fresh: list[Raw] = []
        first: list[Raw] = []  # read for the first time
        for raw in page.records:
            before = self._seen.get(raw["id"], _UNSEEN)
            if before != raw.get("updatedAt"):
                self._seen[raw["id"]] = raw.get("updatedAt")
                fresh.append(raw)
                if before is _UNSEEN:
                    first.append(raw)
        self.tally.add(first, newest_first=end is self.backward)
        if end is self.backward:
            self.by_backward += len(fresh)
        if end is not None:
            end.took(page, bool(fresh))
        if end is self.forward and ask is not None and self.forward.usable:
            self.tally.measure(ask, page)
        return fresh

    def complete(self) -> bool:
        """Every record is read."""
        forward, backward = self.forward, self.backward
        if forward.finished or backward.finished:
            return True
        return (
            forward.last is not None
            and backward.last is not None
            and (forward.last > backward.last)
        )


def oldest_first(read: Callable[[Ask], Page], skip_max: int = SKIP_MAX) -> Iterator[list[Raw]]:
    """The listing's records page by page, oldest first by one reader (see
    :class:`OldestFirst`): each record once, unless it changed between two readings.

    Args:
        read: reads the page an :class:`Ask` asks for.
        skip_max: the most ids of records read a request may name (see
            :class:`OldestFirst`).
    """
    listing = Listing(skip_max)
    forward = listing.forward
    while not forward.finished:
        ask = forward.ask()
        fresh = listing.fresh(forward, read(ask), ask)
        if fresh:
            yield fresh
        yield from _read_again(read, listing)
    yield from _read_again(read, listing, at_end=True)


def both_ends(read: Callable[[Ask], Page], skip_max: int = SKIP_MAX) -> Iterator[list[Raw]]:
    """The listing's records page by page, read from both ends: each record once, unless it
    changed between two readings.

    Args:
        read: reads the page an :class:`Ask` asks for.
        skip_max: the most ids of records read a request may name (see
            :class:`OldestFirst`).
    """
    listing = Listing(skip_max)
    forward, backward = listing.forward, listing.backward
    ask = forward.ask()
    first = read(ask)
    yield listing.fresh(forward, first, ask)
    size, ahead = len(first.records), _ahead(first)
    if listing.complete():
        return
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="listing") as pool:
        while not listing.complete():
            ends: list[End] = [forward]
            unread = None if ahead is None else ahead - listing.by_backward
            if backward.usable and forward.usable and _worth_both(unread, size, backward):
                ends.append(backward)
            pending = {}
            for end in ends:
                ask = end.ask()
                pending[pool.submit(read, ask)] = end, ask
            for done in as_completed(pending):
                page, (end, ask) = done.result(), pending[done]
                if end is forward:  # the count is of the records past a bound, not a cursor
                    ahead = _ahead(page) if ask.order_by == FORWARD and not ask.cursor else None
                fresh = listing.fresh(end, page, ask)
                if fresh:
                    yield fresh
            yield from _read_again(read, listing)
    yield from _read_again(read, listing, at_end=True)


def _read_again(
    read: Callable[[Ask], Page], listing: Listing, *, at_end: bool = False
) -> Iterator[list[Raw]]:
    """The ranges the server's counts show records passed over in (:class:`Tally`), read again
    by ``id``: their records not read before."""
    tally = listing.tally
    if at_end:
        gap = tally.last_gap(listing.forward.last)
        if gap is not None:
            tally.gaps.append(gap)
    while tally.gaps:
        since, before = tally.gaps.pop(0)
        cursor: str | None = None
        while True:
            lower, upper = (iso_ms(t) if t is not None else None for t in (since, before))
            ask = Ask(BY_ID, cursor, lower, upper)
            page = read(ask)
            fresh = listing.fresh(None, page)
            if fresh:
                yield fresh
            cursor = page.cursor
            if cursor is None:
                break


def _ahead(page: Page) -> int | None:
    """Records past an oldest-first page, by the server's count of the records its filter
    matches (from its ``since`` bound on); None when not given."""
    return None if page.total is None else page.total - len(page.records)


def _worth_both(unread: int | None, size: int, backward: NewestFirst) -> bool:
    """Whether the unread records, by the server's count, need more than the oldest-first
    reader's next page: to show that the ends met, a page must also reach past the last record
    the newest-first reader read (or, before it read any, the listing's end)."""
    if unread is None:
        return True
    return unread >= size if backward.last is not None else unread > size
