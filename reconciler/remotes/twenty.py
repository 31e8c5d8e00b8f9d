"""Twenty CRM over httpx: keyset-paged windowed pulls, ``id[in]`` reads, 60-record upserts,
batched natural-key look-ups."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import httpx

from reconciler.config import TwentyTarget
from reconciler.errors import MappingError, RemoteUnavailable
from reconciler.model import Mapping, iso_ms, parse_datetime
from reconciler.records import RemoteRecord, WriteResult
from reconciler.remotes import (
    twenty_ends,
    twenty_find,
    twenty_http,
    twenty_pages,
    twenty_schema,
)
from reconciler.remotes.base import (
    IN_FLIGHT,
    ApiStats,
    Caller,
    PushItem,
    Rejected,
    RemoteClock,
    RetryPolicy,
    Transient,
    at_once,
    chunks,
    results_by_id,
    typed_record,
    wire_fields,
)
from reconciler.remotes.pacing import BucketPacer, Pacer
from reconciler.remotes.twenty_check import TwentyChecks
from reconciler.remotes.twenty_fields import FieldCheck
from reconciler.remotes.twenty_http import Unreadable
from reconciler.remotes.twenty_select import Selection, lacking, lacking_fields
from reconciler.remotes.twenty_write import BatchWriter

PAGE_LIMIT = 200
READ_BATCH = 200  # one page of ids
# Current servers take 200 records a batch (QUERY_MAX_RECORDS, common-create-many-query-runner
# .service.ts); the documentation says 60, and older servers' limits were not all read: 60.
WRITE_BATCH = 60
# The longest request target (path and query) a read may have: nginx's default buffer for the
# request line is 8 KiB and Node's for all headers 16 KiB; 200 ids in ``id[in]`` take ~8,000.
URL_BUDGET = 8000
# What later pages may add to the first one's request, URL-encoded: ``starting_after`` (about
# 300) and up to two bounds on ``updatedAt`` (60 each). The ids of the records of a millisecond
# already read, which a page may name instead of the cursor, take what the filter leaves
# (``_skip_max``).
CURSOR_ROOM = 450
SKIP_ROOM = 60  # a bound on ``updatedAt``, and ``not(id[in]:[…])`` around the ids
SKIP_ID_ROOM = 40  # an id in that list, and the comma before it, URL-encoded
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Mentioning deletedAt makes a filter return soft-deleted records too.
ANY_DELETED = "or(deletedAt[is]:NULL,deletedAt[is]:NOT_NULL)"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)


def plain_http_transport(api_url: str) -> httpx.HTTPTransport | None:
    """The transport of a client of a server reached over plain HTTP; None for HTTPS (the
    default transport then, verifying certificates against the trusted CAs).

    A client's default transport loads the CA bundle as it is built, for the TLS it may do;
    a client whose every request goes to a plain HTTP server (relative paths, redirects never
    followed) does no TLS, so its transport gets a client context that trusts no certificate
    at all: nothing is read, and a TLS connection, if one were ever made, could only fail.
    """
    if urlsplit(api_url).scheme.lower() != "http":
        return None
    return httpx.HTTPTransport(verify=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))


class TwentyRemote(TwentyChecks):
    """One Twenty object of one mapping.

    Args:
        mapping: the mapping (its ``remote_table`` is the object's plural name).
        target: the server, API key (never logged) and request rate (per minute).
        policy: the retry policy.
        pacer: the workspace's pacer, shared with the other mappings on it.
        transport: an httpx transport, for tests that want one.
    """

    write_batch = WRITE_BATCH
    # Batch upsert restores a soft-deleted record, re-inserts a destroyed id and moves a record
    # sent without its position to the top of every view: every write is preceded by a read.
    read_before_write = True
    in_flight = IN_FLIGHT  # 100 a minute as a burst: answers, not the limit, bound a push

    def __init__(
        self,
        mapping: Mapping,
        target: TwentyTarget,
        policy: RetryPolicy,
        *,
        pacer: Pacer | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.mapping = mapping
        self.target = target
        self._client = httpx.Client(
            base_url=target.api_url.rstrip("/") + "/rest",
            headers={"Authorization": f"Bearer {target.api_key.value}"},
            timeout=TIMEOUT,
            transport=transport or plain_http_transport(target.api_url),
            event_hooks={"request": [lambda _: self._call.pacer.sent()]},
        )
        reach = f"is {target.api_url} reachable? {twenty_http.CHECK_URL} and the network"
        self._call = Caller("Twenty", pacer or BucketPacer.rate(target.rate, 60.0), policy, reach)
        self.stats: ApiStats = self._call.stats
        self.pacer: Pacer = self._call.pacer
        self.clock = RemoteClock()
        self._path = f"/{mapping.remote_table}"
        where = f"{target.api_url.rstrip('/')}/rest/batch/{mapping.remote_table}"
        self._writer = BatchWriter(self._upsert, where, self._call.once)
        self._fields = FieldCheck(mapping, target.api_url, self._model_page)
        self._select = Selection(mapping)

    def __repr__(self) -> str:
        return f"TwentyRemote({self.mapping.remote_table!r})"

    # -- requests ------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        read: Callable[[httpx.Response], Any] = twenty_http.answer,
    ) -> Any:
        """One request, paced and retried; ``read`` turns its answer into a body or raises what
        the answer means."""

        def send() -> Any:
            try:
                response = self._client.request(method, path, params=params, json=json)
            except (httpx.TransportError, httpx.DecodingError) as exc:
                # refused, reset, cut mid-body (RemoteProtocolError), timed out, garbled
                # httpx ``_exceptions.py``: ConnectError "Failed to establish a connection.",
                # ConnectTimeout "Timed out while connecting to the host.": never reached.
                never = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                message = f"connection problem: {type(exc).__name__}"
                raise Transient(message, unreached=never) from None
            self.clock.observe(response.headers.get("Date"))
            return read(response)

        return self._call(send)

    def _model_page(self, params: dict[str, str]) -> Any:
        """One page of the data model for a run: paced and retried like every request (a 403
        raises ``twenty_schema.NoPermission``, a 400 or 404 ``twenty_schema.NotServed``)."""
        return self._request(
            "GET", "/metadata/objects", params=params, read=twenty_schema.model_answer
        )

    def _pages(self, filter_: str | None) -> Iterator[list[dict[str, Any]]]:
        """Raw records page by page, oldest first, by one reader (:mod:`twenty_ends`)."""
        return twenty_ends.oldest_first(partial(self._read, filter_), self._skip_max(filter_))

    def _from_both_ends(self, filter_: str | None) -> Iterator[list[dict[str, Any]]]:
        """Raw records page by page, read from both ends of the order at once
        (:mod:`twenty_ends`), each record once."""
        return twenty_ends.both_ends(partial(self._read, filter_), self._skip_max(filter_))

    def _skip_max(self, filter_: str | None) -> int:
        """How many ids of records already read a later page of a listing by ``filter_`` may
        name within ``URL_BUDGET`` (at most ``twenty_ends.SKIP_MAX``)."""
        room = self._room_left(filter_) - SKIP_ROOM
        return max(0, min(twenty_ends.SKIP_MAX, room // SKIP_ID_ROOM))

    def _room_left(self, filter_: str | None) -> int:
        """What ``URL_BUDGET`` leaves once the first page of a listing by ``filter_`` is
        written (path and query, URL-encoded)."""
        path = self._client.base_url.raw_path.decode() + self._path.lstrip("/")
        query = str(httpx.QueryParams(self._list_params(filter_)))
        return URL_BUDGET - len(path + "?&") - len(query)

    def _read(self, filter_: str | None, ask: twenty_pages.Ask) -> twenty_pages.Page:
        """One page of the records ``filter_`` matches, as ``ask`` asks for it (its order, its
        cursor, its bounds on ``updatedAt``); an answer that is not a page stops the mapping."""
        field = twenty_pages.FIELD
        bounds = [
            *([f'{field}[gte]:"{ask.since}"'] if ask.since else []),
            *([f'{field}[lt]:"{ask.before}"'] if ask.before else []),
            *([f"not(id[in]:[{','.join(ask.skip)}])"] if ask.skip else []),
        ]
        parts = [filter_, *bounds] if filter_ else bounds
        where = parts[0] if len(parts) == 1 else f"and({','.join(parts)})" if parts else None
        while True:
            params = {**self._list_params(where), "order_by": ask.order_by}
            if ask.cursor:
                params["starting_after"] = ask.cursor
            sent = params.get("fields")
            try:
                try:
                    body = self._request("GET", self._path, params=params)
                except Rejected as exc:
                    if self._select.pruned(str(exc), sent):
                        continue
                    bare = {k: v for k, v in params.items() if k != "fields"}
                    body = self._select.without(
                        partial(self._request, "GET", self._path, params=bare), sent, exc
                    )
                records = twenty_http.listed_records(body, self.mapping.remote_table)
                next_cursor = twenty_http.next_cursor(body)
            except Rejected as exc:
                # 404: no such route at this address (an unknown object answers 400).
                hint = f"; is {self.target.api_url} Twenty's address? {twenty_http.CHECK_URL}"
                said = f"Twenty refused the listing: {exc}{hint if exc.status == 404 else ''}"
                raise RemoteUnavailable(said) from None
            except Unreadable as exc:
                raise RemoteUnavailable(str(exc)) from None
            return twenty_pages.Page(records, next_cursor, twenty_http.total_count(body))

    def _list_params(self, filter_: str | None) -> dict[str, Any]:
        """A record read's parameters: oldest first, the largest page, no related records, and
        the fields it needs by name (:mod:`twenty_select`)."""
        params: dict[str, Any] = {
            "order_by": twenty_pages.FORWARD,
            "limit": PAGE_LIMIT,
            "depth": 0,
            **self._select.params(),
        }
        if filter_:
            params["filter"] = filter_
        return params

    # -- the Remote interface --------------------------------------------------------------------

    def prepare(self, cached: Any | None) -> None:
        """Check the mapping's object and fields against the data model before anything is read
        or written (see :mod:`twenty_fields`).

        ``cached`` (what an earlier run kept) is used as it is, at no request, when it is less
        than a day old, covers every configured name and shows no problem; otherwise the data
        model is read (one request). A key that may not read it (403) syncs unverified.

        Raises:
            MappingError: the object or a field is missing, or a type does not fit.
        """
        self._fields.prepare(cached)

    def cache_update(self) -> Any | None:
        """What this run read of the mapping's object in the data model, when it read it."""
        return self._fields.cache_update()

    def verdict(self) -> None:
        """Raises:
        MappingError: this run found the server without batch upsert. Raised at the end of
            the mapping, so that the creates it could still make were recorded.
        """
        lacking = self._writer.lacking()
        if lacking is not None:
            raise lacking

    def find(
        self, columns: Sequence[str], keys: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], list[RemoteRecord]]:
        """Live records whose natural key is one of ``keys``, grouped by key (every key given
        is in the answer; one with a None or empty part matches nothing).

        Up to 200 keys a request (``field[in]:[…]``, or ``or(and(…),…)`` for several columns),
        fewer when their filter would make the URL longer than ``URL_BUDGET``; pages through
        the answers. The server may answer more than asked (see ``twenty_find``): only records
        whose key equals one asked for are kept.
        """
        specs = twenty_find.key_fields(self.mapping, columns)
        found: dict[tuple[Any, ...], list[RemoteRecord]] = {key: [] for key in keys}
        seen: set[str] = set()
        for filter_ in twenty_find.filters(specs, twenty_find.usable(keys), self._filter_budget()):
            for page in self._pages(filter_):
                for raw in page:
                    key = twenty_find.key_of(specs, raw)
                    if key in found and raw["id"] not in seen and not raw.get("deletedAt"):
                        seen.add(raw["id"])
                        found[key].append(self._typed(raw))
        return found

    def _filter_budget(self) -> int:
        """What the ``filter`` parameter may take of ``URL_BUDGET``."""
        return self._room_left(None) - CURSOR_ROOM

    def list_changed(
        self, since: datetime | None, until: datetime | None = None
    ) -> Iterator[list[RemoteRecord]]:
        """Pages of records with ``updatedAt`` at or after ``since``, read from both ends of the
        order at once (:mod:`twenty_ends`); all records when None, by one reader."""
        # Mentioning deletedAt makes soft-deleted records visible, so a soft delete inside the
        # window reaches the engine as a deleted record instead of silently vanishing.
        field = self.mapping.modified_field
        filter_ = None
        if since is not None:
            stamp = iso_ms(since)
            filter_ = f'or({field}[gte]:"{stamp}",deletedAt[gte]:"{stamp}")'

        # A full sweep judges deletions by what it read: it keeps one reader, oldest first, which
        # also reads the records edited while it runs (they move ahead of it). A window may
        # leave those to the next window, which reads them.
        pages = self._from_both_ends(filter_) if since is not None else self._pages(filter_)
        for page in pages:
            yield [self._typed(raw) for raw in page]

    def fetch(self, ids: Sequence[str]) -> dict[str, RemoteRecord]:
        """Current records by id, 200 per request (``id[in]:[…]``), soft-deleted ones included
        (with ``deleted`` set)."""

        def read(batch: Sequence[str]) -> list[RemoteRecord]:
            filter_ = f"and(id[in]:[{','.join(batch)}],{ANY_DELETED})"
            return [self._typed(raw) for page in self._pages(filter_) for raw in page]

        batches = list(chunks([i for i in ids if self.valid_id(i)], READ_BATCH))
        return {r.id: r for records in at_once(read, batches, self.in_flight) for r in records}

    def write(self, items: Sequence[PushItem]) -> list[WriteResult]:
        """Batch upserts by id, 60 per request: updates send only their changed fields, creates
        carry a client-chosen id so a retried create cannot duplicate. On a server without
        batch upsert, updates are left pending (an empty result) and ``cache_update`` ends the
        mapping with the reason."""
        results: list[WriteResult] = []
        for batch in chunks(list(items), WRITE_BATCH):
            results += self._writer.write(batch)
        return results

    def valid_id(self, remote_id: str) -> bool:
        """Twenty record ids are UUIDs."""
        return bool(twenty_http.UUID_RE.fullmatch(remote_id))

    def close(self) -> None:
        """Release the HTTP connections."""
        self._client.close()

    # -- helpers -------------------------------------------------------------------------------

    def _upsert(self, batch: Sequence[PushItem]) -> list[WriteResult]:
        payload = [
            {"id": i.remote_id, **_kept(i), **wire_fields(self.mapping, i.values)} for i in batch
        ]
        try:
            sent = self._select.names
            try:
                body = self._batch_upsert(payload, sent)
            except Rejected as exc:
                if self._select.pruned(str(exc), sent):  # refused before any write
                    body = self._batch_upsert(payload, self._select.names)
                else:
                    resend = partial(self._batch_upsert, payload, None)
                    body = self._select.without(resend, sent, exc)
        except Unreadable as exc:
            # Whether the batch was written is unknown; an upsert sent again is harmless.
            return [WriteResult(i.local_id, error=str(exc)) for i in batch]
        records = {raw["id"]: self._typed(raw) for raw in twenty_http.written_records(body)}
        return results_by_id(batch, records, "Twenty")

    def _batch_upsert(self, payload: list[dict[str, Any]], fields: str | None) -> Any:
        params = {"upsert": "true", **({"fields": fields} if fields is not None else {})}
        return self._request("POST", f"/batch{self._path}", params=params, json=payload)

    def _typed(self, raw: dict[str, Any]) -> RemoteRecord:
        """A record as the engine sees it.

        Raises:
            MappingError: the record lacks a mapped field. Twenty selects every field of the
                object for a REST read but those the key's role may not read
                (``getAllSelectableFields``,
                ``api/rest/core/rest-to-common-args-handlers/utils/get-all-selectable-fields.util.ts``),
                and sends a null value as null: a field left out is unreadable, or no longer
                has that name. Taken as empty, it would clear the local values.
        """
        missing = lacking_fields(self.mapping, raw)
        if missing:
            raise MappingError(lacking(self.mapping, missing))
        deleted = bool(raw.get("deletedAt"))
        stamp = raw.get(self.mapping.modified_field) or raw.get("createdAt")
        try:
            modified = parse_datetime(str(stamp))
        except ValueError:
            error = f"{self.mapping.modified_field}: expected a date-time, got {stamp!r}"
            return RemoteRecord(raw["id"], EPOCH, {}, error=error, deleted=deleted)
        record = typed_record(self.mapping, raw["id"], modified, raw, deleted=deleted)
        if raw.get("position") is not None:
            record.keep["position"] = raw["position"]
        return record


def _kept(item: PushItem) -> dict[str, Any]:
    """What a write must send back unchanged: an upsert without ``position`` would move the
    record to the top of every view."""
    return dict(item.current.keep) if item.current is not None else {}
