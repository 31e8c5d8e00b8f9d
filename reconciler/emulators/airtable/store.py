"""The emulator's in-memory tables and records."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reconciler.emulators.airtable.schema import (
    FieldDef,
    coerce,
    is_empty,
    render,
    unknown_field,
    unprocessable,
)

Getter = Callable[["StoredRecord"], Any]


@dataclass
class StoredRecord:
    """One record: its id, server timestamps, autonumber and non-empty stored values."""

    id: str
    created: datetime
    modified: datetime
    number: int
    values: dict[str, Any] = field(default_factory=dict)


class Table:
    """A table: its fields (addressable by name or id) and its records."""

    def __init__(self, table_id: str, name: str, fields: list[FieldDef]) -> None:
        self.id = table_id
        self.name = name
        self.fields: dict[str, FieldDef] = {f.name: f for f in fields}
        self._by_id: dict[str, FieldDef] = {f.id: f for f in fields}
        self.records: dict[str, StoredRecord] = {}
        self._next_number = 1
        self._getters = {f.name: _make_getter(f) for f in fields}

    # -- fields ----------------------------------------------------------------------------------

    def field(self, key: str) -> FieldDef:
        """The field with this name or id; 422 ``UNKNOWN_FIELD_NAME`` otherwise."""
        found = self.fields.get(key) or self._by_id.get(key)
        if found is None:
            raise unknown_field(key)
        return found

    def getter(self, name: str) -> Getter:
        """A function reading the typed value of field ``name`` from a record (None: empty)."""
        return self._getters[name]

    # -- reading ---------------------------------------------------------------------------------

    def render(self, record: StoredRecord, only: list[FieldDef] | None = None) -> dict[str, Any]:
        """A record in the API shape, empty values omitted, optionally restricted to ``only``."""
        wanted = only if only is not None else list(self.fields.values())
        fields: dict[str, Any] = {}
        for column in wanted:
            value = self.getter(column.name)(record)
            if not is_empty(value):
                fields[column.name] = render(value)
        return {"id": record.id, "createdTime": render(record.created), "fields": fields}

    # -- writing ---------------------------------------------------------------------------------

    def coerce_fields(
        self, fields: Any, *, typecast: bool = False, validate: bool = True
    ) -> dict[str, Any]:
        """Validate a ``fields`` mapping; returns {field name: stored value or None}.

        With ``validate`` false, values are stored as given (to simulate bad data), but unknown
        and computed fields are still refused.
        """
        if not isinstance(fields, Mapping):
            raise unprocessable("INVALID_RECORDS", "Each record needs a 'fields' object")
        result: dict[str, Any] = {}
        for key, value in fields.items():
            column = self.field(str(key))
            if validate or column.computed:
                result[column.name] = coerce(column, value, typecast=typecast)
            else:
                result[column.name] = None if is_empty(value) else value
        return result

    def insert(self, record_id: str, values: dict[str, Any], at: datetime) -> StoredRecord:
        """Add a record with these (already coerced) values, created and modified ``at``."""
        stored = {name: value for name, value in values.items() if value is not None}
        record = StoredRecord(record_id, at, at, self._next_number, stored)
        self._next_number += 1
        self.records[record_id] = record
        return record

    def apply(
        self,
        record: StoredRecord,
        values: dict[str, Any],
        *,
        replace: bool,
        at: datetime,
        force_time: bool = False,
    ) -> bool:
        """Write coerced values (merge, or replace every writable field); returns whether
        anything changed. The modified time moves to ``at`` only on a change (or when forced).
        """
        updated = {} if replace else dict(record.values)
        for name, value in values.items():
            if value is None:
                updated.pop(name, None)
            else:
                updated[name] = value
        changed = updated != record.values
        record.values = updated
        if changed or force_time:
            record.modified = at
        return changed

    def matching(self, criteria: dict[str, Any]) -> list[StoredRecord]:
        """Records whose stored values equal every criterion (None matches an empty cell)."""
        getters = [(self.getter(name), value) for name, value in criteria.items()]
        return [
            record
            for record in self.records.values()
            if all(getter(record) == value for getter, value in getters)
        ]


def _make_getter(column: FieldDef) -> Getter:
    """The typed-value reader of one field: computed fields come from the record itself."""
    if column.type == "lastModifiedTime":
        return lambda record: record.modified
    if column.type == "createdTime":
        return lambda record: record.created
    if column.type == "autoNumber":
        return lambda record: record.number
    name = column.name
    return lambda record: record.values.get(name)
