"""Airtable, through pyairtable's URLs, parameters and formulas: fields followed by id, windowed
pulls, batched reads by id and by natural key, 10-record PATCHes.

Request costs: a run whose kept schema is less than a day old and fits spends no request on the
schema; reading it again costs one (``GET /v0/meta/bases/{base}/tables``), at most once more
mid-run when Airtable says it does not know a field. A batch naming one deleted record costs one
request more, several deleted records three more.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from pyairtable import Api

from reconciler.config import AirtableTarget
from reconciler.errors import ReconcilerError, RemoteUnavailable
from reconciler.model import FieldSpec, Mapping
from reconciler.records import RemoteRecord, WriteResult
from reconciler.remotes import airtable_formulas as formulas
from reconciler.remotes import airtable_records, airtable_schema
from reconciler.remotes.airtable_fields import TableSchema
from reconciler.remotes.airtable_http import (
    INVALID_FORMULA,
    ITERATOR_GONE,
    MAX_URL_LENGTH,
    AirtableRejected,
    NotFound,
    Stamping,
    listing_shape,
    meta_shape,
    next_offset,
    query_params,
    record_shape,
    send,
    url_length,
    write_shape,
)
from reconciler.remotes.airtable_ids import FieldIds
from reconciler.remotes.airtable_writes import patch_skipping_gone, payload
from reconciler.remotes.base import (
    ApiStats,
    Caller,
    Finding,
    PushItem,
    Rejected,
    RemoteClock,
    RetryPolicy,
    Transient,
    at_once,
    chunks,
    results_by_id,
)
from reconciler.remotes.isolation import through_server_errors, write_isolating
from reconciler.remotes.pacing import Pacer

RECORD_ID_RE = re.compile(r"^rec[A-Za-z0-9]{14}$")
PAGE_SIZE = 100
WRITE_BATCH = 10
TIMEOUT = (5, 30)  # connect, read (seconds)
RESTARTS = 3  # listings started over after their server-side iterator expired
URL_MARGIN = 500  # characters kept free below Airtable's URL limit (a longer name after a rename)
# The window's end is placed on Airtable's clock as its whole-second Date headers show it, so it
# may lie up to a second before the moment the run started there: the formula reaches a second
# further, or an edit made just before the run would wait for the next one. Records read twice
# are applied once.
UNTIL_SLACK = timedelta(seconds=1)
Shape = Callable[[dict[str, Any]], None]


class AirtableRemote:
    """One Airtable table of one mapping.

    Args:
        mapping: the mapping (its ``remote_table`` names the table).
        target: the base, endpoint, token (never logged) and request rate (per second).
        policy: the retry policy.
        pacer: the base's pacer, shared with the other mappings on the base (default: one of
            its own at ``target.rate`` a second); tests pass one on a simulated clock.
    """

    write_batch = WRITE_BATCH
    read_before_write = False  # a PATCH cannot create, and changes only the fields it sends
    # One request at a time: at 5 a second the rate limit, not the answers, bounds a run, and
    # requests sent together reach a server that locks the base for 30 s on the sixth in a
    # second in whatever order the network delivers them.
    in_flight = 1

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
        self._timeout = TIMEOUT
        reach = f"is {target.api_url} reachable? check AIRTABLE_API_URL and the network"
        self._call = Caller("Airtable", pacer or Pacer.rate(target.rate), policy, reach)
        self.stats: ApiStats = self._call.stats
        self.pacer: Pacer = self._call.pacer
        self.clock = RemoteClock()
        self._api.session.hooks["response"].append(self._observe)
        for scheme in ("https://", "http://"):
            self._api.session.mount(scheme, Stamping(self._call.pacer))
        self._fields = FieldIds(mapping, target, self._read_meta)
        self._by_formula = True  # records by id read with ``RECORD_ID()`` (see ``fetch``)

    def _observe(self, response: Any, *args: Any, **kwargs: Any) -> None:
        self.clock.observe(response.headers.get("Date"))

    def __repr__(self) -> str:
        return f"AirtableRemote({self.mapping.remote_table!r})"

    # -- requests ------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        shape: Shape,
        *,
        options: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        fallback: str | None = None,
    ) -> dict[str, Any]:
        """One request, not retried, whose answer has the shape ``shape`` checks."""
        body = send(
            self._api.session,
            method,
            url,
            timeout=self._timeout,
            options=options,
            json=json,
            fallback=fallback,
            token_env=self.target.token_env,
        )
        shape(body)
        return body

    def _request(
        self,
        method: str,
        shape: Shape,
        *,
        options: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A request to the table's records, paced and retried."""
        urls = self._api.table(self.target.base_id, self.schema.table_id).urls
        return self._call(
            lambda: self._send(
                method,
                str(urls.records),
                shape,
                options=options,
                json=json,
                fallback=str(urls.records_post),
            )
        )

    def _meta_url(self) -> str:
        return str(self._api.base(self.target.base_id).urls.tables)

    # -- the schema ----------------------------------------------------------------------------

    def _read_meta(self) -> dict[str, Any]:
        """The base's schema from the meta API (paced and retried)."""
        return self._call(lambda: self._send("GET", self._meta_url(), meta_shape))

    @property
    def schema(self) -> TableSchema:
        """The table as ``prepare`` resolved it."""
        return self._fields.schema

    def prepare(self, cached: Any | None) -> None:
        """Resolve the mapping's fields to ids and check their types and the modified field.

        ``cached`` (what an earlier run kept) is used as it is, at no request, when it is less
        than a day old, resolves every configured name and shows no problem; otherwise the meta
        API is read (one request).

        Raises:
            MappingError: a field is missing, a type does not fit, the modified field cannot
                be trusted, or the token may not read the schema.
        """
        self._fields.prepare(cached)

    def verdict(self) -> None:
        """Nothing found in a run stops an Airtable mapping after the fact."""

    def cache_update(self) -> Any | None:
        """The resolved schema, when this run read it from the meta API."""
        return self._fields.cache_update()

    def _current_name(self, configured: str) -> str:
        """A field's name in Airtable now: formulas cannot name fields by id."""
        return self.schema.fields[configured].name

    # -- the Remote interface ------------------------------------------------------------------

    def inspect(self, cached: Any | None) -> Iterator[Finding]:
        """The base answers and takes the token; then the table's fields as they are now:
        missing ones, renames followed by id (compared with ``cached``), types, and the
        modified field. One request, not retried."""
        try:
            body = self._send("GET", self._meta_url(), meta_shape)
        except (ReconcilerError, Transient, Rejected) as exc:  # each becomes a finding
            yield airtable_schema.refusal(exc, self.target)
            return
        yield airtable_schema.reachable(self.target)
        yield from airtable_schema.field_findings(self.mapping, self.target, body, cached)

    def list_changed(
        self, since: datetime | None, until: datetime | None = None
    ) -> Iterator[list[RemoteRecord]]:
        """Pages of records whose modified time lies in ``[since, until]`` (all when ``since``
        is None), both ends included to the millisecond."""

        def formula() -> str | None:
            if since is None:
                return None
            name = self._current_name(self.mapping.modified_field)
            return formulas.window(name, since, until, slack=UNTIL_SLACK)

        for page in self._pages(formula):
            yield [self._typed(raw) for raw in page]

    def fetch(self, ids: Sequence[str]) -> dict[str, RemoteRecord]:
        """Current records by id, 100 per request (``OR(RECORD_ID()=…)``), or one request each
        where Airtable refuses that formula (:meth:`_each`)."""

        def read(batch: Sequence[str]) -> list[RemoteRecord]:
            if not self._by_formula:
                return self._each(batch)
            try:
                pages = self._pages(partial(formulas.record_ids, batch), names_fields=False)
                return [self._typed(raw) for page in pages for raw in page]
            except _FormulaRefused:
                self._by_formula = False
                return self._each(batch)

        batches = list(chunks([i for i in ids if self.valid_id(i)], PAGE_SIZE))
        return {r.id: r for records in at_once(read, batches, self.in_flight) for r in records}

    def find(
        self, columns: Sequence[str], keys: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], list[RemoteRecord]]:
        """Live records whose ``columns`` hold one of ``keys``, grouped by key (every usable
        key is in the answer, with an empty list when nothing matched).

        One ``OR`` of equalities per request, as many keys as fit in a URL; a key with a None
        or empty part never matches. Airtable's ``=`` decides which records come back; each is
        then kept only under the key its own canonical values form.
        """
        specs = [self.mapping.field(column) for column in columns]
        usable = list(dict.fromkeys(tuple(k) for k in keys if formulas.usable_key(k)))
        grouped: dict[tuple[Any, ...], list[RemoteRecord]] = {key: [] for key in usable}
        for group in self._key_groups(specs, usable):
            for page in self._pages(partial(self._key_formula, specs, group)):
                for raw in page:
                    key = self._key_of(specs, raw)
                    if key in grouped:
                        grouped[key].append(self._typed(raw))
        return grouped

    def write(self, items: Sequence[PushItem]) -> list[WriteResult]:
        """PATCH updates 10 per request, only the sent fields; a rejected record fails alone,
        and a record deleted in Airtable comes back ``gone``."""
        results = [
            WriteResult(
                i.local_id, error="this mapping never creates Airtable records", retryable=False
            )
            for i in items
            if i.create
        ]
        send = partial(patch_skipping_gone, patch=self._patch, fetch=self.fetch)
        for batch in chunks([i for i in items if not i.create], WRITE_BATCH):
            results += through_server_errors(
                batch, partial(write_isolating, send=send), self._call.once
            )
        return results

    def valid_id(self, remote_id: str) -> bool:
        """Airtable record ids are ``rec`` and 14 letters or digits."""
        return bool(RECORD_ID_RE.fullmatch(remote_id))

    def close(self) -> None:
        """Release the HTTP connections."""
        self._api.session.close()

    # -- reading -------------------------------------------------------------------------------

    def _list_options(self, formula: str | None, offset: str | None) -> dict[str, Any]:
        options: dict[str, Any] = {
            "page_size": PAGE_SIZE,
            "fields": [info.id for info in self.schema.fields.values()],
            "use_field_ids": True,
        }
        if formula:
            options["formula"] = formula
        if offset:
            options["offset"] = offset
        return options

    def _pages(
        self, formula: Callable[[], str | None], *, names_fields: bool = True
    ) -> Iterator[list[dict[str, Any]]]:
        """Every page of a listing; ``formula`` is asked again whenever the listing starts
        over (after the schema was read again, a field's name may have changed). A formula
        that names no field (``names_fields`` False) refused raises ``_FormulaRefused``."""
        offset: str | None = None
        restarts = 0
        while True:
            try:
                options = self._list_options(formula(), offset)
                body = self._request("GET", listing_shape, options=options)
            except AirtableRejected as exc:
                if exc.kind == INVALID_FORMULA and not names_fields:
                    raise _FormulaRefused(str(exc)) from None
                if exc.unknown_field:
                    self._fields.refresh(exc)
                    offset = None  # start over: the engine applies records read twice once
                    continue
                if exc.kind == ITERATOR_GONE and restarts < RESTARTS:
                    offset, restarts = None, restarts + 1
                    continue
                raise RemoteUnavailable(f"Airtable refused the listing: {exc}") from None
            airtable_records.check_keyed_by_id(self.schema, body["records"])
            yield list(body["records"])
            offset = next_offset(body)
            if offset is None:
                return

    def _each(self, ids: Sequence[str]) -> list[RemoteRecord]:
        """Records by id, one get-record request each (``GET …/{recordId}``), for a server
        that refuses ``RECORD_ID()`` in a formula: the shared docs (``airtable-api.md``) name
        the function nowhere, and a server that holds to them may not know it. A record the API
        answers 404 for is deleted (a proxy's 404, without the API's error type, stops the
        mapping as every other 404 does). The answer is read by the names the schema gave, as
        a write's is (see ``_patch``): the docs give ``returnFieldsByFieldId`` for listings
        only."""
        urls = self._api.table(self.target.base_id, self.schema.table_id).urls
        names = {info.name: info.id for info in self.schema.fields.values()}
        found = []
        for rid in ids:
            url = str(urls.record(rid))
            try:
                raw = self._call(partial(self._send, "GET", url, record_shape))
            except NotFound as exc:
                if not exc.kind:
                    raise
                continue
            found.append(self._typed(airtable_records.keyed_by_id(raw, names)))
        return found

    def _typed(self, raw: dict[str, Any]) -> RemoteRecord:
        return airtable_records.typed(self.mapping, self.schema, raw)

    def _key_of(self, specs: Sequence[FieldSpec], raw: dict[str, Any]) -> tuple[Any, ...] | None:
        return airtable_records.key_of(self.schema, specs, raw)

    def _key_formula(self, specs: Sequence[FieldSpec], keys: Sequence[tuple[Any, ...]]) -> str:
        named = [(spec, self._current_name(spec.remote)) for spec in specs]
        return formulas.any_of([formulas.key_equality(named, key) for key in keys])

    def _key_groups(
        self, specs: Sequence[FieldSpec], keys: list[tuple[Any, ...]]
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Keys in groups whose formula keeps the listing's URL under Airtable's limit."""
        named = [(spec, self._current_name(spec.remote)) for spec in specs]
        conditions = [formulas.key_equality(named, key) for key in keys]
        urls = self._api.table(self.target.base_id, self.schema.table_id).urls
        params = query_params(self._list_options(None, None))
        used = url_length(self._api.session, str(urls.records), params)
        budget = MAX_URL_LENGTH - URL_MARGIN - used - len("&filterByFormula=")
        for group in formulas.groups(conditions, budget):
            yield keys[group.start : group.stop]

    # -- writing -------------------------------------------------------------------------------

    def _patch(self, batch: Sequence[PushItem]) -> list[WriteResult]:
        """One PATCH of a batch, fields keyed by id; read again once if a field is unknown."""
        try:
            body = self._request(
                "PATCH", write_shape, json=payload(self.mapping, self.schema, batch)
            )
        except AirtableRejected as exc:
            if not exc.unknown_field:
                raise
            self._fields.refresh(exc)
            body = self._request(
                "PATCH", write_shape, json=payload(self.mapping, self.schema, batch)
            )
        # Airtable keys a write's answer by name unless the body asks otherwise, and the docs
        # give ``returnFieldsByFieldId`` for listings only (``airtable-api.md``, "Reading"): a
        # write does not send it, and its answer is read by the names the schema gave (a field
        # keyed by id stays as it is).
        ids = {info.name: info.id for info in self.schema.fields.values()}
        keyed = [airtable_records.keyed_by_id(raw, ids) for raw in body["records"]]
        by_id = {raw["id"]: self._typed(raw) for raw in keyed}
        return results_by_id(batch, by_id, "Airtable")


class _FormulaRefused(Exception):
    """Airtable refused a formula that names no field (``RECORD_ID()``)."""
