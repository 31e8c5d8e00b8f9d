"""The emulated base's content and the direct Python API tests use to set up scenarios.

Everything here works without HTTP, rate limits or the request log; :class:`AirtableEmulator`
mixes it in and serves the same tables over HTTP.
"""

from __future__ import annotations

import copy
import random
import string
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from reconciler.emulators.airtable.schema import (
    COMPUTED_TYPES,
    FIELD_TYPES,
    FieldDef,
    build_options,
)
from reconciler.emulators.airtable.store import Table
from reconciler.emulators.airtable.values import computation_failure, truncate_ms
from reconciler.emulators.airtable.writes import WriteContext, delete_record, existing
from reconciler.emulators.base import Clock

_ALPHANUMERIC = string.ascii_letters + string.digits
# Cells of these types are maintained by the server itself and cannot be set even directly.
_SERVER_MAINTAINED = frozenset({"lastModifiedTime", "createdTime", "autoNumber"})
FieldSpec = str | Mapping[str, Any]

DEFAULT_COLLABORATORS: tuple[dict[str, str], ...] = (
    {"id": "usrAdaLovelace001", "email": "ada@example.com", "name": "Ada Lovelace"},
    {"id": "usrGraceHopper002", "email": "grace@example.com", "name": "Grace Hopper"},
)


