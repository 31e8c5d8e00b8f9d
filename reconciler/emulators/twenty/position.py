"""Twenty's record ``position`` rule (where a record sits in every view).

A port of ``RecordPositionService.overridePositionOnRecords``,
packages/twenty-server/src/engine/core-modules/record-position/services/record-position.service.ts:

* inputs are bucketed: ``"last"``; a number (kept as it is); ``"first"``, or no ``position`` at
  all when backfilling is on; anything else (no ``position`` without backfilling) is untouched;
* the "first" bucket gets ``low - i - 1`` for its i-th record (input order), where ``low`` is the
  smallest of the batch's explicit numbers and the object's current minimum position (1 when
  the object has no positioned record);
* the "last" bucket gets ``high + i + 1`` with ``high`` the largest of those and the maximum.

The minimum and maximum come from TypeORM's ``repository.minimum/maximum('position')``, which
skip soft-deleted rows (the entity's delete-date column) and nulls: callers pass the positions
of live records.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reconciler.emulators.twenty.transforms import is_number


def resolve_positions(
    inputs: list[dict[str, Any]], live_positions: Iterable[Any], *, backfill: bool
) -> None:
    """Replace ``"first"`` / ``"last"`` (and, with ``backfill``, a missing ``position``) by
    numbers, in place, exactly as the server does before writing.

    Args:
        inputs: validated write values, one dict per record, in request order.
        live_positions: the ``position`` of every live record of the object.
        backfill: whether an input without ``position`` counts as ``"first"`` (create-one,
            create-many, and the inserts of an upsert; never PATCH).
    """
    first: list[dict[str, Any]] = []
    last: list[dict[str, Any]] = []
    numbers: list[Any] = []
    for values in inputs:
        position = values.get("position")
        if position == "last":
            last.append(values)
        elif is_number(position):
            numbers.append(position)
        elif position == "first" or ("position" not in values and backfill):
            first.append(values)
    existing = [p for p in live_positions if is_number(p)]
    if first:
        low = min([*numbers, min(existing) if existing else 1])
        for index, values in enumerate(first):
            values["position"] = low - index - 1
    if last:
        high = max([*numbers, max(existing) if existing else 1])
        for index, values in enumerate(last):
            values["position"] = high + index + 1
