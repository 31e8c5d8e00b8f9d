"""Twenty CRM over httpx: keyset-paged windowed pulls, ``id[in]`` reads, 60-record upserts."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import httpx

from reconciler.config import TwentyTarget
from reconciler.errors import AuthError, RemoteUnavailable
from reconciler.model import Mapping, iso_ms, parse_datetime
from reconciler.records import RemoteRecord, WriteResult
from reconciler.remotes import twenty_schema
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

UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
PAGE_LIMIT = 200
READ_BATCH = 200  # one page of ids
WRITE_BATCH = 60
# Mentioning deletedAt makes a filter return soft-deleted records too.
ANY_DELETED = "or(deletedAt[is]:NULL,deletedAt[is]:NOT_NULL)"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class TwentyRemote:
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
            transport=transport,
        )
        self._call = Caller("Twenty", pacer or Pacer.rate(target.rate, 60.0), policy)
        self.stats: ApiStats = self._call.stats
        self.clock = RemoteClock()
        self._path = f"/{mapping.remote_table}"

    def __repr__(self) -> str:
        return f"TwentyRemote({self.mapping.remote_table!r})"

    # -- requests ------------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> Any:
        def send() -> Any:
            try:
                response = self._client.request(method, path, params=params, json=json)
            except httpx.TransportError as exc:
                raise Transient(f"connection problem: {type(exc).__name__}") from None
            self.clock.observe(response.headers.get("Date"))
            if response.is_success:
                return response.json()
            raise _classify(response)

        return self._call(send)

    def _pages(self, filter_: str | None) -> Iterator[list[dict[str, Any]]]:
        params: dict[str, Any] = {"order_by": "updatedAt", "limit": PAGE_LIMIT, "depth": 0}
        if filter_:
            params["filter"] = filter_
        cursor: str | None = None
        while True:
            page_params = {**params, "starting_after": cursor} if cursor else params
            try:
                body = self._request("GET", self._path, params=page_params)
            except Rejected as exc:
                raise RemoteUnavailable(f"Twenty refused the listing: {exc}") from None
            yield list((body.get("data") or {}).get(self.mapping.remote_table, []))
            info = body.get("pageInfo") or {}
            cursor = info.get("endCursor")
            if not info.get("hasNextPage") or not cursor:
                return

    # -- the Remote interface --------------------------------------------------------------------

    def prepare(self, cached: Any | None) -> None:
        """Nothing to prepare yet."""

    def cache_update(self) -> Any | None:
        """Nothing to keep yet."""
        return None

    def find(
        self, columns: Sequence[str], keys: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], list[RemoteRecord]]:
        """Live records by natural key (provisional: one text column, ``field[in]:[…]``)."""
        (column,) = columns
        spec = self.mapping.field(column)
        found: dict[tuple[Any, ...], list[RemoteRecord]] = {}
        wanted = {k for k in keys}
        for batch in chunks(sorted({k[0] for k in keys}), READ_BATCH):
            quoted = ",".join(
                '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in batch
            )
            for page in self._pages(f"{spec.remote}[in]:[{quoted}]"):
                for raw in page:
                    record = self._typed(raw)
                    key = (record.values.get(column),)
                    if key in wanted:
                        found.setdefault(key, []).append(record)
        return found

    def inspect(self, cached: Any | None) -> Iterator[Finding]:
        """The server answers and takes the key; the object has every mapped field."""
        name, scope = twenty_schema.REACHABLE, twenty_schema.scope(self.target)
        try:
            found = twenty_schema.objects(self._metadata_page)
        except httpx.HTTPError as exc:
            detail = f"cannot reach {self.target.api_url}: {type(exc).__name__}"
            hint = "check TWENTY_API_URL (or the mapping's api_url) and the network"
            yield Finding(name, False, detail, hint, unavailable=True, scope=scope)
            return
        except _Answered as answer:
            if answer.status != 403:
                yield _refused(name, answer.status, self.target)
                return
            found = None
        yield Finding(name, True, self.target.api_url, scope=scope)
        if found is None:
            yield twenty_schema.unreadable(self.mapping)
        else:
            yield twenty_schema.fields_finding(self.mapping, found)

    def _metadata_page(self, params: dict[str, str]) -> Any:
        response = self._client.get("/metadata/objects", params=params)
        self.clock.observe(response.headers.get("Date"))
        if response.status_code != 200:
            raise _Answered(response.status_code)
        try:
            return response.json()
        except ValueError:
            return {}

    def list_changed(
        self, since: datetime | None, until: datetime | None = None
    ) -> Iterator[list[RemoteRecord]]:
        """Pages of records with ``updatedAt`` at or after ``since`` (all when None)."""
        # Mentioning deletedAt makes soft-deleted records visible, so a soft delete inside the
        # window reaches the engine as a deleted record instead of silently vanishing.
        field = self.mapping.modified_field
        filter_ = None
        if since is not None:
            stamp = iso_ms(since)
            filter_ = f'or({field}[gte]:"{stamp}",deletedAt[gte]:"{stamp}")'

        for page in self._pages(filter_):
            yield [self._typed(raw) for raw in page]

    def fetch(self, ids: Sequence[str]) -> dict[str, RemoteRecord]:
        """Current records by id, 200 per request (``id[in]:[…]``), soft-deleted ones included
        (with ``deleted`` set)."""
        found: dict[str, RemoteRecord] = {}
        for batch in chunks([i for i in ids if self.valid_id(i)], READ_BATCH):
            for page in self._pages(f"and(id[in]:[{','.join(batch)}],{ANY_DELETED})"):
                found.update({raw["id"]: self._typed(raw) for raw in page})
        return found

    def write(self, items: Sequence[PushItem]) -> list[WriteResult]:
        """Batch upserts by id, 60 per request: updates send only their changed fields, creates
        carry a client-chosen id so a retried create cannot duplicate."""
        results: list[WriteResult] = []
        for batch in chunks(list(items), WRITE_BATCH):
            results += write_isolating(batch, self._upsert)
        return results

    def valid_id(self, remote_id: str) -> bool:
        """Twenty record ids are UUIDs."""
        return bool(UUID_RE.fullmatch(remote_id))

    def close(self) -> None:
        """Release the HTTP connections."""
        self._client.close()

    # -- helpers -------------------------------------------------------------------------------

    def _upsert(self, batch: Sequence[PushItem]) -> list[WriteResult]:
        payload = [
            {"id": i.remote_id, **_kept(i), **wire_fields(self.mapping, i.values)} for i in batch
        ]
        body = self._request("POST", f"/batch{self._path}", params={"upsert": "true"}, json=payload)
        data = body.get("data") or {}
        records = next((v for v in data.values() if isinstance(v, list)), [])
        return results_by_id(batch, {raw["id"]: self._typed(raw) for raw in records}, "Twenty")

    def _typed(self, raw: dict[str, Any]) -> RemoteRecord:
        stamp = raw.get(self.mapping.modified_field) or raw["createdAt"]
        record = typed_record(
            self.mapping,
            raw["id"],
            parse_datetime(str(stamp)),
            raw,
            deleted=bool(raw.get("deletedAt")),
        )
        if raw.get("position") is not None:
            record.keep["position"] = raw["position"]
        return record


def _kept(item: PushItem) -> dict[str, Any]:
    """What a write must send back unchanged: an upsert without ``position`` would move the
    record to the top of every view."""
    return dict(item.current.keep) if item.current is not None else {}


class _Answered(Exception):
    """A metadata request answered with a status other than 200."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _refused(name: str, status: int, target: TwentyTarget) -> Finding:
    scope = twenty_schema.scope(target)
    if status == 401:
        hint = f"check {target.api_key_env} (Settings > APIs & Webhooks in Twenty)"
        return Finding(name, False, "API key refused (401)", hint, unavailable=True, scope=scope)
    hint = "check TWENTY_API_URL (or the mapping's api_url); try again later"
    return Finding(name, False, f"Twenty answered {status}", hint, unavailable=True, scope=scope)


def _classify(response: httpx.Response) -> Exception:
    status = response.status_code
    detail = _detail(response)
    if status == 429:
        return Transient("rate limited (429)", throttled=True)
    if status >= 500:
        return Transient(f"HTTP {status}")
    if status in (401, 403):
        return AuthError(
            f"Twenty refused the API key (HTTP {status} {detail}): check TWENTY_API_KEY "
            "and TWENTY_API_URL"
        )
    return Rejected(status, f"Twenty answered {status}: {detail}")


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        messages = body.get("messages") or [body.get("message") or body.get("error") or ""]
        return "; ".join(str(m) for m in messages)[:300]
    return str(body)[:200]
