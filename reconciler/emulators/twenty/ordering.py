"""Ordering (``order_by``), keyset cursors and page cutting of the Twenty emulator.

Cursors are opaque to clients: URL-safe base64 of JSON holding the last row's values of every
ordering field (``id`` included). They are evaluated live against the current rows, so a record
whose sort value changed between two pages moves, as with a real keyset query.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.emulators.base import js_dates
from reconciler.emulators.twenty.schema import (
    ACTOR,
    COMPOSITE_SUBFIELDS,
    DATE_TIME,
    RAW_JSON,
    UUID,
    ObjectSpec,
    bad_request,
)
from reconciler.emulators.twenty.values import comparable, validate_value

#: Direction name -> (ascending, nulls first).
DIRECTIONS: dict[str, tuple[bool, bool]] = {
    "AscNullsFirst": (True, True),
    "AscNullsLast": (True, False),
    "DescNullsFirst": (False, True),
    "DescNullsLast": (False, False),
}
_ITEM_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[([A-Za-z]+)\])?$")

Row = Mapping[str, Any]


@dataclass(frozen=True)
class OrderKey:
    """One ordering field with its direction."""

    field: str
    ftype: str
    ascending: bool = True
    nulls_first: bool = True
    options: tuple[str, ...] = ()


def default_order() -> list[OrderKey]:
    """The order used without ``order_by``: ``id`` ascending, nothing else.

    Without ``order_by`` the REST parser orders by ``[{}]`` plus the id tie-breaker, not by
    position: parse-order-by-rest-request.util.ts and add-default-order-by-id.util.ts in
    packages/twenty-server/src/engine/api/rest/input-request-parsers/order-by-parser-utils/.
    """
    return [OrderKey("id", UUID)]


def parse_order_by(spec: ObjectSpec, text: str | None) -> list[OrderKey]:
    """Parse ``field[Direction],…`` and append ``id``.

    A bare field is ``AscNullsFirst``, and several fields may be given
    (parse-order-by-rest-request-common.util.ts: ``DEFAULT_ORDER_DIRECTION``, and its own example
    ``field_1[AscNullsFirst],field_2[DescNullsLast],field_3``); ``id`` ascending is appended
    unless named (add-default-order-by-id.util.ts), both in
    packages/twenty-server/src/engine/api/rest/input-request-parsers/order-by-parser-utils/.
    """
    if not text:
        return default_order()
    keys: list[OrderKey] = []
    for item in text.split(","):
        match = _ITEM_RE.match(item.strip())
        if match is None:
            raise bad_request(f"Invalid order_by item: {item!r}")
        name, direction = match.group(1), match.group(2) or "AscNullsFirst"
        ftype = spec.field_type(name)
        if ftype is None or ftype in (ACTOR, RAW_JSON) or ftype in COMPOSITE_SUBFIELDS:
            # ordering by a RAW_JSON field is not modelled: refused
            raise bad_request(f"Invalid order_by: object '{spec.singular}' has no field '{name}'")
        if direction not in DIRECTIONS:
            raise bad_request(f"Invalid order_by direction '{direction}' for field '{name}'")
        ascending, nulls_first = DIRECTIONS[direction]
        keys.append(OrderKey(name, ftype, ascending, nulls_first, spec.field_options(name)))
    if all(key.field != "id" for key in keys):
        keys.append(OrderKey("id", UUID))
    return keys


class _Descending:
    """A value that sorts in reverse (for the ``Desc`` directions)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and bool(self.value == other.value)

    def __lt__(self, other: _Descending) -> bool:
        return bool(self.value > other.value)

    def __hash__(self) -> int:
        return hash(self.value)


