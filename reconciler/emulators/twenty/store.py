"""In-memory record store of the Twenty emulator: objects, records and their mutations.

Records are kept in the API's JSON shape (every field present, datetimes as ISO strings with
milliseconds and ``Z``). The store does no locking; the emulator serializes access.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from reconciler.emulators.base import iso_ms
from reconciler.emulators.twenty.filters import Node
from reconciler.emulators.twenty.ordering import default_order, sort_rows
from reconciler.emulators.twenty.schema import (
    ObjectSpec,
    bad_request,
    check_custom_fields,
    is_uuid,
    not_found,
    validate_fields,
)

API_ACTOR: dict[str, Any] = {
    "source": "API",
    "workspaceMemberId": None,
    "name": "API key",
    "context": {},
}
USER_ACTOR: dict[str, Any] = {
    "source": "MANUAL",
    "workspaceMemberId": None,
    "name": "Workspace member",
    "context": {},
}


class Store:
    """Every object's records, keyed by plural name then id.

    Args:
        now: the server clock (aware UTC datetimes).
        seed: seed of the generator of record ids.
    """

    def __init__(self, now: Callable[[], datetime], seed: int = 0) -> None:
        self.now = now
        self.objects: dict[str, ObjectSpec] = {}
        self._rows: dict[str, dict[str, dict[str, Any]]] = {}
        self._positions: dict[str, int] = {}
        self._rng = random.Random(seed)

    # -- objects ---------------------------------------------------------------------------------

    def add_object(self, singular: str, plural: str, fields: Mapping[str, str]) -> ObjectSpec:
        """Declare an object with its custom fields (name -> Twenty type)."""
        check_custom_fields(fields)
        names = {name for spec in self.objects.values() for name in (spec.singular, spec.plural)}
        if {singular, plural} & names or singular == plural:
            raise ValueError(f"object names already taken: {singular!r}, {plural!r}")
        spec = ObjectSpec(singular, plural, dict(fields))
        self.objects[plural] = spec
        self._rows[plural] = {}
        self._positions[plural] = 0
        return spec

    def resolve(self, name: str) -> ObjectSpec:
        """The object a plural name addresses; a 400 for a singular or unknown name."""
        spec = self.objects.get(name)
        if spec is not None:
            return spec
        for candidate in self.objects.values():
            if candidate.singular == name:
                raise bad_request(f"object '{name}' not found. Did you mean '{candidate.plural}'?")
        raise bad_request(f"object '{name}' not found")

    # -- reading ---------------------------------------------------------------------------------

    def find(self, spec: ObjectSpec, record_id: str, *, include_deleted: bool) -> dict[str, Any]:
        """The stored record (not a copy); a 400 for a non-UUID id, a 404 when absent."""
        if not is_uuid(record_id):
            raise bad_request(f"Invalid UUID: '{record_id}'")
        row = self._rows[spec.plural].get(record_id.lower())
        if row is None or (row["deletedAt"] is not None and not include_deleted):
            raise not_found(f"Record {record_id} not found in '{spec.plural}'")
        return row

    def select(self, spec: ObjectSpec, where: Node | None) -> list[dict[str, Any]]:
        """Rows matching the filter; soft-deleted rows only when the filter mentions deletedAt."""
        with_deleted = where is not None and "deletedAt" in where.fields()
        return [
            row
            for row in self._rows[spec.plural].values()
            if (with_deleted or row["deletedAt"] is None) and (where is None or where.matches(row))
        ]

    def all_rows(self, spec: ObjectSpec, *, include_deleted: bool) -> list[dict[str, Any]]:
        """Rows in the default order."""
        rows = [
            row
            for row in self._rows[spec.plural].values()
            if include_deleted or row["deletedAt"] is None
        ]
        return sort_rows(rows, default_order(spec))

    # -- writing ---------------------------------------------------------------------------------

    def create(
        self,
        spec: ObjectSpec,
        body: Any,
        *,
        stamp: datetime | None = None,
        actor: Mapping[str, Any] = API_ACTOR,
    ) -> dict[str, Any]:
        """Validate and insert one record (a client-chosen id must be new)."""
        values = validate_fields(spec, body, allow_id=True)
        self._check_new_ids(spec, [values])
        return self._insert(spec, values, stamp, actor)

    def create_many(
        self, spec: ObjectSpec, items: list[Any], *, upsert: bool
    ) -> list[dict[str, Any]]:
        """Validate a whole batch, then create (or upsert on id) every record; all or nothing."""
        batch = [validate_fields(spec, item, allow_id=True) for item in items]
        ids = [values["id"] for values in batch if "id" in values]
        if len(ids) != len(set(ids)):
            raise bad_request(
                "duplicate key value violates unique constraint: id repeated in batch"
            )
        if not upsert:
            self._check_new_ids(spec, batch)
        rows = self._rows[spec.plural]
        results: list[dict[str, Any]] = []
        for values in batch:
            existing = rows.get(values.get("id", ""))
            if existing is None:
                results.append(self._insert(spec, values, None, API_ACTOR))
            else:
                existing["deletedAt"] = None
                results.append(self._patch(existing, values, None))
        return results

    def update(
        self, spec: ObjectSpec, row: dict[str, Any], body: Any, *, stamp: datetime | None = None
    ) -> dict[str, Any]:
        """Validate and merge a partial update into ``row``; bumps updatedAt."""
        values = validate_fields(spec, body, allow_id=True)
        if "id" in values and values["id"] != row["id"]:
            raise bad_request("Field 'id' cannot be changed")
        return self._patch(row, values, stamp)

    def update_many(
        self, spec: ObjectSpec, rows: list[dict[str, Any]], body: Any
    ) -> list[dict[str, Any]]:
        """Apply the same partial update to every row (validated once, before any change)."""
        values = validate_fields(spec, body, allow_id=False)
        return [self._patch(row, values, None) for row in rows]

    def soft_delete(self, spec: ObjectSpec, record_id: str) -> dict[str, Any]:
        """Set deletedAt on a live record."""
        row = self.find(spec, record_id, include_deleted=False)
        row["deletedAt"] = iso_ms(self.now())
        return row

    def hard_delete(self, spec: ObjectSpec, record_id: str) -> dict[str, Any]:
        """Remove a record (live or soft-deleted) for good."""
        row = self.find(spec, record_id, include_deleted=True)
        del self._rows[spec.plural][row["id"]]
        return row

    # -- internals -------------------------------------------------------------------------------

    def _check_new_ids(self, spec: ObjectSpec, batch: list[dict[str, Any]]) -> None:
        for values in batch:
            if values.get("id") in self._rows[spec.plural]:
                raise bad_request(
                    f"duplicate key value violates unique constraint: id {values['id']} exists"
                )

    def _new_id(self, spec: ObjectSpec) -> str:
        while True:
            candidate = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            if candidate not in self._rows[spec.plural]:
                return candidate

    def _insert(
        self,
        spec: ObjectSpec,
        values: dict[str, Any],
        stamp: datetime | None,
        actor: Mapping[str, Any],
    ) -> dict[str, Any]:
        moment = iso_ms(stamp if stamp is not None else self.now())
        self._positions[spec.plural] += 1
        row: dict[str, Any] = dict.fromkeys(spec.fields)
        row.update(
            id=values["id"] if "id" in values else self._new_id(spec),
            createdAt=moment,
            updatedAt=moment,
            createdBy=copy.deepcopy(dict(actor)),
            position=self._positions[spec.plural],
        )
        row.update(values)
        self._rows[spec.plural][row["id"]] = row
        return row

    def _patch(
        self, row: dict[str, Any], values: Mapping[str, Any], stamp: datetime | None
    ) -> dict[str, Any]:
        row.update(values)
        row["updatedAt"] = iso_ms(stamp if stamp is not None else self.now())
        return row
