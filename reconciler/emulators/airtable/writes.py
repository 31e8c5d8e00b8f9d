"""Write requests: create, update (merge or replace), upsert and delete.

Every request is validated whole before anything is applied: one bad record (a bad value, an
unknown field or record id, an ambiguous upsert) fails the request and changes nothing. Fields
may be keyed by name or id, mixed freely ("Wherever the API accepts a field name, it's
interchangeable with the field id": ngocnicholas/airtable.net#42); ``returnFieldsByFieldId`` in
the body keys the answer by id (gtalarico/pyairtable#252).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconciler.emulators.airtable.listing import bad_request, flag
from reconciler.emulators.airtable.schema import AirtableError, unprocessable
from reconciler.emulators.airtable.store import StoredRecord, Table
from reconciler.emulators.airtable.values import BaseLookup, row_missing

MAX_RECORDS = 10
_COMMON_KEYS = frozenset({"typecast", "returnFieldsByFieldId"})


@dataclass(frozen=True)
class WriteContext:
    """What a write needs: the table, the server time of the write, id sources and the base."""

    table: Table
    now: datetime
    new_record_id: Callable[[], str]
    new_id: Callable[[str], str]
    base: BaseLookup


def not_found(record_id: str) -> AirtableError:
    """404 for a record named in the URL that the table does not hold (or no longer holds).

    Recorded from api.airtable.com: GET of a just-deleted record answers 404
    ``{"error": {"type": "MODEL_ID_NOT_FOUND", "message": "Record not found"}}`` (grouparoo/
    grouparoo plugins/@grouparoo/airtable/__tests__/fixtures/no-meta-access/export-records.js).
    The emulator answers the same to PATCH, PUT and DELETE of that URL (not confirmed).
    """
    del record_id  # the real message does not name the record
    return AirtableError(404, "MODEL_ID_NOT_FOUND", "Record not found")


@dataclass(frozen=True)
class _Flags:
    typecast: bool
    by_id: bool


def _body(body: Any, allowed: frozenset[str]) -> tuple[dict[str, Any], _Flags]:
    """The body as an object with only ``allowed`` keys, and its typecast and field-id flags."""
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(f"unknown body keys {unknown}")
    if not isinstance(body.get("typecast", False), bool | None):
        raise bad_request("typecast must be a boolean")
    by_id = flag("returnFieldsByFieldId", body.get("returnFieldsByFieldId"))
    return body, _Flags(bool(body.get("typecast")), by_id)


def _entries(body: dict[str, Any], keys: frozenset[str]) -> list[dict[str, Any]]:
    """The ``records`` array: 1 to 10 objects, each with ``fields`` and only ``keys``."""
    entries = body.get("records")
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_RECORDS:
        raise unprocessable(
            "INVALID_RECORDS", f"'records' must be an array of 1 to {MAX_RECORDS} records"
        )
    for entry in entries:
        if not isinstance(entry, dict) or "fields" not in entry or set(entry) - keys:
            raise unprocessable("INVALID_RECORDS", f"invalid record {entry!r}")
    return entries


def existing(table: Table, record_id: Any, *, in_body: bool = False) -> StoredRecord:
    """The record an id names: 404 when the id came in the URL, 422 ``ROW_DOES_NOT_EXIST``
    when it came in a request body (batch update, upsert)."""
    if not isinstance(record_id, str):
        raise unprocessable("INVALID_RECORDS", f"invalid record id {record_id!r}")
    record = table.records.get(record_id)
    if record is None:
        raise row_missing(record_id) if in_body else not_found(record_id)
    return record


def create_records(ctx: WriteContext, body: Any) -> dict[str, Any]:
    """``POST /v0/{base}/{table}``: one record (``fields``) or a batch (``records``)."""
    body, flags = _body(body, _COMMON_KEYS | {"records", "fields"})
    table = ctx.table
    if ("fields" in body) == ("records" in body):
        raise unprocessable(
            "INVALID_REQUEST_MISSING_FIELDS", "Send either 'fields' or 'records', not both"
        )
    entries = [body] if "fields" in body else _entries(body, frozenset({"fields"}))
    batch = [
        table.coerce_fields(entry["fields"], ctx.base, typecast=flags.typecast) for entry in entries
    ]
    created = []
    for values in batch:
        table.commit_choices(values, ctx.new_id)
        created.append(table.insert(ctx.new_record_id(), values, ctx.now))
    rendered = [table.render(record, by_id=flags.by_id) for record in created]
    return rendered[0] if "fields" in body else {"records": rendered}


def update_record(ctx: WriteContext, record_id: str, body: Any, *, replace: bool) -> dict[str, Any]:
    """``PATCH``/``PUT /v0/{base}/{table}/{recordId}``: update one record."""
    body, flags = _body(body, _COMMON_KEYS | {"fields"})
    record = existing(ctx.table, record_id)
    values = ctx.table.coerce_fields(body.get("fields"), ctx.base, typecast=flags.typecast)
    ctx.table.commit_choices(values, ctx.new_id)
    ctx.table.apply(record, values, replace=replace, at=ctx.now)
    return ctx.table.render(record, by_id=flags.by_id)


def _merge_on(table: Table, upsert: Any) -> list[str] | None:
    """The ``performUpsert.fieldsToMergeOn`` fields (names or ids) as field ids, or None."""
    if upsert is None:
        return None
    if not isinstance(upsert, dict) or set(upsert) != {"fieldsToMergeOn"}:
        raise bad_request("performUpsert must be {fieldsToMergeOn: [...]}")
    names = upsert["fieldsToMergeOn"]
    if not isinstance(names, list) or not 1 <= len(names) <= 3:
        raise bad_request("fieldsToMergeOn must list 1 to 3 fields")
    fields = [table.field(name) if isinstance(name, str) else None for name in names]
    if any(field is None or field.computed for field in fields):
        raise bad_request(f"fieldsToMergeOn cannot use {names!r}")
    return [field.id for field in fields if field is not None]


def _target(
    table: Table, entry: dict[str, Any], values: dict[str, Any], merge_on: list[str] | None
) -> StoredRecord | None:
    """The record an update entry addresses (None: an upsert that creates).

    https://airtable.com/developers/web/api/update-multiple-records: "If no record with the
    given id exists, the request will fail"; "If multiple matches are found, the request will
    fail."
    """
    if "id" in entry:
        return existing(table, entry["id"], in_body=True)
    if merge_on is None:
        raise unprocessable("INVALID_RECORDS", "each record to update needs an 'id'")
    missing = [table.columns[key].name for key in merge_on if key not in values]
    if missing:
        raise unprocessable("INVALID_RECORDS", f"record is missing fieldsToMergeOn {missing}")
    matches = table.matching({key: values[key] for key in merge_on})
    if len(matches) > 1:
        raise unprocessable(
            "INVALID_RECORDS",
            f"{len(matches)} records match the fieldsToMergeOn values: ambiguous upsert",
        )
    return matches[0] if matches else None


def update_records(ctx: WriteContext, body: Any, *, replace: bool) -> dict[str, Any]:
    """``PATCH``/``PUT /v0/{base}/{table}``: update a batch, or upsert with ``performUpsert``."""
    body, flags = _body(body, _COMMON_KEYS | {"records", "performUpsert"})
    table = ctx.table
    merge_on = _merge_on(table, body.get("performUpsert"))
    entries = _entries(body, frozenset({"id", "fields"}))
    plans: list[tuple[StoredRecord | None, dict[str, Any]]] = []
    for entry in entries:
        values = table.coerce_fields(entry["fields"], ctx.base, typecast=flags.typecast)
        plans.append((_target(table, entry, values, merge_on), values))
    _reject_duplicates(plans, merge_on)
    written: list[StoredRecord] = []
    created: list[str] = []
    for target, values in plans:
        table.commit_choices(values, ctx.new_id)
        if target is None:
            target = table.insert(ctx.new_record_id(), values, ctx.now)
            created.append(target.id)
        else:
            table.apply(target, values, replace=replace, at=ctx.now)
        written.append(target)
    result: dict[str, Any] = {
        "records": [table.render(record, by_id=flags.by_id) for record in written]
    }
    if merge_on is not None:
        result["createdRecords"] = created
        result["updatedRecords"] = [r.id for r in written if r.id not in created]
    return result


def _reject_duplicates(
    plans: list[tuple[StoredRecord | None, dict[str, Any]]], merge_on: list[str] | None
) -> None:
    """Two entries of one request may not address the same record (or create the same key)."""
    seen: set[str] = set()
    for target, values in plans:
        if target is not None:
            key = f"id:{target.id}"
        else:
            key = "new:" + repr([values.get(name) for name in merge_on or []])
        if key in seen:
            raise unprocessable("INVALID_RECORDS", "two records in the request address one record")
        seen.add(key)


def delete_records(table: Table, query: dict[str, list[str]]) -> dict[str, Any]:
    """``DELETE /v0/{base}/{table}?records[]=...``: delete 1 to 10 records."""
    unknown = sorted(set(query) - {"records[]"})
    if unknown:
        raise bad_request(f"unknown query parameters {unknown}")
    ids = query.get("records[]", [])
    if not 1 <= len(ids) <= MAX_RECORDS or len(set(ids)) != len(ids):
        raise unprocessable(
            "INVALID_RECORDS", f"records[] must name 1 to {MAX_RECORDS} distinct records"
        )
    for record_id in ids:
        existing(table, record_id)
    for record_id in ids:
        del table.records[record_id]
    return {"records": [{"id": record_id, "deleted": True} for record_id in ids]}


def delete_record(table: Table, record_id: str) -> dict[str, Any]:
    """``DELETE /v0/{base}/{table}/{recordId}``."""
    existing(table, record_id)
    del table.records[record_id]
    return {"id": record_id, "deleted": True}
