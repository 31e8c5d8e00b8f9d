"""What the readers of a Twenty listing (``twenty_ends``) and its count check
(``twenty_tally``) speak of: the orders a listing is read in, one page's request and answer,
and a record's modified time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from reconciler.model import parse_datetime

FIELD = "updatedAt"
# One field with its direction, the form the API's documentation gives
# (``order_by=updatedAt[AscNullsFirst]``). The server appends ``id`` as the tie-breaker
# (order-by-parser-utils/add-default-order-by-id.util.ts: ``id[AscNullsFirst]`` whatever the
# other fields' direction), so records sharing a time come in the same order to both readers,
# not in reverse: the meeting is proven by times alone (``Listing``), never by a record both
# have read.
FORWARD = f"{FIELD}[AscNullsFirst]"
BACKWARD = f"{FIELD}[DescNullsLast]"
BY_ID = "id[AscNullsFirst]"  # one millisecond's records, whatever their stored times
TICK = timedelta(milliseconds=1)

Raw = dict[str, Any]


@dataclass(frozen=True)
class Page:
    """One answer of a listing: its records, the cursor of the next page (None after the last)
    and the server's count of every record the filter matches (None when not given)."""

    records: list[Raw]
    cursor: str | None
    total: int | None


@dataclass(frozen=True)
class Ask:
    """What one page read adds to the listing's own filter and order."""

    order_by: str
    cursor: str | None = None  # ``starting_after``
    since: str | None = None  # ``updatedAt[gte]``: from this millisecond on
    before: str | None = None  # ``updatedAt[lt]``: before this millisecond
    skip: tuple[str, ...] = ()  # ``not(id[in]:[…])``: records of ``since`` already read


def stamp(raw: Raw) -> datetime | None:
    """A record's ``updatedAt``; None when unreadable."""
    try:
        return parse_datetime(str(raw.get("updatedAt")))
    except ValueError:
        return None
