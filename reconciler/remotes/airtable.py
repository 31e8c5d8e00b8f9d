"""Airtable, through pyairtable: windowed pulls, batched reads by id, 10-record PATCHes."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import requests
from pyairtable import Api
from pyairtable.formulas import EQ, GTE, OR, RECORD_ID, Field, to_formula_str

from reconciler.config import AirtableTarget
from reconciler.errors import AuthError, RemoteUnavailable
from reconciler.model import Mapping, parse_datetime
from reconciler.records import RemoteRecord, WriteResult
from reconciler.remotes import airtable_schema
from reconciler.remotes.base import (
    ApiStats,
    Caller,
    Finding,
    Pacer,
    PushItem,
    Rejected,
    RemoteClock,
    RetryPolicy,
    Transient,
    chunks,
    results_by_id,
    typed_record,
    wire_fields,
    write_isolating,
)

RECORD_ID_RE = re.compile(r"^rec[A-Za-z0-9]{14}$")
PAGE_SIZE = 100
WRITE_BATCH = 10
TIMEOUT = (5, 30)  # connect, read (seconds)
ITERATOR_GONE = "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"


class AirtableRemote:
    """One Airtable table of one mapping.

    Args:
        mapping: the mapping (its ``remote_table`` names the table).
        target: the base, endpoint, token (never logged) and request rate (per second).
        policy: the retry policy.
        pacer: the base's pacer, shared with the other mappings on the base.
    """

    write_batch = WRITE_BATCH
    read_before_write = False  # a PATCH cannot create, and changes only the fields it sends

    def __init__(
        self,
        mapping: Mapping,
        target: AirtableTarget,
        policy: RetryPolicy,
        *,
        pacer: Pacer | None = None,
    ) -> None:
        self.mapping = mapping
        self.target = target
        self._api = Api(
            target.token.value, timeout=TIMEOUT, retry_strategy=None, endpoint_url=target.api_url
        )
        self._table = self._api.table(target.base_id, mapping.remote_table)
        self._call = Caller("Airtable", pacer or Pacer.rate(target.rate), policy)
        self.stats: ApiStats = self._call.stats
        self.clock = RemoteClock()
        self._api.session.hooks["response"].append(self._observe)
        self._fields = [f.remote for f in mapping.fields] + [mapping.modified_field]

    def _observe(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.clock.observe(response.headers.get("Date"))

    def __repr__(self) -> str:
        return f"AirtableRemote({self.mapping.remote_table!r})"

    # -- requests ------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        *,
        options: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> Any:
        urls = self._table.urls

        def send() -> Any:
            try:
                return self._api.request(
                    method,
                    str(urls.records),
                    fallback=("POST", str(urls.records_post)),
                    options=options,
                    json=json,
                )
            except requests.HTTPError as exc:
                raise _classify(exc) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise Transient(f"connection problem: {type(exc).__name__}") from None

        return self._call(send)

    def _pages(self, formula: str | None) -> Iterator[list[dict[str, Any]]]:
        options: dict[str, Any] = {"page_size": PAGE_SIZE, "fields": self._fields}
        if formula:
            options["formula"] = formula
        offset: str | None = None
        restarts = 0
        while True:
            page_options = {**options, "offset": offset} if offset else options
            try:
                body = self._request("GET", options=page_options)
            except Rejected as exc:
                if ITERATOR_GONE in str(exc) and restarts < 3:
                    offset, restarts = None, restarts + 1  # start over; ids dedupe re-reads
                    continue
                raise RemoteUnavailable(f"Airtable refused the listing: {exc}") from None
            yield list(body.get("records", []))
            offset = body.get("offset")
            if not offset:
                return

    # -- the Remote interface --------------------------------------------------------------------

    def prepare(self, cached: Any | None) -> None:
        """Nothing to prepare yet."""

    def verdict(self) -> None:
        """Nothing found in a run stops an Airtable mapping after the fact."""

    def cache_update(self) -> Any | None:
        """Nothing to keep yet."""
        return None

    def find(
        self, columns: Sequence[str], keys: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], list[RemoteRecord]]:
        """Not yet: natural-key look-ups."""
        raise NotImplementedError

    def inspect(self, cached: Any | None) -> Iterator[Finding]:
        """The base answers and takes the token; the table has every mapped field."""
        try:
            body = self._api.get(str(self._table.base.urls.tables))
        except requests.HTTPError as exc:
            yield airtable_schema.refusal(exc, self.target)
            return
        except requests.RequestException as exc:
            yield airtable_schema.unreachable(self.target, exc)
            return
        detail = f"{self.target.api_url}, base {self.target.base_id}"
        yield Finding(
            airtable_schema.REACHABLE, True, detail, scope=airtable_schema.scope(self.target)
        )
        yield airtable_schema.fields_finding(self.mapping, body)

    def list_changed(
        self, since: datetime | None, until: datetime | None = None
    ) -> Iterator[list[RemoteRecord]]:
        """Pages of records whose modified time is at or after ``since`` (all when None)."""
        formula = None
        if since is not None:
            formula = to_formula_str(GTE(Field(self.mapping.modified_field), since))
        for page in self._pages(formula):
            yield [self._typed(raw) for raw in page]

    def fetch(self, ids: Sequence[str]) -> dict[str, RemoteRecord]:
        """Current records by id, 100 per request (``OR(RECORD_ID()=…)``)."""
        found: dict[str, RemoteRecord] = {}
        for batch in chunks([i for i in ids if self.valid_id(i)], PAGE_SIZE):
            formula = to_formula_str(OR(*(EQ(RECORD_ID(), rid) for rid in batch)))
            for page in self._pages(formula):
                found.update({raw["id"]: self._typed(raw) for raw in page})
        return found

    def write(self, items: Sequence[PushItem]) -> list[WriteResult]:
        """PATCH updates 10 per request, only the sent fields; a rejected record fails alone."""
        results: list[WriteResult] = []
        updates = [i for i in items if not i.create]
        results += [
            WriteResult(
                i.local_id, error="this mapping never creates Airtable records", retryable=False
            )
            for i in items
            if i.create
        ]
        for batch in chunks(updates, WRITE_BATCH):
            results += write_isolating(batch, self._patch)
        return results

    def valid_id(self, remote_id: str) -> bool:
        """Airtable record ids are ``rec`` and 14 letters or digits."""
        return bool(RECORD_ID_RE.fullmatch(remote_id))

    def close(self) -> None:
        """Release the HTTP connections."""
        self._api.session.close()

    # -- helpers -------------------------------------------------------------------------------

    def _patch(self, batch: Sequence[PushItem]) -> list[WriteResult]:
        payload = {
            "records": [
                {"id": i.remote_id, "fields": wire_fields(self.mapping, i.values)} for i in batch
            ]
        }
        body = self._request("PATCH", json=payload)
        by_id = {raw["id"]: self._typed(raw) for raw in body.get("records", [])}
        return results_by_id(batch, by_id, "Airtable")

    def _typed(self, raw: dict[str, Any]) -> RemoteRecord:
        fields = raw.get("fields", {})
        stamp = fields.get(self.mapping.modified_field) or raw.get("createdTime")
        return typed_record(self.mapping, raw["id"], parse_datetime(str(stamp)), fields)


def _classify(exc: requests.HTTPError) -> Exception:
    response = exc.response
    status = response.status_code if response is not None else 0
    detail = _detail(response)
    if status == 429:
        return Transient("rate limited (429)", throttled=True)
    if status >= 500 or status == 0:
        return Transient(f"HTTP {status}")
    if status in (401, 403):
        return AuthError(
            f"Airtable refused the request (HTTP {status} {detail}): check AIRTABLE_TOKEN, "
            "AIRTABLE_BASE_ID and that the token can read and write the table"
        )
    return Rejected(status, f"Airtable answered {status}: {detail}")


def _detail(response: requests.Response | None) -> str:
    if response is None:
        return ""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    error = body.get("error") if isinstance(body, dict) else body
    if isinstance(error, dict):
        return f"{error.get('type', '')}: {error.get('message', '')}".strip(": ")
    return str(error)[:200]
