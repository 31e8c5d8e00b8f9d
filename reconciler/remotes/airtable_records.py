"""An Airtable record as the engine sees it: its fields read by id and typed by configured name,
its modified time, its natural key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from reconciler.errors import MappingError, RecordError
from reconciler.model import FieldSpec, Mapping, canonical, parse_datetime
from reconciler.model.values import DATE_RE
from reconciler.records import RemoteRecord
from reconciler.remotes.airtable_fields import TableSchema, error_value
from reconciler.remotes.base import typed_record

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def typed(mapping: Mapping, schema: TableSchema, raw: dict[str, Any]) -> RemoteRecord:
    """A record read by field id, typed by configured name; a modified time that cannot be read
    fails the record alone (a date-only one stops the mapping: see :func:`stamp`)."""
    fields = raw.get("fields") or {}
    by_name = {name: fields[info.id] for name, info in schema.fields.items() if info.id in fields}
    errored = _computed_errors(schema, by_name)
    try:
        modified = stamp(mapping, by_name.get(mapping.modified_field), raw)
    except RecordError as exc:
        return RemoteRecord(raw["id"], EPOCH, {}, error=str(exc))
    record = typed_record(mapping, raw["id"], modified, by_name)
    return replace(record, errored=errored) if errored else record


def stamp(mapping: Mapping, value: Any, raw: dict[str, Any]) -> datetime:
    """A record's modified time: the modified field's value, or its creation time when that is
    empty.

    Raises:
        MappingError: the value is a date without a time (the field's formatting), which no
            window can follow.
        RecordError: it cannot be read as a date-time.
    """
    name = mapping.modified_field
    moment = value if value is not None else raw.get("createdTime")
    if isinstance(moment, str) and DATE_RE.fullmatch(moment.strip()):
        raise MappingError(
            f"the modified field {name!r} holds a date without a time ({moment!r}): set its "
            "formatting to include a time"
        )
    try:
        if isinstance(moment, str):
            return parse_datetime(moment)
    except ValueError:
        pass
    raise RecordError(f"{name}: cannot read {moment!r} as a modified time")


def key_of(
    schema: TableSchema, specs: Sequence[FieldSpec], raw: dict[str, Any]
) -> tuple[Any, ...] | None:
    """A record's natural key, from its canonical values (None when one cannot be read)."""
    fields = raw.get("fields") or {}
    try:
        return tuple(
            canonical(spec, fields.get(schema.fields[spec.remote].id), from_remote=True)
            for spec in specs
        )
    except RecordError:
        return None


def keyed_by_id(raw: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """A record with the fields ``ids`` names (name -> field id) keyed by id."""
    fields = raw.get("fields") or {}
    return {**raw, "fields": {ids.get(key, key): value for key, value in fields.items()}}


def _computed_errors(schema: TableSchema, by_name: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The formulas and rollups of a record that hold an error instead of a value (see
    :func:`error_value`), each with its error, taken out of ``by_name``: they read as empty, and
    the rest of the record is synced. A formula's result is not the record's data but the
    base's computation, which the sync cannot mend; failing the record would keep every other
    field of it out until the formula is mended, and then until a full read, since mending a
    formula moves no record's modified time."""
    found = []
    for name in schema.computing:
        text = error_value(by_name.get(name))
        if text is not None:
            del by_name[name]
            found.append((name, text))
    return tuple(found)


def check_keyed_by_id(schema: TableSchema, page: list[dict[str, Any]]) -> None:
    """Stop the mapping when a listing's fields come keyed by name, not by the field ids it
    asked for (``returnFieldsByFieldId``, shared docs ``airtable-api.md`` "Reading"): read
    by id, every field would look empty ("a missing key means empty"), and the pull would
    put NULLs over the local values. The parameter holds for a whole answer, so its first
    record with fields shows it (a pull reads every page through here). A listing asks for
    the mapped fields by id (``fields[]``), so an answer keyed by id holds only those.

    Raises:
        MappingError: a record with fields, none of them keyed by a field id.
    """
    keys = next((list(raw["fields"]) for raw in page if raw.get("fields")), [])
    known = {info.id for info in schema.fields.values()}
    if keys and not any(key in known for key in keys):
        raise MappingError(
            f"Airtable answered the listing of {schema.table_name!r} with fields keyed "
            "by name, not by field id (returnFieldsByFieldId=true was not honoured): its "
            "records were not read, as every field would have read as empty"
        )