class Workspace:
    """One base's tables, records and collaborators, with the direct Python API."""

    lock: Any  # provided by EmulatorServer
    clock: Clock

    def _init_workspace(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._tables: dict[str, Table] = {}
        self.collaborators: list[dict[str, str]] = [dict(c) for c in DEFAULT_COLLABORATORS]

    # -- ids and lookups -------------------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        """A fresh Airtable-style id: the prefix and 14 letters or digits."""
        return prefix + "".join(self._rng.choices(_ALPHANUMERIC, k=14))

    def _new_record_id(self) -> str:
        while True:
            record_id = self.new_id("rec")
            if all(record_id not in table.records for table in self._tables.values()):
                return record_id

    def record_exists(self, table_id: str, record_id: str) -> bool:
        """Whether table ``table_id`` holds record ``record_id``."""
        table = self._tables.get(table_id)
        return table is not None and record_id in table.records

    def collaborator(self, ref: Any) -> dict[str, Any] | None:
        """The collaborator a write names by ``{id}``, ``{email}`` or a bare id, or None."""
        if isinstance(ref, str):
            ref = {"id": ref}
        if not isinstance(ref, Mapping) or len(ref) != 1 or set(ref) - {"id", "email"}:
            return None
        key, value = next(iter(ref.items()))
        found = next((c for c in self.collaborators if c[key] == value), None)
        return None if found is None else dict(found)

    def _find_table(self, key: str) -> Table | None:
        if key in self._tables:
            return self._tables[key]
        return next((t for t in self._tables.values() if t.name == key), None)

    def table(self, key: str) -> Table:
        """The table with this name or id (KeyError if none)."""
        found = self._find_table(key)
        if found is None:
            raise KeyError(key)
        return found

    def _now(self) -> datetime:
        return truncate_ms(self.clock.now())

    def _context(self, table: Table, modified_at: datetime | None = None) -> WriteContext:
        at = self._now() if modified_at is None else truncate_ms(modified_at)
        return WriteContext(table, at, self._new_record_id, self.new_id, self)

    # -- schema ----------------------------------------------------------------------------------

    def add_table(
        self, name: str, fields: Mapping[str, FieldSpec], *, description: str | None = None
    ) -> str:
        """Add a table; returns its id. The first field is the primary field.

        Each field is a type name (``"singleLineText"``) or a mapping ``{"type": ...,
        "options": {...}, "description": ...}``: select ``choices`` as names or ``{name,
        color}``; a ``lastModifiedTime``'s ``referencedFieldIds`` as names or ids of this
        table's fields and its ``result`` as ``"date"`` or ``"dateTime"``.
        """
        if not fields:
            raise ValueError("a table needs at least one field")
        with self.lock:
            if self._find_table(name) is not None:
                raise ValueError(f"table {name!r} already exists")
            table = Table(self.new_id("tbl"), name, [], [self._grid_view()])
            table.description = description
            specs = {key: _spec(spec) for key, spec in fields.items()}
            ids = {key: self.new_id("fld") for key in specs}
            for key, spec in specs.items():
                self._check_type(spec["type"])
                table.add_field(FieldDef(ids[key], key, spec["type"]))
            for key, spec in specs.items():
                self._configure(table, table.columns[ids[key]], spec)
            self._tables[table.id] = table
            return table.id

    def add_field(
        self,
        table: str,
        name: str,
        type: str,
        options: Mapping[str, Any] | None = None,
        *,
        description: str | None = None,
    ) -> str:
        """Add a field to an existing table (as a user would in the UI); returns its id."""
        self._check_type(type)
        with self.lock:
            found = self.table(table)
            column = FieldDef(self.new_id("fld"), name, type)
            spec = {"type": type, "options": options, "description": description}
            self._configure(found, column, spec)
            found.add_field(column)
            return column.id

    def rename_field(self, table: str, old_name: str, new_name: str) -> None:
        """Rename a field as a user would: its id and values stay, the old name is unknown."""
        with self.lock:
            self.table(table).rename(old_name, new_name)

    def field_id(self, table: str, name: str) -> str:
        """The id of a field (by its current name)."""
        with self.lock:
            return self.table(table).field(name).id

    @staticmethod
    def _check_type(kind: str) -> None:
        if kind not in FIELD_TYPES:
            raise ValueError(f"unsupported field type {kind!r}; known: {sorted(FIELD_TYPES)}")

    def _configure(self, table: Table, column: FieldDef, spec: Mapping[str, Any]) -> None:
        resolve = lambda ref: table.field(ref).id  # noqa: E731
        column.options = build_options(column.type, spec.get("options"), self.new_id, resolve)
        column.description = spec.get("description")

    def _grid_view(self) -> dict[str, Any]:
        # Every real table has at least one view; a new table's is "Grid view" (get-base-schema
        # example at https://airtable.com/developers/web/api/get-base-schema).
        return {"id": self.new_id("viw"), "name": "Grid view", "type": "grid"}

    # -- records ---------------------------------------------------------------------------------

    def create(
        self,
        table: str,
        fields: dict[str, Any],
        *,
        modified_at: datetime | None = None,
        validate: bool = True,
        typecast: bool = False,
    ) -> dict[str, Any]:
        """Create a record as a user would; ``validate=False`` stores values unchecked."""
        with self.lock:
            ctx = self._context(self.table(table), modified_at)
            values = ctx.table.coerce_fields(fields, self, typecast=typecast, validate=validate)
            if validate:
                ctx.table.commit_choices(values, self.new_id)
            return ctx.table.render(ctx.table.insert(ctx.new_record_id(), values, ctx.now))

    def update(
        self,
        table: str,
        record_id: str,
        fields: dict[str, Any],
        *,
        modified_at: datetime | None = None,
        validate: bool = True,
        typecast: bool = False,
    ) -> dict[str, Any]:
        """Edit a record as a user would (merge; None clears). ``modified_at`` sets the
        modified time explicitly; otherwise it moves to the clock's now if a value changed."""
        with self.lock:
            ctx = self._context(self.table(table), modified_at)
            record = existing(ctx.table, record_id)
            values = ctx.table.coerce_fields(fields, self, typecast=typecast, validate=validate)
            if validate:
                ctx.table.commit_choices(values, self.new_id)
            forced = modified_at is not None
            ctx.table.apply(record, values, replace=False, at=ctx.now, force_time=forced)
            return ctx.table.render(record)

    def set_computed(self, table: str, record_id: str, field: str, value: Any) -> None:
        """Put a value in a computed cell (formula, rollup, lookup, count, aiText, button,
        createdBy, lastModifiedBy), as Airtable would compute it. Like real computed values,
        it does not move any last-modified time. A formula or rollup holds a value (a number,
        text, a list) or, when its computation failed, one of ``FORMULA_ERROR``,
        ``NOT_A_NUMBER``, ``INFINITE``: never another object."""
        with self.lock:
            found = self.table(table)
            column = found.field(field)
            if column.type not in COMPUTED_TYPES or column.type in _SERVER_MAINTAINED:
                raise ValueError(
                    f"{column.name!r} ({column.type}) is not a settable computed field"
                )
            if (
                column.type in ("formula", "rollup")
                and isinstance(value, dict)
                and not computation_failure(value)
            ):
                raise ValueError(
                    f"{column.name!r} ({column.type}) holds a value or a failed computation's "
                    f"error, not {value!r}"
                )
            record = existing(found, record_id)
            if value is None:
                record.values.pop(column.id, None)
            else:
                record.values[column.id] = copy.deepcopy(value)

    def delete(self, table: str, record_id: str) -> None:
        """Delete a record (AirtableError 404 if it does not exist)."""
        with self.lock:
            delete_record(self.table(table), record_id)

    def get(self, table: str, record_id: str) -> dict[str, Any] | None:
        """A record in the API shape, or None."""
        with self.lock:
            found = self.table(table)
            record = found.records.get(record_id)
            return None if record is None else found.render(record)

    def records(self, table: str) -> list[dict[str, Any]]:
        """Every record of a table in the API shape, in creation order."""
        with self.lock:
            found = self.table(table)
            return [found.render(record) for record in found.records.values()]


def _spec(spec: FieldSpec) -> dict[str, Any]:
    """A field definition as a mapping with at least ``type``."""
    if isinstance(spec, str):
        return {"type": spec}
    if not isinstance(spec.get("type"), str):
        raise ValueError(f"a field definition needs a type, got {spec!r}")
    unknown = set(spec) - {"type", "options", "description"}
    if unknown:
        raise ValueError(f"unknown field definition keys {sorted(unknown)}")
    return dict(spec)
