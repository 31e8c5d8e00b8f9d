"""Batch PATCHes that name records deleted in Airtable.

A batch update naming a deleted record answers 422 ``ROW_DOES_NOT_EXIST`` ("Record ID rec… does
not exist in this table") and applies nothing (domdomegg/airtable-mcp-server#28). The deleted
record must end ``gone`` (never recreated, never retried) and the others must still be written.
The message names one id: the first time it is taken at its word and the batch sent again
without it (one request more); if the batch is refused again, one listing of its ids finds every
deleted record at once (two requests more). So one deleted record costs one request, several
cost three, whatever their number.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from reconciler.records import RemoteRecord, WriteResult
from reconciler.remotes.airtable_http import ROW_DOES_NOT_EXIST, AirtableRejected
from reconciler.remotes.base import PushItem

RECORD_IDS = re.compile(r"rec[A-Za-z0-9]{14}")
Patch = Callable[[Sequence[PushItem]], list[WriteResult]]
Fetch = Callable[[Sequence[str]], dict[str, RemoteRecord]]


def patch_skipping_gone(batch: Sequence[PushItem], patch: Patch, fetch: Fetch) -> list[WriteResult]:
    """Write a batch; records Airtable says do not exist come back ``gone``, the rest written.

    Raises:
        AirtableRejected: the batch was refused for another reason (the caller splits it), or
            Airtable keeps saying a record does not exist while a listing shows them all.
    """
    gone: list[WriteResult] = []
    live = list(batch)
    listed = False
    while live:
        try:
            return gone + patch(live)
        except AirtableRejected as exc:
            if exc.kind != ROW_DOES_NOT_EXIST:
                raise
            missing = _named(exc, live) if not gone else set()
            if not missing and not listed:
                listed = True
                found = fetch([str(item.remote_id) for item in live])
                missing = {str(i.remote_id) for i in live if str(i.remote_id) not in found}
            if not missing:
                raise  # not about the batch's own records (a link to a deleted record, say)
        gone += [WriteResult(i.local_id, gone=True) for i in live if str(i.remote_id) in missing]
        live = [i for i in live if str(i.remote_id) not in missing]
    return gone


def _named(exc: AirtableRejected, live: Sequence[PushItem]) -> set[str]:
    """The batch's records the refusal names (a linked record it names is not one of them)."""
    return {str(item.remote_id) for item in live} & set(RECORD_IDS.findall(str(exc)))
