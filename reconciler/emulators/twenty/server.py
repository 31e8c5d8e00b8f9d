"""A strict local emulator of Twenty CRM's REST API (``/rest/...``)."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from reconciler.emulators.base import EmulatorServer, Request, Response, TokenBucketLimiter
from reconciler.emulators.twenty.filters import Node, parse_filter
from reconciler.emulators.twenty.ordering import (
    cut_page,
    decode_cursor,
    encode_cursor,
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
from reconciler.emulators.twenty.store import USER_ACTOR, Store

_LIMIT_RE = re.compile(r"^\d+$")
DEFAULT_OBJECT = "repProgressions"


class TwentyEmulator(EmulatorServer):
    """Twenty's REST API over loopback HTTP, serving the ``repProgressions`` custom object.

    Args:
        token: the API key accepted as ``Authorization: Bearer <token>``.
        rate_per_minute: token-bucket refill rate (0 disables rate limiting).
        burst: bucket capacity (defaults to ``rate_per_minute``).
        latency: seconds added before every answer.
        max_limit: the largest page size; bigger ``limit`` values are clamped to it.
        seed: seed of the generator of record ids.
    """

    default_limit = 60
    max_batch = 60

    def __init__(
        self,
        token: str = "test-key",
        *,
        rate_per_minute: float = 100,
        burst: float | None = None,
        latency: float = 0.0,
        max_limit: int = 200,
        seed: int = 0,
    ) -> None:
        super().__init__(token, latency=latency)
        self.max_limit = max_limit
        self._rate = (rate_per_minute, burst)
        self._seed = seed
        self.limiter = TokenBucketLimiter(rate_per_minute, burst)
        self.store = Store(self._now, seed)
        self.add_object("repProgression", "repProgressions", REP_PROGRESSION_FIELDS)

    def _now(self) -> datetime:
        return self.clock.now()

    def reset(self) -> None:
        """Back to the freshly constructed state (records, objects, log, faults, clock, bucket).

        Lets one running server be shared by many tests without paying a restart each time.
        """
        with self.lock:
            self.store = Store(self._now, self._seed)
            self.store.add_object("repProgression", "repProgressions", REP_PROGRESSION_FIELDS)
            self.limiter = TokenBucketLimiter(*self._rate)
            self.faults.clear()
            self.clock.reset()
            self.requests.clear()

    def add_object(self, singular: str, plural: str, fields: Mapping[str, str]) -> None:
        """Serve another object with the given custom fields (name -> Twenty field type)."""
        with self.lock:
            self.store.add_object(singular, plural, fields)

    # -- direct access for tests (no HTTP, no rate limit, no log) --------------------------------

    def create(
        self,
        fields: Mapping[str, Any],
        *,
        id: str | None = None,
        updated_at: datetime | None = None,
        object: str = DEFAULT_OBJECT,
    ) -> dict[str, Any]:
        """Create a record as a workspace user would; raises TwentyError on invalid values."""
        body = dict(fields)
        if id is not None:
            body["id"] = id
        with self.lock:
            spec = self.store.resolve(object)
            row = self.store.create(spec, body, stamp=updated_at, actor=USER_ACTOR)
            return copy.deepcopy(row)

    def update(
        self,
        id: str,
        fields: Mapping[str, Any],
        *,
        updated_at: datetime | None = None,
        object: str = DEFAULT_OBJECT,
    ) -> dict[str, Any]:
        """Edit a record as a user would; updatedAt becomes ``updated_at`` or the server time."""
        with self.lock:
            spec = self.store.resolve(object)
            row = self.store.find(spec, id, include_deleted=True)
            return copy.deepcopy(self.store.update(spec, row, dict(fields), stamp=updated_at))

    def soft_delete(self, id: str, *, object: str = DEFAULT_OBJECT) -> None:
        """Soft-delete a live record (sets deletedAt)."""
        with self.lock:
            self.store.soft_delete(self.store.resolve(object), id)

    def hard_delete(self, id: str, *, object: str = DEFAULT_OBJECT) -> None:
        """Remove a record for good."""
        with self.lock:
            self.store.hard_delete(self.store.resolve(object), id)

    def get(
        self,
        id: str,
        *,
        include_deleted: bool = True,
        object: str = DEFAULT_OBJECT,
    ) -> dict[str, Any] | None:
        """A copy of one record in the API shape, or None."""
        with self.lock:
            spec = self.store.resolve(object)
            try:
                row = self.store.find(spec, id, include_deleted=include_deleted)
            except TwentyError:
                return None
            return copy.deepcopy(row)

    def records(
        self,
        *,
        include_deleted: bool = False,
        object: str = DEFAULT_OBJECT,
    ) -> list[dict[str, Any]]:
        """Copies of the records in the default order (live ones unless ``include_deleted``)."""
        with self.lock:
            spec = self.store.resolve(object)
            return copy.deepcopy(self.store.all_rows(spec, include_deleted=include_deleted))

    # -- pipeline hooks ----------------------------------------------------------------------------

    def admit(self, now: float) -> Response | None:
        """Twenty's per-workspace token bucket."""
        if self.limiter.admit(now):
            return None
        return self.error(429, "TooManyRequestsException", "ThrottlerException: Too Many Requests")

    def error(self, status: int, kind: str, message: str) -> Response:
        """Twenty's error body: ``{"statusCode", "error", "messages"}``."""
        name = kind if kind.endswith("Exception") else exception_name(status)
        return Response(status, {"statusCode": status, "error": name, "messages": [message]})

    def dispatch(self, request: Request) -> Response:
        """Route one request; a TwentyError becomes its error response."""
        try:
            return self._route(request)
        except TwentyError as exc:
            return self.error(exc.status, exc.kind, exc.message)

    # -- routing -----------------------------------------------------------------------------------

    def _route(self, request: Request) -> Response:
        parts = [part for part in request.path.split("/") if part]
        method = request.method
        if parts[:1] == ["rest"]:
            parts = parts[1:]
            _check_depth(request)
            if parts == ["metadata", "objects"] and method == "GET":
                return self._metadata()
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
            return _data(201, spec.op_name("create", many=False), row)
        if request.method == "PATCH":
            return self._update_many(spec, request)
        raise TwentyError(404, f"Cannot {request.method} {request.path}")

    def _member(self, spec: ObjectSpec, record_id: str, request: Request) -> Response:
        if request.method == "GET":
            row = self.store.find(spec, record_id, include_deleted=False)
            return _data(200, spec.singular, row)
        if request.method == "PATCH":
            row = self.store.find(spec, record_id, include_deleted=False)
            row = self.store.update(spec, row, request.body)
            return _data(200, spec.op_name("update", many=False), row)
        if request.method == "DELETE":
            if _flag(request, "soft_delete"):
                row = self.store.soft_delete(spec, record_id)
            else:
                row = self.store.hard_delete(spec, record_id)
            return _data(200, spec.op_name("delete", many=False), {"id": row["id"]})
        raise TwentyError(404, f"Cannot {request.method} {request.path}")

    # -- handlers ----------------------------------------------------------------------------------

    def _list(self, spec: ObjectSpec, request: Request) -> Response:
        where = _filter(spec, request)
        keys = parse_order_by(spec, request.param("order_by"))
        limit = self._limit(request)
        after, before = request.param("starting_after"), request.param("ending_before")
        if after and before:
            raise bad_request("Use either starting_after or ending_before, not both")
        rows = self.store.select(spec, where)
        page = cut_page(
            rows,
            keys,
            limit,
            after=decode_cursor(after, keys) if after else None,
            before=decode_cursor(before, keys) if before else None,
        )
        first, last = (page.rows[0], page.rows[-1]) if page.rows else (None, None)
        body = {
            "data": {spec.plural: copy.deepcopy(page.rows)},
            "totalCount": len(rows),
            "pageInfo": {
                "hasNextPage": page.has_next,
                "hasPreviousPage": page.has_previous,
                "startCursor": encode_cursor(first, keys) if first is not None else None,
                "endCursor": encode_cursor(last, keys) if last is not None else None,
            },
        }
        return Response(200, body)

    def _limit(self, request: Request) -> int:
        raw = request.param("limit")
        if not raw:
            return self.default_limit
        if not _LIMIT_RE.match(raw) or int(raw) <= 0:
            raise bad_request(f"limit must be a positive integer, got {raw!r}")
        return min(int(raw), self.max_limit)

    def _create_batch(self, spec: ObjectSpec, request: Request) -> Response:
        items = request.body
        if not isinstance(items, list) or not 1 <= len(items) <= self.max_batch:
            raise bad_request(f"Batch body must be a JSON array of 1 to {self.max_batch} records")
        rows = self.store.create_many(spec, items, upsert=_flag(request, "upsert"))
        return _data(201, spec.op_name("create", many=True), rows)

    def _update_many(self, spec: ObjectSpec, request: Request) -> Response:
        where = _filter(spec, request)
        if where is None:
            raise bad_request("PATCH on a collection needs a filter")
        rows = sort_rows(self.store.select(spec, where), parse_order_by(spec, None))
        updated = self.store.update_many(spec, rows, request.body)
        return _data(200, spec.op_name("update", many=True), updated)

    def _metadata(self) -> Response:
        objects = [
            {
                "nameSingular": spec.singular,
                "namePlural": spec.plural,
                "fields": [
                    {"name": name, "type": ftype, "isSystem": name not in spec.custom_fields}
                    for name, ftype in spec.fields.items()
                ],
            }
            for spec in self.store.objects.values()
        ]
        return Response(200, {"data": {"objects": objects}})


def _data(status: int, key: str, payload: Any) -> Response:
    """``{"data": {key: payload}}`` with a copy of the payload (it is serialized unlocked)."""
    return Response(status, {"data": {key: copy.deepcopy(payload)}})


def _filter(spec: ObjectSpec, request: Request) -> Node | None:
    """The request's parsed ``filter``, or None without one."""
    text = request.param("filter")
    return parse_filter(text, spec) if text else None


def _flag(request: Request, name: str) -> bool:
    """A boolean query parameter: absent or ``false`` is False, ``true`` True, else a 400."""
    raw = request.param(name)
    if raw in (None, "", "false"):
        return False
    if raw == "true":
        return True
    raise bad_request(f"{name} must be true or false, got {raw!r}")


def _check_depth(request: Request) -> None:
    """Accept ``depth`` 0, 1 or 2 (relations are not modelled, so it changes nothing)."""
    raw = request.param("depth")
    if raw not in (None, "", "0", "1", "2"):
        raise bad_request(f"depth must be 0, 1 or 2, got {raw!r}")
