"""The ``filterByFormula`` expressions the tool sends, built with pyairtable's helpers.

Formulas cannot name fields by id (Airtable answers "Unknown field names: fld…"), so they use
each field's current name, as the meta API last showed it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote_plus

from pyairtable.formulas import (
    AND,
    DATETIME_PARSE,
    EQ,
    IS_AFTER,
    IS_BEFORE,
    IS_SAME,
    OR,
    RECORD_ID,
    Field,
    Formula,
    to_formula_str,
)

from reconciler.model import FieldSpec, Kind, iso_ms

MS = timedelta(milliseconds=1)


def _floor_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def window(
    field_name: str, since: datetime, until: datetime | None, *, slack: timedelta = timedelta(0)
) -> str:
    """Records whose ``field_name`` lies in ``[since, until + slack]``, both ends included.

    ``IS_AFTER`` and ``IS_BEFORE`` are strict, and Airtable stamps milliseconds: a stamp is at
    or after ``since`` exactly when it is after the millisecond before ``since`` (rounded up
    to a whole millisecond), and at or before ``until`` when it is before the millisecond after.
    An empty cell matches neither test, so it never enters a window. The bounds are written by
    ``iso_ms`` (UTC with ``Z``; pyairtable would write a naive datetime without ``Z`` and an
    aware one with its offset).
    """
    lower = _floor_ms(since) + (MS if since.microsecond % 1000 else timedelta(0)) - MS
    stamp = Field(field_name)
    after = IS_AFTER(stamp, DATETIME_PARSE(iso_ms(lower)))
    if until is None:
        return to_formula_str(after)
    upper = _floor_ms(until + slack) + MS
    return to_formula_str(AND(after, IS_BEFORE(stamp, DATETIME_PARSE(iso_ms(upper)))))


def record_ids(ids: Sequence[str]) -> str:
    """Records with one of ``ids`` (well-formed ids only: the caller checks them)."""
    return to_formula_str(OR(*(EQ(RECORD_ID(), rid) for rid in ids)))


def usable_key(key: Sequence[Any]) -> bool:
    """Whether a natural key may match: a None or empty part never does."""
    return all(part is not None and part != "" and part != [] for part in key)


def key_equality(specs: Sequence[tuple[FieldSpec, str]], key: Sequence[Any]) -> str:
    """One natural key as an Airtable condition: each field (by its current name) equal to
    its part, compared the way the field's kind compares."""
    tests = [_equals(spec, name, part) for (spec, name), part in zip(specs, key, strict=True)]
    return to_formula_str(AND(*tests)) if len(tests) > 1 else to_formula_str(tests[0])


def _equals(spec: FieldSpec, name: str, part: Any) -> Formula:
    field = Field(name)
    if spec.kind in (Kind.NUMBER, Kind.INTEGER) and not isinstance(part, bool):
        return EQ(field, Formula(_number(part)))  # a number, not its text
    if spec.kind is Kind.BOOLEAN:
        return EQ(field, bool(part))
    if spec.kind is Kind.DATETIME:
        return IS_SAME(field, DATETIME_PARSE(str(part)), "millisecond")
    if spec.kind is Kind.DATE:
        return IS_SAME(field, DATETIME_PARSE(str(part)), "day")
    if spec.kind is Kind.JSON:
        return EQ(field, json.dumps(part, separators=(",", ":"), ensure_ascii=False))
    return EQ(field, str(part))


def _number(value: Any) -> str:
    """A number as a formula literal, never in exponent form (``1e-07``)."""
    return format(Decimal(repr(value)) if isinstance(value, float) else Decimal(value), "f")


def groups(conditions: Sequence[str], budget: int) -> Iterator[range]:
    """Consecutive runs of conditions whose ``OR(…)`` fits ``budget`` characters once
    URL-encoded (Airtable refuses URLs of 16,000 characters or more); a condition too long on
    its own still gets a group, and the request then goes by POST."""
    overhead = len(quote_plus("OR()"))
    start, size = 0, overhead
    for index, condition in enumerate(conditions):
        cost = len(quote_plus(condition)) + len(quote_plus(","))
        if index > start and size + cost > budget:
            yield range(start, index)
            start, size = index, overhead
        size += cost
    if start < len(conditions):
        yield range(start, len(conditions))


def any_of(conditions: Sequence[str]) -> str:
    """Records meeting any of ``conditions``."""
    return conditions[0] if len(conditions) == 1 else f"OR({','.join(conditions)})"
