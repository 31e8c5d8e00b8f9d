"""A windowed Twenty listing read from both of its ends at once.

Twenty pages a listing by keyset cursor: each page's ``starting_after`` is the ``endCursor`` of
the page before, so the pages of one cursor follow each other, one answer's time each. The
same window read newest first forms a second reader that can run beside the first: each has
read every record up to its last one in its own order, so once the two have met, every record
has been read by one of them.

The newest-first reader does not use the server's cursor. A cursor carries its row's
``updatedAt`` as the answers show it, to the millisecond, while the column (``timestamptz``,
default ``now()``) keeps microseconds. Going forward the cursor's condition ``updatedAt > t``
only reads a few records of that millisecond again; going backward, ``updatedAt < t`` would skip
the records of that millisecond older than the cursor's row. So each newest-first page asks for
the newest records before the end of the millisecond of the last one read
(``updatedAt[lt]`` that millisecond plus one): it reads that millisecond's records again rather
than skip any. A millisecond holding a whole page (a bulk import) stops this reader, and the
oldest-first one reads on alone.

Sources (packages/twenty-server/src/engine/):
- ``api/utils/compute-cursor-arg-filter.utils.ts``: a cursor continues after the row it names
  under every ordering field (``gt``, or ``lt`` for descending ones), with the row's values;
- ``metadata-modules/workspace-migration/utils/field-metadata-type-to-column-type.util.ts``:
  ``DATE_TIME`` columns are ``timestamptz``; the answers carry JavaScript ``Date`` values, to
  the millisecond;
- ``api/rest/core/handlers/rest-api-find-many.handler.ts``: the answer's ``totalCount`` counts
  every record the filter matches (a hint here: read as None when it is not a number).

Only the oldest-first reader runs while ``totalCount`` says one more page can finish the
listing, and meeting is proven by the records' times, never by the count. A listing costs
one or two requests more than one cursor would (the page that shows the two met, and the
records each newest-first page reads again), and a window that fits in one page costs one. A
record changed while the listing runs gets an ``updatedAt`` past this run's window, so the next
run's window reads it; one that could not be placed in the order (no readable ``updatedAt``)
stops the newest-first reader.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from reconciler.model import iso_ms, parse_datetime

FIELD = "updatedAt"
# One field with its direction, the form the API's documentation gives
# (``order_by=updatedAt[AscNullsFirst]``). The server appends ``id`` as the tie-breaker
# (order-by-parser-utils/add-default-order-by-id.util.ts: ``id[AscNullsFirst]`` whatever the
# other fields' direction), so records sharing a time come in the same order to both readers,
# not in reverse: the meeting is proven by times alone (``Listing``), never by a record both
# have read.
FORWARD = f"{FIELD}[AscNullsFirst]"
BACKWARD = f"{FIELD}[DescNullsLast]"
TICK = timedelta(milliseconds=1)

Raw = dict[str, Any]
_UNSEEN = object()


@dataclass(frozen=True)
class Page:
    """One answer of a listing: its records, the cursor of the next page (None after the last)
    and the server's count of every record the filter matches (None when not given)."""

    records: list[Raw]
    cursor: str | None
    total: int | None


@dataclass
class End:
    """One reader of the listing: oldest first by cursor, or newest first by ``before``."""

    order_by: str
    cursor: str | None = None  # oldest first: the next page's ``starting_after``
    before: str | None = None  # newest first: the next page's ``updatedAt[lt]`` bound
    last: datetime | None = None  # ``updatedAt`` of the last record read
    finished: bool = False  # read to its end
    usable: bool = True  # every record it read could be placed, and it still moves

    def took(self, page: Page) -> None:
        """Note a page this reader read."""
        self.finished = page.cursor is None
        if self.order_by == FORWARD:
            self.cursor = page.cursor
        if not page.records:
            return
        self.last = stamp(page.records[-1])
        self.usable = self.usable and self.last is not None
        if self.order_by == BACKWARD and self.last is not None:
            before = iso_ms(self.last + TICK)
            # A page within one millisecond, or the same bound again, means the next page would
            # be this one again: a millisecond holds a whole page.
            within = stamp(page.records[0]) == self.last and not self.finished
            self.usable = self.usable and before != self.before and not within
            self.before = before


def stamp(raw: Raw) -> datetime | None:
    """A record's ``updatedAt``; None when unreadable."""
    try:
        return parse_datetime(str(raw.get("updatedAt")))
    except ValueError:
        return None


class Listing:
    """What the two readers have read, and whether together they have read everything.

    They have once one of them read to its end, or once the oldest-first reader's last record
    is a millisecond or more newer than the newest-first reader's: each has read every record
    up to its last one in its own order, and the two orders then cover every time between
    them. The answers carry ``updatedAt`` to the millisecond and the server orders by the
    stored, finer value, so equal last times prove nothing; nor does a record both have read,
    as the records sharing its time come in the server's tie order, the same for both readers.
    """

    def __init__(self) -> None:
        self.forward, self.backward = End(FORWARD), End(BACKWARD)
        self._seen: dict[str, Any] = {}

    def fresh(self, end: End, page: Page) -> list[Raw]:
        """Note a page ``end`` read; its records not read before, or read before with another
        ``updatedAt`` (changed in between: the pull keeps the newer reading)."""
        end.took(page)
        fresh: list[Raw] = []
        for raw in page.records:
            if self._seen.get(raw["id"], _UNSEEN) != raw.get("updatedAt"):
                self._seen[raw["id"]] = raw.get("updatedAt")
                fresh.append(raw)
        return fresh

    @property
    def read(self) -> int:
        """Records read so far."""
        return len(self._seen)

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


def both_ends(read: Callable[[str, str | None, str | None], Page]) -> Iterator[list[Raw]]:
    """The listing's records page by page, read from both ends: each record once, unless it
    changed between two readings.

    Args:
        read: reads one page: ``(order_by, starting_after, before)`` -> the page; ``before``
            adds ``updatedAt[lt]:before`` to the listing's filter.
    """
    listing = Listing()
    forward, backward = listing.forward, listing.backward
    first = read(FORWARD, None, None)
    yield listing.fresh(forward, first)
    size, total = len(first.records), first.total
    if listing.complete():
        return
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="listing") as pool:
        while not listing.complete():
            ends = [forward]
            if (
                backward.usable
                and forward.usable
                and _worth_both(total, listing.read, size, backward)
            ):
                ends.append(backward)
            pending = {pool.submit(read, end.order_by, end.cursor, end.before): end for end in ends}
            for done in as_completed(pending):
                page, end = done.result(), pending[done]
                if end is forward and page.total is not None:  # the other adds a bound
                    total = page.total
                fresh = listing.fresh(end, page)
                if fresh:
                    yield fresh


def _worth_both(total: int | None, read: int, size: int, backward: End) -> bool:
    """Whether the unread records, by the server's count, need more than the forward cursor's
    next page: to show that the ends met, a page must also reach past the last record the
    backward cursor read (or, before it read any, the listing's end)."""
    if total is None:
        return True
    unread = total - read
    return unread >= size if backward.last is not None else unread > size
