"""Batch PATCHes: their body, and batches that name records deleted in Airtable.

A batch update naming a deleted record answers 422 ``ROW_DOES_NOT_EXIST`` ("Record ID rec… does
not exist in this table") and applies nothing (domdomegg/airtable-mcp-server#28); a 404 with
the API's JSON error body (``MODEL_ID_NOT_FOUND``, a bare ``NOT_FOUND``: "404 record gone" among
the error answers of the shared docs ``airtable-api.md``) is taken the same way. The deleted
record must end ``gone`` (never recreated, never retried) and the others must still be written.
The message names one id: the first time it is taken at its word and the batch sent again
without it (one request more); if the batch is refused again, one listing of its ids finds every
deleted record at once (two requests more). So one deleted record costs one request, several
cost three, whatever their number.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.model import Mapping
from reconciler.records import RemoteRecord, WriteResult
from reconciler.remotes.airtable_fields import TableSchema
from reconciler.remotes.airtable_http import ROW_DOES_NOT_EXIST, AirtableRejected, NotFound
from reconciler.remotes.airtable_types import has_selects
from reconciler.remotes.base import PushItem, wire_fields

RECORD_IDS = re.compile(r"rec[A-Za-z0-9]{14}")
Patch = Callable[[Sequence[PushItem]], list[WriteResult]]
Fetch = Callable[[Sequence[str]], dict[str, RemoteRecord]]


def patch_skipping_gone(batch: Sequence[PushItem], patch: Patch, fetch: Fetch) -> list[WriteResult]:
    """Write a batch; records Airtable says do not exist come back ``gone``, the rest written.

    Raises:
        AirtableRejected: the batch was refused for another reason (the caller splits it), or
            Airtable keeps saying a record does not exist while a listing shows them all.
        NotFound: the same for a 404 (it stops the mapping, as any 404 does), also when the
            listing of the batch's ids fails too (the table itself is gone, say).
    """
    gone: list[WriteResult] = []
    live = list(batch)
    listed = False
    while live:
        try:
            return gone + patch(live)
        except (AirtableRejected, NotFound) as exc:
            if not _may_be_gone(exc):
                raise
            missing = _named(exc, live) if not gone else set()
            if not missing and not listed:
                listed = True
                missing = _unlisted(exc, live, fetch)
            if not missing:
                raise  # not about the batch's own records (a link to a deleted record, say)
        gone += [WriteResult(i.local_id, gone=True) for i in live if str(i.remote_id) in missing]
        live = [i for i in live if str(i.remote_id) not in missing]
    return gone


def _unlisted(exc: AirtableRejected | NotFound, live: Sequence[PushItem], fetch: Fetch) -> set[str]:
    """The batch's records a listing of their ids does not show. When that listing fails, a
    404 was not about records: it is raised as it stands, as every other 404 is."""
    try:
        found = fetch([str(item.remote_id) for item in live])
    except ReconcilerError as failed:
        if isinstance(exc, NotFound):
            raise exc from failed
        raise
    return {str(i.remote_id) for i in live if str(i.remote_id) not in found}


def _may_be_gone(exc: AirtableRejected | NotFound) -> bool:
    """Whether a refusal may mean records of the batch are deleted: 422 ``ROW_DOES_NOT_EXIST``,
    or a 404 the API answered itself (a proxy's page has no error type)."""
    if isinstance(exc, NotFound):
        return bool(exc.kind)
    return exc.kind == ROW_DOES_NOT_EXIST


def _named(exc: AirtableRejected | NotFound, live: Sequence[PushItem]) -> set[str]:
    """The batch's records the refusal names (a linked record it names is not one of them)."""
    return {str(item.remote_id) for item in live} & set(RECORD_IDS.findall(str(exc)))


def payload(mapping: Mapping, schema: TableSchema, batch: Sequence[PushItem]) -> dict[str, Any]:
    """The PATCH body: fields keyed by id (answered by name: see ``AirtableRemote._patch``);
    ``typecast`` when a select is written, so a value that is not one of its options yet
    becomes one."""
    ids = {name: info.id for name, info in schema.fields.items()}
    wired = [(item.remote_id, wire_fields(mapping, item.values)) for item in batch]
    payload: dict[str, Any] = {
        "records": [
            {"id": rid, "fields": {ids[name]: value for name, value in fields.items()}}
            for rid, fields in wired
        ]
    }
    if has_selects(schema, sorted({name for _, fields in wired for name in fields})):
        payload["typecast"] = True
    return payload
