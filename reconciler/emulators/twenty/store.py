"""In-memory record store of the Twenty emulator: objects, records and their mutations.

Records are kept in the API's JSON shape (every field present, datetimes as ISO strings with
milliseconds and ``Z``), per object in creation order. The store does no locking; the emulator
serializes access.
"""

from __future__ import annotations

import copy
import hashlib
import random
import uuid
from collections.abc import Callable, Hashable, Mapping
from datetime import datetime
from typing import Any, TypeVar, cast

from reconciler.emulators.base import iso_ms
from reconciler.emulators.twenty.filter_nodes import Node
from reconciler.emulators.twenty.position import resolve_positions
from reconciler.emulators.twenty.schema import (
    COMPOSITE_SUBFIELDS,
    ObjectSpec,
    bad_request,
    check_custom_fields,
    check_field,
    is_uuid,
    not_found,
)
from reconciler.emulators.twenty.values import validate_fields

T = TypeVar("T")

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
        seed: seed of the generator of record and metadata ids.
    """

    def __init__(self, now: Callable[[], datetime], seed: int = 0) -> None:
        self.now = now
        self.objects: dict[str, ObjectSpec] = {}
        self._rows: dict[str, dict[str, dict[str, Any]]] = {}
        self._rng = random.Random(seed)
        self._memo: dict[Hashable, Any] = {}  # derived from the rows; emptied by any change
        # How the server stamps createdAt/updatedAt/deletedAt (see TwentyEmulator's
        # ``microsecond_stamps``): to the millisecond, or as Postgres' now() does.
        self.stamp: Callable[[datetime], str] = iso_ms

    def memo(self, key: Hashable, make: Callable[[], T]) -> T:
        """``make()``, kept under ``key`` until the next change to any record or object.

        A listing paged through by cursor asks for the same filtered, ordered rows on every
        page; Postgres walks an index for it, and this saves re-sorting every row per page. No
        answer changes: any write in between empties the memo.
        """
        if key not in self._memo:
            self._memo[key] = make()
        return cast(T, self._memo[key])

    def _changed(self) -> None:
        self._memo.clear()

    # -- objects ---------------------------------------------------------------------------------

    def add_object(
        self,
        singular: str,
        plural: str,
        fields: Mapping[str, str],
        options: Mapping[str, tuple[str, ...]] | None = None,
    ) -> ObjectSpec:
        """Declare an object with its custom fields (name -> Twenty type) and select options."""
        check_custom_fields(fields, options)
        names = {name for spec in self.objects.values() for name in (spec.singular, spec.plural)}
        if {singular, plural} & names or singular == plural:
            raise ValueError(f"object names already taken: {singular!r}, {plural!r}")
        spec = ObjectSpec(singular, plural, dict(fields), dict(options or {}), self.new_uuid())
        self.objects[plural] = spec
        self._rows[plural] = {}
        self._changed()
        return spec

    def add_field(
        self, spec: ObjectSpec, name: str, ftype: str, options: tuple[str, ...] | None = None
    ) -> None:
        """Add a custom field to an object; existing records get null for it."""
        check_field(name, ftype, options)
        if name in spec.custom_fields:
            raise ValueError(f"field {name!r} already exists on {spec.plural!r}")
        spec.custom_fields[name] = ftype
        if options:
            spec.options[name] = tuple(options)
        for row in self._rows[spec.plural].values():
            row[name] = None
        self._changed()

    def resolve(self, name: str) -> ObjectSpec:
        """The object a plural name addresses; a 400 for a singular or unknown name, with the
        server's hint (``object '…' not found. ${hint}``, the hint ``eg: companies`` unless a
        singular name matches: ``getObjectMetadata`` in
        ``api/rest/core/query-builder/core-query-builder.factory.ts``)."""
        spec = self.objects.get(name)
        if spec is not None:
            return spec
        for candidate in self.objects.values():
            if candidate.singular == name:
                raise bad_request(f"object '{name}' not found. Did you mean '{candidate.plural}'?")
        raise bad_request(f"object '{name}' not found. eg: companies")

    def new_uuid(self) -> str:
        """A fresh version-4 UUID from the seeded generator."""
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

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
        """Rows in creation order (a test's view; the API orders by id without order_by)."""
        return [
            row
            for row in self._rows[spec.plural].values()
            if include_deleted or row["deletedAt"] is None
        ]

    def live_positions(self, spec: ObjectSpec) -> list[Any]:
        """The position of every live record (what the server's min/max position reads see)."""
        return [row["position"] for row in self.all_rows(spec, include_deleted=False)]

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
        resolve_positions([values], self.live_positions(spec), backfill=True)
        return self._insert(spec, values, stamp, actor)

    def create_many(
        self, spec: ObjectSpec, items: list[Any], *, upsert: bool, backfill_updates: bool = False
    ) -> list[dict[str, Any]]:
        """Validate a whole batch, then create (or upsert on id) every record; all or nothing.

        The upsert follows common-create-many-query-runner.service.ts
        (packages/twenty-server/src/engine/api/common/common-query-runners/
        common-create-many-query-runner/): ids are looked up ``withDeleted()``, a match is
        updated with ``deletedAt: null`` (restored), an id not found at all is inserted as sent.
        Current servers backfill ``position`` only for the inserts
        (``shouldBackfillPositionIfUndefined: !args.upsert`` then ``backfillPositionForInserts``);
        older ones (e.g. commit acc0f920) backfilled the whole batch, updates included:
        ``backfill_updates`` selects that.
        """
        batch = self._validate_batch(spec, items)
        if not upsert:
            self._check_new_ids(spec, batch)
            resolve_positions(batch, self.live_positions(spec), backfill=True)
            return [self._insert(spec, values, None, API_ACTOR) for values in batch]
        rows = self._rows[spec.plural]
        matches = [rows.get(values.get("id", "")) for values in batch]
        inserts = [values for values, row in zip(batch, matches, strict=True) if row is None]
        resolve_positions(batch, self.live_positions(spec), backfill=backfill_updates)
        resolve_positions(inserts, self.live_positions(spec), backfill=True)
        updated = [
            self._patch(spec, row, {**values, "deletedAt": None}, None)
            for values, row in zip(batch, matches, strict=True)
            if row is not None
        ]
        # The answer lists the updated records, then the inserted ones (the order of the
        # InsertResult's generatedMaps that fetchUpsertedRecords sorts by).
        return updated + [self._insert(spec, values, None, API_ACTOR) for values in inserts]

    def create_many_legacy(self, spec: ObjectSpec, items: list[Any]) -> list[dict[str, Any]]:
        """A batch create on a server that predates upsert (``?upsert=true`` is not read).

        The old handler (packages/twenty-server/src/engine/api/rest/core/handlers/
        rest-api-create-many.handler.ts, e.g. commit 75e796bb) checks each id with
        ``repository.exists`` and throws ``BadRequestException('Record already exists')``.
        ``exists`` skips soft-deleted rows, so such an id reaches the INSERT and fails on the
        primary key; the QueryFailedError becomes a 400 carrying Postgres' message
        (http-exception-handler.service.ts).
        """
        batch = self._validate_batch(spec, items)
        rows = self._rows[spec.plural]
        for values in batch:
            row = rows.get(values.get("id", ""))
            if row is not None and row["deletedAt"] is None:
                raise bad_request("Record already exists")
        self._check_new_ids(spec, batch)
        resolve_positions(batch, self.live_positions(spec), backfill=True)
        return [self._insert(spec, values, None, API_ACTOR) for values in batch]

    def update(
        self,
        spec: ObjectSpec,
        row: dict[str, Any],
        body: Any,
        *,
        stamp: datetime | None = None,
        stored: bool = False,
    ) -> dict[str, Any]:
        """Validate and merge a partial update into ``row``; bumps updatedAt, never backfills
        position (update-one runs DataArgProcessor with shouldBackfillPositionIfUndefined:
        false, common-update-one-query-runner.service.ts). ``stored``: see ``validate_fields``."""
        values = validate_fields(spec, body, allow_id=True, stored=stored)
        if "id" in values and values["id"] != row["id"]:
            raise bad_request("Field 'id' cannot be changed")
        resolve_positions([values], self.live_positions(spec), backfill=False)
        return self._patch(spec, row, values, stamp)

    def update_many(
        self, spec: ObjectSpec, rows: list[dict[str, Any]], body: Any
    ) -> list[dict[str, Any]]:
        """Apply the same partial update to every row (validated once, before any change); no
        position backfill (common-update-many-query-runner.service.ts passes false)."""
        values = validate_fields(spec, body, allow_id=False)
        resolve_positions([values], self.live_positions(spec), backfill=False)
        return [self._patch(spec, row, values, None) for row in rows]

    def soft_delete(self, spec: ObjectSpec, record_id: str) -> dict[str, Any]:
        """Set deletedAt on a live record."""
        row = self.find(spec, record_id, include_deleted=False)
        row["deletedAt"] = self.stamp(self.now())
        self._changed()
        return row

    def hard_delete(self, spec: ObjectSpec, record_id: str) -> dict[str, Any]:
        """Remove a record (live or soft-deleted) for good."""
        row = self.find(spec, record_id, include_deleted=True)
        del self._rows[spec.plural][row["id"]]
        self._changed()
        return row

    # -- internals -------------------------------------------------------------------------------

    def _validate_batch(self, spec: ObjectSpec, items: list[Any]) -> list[dict[str, Any]]:
        batch = [validate_fields(spec, item, allow_id=True) for item in items]
        ids = [values["id"] for values in batch if "id" in values]
        if len(ids) != len(set(ids)):
            raise bad_request(_duplicate_key(spec))
        return batch

    def _check_new_ids(self, spec: ObjectSpec, batch: list[dict[str, Any]]) -> None:
        for values in batch:
            if values.get("id") in self._rows[spec.plural]:
                raise bad_request(_duplicate_key(spec))

    def _new_id(self, spec: ObjectSpec) -> str:
        while True:
            candidate = self.new_uuid()
            if candidate not in self._rows[spec.plural]:
                return candidate

    def _insert(
        self,
        spec: ObjectSpec,
        values: dict[str, Any],
        stamp: datetime | None,
        actor: Mapping[str, Any],
    ) -> dict[str, Any]:
        moment = self.stamp(stamp if stamp is not None else self.now())
        row: dict[str, Any] = dict.fromkeys(spec.fields)
        row.update(
            id=values["id"] if "id" in values else self._new_id(spec),
            createdAt=moment,
            updatedAt=moment,
            createdBy=copy.deepcopy(dict(actor)),
        )
        row.update(values)
        for name, ftype in spec.custom_fields.items():
            if ftype in COMPOSITE_SUBFIELDS and row[name] is not None:
                row[name] = {sub: row[name].get(sub) for sub in COMPOSITE_SUBFIELDS[ftype]}
        self._rows[spec.plural][row["id"]] = row
        self._changed()
        return row

    def _patch(
        self,
        spec: ObjectSpec,
        row: dict[str, Any],
        values: Mapping[str, Any],
        stamp: datetime | None,
    ) -> dict[str, Any]:
        for name, value in values.items():
            ftype = spec.custom_fields.get(name, "")
            if ftype in COMPOSITE_SUBFIELDS and value is not None:
                # A composite's sub-fields are columns of their own: only the sent ones change.
                current = row.get(name) or dict.fromkeys(COMPOSITE_SUBFIELDS[ftype])
                row[name] = {**current, **value}
            else:
                row[name] = value
        row["updatedAt"] = self.stamp(stamp if stamp is not None else self.now())
        self._changed()
        return row


def _duplicate_key(spec: ObjectSpec) -> str:
    """Postgres' unique-violation text for the object's primary key, as a QueryFailedError's
    message reaches a REST client. The constraint name follows TypeORM's default naming
    (``PK_`` + sha1 of table and columns, 27 hex digits) for the ``_<singular>`` table of a
    custom object; the exact name on a real workspace is not confirmed."""
    digest = hashlib.sha1(f"_{spec.singular}_id".encode()).hexdigest()[:27]
    return f'duplicate key value violates unique constraint "PK_{digest}"'
