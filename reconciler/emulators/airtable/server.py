"""The Airtable Web API emulator: routing, limits, and the HTTP handlers over the workspace."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlencode

from reconciler.emulators.airtable.listing import (
    Iterators,
    bad_request,
    flag,
    list_page,
    options_from_body,
    options_from_query,
)
from reconciler.emulators.airtable.meta import base_schema, billing_limit_exceeded, rate_limited
from reconciler.emulators.airtable.schema import LEADS_FIELDS, AirtableError
from reconciler.emulators.airtable.store import Table
from reconciler.emulators.airtable.workspace import Workspace
from reconciler.emulators.airtable.writes import (
    create_records,
    delete_record,
    delete_records,
    not_found,
    update_record,
    update_records,
)
from reconciler.emulators.base import EmulatorServer, Request, Response
from reconciler.emulators.limits import SlidingWindowLimiter

MAX_URL_LENGTH = 16_000
_FORBIDDEN = (
    "Invalid permissions, or the requested model was not found. Check that both your user and "
    "your token have the required permissions, and that the model names and/or ids are correct."
)

Handler = Callable[[Table, Request], Any]


class AirtableEmulator(Workspace, EmulatorServer):
    """A strict local emulator of one Airtable base, starting with a ``Leads`` table.

    Args:
        token: the personal access token it accepts.
        base_id: the id of its one base.
        rate_limit: requests per second before 429 and lockout (0: unlimited).
        lockout: seconds every request is refused after going over the rate limit.
        latency: seconds to wait before answering each request.
        iterator_ttl: seconds a list iterator (``offset``) survives without being used.
        seed: seeds the record, table, field and option ids.

    Attributes:
        monthly_limit: data-API calls the workspace may make this month (None: no cap); once
            ``calls_this_month`` reaches it, every data request answers 429
            ``PUBLIC_API_BILLING_LIMIT_EXCEEDED`` until :meth:`new_month`.
    """

    def __init__(
        self,
        token: str = "test-token",
        *,
        base_id: str = "appTESTBASE000001",
        rate_limit: int = 5,
        lockout: float = 30.0,
        latency: float = 0.0,
        iterator_ttl: float = 300.0,
        seed: int = 0,
    ) -> None:
        super().__init__(token, latency=latency)
        self.base_id = base_id
        self._defaults = (rate_limit, lockout, iterator_ttl, seed)
        self.limiter = SlidingWindowLimiter(rate_limit, 1.0, lockout)
        self.iterator_ttl = iterator_ttl
        self.monthly_limit: int | None = None
        self.calls_this_month = 0
        self._iterators = Iterators(random.Random(seed + 1))
        self._init_workspace(seed)
        self.reset()

    def reset(self) -> None:
        """Return to the freshly constructed state (only ``Leads``, empty) without restarting:
        forgets tables, records, iterators, the request log, pending faults, clock changes and
        the monthly cap, and restores the limiter and ``iterator_ttl`` from the constructor."""
        rate_limit, lockout, iterator_ttl, seed = self._defaults
        with self.lock:
            self.limiter = SlidingWindowLimiter(rate_limit, 1.0, lockout)
            self.iterator_ttl = iterator_ttl
            self.monthly_limit, self.calls_this_month = None, 0
            self._iterators = Iterators(random.Random(seed + 1))
            self._init_workspace(seed)
            self.clock.reset()
            self.faults.clear()
            self.requests.clear()
            self.add_table("Leads", LEADS_FIELDS)

    # -- the monthly call cap --------------------------------------------------------------------

    @property
    def billing_limit_exceeded(self) -> bool:
        """Whether the workspace has spent its monthly API calls (settable: True exhausts the
        cap now, False lifts it)."""
        return self.monthly_limit is not None and self.calls_this_month >= self.monthly_limit

    @billing_limit_exceeded.setter
    def billing_limit_exceeded(self, exceeded: bool) -> None:
        self.monthly_limit = self.calls_this_month if exceeded else None

    def new_month(self) -> None:
        """Start a new billing month: the call count goes back to zero."""
        with self.lock:
            self.calls_this_month = 0

    # -- EmulatorServer hooks --------------------------------------------------------------------

    def error(self, status: int, kind: str, message: str) -> Response:
        """Airtable's error body: ``{"error": {"type": ..., "message": ...}}``."""
        return Response(status, {"error": {"type": kind, "message": message}})

    def admit(self, now: float) -> Response | None:
        """Airtable's per-base limit: over ``rate_limit`` a second, 429 and a lockout.

        https://airtable.com/developers/web/api/rate-limits: "you will receive a 429 status code
        and will need to wait 30 seconds before subsequent requests will succeed". Requests sent
        during the lockout are refused; nothing documents that they extend it, so they do not.
        With the monthly cap spent, the billing 429 answers instead (see :meth:`dispatch`).
        """
        if self.billing_limit_exceeded or self.limiter.admit(now):
            return None
        return rate_limited()

    def dispatch(self, request: Request) -> Response:
        """Route one request and turn API errors into error responses."""
        query_length = len(urlencode(request.query, doseq=True))
        if len(request.path) + 1 + query_length >= MAX_URL_LENGTH:
            return self.error(
                414,
                "INVALID_REQUEST_URL_TOO_LONG",
                f"The request URL must be shorter than {MAX_URL_LENGTH} characters; "
                "use POST .../listRecords",
            )
        try:
            return self._route(request)
        except AirtableError as exc:
            return self.error(exc.status, exc.kind, exc.message)
        except Exception as exc:  # an emulator bug: answer 500 rather than drop the connection
            return self.error(500, "SERVER_ERROR", f"emulator failure: {exc!r}")

    def _route(self, request: Request) -> Response:
        parts = [unquote(part) for part in request.path.split("/")[1:]]
        if parts[:1] != ["v0"]:
            return _no_route()
        parts = parts[1:]
        if len(parts) == 4 and parts[:2] == ["meta", "bases"] and parts[3] == "tables":
            return self._meta(parts[2], request) if request.method == "GET" else _no_route()
        if len(parts) not in (2, 3):
            return _no_route()
        handler = self._handler(request.method, parts)
        if handler is None:
            return _no_route()
        if self.billing_limit_exceeded:
            return billing_limit_exceeded()
        self.calls_this_month += 1
        return Response(200, handler(self._resolve(parts[0], parts[1]), request))

    def _handler(self, method: str, parts: list[str]) -> Handler | None:
        if len(parts) == 2:
            return self._table_routes.get(method)
        if parts[2] == "listRecords" and method == "POST":
            return self._list_by_body
        record_id = parts[2]
        routes: dict[str, Handler] = {
            "GET": lambda table, request: self._get_record(table, record_id, request),
            "PATCH": lambda table, request: update_record(
                self._context(table), record_id, request.body, replace=False
            ),
            "PUT": lambda table, request: update_record(
                self._context(table), record_id, request.body, replace=True
            ),
            "DELETE": lambda table, request: delete_record(table, record_id),
        }
        return routes.get(method)

    @property
    def _table_routes(self) -> dict[str, Handler]:
        return {
            "GET": self._list_by_query,
            "POST": lambda table, request: create_records(self._context(table), request.body),
            "PATCH": lambda table, request: update_records(
                self._context(table), request.body, replace=False
            ),
            "PUT": lambda table, request: update_records(
                self._context(table), request.body, replace=True
            ),
            "DELETE": lambda table, request: delete_records(table, request.query),
        }

    def _resolve(self, base_id: str, table_key: str) -> Table:
        table = self._find_table(table_key) if base_id == self.base_id else None
        if table is None:
            raise AirtableError(403, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND", _FORBIDDEN)
        return table

    # -- handlers --------------------------------------------------------------------------------

    def _list_by_query(self, table: Table, request: Request) -> Any:
        options = options_from_query(request.query)
        return list_page(table, options, self._iterators, self.clock.monotonic(), self.iterator_ttl)

    def _list_by_body(self, table: Table, request: Request) -> Any:
        options = options_from_body(request.body, request.query)
        return list_page(table, options, self._iterators, self.clock.monotonic(), self.iterator_ttl)

    def _get_record(self, table: Table, record_id: str, request: Request) -> Any:
        by_id = False
        for name, values in request.query.items():
            if name not in ("cellFormat", "timeZone", "userLocale", "returnFieldsByFieldId"):
                raise bad_request(f"unknown parameter {name!r}")
            if name == "cellFormat" and values != ["json"]:
                raise bad_request("only cellFormat=json is supported")
            if name == "returnFieldsByFieldId":
                by_id = flag(name, values[0])
        # Airtable finds a record by id anywhere in the base, whatever table the URL names
        # (gtalarico/pyairtable#375, Airtable/airtable.js#117: "record IDs are unique within a
        # base"); it is rendered with its own table's fields.
        owner = next((t for t in self._tables.values() if record_id in t.records), None)
        if owner is None:
            raise not_found(record_id)
        return owner.render(owner.records[record_id], by_id=by_id)

    def _meta(self, base_id: str, request: Request) -> Response:
        if base_id != self.base_id:
            return self.error(403, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND", _FORBIDDEN)
        try:
            return Response(200, base_schema(self._tables.values(), request.query))
        except AirtableError as exc:
            return self.error(exc.status, exc.kind, exc.message)


def _no_route() -> Response:
    """Airtable's answer to an unknown route: a bare ``"NOT_FOUND"``."""
    return Response(404, "NOT_FOUND")
