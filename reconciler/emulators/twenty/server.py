"""A strict local emulator of Twenty CRM's REST API (``/rest/...``).

Every behaviour is taken from the twentyhq/twenty server source; the module that implements a
behaviour cites its file. ``docs/fidelity-twenty.md`` lists them all with their tests.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from reconciler.emulators.base import EmulatorServer, Request, Response, iso_ms, iso_us, js_dates
from reconciler.emulators.limits import TokenBucketLimiter
from reconciler.emulators.twenty import metadata, params
from reconciler.emulators.twenty.api import DirectApi
from reconciler.emulators.twenty.filter_nodes import And, Condition, Node
from reconciler.emulators.twenty.ordering import (
    Ordered,
    OrderKey,
    bounded,
    cut_page,
    decode_cursor,
    encode_cursor,
    ordered,
    parse_order_by,
    sort_rows,
)
from reconciler.emulators.twenty.schema import (
    REP_PROGRESSION_FIELDS,
    ObjectSpec,
    TwentyError,
    bad_request,
    exception_name,
)
from reconciler.emulators.twenty.store import Store

#: Node's default ``--max-http-header-size`` (16 KiB): a longer request line and headers are
#: answered 431 before Twenty sees them. The emulator counts the request line only.
MAX_REQUEST_LINE = 16 * 1024


class TwentyEmulator(DirectApi, EmulatorServer):
    """Twenty's REST API over loopback HTTP, serving the ``repProgressions`` custom object.

    Args:
        token: the API key accepted as ``Authorization: Bearer <token>``.
        rate_per_minute: token-bucket refill rate (0 disables rate limiting).
        burst: bucket capacity (defaults to ``rate_per_minute``).
        latency: seconds added before every answer.
        max_limit: the largest page size; bigger ``limit`` values are clamped to it
            (``QUERY_MAX_RECORDS``, 200).
        seed: seed of the generator of record and metadata ids.
        supports_upsert: False emulates a server older than REST upsert: ``?upsert=true`` is
            not read, and a batch create with an existing id answers 400 "Record already
            exists".
        upsert_moves_position: True emulates servers whose upsert backfilled ``position`` on
            its update path too (an update without ``position`` moves the record to the top).
        metadata_shape: ``"list"`` (``{"data": [...]}``, the default of new workspaces) or
            ``"objects"`` (the legacy ``{"data": {"objects": [...]}}``).
        metadata_forbidden: True answers ``GET /rest/metadata/objects`` with the 403 of a key
            whose role lacks the data-model permission (records keep working).
        serves_metadata: False emulates a server without the REST data-model controller
            (``api/rest/metadata/rest-api-metadata.controller.ts``, ``rest/metadata/*``): the
            path falls to the records' ``rest/*`` routes, which answer the unknown object name
            ``metadata`` with a 400 (records keep working). Which releases, if any, lack the
            controller is not confirmed; a proxy passing only the records' routes does the same
            with a 404.
        microsecond_stamps: True stamps ``createdAt``, ``updatedAt`` and ``deletedAt`` to the
            microsecond, as Postgres' ``now()`` fills a ``timestamptz`` column, while answers
            and cursors carry them to the millisecond, as JavaScript ``Date`` values: filters
            and keyset cursors then compare a millisecond value with a finer stored one, as on
            a real server (a descending cursor skips the older records of its row's
            millisecond). Off by default: whether every stamp a real server writes is that
            fine is not confirmed.
        millisecond_comparisons: True emulates newer servers, which compare ``DATE_TIME``
            values in filters and keyset cursors at the millisecond while ordering by the
            stored value (see ``filter_nodes._at_milliseconds`` and ``ordering.cut_page``); with
            ``microsecond_stamps``, a cursor then passes over the records of its row's
            millisecond stored later than that row but with a lower ``id``. False (the
            default): every comparison is on the stored value, as before those servers.
        unreadable_fields: names of fields the key's role may not read (field permissions):
            left out of every record the server answers with, null or not, while the data
            model still lists them. ``getAllSelectableFields``
            (``api/rest/core/rest-to-common-args-handlers/utils/get-all-selectable-fields.util.ts``)
            builds every REST read's selection from the object's fields and skips those whose
            ``restrictedFields[id].canRead`` is false; every other field is selected, so a null
            value is sent as null. Reads only: whether such a field may be filtered on or
            written is not modelled.
        selects_fields: True (current servers) reads a record read's ``fields`` parameter and,
            without it, cuts an object's records to ``max_fields`` (200) fields when it has
            more (see :meth:`_selected`); False emulates a server before them, which ignores
            the parameter and answers every readable field.

    The switches are also attributes a test may set on a running server (``supports_upsert``,
    ``upsert_moves_position``, ``metadata_shape``, ``metadata_forbidden``, ``serves_metadata``,
    ``microsecond_stamps``, ``millisecond_comparisons``, ``unreadable_fields``,
    ``selects_fields``, ``max_fields``, and the metadata page sizes ``metadata_default_limit`` /
    ``metadata_max_limit``, 1000 each); :meth:`reset` puts them back to the constructor's values.
    """

    default_limit = 60
    #: create-many refuses more than QUERY_MAX_RECORDS records ("Maximum number of records to
    #: upsert is 200."), common-create-many-query-runner.service.ts.
    max_batch = 200

    def __init__(
        self,
        token: str = "test-key",
        *,
        rate_per_minute: float = 100,
        burst: float | None = None,
        latency: float = 0.0,
        max_limit: int = 200,
        seed: int = 0,
        supports_upsert: bool = True,
        upsert_moves_position: bool = False,
        metadata_shape: str = "list",
        metadata_forbidden: bool = False,
        serves_metadata: bool = True,
        microsecond_stamps: bool = False,
        millisecond_comparisons: bool = False,
        unreadable_fields: frozenset[str] = frozenset(),
        selects_fields: bool = True,
    ) -> None:
        super().__init__(token, latency=latency)
        self.max_limit = max_limit
        self._rate = (rate_per_minute, burst)
        self._seed = seed
        self._switches: dict[str, Any] = {
            "supports_upsert": supports_upsert,
            "upsert_moves_position": upsert_moves_position,
            "metadata_shape": metadata_shape,
            "metadata_forbidden": metadata_forbidden,
            "serves_metadata": serves_metadata,
            "microsecond_stamps": microsecond_stamps,
            "millisecond_comparisons": millisecond_comparisons,
            "unreadable_fields": frozenset(unreadable_fields),
            "selects_fields": selects_fields,
            "max_fields": params.DEFAULT_MAX_FIELDS,
            "metadata_default_limit": metadata.DEFAULT_PAGE_SIZE,
            "metadata_max_limit": metadata.MAX_PAGE_SIZE,
        }
        self.limiter = TokenBucketLimiter(rate_per_minute, burst)
        self.store = Store(self._now, seed)
        self._apply_switches()
        self.add_object("repProgression", "repProgressions", REP_PROGRESSION_FIELDS)

    def _apply_switches(self) -> None:
        if self._switches["metadata_shape"] not in metadata.SHAPES:
            raise ValueError(f"metadata_shape must be one of {metadata.SHAPES}")
        self.supports_upsert: bool = self._switches["supports_upsert"]
        self.upsert_moves_position: bool = self._switches["upsert_moves_position"]
        self.metadata_shape: str = self._switches["metadata_shape"]
        self.metadata_forbidden: bool = self._switches["metadata_forbidden"]
        self.serves_metadata: bool = self._switches["serves_metadata"]
        self.metadata_default_limit: int = self._switches["metadata_default_limit"]
        self.metadata_max_limit: int = self._switches["metadata_max_limit"]
        self.microsecond_stamps: bool = self._switches["microsecond_stamps"]
        self.millisecond_comparisons: bool = self._switches["millisecond_comparisons"]
        self.unreadable_fields: frozenset[str] = self._switches["unreadable_fields"]
        self.selects_fields: bool = self._switches["selects_fields"]
        self.max_fields: int = self._switches["max_fields"]
        self.store.stamp = lambda moment: (iso_us if self.microsecond_stamps else iso_ms)(moment)

    def _now(self) -> datetime:
        return self.clock.now()

    def reset(self) -> None:
        """Back to the freshly constructed state (records, objects, switches, log, faults, clock,
        bucket). Lets one running server be shared by many tests without a restart each time."""
        with self.lock:
            self.store = Store(self._now, self._seed)
            self.store.add_object("repProgression", "repProgressions", REP_PROGRESSION_FIELDS)
            self._apply_switches()
            self.limiter = TokenBucketLimiter(*self._rate)
            self.faults.clear()
            self.clock.reset()
            self.requests.clear()

    # -- pipeline hooks ----------------------------------------------------------------------------

    def admit(self, now: float) -> Response | None:
        """Twenty's per-workspace token bucket: the server keys it by workspace
        (``api:throttler:${workspaceId}-long-limit``, ``throttleQueryExecution`` in
        api/common/common-query-runners/common-base-query-runner.service.ts); this server is one
        workspace, so it keeps one.

        ThrottlerService.tokenBucketThrottleOrThrow (packages/twenty-server/src/engine/
        core-modules/throttler/throttler.service.ts) throws "Limit reached (${maxTokens} tokens
        per ${timeWindow} ms)", the bucket's capacity and the time it takes to refill
        (its rate is their quotient); nothing on that path sets a Retry-After header.
        """
        if self.limiter.admit(now):
            return None
        tokens = self.limiter.capacity
        window_ms = round(tokens / self.limiter.per_minute * 60_000)
        message = f"Limit reached ({tokens} tokens per {window_ms} ms)"
        return self.error(429, "TooManyRequestsException", message)

    def rate_limited(self, request: Request) -> bool:
        """Record requests only: the server takes its API tokens in the record query runners
        (``CommonBaseQueryRunnerService.execute`` calls ``throttleQueryExecution`` first,
        api/common/common-query-runners/common-base-query-runner.service.ts), and the data-model
        controller (metadata-modules/object-metadata/object-metadata.controller.ts, guards
        ``JwtAuthGuard``, ``WorkspaceAuthGuard``, ``SettingsPermissionGuard``) runs none; no
        guard or middleware of the app (app.module.ts) throttles either."""
        return not request.path.startswith("/rest/metadata/")

    def error(self, status: int, kind: str, message: str) -> Response:
        """Twenty's error body: ``{"statusCode", "error", "messages"}``.

        send-http-exception-response.util.ts (core-modules/exception-handler/utils/).
        """
        name = kind if kind.endswith("Exception") else exception_name(status)
        return Response(status, {"statusCode": status, "error": name, "messages": [message]})

    def dispatch(self, request: Request) -> Response:
        """Route one request; a TwentyError becomes its error response."""
        if len(request.path) + len(urlencode(request.query, doseq=True)) > MAX_REQUEST_LINE:
            return Response(431, raw=b"", content_type="text/plain")
        try:
            response = self._route(request)
            if self.microsecond_stamps and response.body is not None:
                response = dataclasses.replace(response, body=js_dates(response.body))
            return response
        except TwentyError as exc:
            response = self.error(exc.status, exc.kind, exc.message)
            if exc.code is not None:
                response.body["code"] = exc.code
            return response

    # -- routing -----------------------------------------------------------------------------------

    def _route(self, request: Request) -> Response:
        parts = [part for part in request.path.split("/") if part]
        method = request.method
        if parts[:1] == ["rest"]:
            parts = parts[1:]
            if parts == ["metadata", "objects"] and method == "GET" and self.serves_metadata:
                return self._metadata(request)
            params.check_depth(request)
            if len(parts) == 2 and parts[0] == "batch" and method == "POST":
                return self._create_batch(self.store.resolve(parts[1]), request)
            if len(parts) == 1:
                return self._collection(self.store.resolve(parts[0]), request)
            if len(parts) == 2:
                return self._member(self.store.resolve(parts[0]), parts[1], request)
        raise TwentyError(404, f"Cannot {method} {request.path}")

    def _collection(self, spec: ObjectSpec, request: Request) -> Response:
        if request.method == "GET":
            return self._list(spec, request)
        if request.method == "POST":
            row = self.store.create(spec, request.body)
            return self._data(201, spec.op_name("create", many=False), row)
        if request.method == "PATCH":
            return self._update_many(spec, request)
        raise TwentyError(404, f"Cannot {request.method} {request.path}")

    def _member(self, spec: ObjectSpec, record_id: str, request: Request) -> Response:
        if request.method == "GET":
            selected, capped = self._selected(spec, request)
            row = self.store.find(spec, record_id, include_deleted=False)
            body = {"data": {spec.singular: params.picked(self._readable(row), selected)}}
            return Response(200, body, headers=params.capped_header(capped))
        if request.method == "PATCH":
            row = self.store.find(spec, record_id, include_deleted=False)
            row = self.store.update(spec, row, request.body)
            return self._data(200, spec.op_name("update", many=False), row)
        if request.method == "DELETE":
            if params.flag(request, "soft_delete"):
                row = self.store.soft_delete(spec, record_id)
            else:
                row = self.store.hard_delete(spec, record_id)
            return self._data(200, spec.op_name("delete", many=False), {"id": row["id"]})
        raise TwentyError(404, f"Cannot {request.method} {request.path}")

    # -- handlers ----------------------------------------------------------------------------------

    def _list(self, spec: ObjectSpec, request: Request) -> Response:
        where = params.filter_of(spec, request, self.millisecond_comparisons)
        keys = parse_order_by(spec, request.param("order_by"))
        limit = self._limit(request)
        after, before = request.param("starting_after"), request.param("ending_before")
        if after and before:
            raise bad_request("Use either starting_after or ending_before, not both")
        rows = self._ordered(spec, where, request.param("filter"), keys)
        page = cut_page(
            rows,
            keys,
            limit,
            after=decode_cursor(after, keys) if after else None,
            before=decode_cursor(before, keys) if before else None,
            milliseconds=self.millisecond_comparisons,
        )
        first, last = (page.rows[0], page.rows[-1]) if page.rows else (None, None)
        selected, capped = self._selected(spec, request)
        body = {
            "data": {spec.plural: params.picked(self._readable(page.rows), selected)},
            "totalCount": len(rows),
            "pageInfo": {
                "hasNextPage": page.has_next,
                "hasPreviousPage": page.has_previous,
                "startCursor": encode_cursor(first, keys) if first is not None else None,
                "endCursor": encode_cursor(last, keys) if last is not None else None,
            },
        }
        return Response(200, body, headers=params.capped_header(capped))

    def _ordered(
        self, spec: ObjectSpec, where: Node | None, text: str | None, keys: list[OrderKey]
    ) -> Ordered:
        """The filtered rows in order, kept until the next write (``Store.memo``). A filter
        ``and(A,B,…)`` is ``A``'s rows, kept, then the others (a listing paged by ever narrower
        bounds shares ``A``), when they do not change whether soft-deleted rows are seen."""

        def make(node: Node | None) -> Callable[[], Ordered]:
            return lambda: ordered(self.store.select(spec, node), keys)

        if isinstance(where, And) and len(where.children) >= 2:
            base, *bounds = where.children
            if ("deletedAt" in base.fields()) == ("deletedAt" in where.fields()):
                key = ("list", spec.plural, repr(base), tuple(keys))  # repr: the mode too
                rows = self.store.memo(key, make(base))
                start, end, rest = 0, len(rows), []
                for bound in bounds:  # a bound on the first ordering field: found by bisection
                    span = None
                    if isinstance(bound, Condition) and bound.field == keys[0].field:
                        span = bounded(rows, keys[0], bound.op, bound.value)
                    if span is None:
                        rest.append(bound)
                    else:
                        start, end = max(start, span[0]), min(end, span[1])
                return [pair for pair in rows[start:end] if all(b.matches(pair[1]) for b in rest)]
        modes = (text, self.millisecond_comparisons)
        return self.store.memo(("list", spec.plural, modes, tuple(keys)), make(where))

    def _limit(self, request: Request) -> int:
        """``limit`` (:func:`params.limit`), as this server's limits set it."""
        return params.limit(request, self.default_limit, self.max_limit)

    def _create_batch(self, spec: ObjectSpec, request: Request) -> Response:
        items = request.body
        # 'Body must be an array' / 'Input must not be empty': rest-api-create-many.handler.ts.
        if not isinstance(items, list):
            raise bad_request("Body must be an array")
        if not items:
            raise bad_request("Input must not be empty")
        selected, _ = self._selected(spec, request, cap=False)
        if not self.supports_upsert:
            rows = self.store.create_many_legacy(spec, items)
        else:
            if len(items) > self.max_batch:
                raise bad_request(f"Maximum number of records to upsert is {self.max_batch}.")
            upsert = params.flag(request, "upsert")
            rows = self.store.create_many(
                spec, items, upsert=upsert, backfill_updates=self.upsert_moves_position
            )
        answer = params.picked(self._readable(rows), selected)
        return Response(201, {"data": {spec.op_name("create", many=True): answer}})

    def _update_many(self, spec: ObjectSpec, request: Request) -> Response:
        where = params.filter_of(spec, request, self.millisecond_comparisons)
        if where is None:
            raise bad_request("PATCH on a collection needs a filter")
        rows = sort_rows(self.store.select(spec, where), parse_order_by(spec, None))
        updated = self.store.update_many(spec, rows, request.body)
        return self._data(200, spec.op_name("update", many=True), updated)

    def _readable(self, payload: Any) -> Any:
        """A copy of a record or records (an answer is serialized unlocked) without the fields
        the key may not read (``unreadable_fields``)."""
        if isinstance(payload, list):
            return [self._readable(item) for item in payload]
        record = copy.deepcopy(payload)
        if isinstance(record, dict):
            for name in self.unreadable_fields:
                record.pop(name, None)
        return record

    def _selected(
        self, spec: ObjectSpec, request: Request, *, cap: bool = True
    ) -> tuple[frozenset[str] | None, bool]:
        """The fields a record read, or a batch write's answer, carries, as
        :func:`params.selected` reads ``fields`` (every field on a server before them)."""
        if not self.selects_fields:
            return None, False
        unreadable = frozenset(self.unreadable_fields)
        return params.selected(
            spec, request, unreadable=unreadable, max_fields=self.max_fields, cap=cap
        )

    def _data(self, status: int, key: str, payload: Any) -> Response:
        """``{"data": {key: payload}}``, the payload as the key may read it."""
        return Response(status, {"data": {key: self._readable(payload)}})

    def _metadata(self, request: Request) -> Response:
        # The permission guard runs before the handler parses anything.
        if self.metadata_forbidden:
            raise metadata.forbidden()
        body = metadata.page(
            list(self.store.objects.values()),
            request,
            shape=self.metadata_shape,
            default_limit=self.metadata_default_limit,
            max_limit=self.metadata_max_limit,
        )
        return Response(200, body)
