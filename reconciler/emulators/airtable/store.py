"""The emulator's in-memory tables and records.

Values are stored by field id, as Airtable itself keys them: field ids "survive renames" and
"IDs and names can be used interchangeably in API requests" (Airtable's 2022 API changelog,
quoted in gtalarico/pyairtable#158), so a rename only changes what the name resolves to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reconciler.emulators.airtable.schema import (
    SELECT_TYPES,
    FieldDef,
    add_choice,
    unknown_field,
    unprocessable,
)
from reconciler.emulators.airtable.values import (
    BaseLookup,
    coerce,
    computed_error,
    is_empty,
    render,
)

Getter = Callable[["StoredRecord"], Any]


@dataclass
class StoredRecord:
    """One record: id, server timestamps, autonumber, non-empty stored values by field id, and
    when each field's value last changed (what a last-modified-time field watching only some
    fields reads)."""

    id: str
    created: datetime
    modified: datetime
    number: int
    values: dict[str, Any] = field(default_factory=dict)
    touched: dict[str, datetime] = field(default_factory=dict)


class Table:
    """A table: its fields (addressable by name or id) and its records."""

    def __init__(
        self,
        table_id: str,
        name: str,
        fields: list[FieldDef],
        views: list[dict[str, Any]] | None = None,
    ) -> None:
        self.id = table_id
        self.name = name
        self.views: list[dict[str, Any]] = list(views or [])
        self.description: str | None = None
        self.columns: dict[str, FieldDef] = {}
        self._by_name: dict[str, FieldDef] = {}
        self.records: dict[str, StoredRecord] = {}
        self._next_number = 1
        for column in fields:
            self.add_field(column)

    # -- fields ----------------------------------------------------------------------------------

    @property
    def fields(self) -> dict[str, FieldDef]:
        """The fields by their current name, in table order."""
        return {column.name: column for column in self.columns.values()}

    def add_field(self, column: FieldDef) -> None:
        """Add a field (its name must be new)."""
        if column.name in self._by_name or column.id in self.columns:
            raise ValueError(f"field {column.name!r} already exists in {self.name!r}")
        self.columns[column.id] = column
        self._by_name[column.name] = column

    def rename(self, old: str, new: str) -> FieldDef:
        """Rename a field; its id, values and options stay. Returns the field."""
        column = self.field(old)
        if new in self._by_name and self._by_name[new] is not column:
            raise ValueError(f"field {new!r} already exists in {self.name!r}")
        del self._by_name[column.name]
        column.name = new
        self._by_name[new] = column
        return column

    def field(self, key: str) -> FieldDef:
        """The field with this name or id; 422 ``UNKNOWN_FIELD_NAME`` otherwise."""
        found = self._by_name.get(key) or self.columns.get(key)
        if found is None:
            raise unknown_field(key)
        return found

    def getter(self, key: str) -> Getter:
        """A function reading the typed value of a field (by name or id) from a record."""
        return _make_getter(self.field(key))

    def formula_getter(self, name: str) -> Getter | None:
        """The reader of ``{name}`` in a formula; field ids are not accepted there (None).

        Airtable's support article "Using filterByFormula or sort parameters" says field ids
        cannot be used in filterByFormula, and a try answers 422 INVALID_FILTER_BY_FORMULA
        "Unknown field names: fld…" (gtalarico/pyairtable#158).
        """
        column = self._by_name.get(name)
        return None if column is None else _make_getter(column)

    # -- reading ---------------------------------------------------------------------------------

    def render(
        self, record: StoredRecord, only: list[FieldDef] | None = None, *, by_id: bool = False
    ) -> dict[str, Any]:
        """A record in the API shape, empty values omitted, keyed by field name (or id when
        ``returnFieldsByFieldId``), optionally restricted to ``only``."""
        wanted = only if only is not None else list(self.columns.values())
        fields: dict[str, Any] = {}
        for column in wanted:
            value = _make_getter(column)(record)
            if not is_empty(value):
                fields[column.id if by_id else column.name] = render(value)
        return {"id": record.id, "createdTime": render(record.created), "fields": fields}

    # -- writing ---------------------------------------------------------------------------------

    def coerce_fields(
        self, fields: Any, base: BaseLookup, *, typecast: bool = False, validate: bool = True
    ) -> dict[str, Any]:
        """Validate a ``fields`` mapping keyed by names and/or ids; returns {field id: stored
        value or None}.

        With ``validate`` false, values are stored as given (to simulate bad data), but unknown
        and computed fields are still refused.
        """
        if not isinstance(fields, Mapping):
            raise unprocessable("INVALID_RECORDS", "Each record needs a 'fields' object")
        result: dict[str, Any] = {}
        for key, value in fields.items():
            column = self.field(str(key))
            if column.id in result:
                # Undocumented: the emulator refuses one field given twice (by name and by id).
                raise unprocessable(
                    "INVALID_REQUEST_UNKNOWN",
                    f'Invalid request: field "{column.name}" is given more than once',
                )
            if validate:
                result[column.id] = coerce(column, value, typecast=typecast, base=base)
            elif column.computed:
                raise computed_error(column)
            else:
                result[column.id] = None if is_empty(value) else value
        return result

    def commit_choices(self, values: dict[str, Any], new_id: Callable[[str], str]) -> None:
        """Create the select options a typecast write named that do not exist yet."""
        for field_id, value in values.items():
            column = self.columns[field_id]
            if column.type not in SELECT_TYPES or value is None:
                continue
            names = value if isinstance(value, list) else [value]
            for name in names:
                if isinstance(name, str) and name not in column.choice_names():
                    add_choice(column, name, new_id)

    def insert(self, record_id: str, values: dict[str, Any], at: datetime) -> StoredRecord:
        """Add a record with these (already coerced) values, created and modified ``at``."""
        stored = {key: value for key, value in values.items() if value is not None}
        record = StoredRecord(record_id, at, at, self._next_number, stored)
        record.touched = {key: at for key in stored}
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
        anything changed. Modified times move to ``at`` only for what changed (or, when forced,
        for every field written). That a cell written its own value moves nothing is
        **unconfirmed** (no source says whether Airtable counts it as an edit; the tool holds
        either way: docs/fidelity-airtable.md, "Field types and values").
        """
        updated = {} if replace else dict(record.values)
        for key, value in values.items():
            if value is None:
                updated.pop(key, None)
            else:
                updated[key] = value
        keys = set(updated) | set(record.values)
        changed = {key for key in keys if updated.get(key) != record.values.get(key)}
        record.values = updated
        for key in set(values) if force_time else changed:
            record.touched[key] = at
        if changed or force_time:
            record.modified = at
        return bool(changed)

    def matching(self, criteria: dict[str, Any]) -> list[StoredRecord]:
        """Records whose stored values equal every criterion (by field id; None: empty)."""
        getters = [(self.getter(key), value) for key, value in criteria.items()]
        return [
            record
            for record in self.records.values()
            if all(getter(record) == value for getter, value in getters)
        ]


def _make_getter(column: FieldDef) -> Getter:
    """The typed-value reader of one field: computed times come from the record itself."""
    if column.type in ("lastModifiedTime", "createdTime"):
        return _time_getter(column)
    if column.type == "autoNumber":
        return lambda record: record.number
    key = column.id
    return lambda record: record.values.get(key)


def _time_getter(column: FieldDef) -> Getter:
    """Created/last-modified time: a date when ``result.type`` is ``date``; a last-modified
    time with ``referencedFieldIds`` follows only those fields.

    Field model (https://airtable.com/developers/web/api/field-model#lastmodifiedtime):
    ``referencedFieldIds`` are "the fields to check the last modified time of"; empty means every
    editable field. Before any watched field changes, the emulator shows the creation time.
    """
    watched = list(column.options.get("referencedFieldIds") or [])
    date_only = column.date_only

    def read(record: StoredRecord) -> Any:
        if column.type == "createdTime":
            moment = record.created
        elif not watched:
            moment = record.modified
        else:
            times = [record.touched[key] for key in watched if key in record.touched]
            moment = max(times, default=record.created)
        return moment.date() if date_only else moment

    return read