def row_key(
    row: Row, keys: Sequence[OrderKey], *, milliseconds: bool = False
) -> tuple[tuple[int, Any], ...]:
    """A sort key of ``row`` under ``keys``: per field (null rank, value); ``milliseconds``:
    ``DATE_TIME`` values cut to the millisecond (floored, as ``date_trunc`` and JavaScript's
    ``Date`` cut them)."""
    parts: list[tuple[int, Any]] = []
    for key in keys:
        value = comparable(key.ftype, row.get(key.field))
        if milliseconds and key.ftype == DATE_TIME and value is not None:
            value = value.replace(microsecond=value.microsecond // 1000 * 1000)
        if value is None:
            parts.append((0 if key.nulls_first else 2, 0))
        else:
            parts.append((1, value if key.ascending else _Descending(value)))
    return tuple(parts)


def sort_rows(rows: list[dict[str, Any]], keys: Sequence[OrderKey]) -> list[dict[str, Any]]:
    """The rows sorted under ``keys``."""
    return sorted(rows, key=lambda row: row_key(row, keys))


def encode_cursor(row: Row, keys: Sequence[OrderKey]) -> str:
    """An opaque cursor for the position of ``row``."""
    values = {key.field: js_dates(row.get(key.field)) for key in keys}  # as the answer shows
    payload = json.dumps({"values": values}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(payload).decode()


def decode_cursor(text: str, keys: Sequence[OrderKey]) -> dict[str, Any]:
    """The row position a cursor stands for; raises a 400 for anything but a valid cursor."""
    try:
        payload = json.loads(base64.b64decode(text, altchars=b"-_", validate=True))
    except (binascii.Error, ValueError) as exc:
        raise bad_request(f"Invalid cursor: {text!r}") from exc
    values = payload.get("values") if isinstance(payload, dict) else None
    if not isinstance(values, dict) or set(values) != {key.field for key in keys}:
        raise bad_request("Invalid cursor: it does not match the requested order")
    position: dict[str, Any] = {}
    for key in keys:
        raw = values[key.field]
        position[key.field] = (
            None if raw is None else validate_value(key.field, key.ftype, raw, key.options)
        )
    return position


@dataclass(frozen=True)
class Page:
    """One page of rows with its paging flags."""

    rows: list[dict[str, Any]]
    has_next: bool
    has_previous: bool


Ordered = list[tuple[tuple[tuple[int, Any], ...], dict[str, Any]]]


def ordered(rows: list[dict[str, Any]], keys: Sequence[OrderKey]) -> Ordered:
    """``rows`` sorted under ``keys``, each with its sort key."""
    return sorted(((row_key(row, keys), row) for row in rows), key=lambda pair: pair[0])


def cut_page(
    decorated: Ordered,
    keys: Sequence[OrderKey],
    limit: int,
    *,
    after: Row | None = None,
    before: Row | None = None,
    milliseconds: bool = False,
) -> Page:
    """Cut the page of ``decorated`` (see :func:`ordered`) strictly after ``after`` (or strictly
    before ``before``).

    ``milliseconds``: the cursor's condition compares ``DATE_TIME`` values at the millisecond,
    as newer servers' filters do, while the rows stay in the order of their stored values. The
    keyset is one filter per ordering field (``gt``/``lt`` on it, ``eqStrict`` on those before
    it: ``buildCursorKeysetCondition`` in
    ``packages/twenty-server/src/engine/api/utils/build-cursor-keyset-condition.utils.ts``),
    made by the filters' ``computeWhereConditionParts``, where a ``DATE_TIME`` ``gt`` starts at
    the next millisecond and ``eqStrict`` takes the whole one; the ``ORDER BY`` is the bare
    column (``renderOrderByColumnSql``,
    ``…/graphql-query-order/utils/build-order-by-column-expression.util.ts``). A cursor's
    values are milliseconds (``js_dates``), so the condition is the rows whose cut key is past
    the cursor's: within one millisecond those go by ``id`` while the page goes by the stored
    time, and a record of the cursor's millisecond stored later than the cursor's row but with
    a lower ``id`` is on no page."""
    cursor = after is not None or before is not None
    if milliseconds and cursor and any(key.ftype == DATE_TIME for key in keys):
        return _cut_at_milliseconds(decorated, keys, limit, after=after, before=before)
    total = len(decorated)
    if after is not None:
        start = bisect.bisect_right(decorated, row_key(after, keys), key=lambda pair: pair[0])
        rows = [row for _, row in decorated[start : start + limit]]
        return Page(rows, total - start > limit, start > 0)
    if before is not None:
        end = bisect.bisect_left(decorated, row_key(before, keys), key=lambda pair: pair[0])
        rows = [row for _, row in decorated[max(0, end - limit) : end]]
        return Page(rows, end < total, end > limit)
    return Page([row for _, row in decorated[:limit]], total > limit, False)


def _cut_at_milliseconds(
    decorated: Ordered,
    keys: Sequence[OrderKey],
    limit: int,
    *,
    after: Row | None,
    before: Row | None,
) -> Page:
    """:func:`cut_page` with the cursor's condition on millisecond keys (see there)."""

    def cut(row: Row) -> tuple[tuple[int, Any], ...]:
        return row_key(row, keys, milliseconds=True)

    if after is not None:
        bound = cut(after)
        rows = [row for _, row in decorated if cut(row) > bound]
        return Page(rows[:limit], len(rows) > limit, len(rows) < len(decorated))
    assert before is not None
    bound = cut(before)
    rows = [row for _, row in decorated if cut(row) < bound]
    return Page(rows[-limit:], len(rows) < len(decorated), len(rows) > limit)


def bounded(decorated: Ordered, key: OrderKey, op: str, value: Any) -> tuple[int, int] | None:
    """The slice of ``decorated`` (sorted with ``key`` first) that can hold the rows matching
    ``key.field[op]:value``, found by bisection: what a server's index on the column gives. For
    ``gte`` and ``lt`` on a ``DATE_TIME`` first key (each server compares those on the stored
    value), exactly the matching rows (nulls match neither); None for anything else."""
    if key.ftype != DATE_TIME or op not in ("gte", "lt") or value is None:
        return None

    def first(pair: tuple[Any, ...]) -> Any:  # the first ordering field's (null rank, value)
        return pair[0][0]

    valued = bisect.bisect_left(decorated, (1,), key=first)  # past the leading nulls
    unvalued = bisect.bisect_left(decorated, (2,), key=first)  # the trailing nulls
    probe = (1, value if key.ascending else _Descending(value))
    # Ascending: values >= X follow the smaller ones; descending: they come first.
    if key.ascending:
        split = bisect.bisect_left(decorated, probe, key=first)
        return (split, unvalued) if op == "gte" else (valued, split)
    split = bisect.bisect_right(decorated, probe, key=first)
    return (valued, split) if op == "gte" else (split, unvalued)
