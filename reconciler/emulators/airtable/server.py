"""The Airtable Web API emulator: routing, the base's tables, and a direct Python API for tests."""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlencode

from reconciler.emulators.airtable.listing import (
    Iterators,
    bad_request,
    list_page,
    options_from_body,
    options_from_query,
)
from reconciler.emulators.airtable.schema import (
    FIELD_TYPES,
    LEADS_FIELDS,
    AirtableError,
    FieldDef,
    field_schema,
    truncate_ms,
)
from reconciler.emulators.airtable.store import Table
from reconciler.emulators.airtable.writes import (
    WriteContext,
    create_records,
    delete_record,
    delete_records,
    not_found,
    update_record,
    update_records,
)
from reconciler.emulators.base import EmulatorServer, Request, Response, SlidingWindowLimiter

MAX_URL_LENGTH = 16_000
_ALPHANUMERIC = string.ascii_letters + string.digits
_FORBIDDEN = (
    "Invalid permissions, or the requested model was not found. Check that both your user and "
    "your token have the required permissions, and that the model names and/or ids are correct."
)

Handler = Callable[[Table, Request], Any]


class AirtableEmulator(EmulatorServer):
    """A strict local emulator of one Airtable base, starting with a ``Leads`` table.

    Args:
        token: the personal access token it accepts.
        base_id: the id of its one base.
        rate_limit: requests per second before 429 and lockout (0: unlimited).
        lockout: seconds every request is refused after going over the rate limit.
        latency: seconds to wait before answering each request.
        iterator_ttl: seconds a list iterator (``offset``) survives without being used.
        seed: seeds the record, table and field ids.
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
        self._rng = random.Random(seed)
        self._iterators = Iterators(random.Random(seed + 1))
        self._tables: dict[str, Table] = {}
        self.reset()

    def reset(self) -> None:
        """Return to the freshly constructed state (only ``Leads``, empty) without restarting:
        forgets tables, records, iterators, the request log, pending faults and clock changes,
        and restores the limiter and ``iterator_ttl`` from the constructor arguments."""
        rate_limit, lockout, iterator_ttl, seed = self._defaults
        with self.lock:
            self.limiter = SlidingWindowLimiter(rate_limit, 1.0, lockout)
            self.iterator_ttl = iterator_ttl
            self._rng = random.Random(seed)
            self._iterators = Iterators(random.Random(seed + 1))
            self._tables.clear()
            self.clock.reset()
            self.faults.clear()
            self.requests.clear()
            self.add_table("Leads", LEADS_FIELDS)

    # -- the base --------------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return prefix + "".join(self._rng.choices(_ALPHANUMERIC, k=14))

    def _new_record_id(self) -> str:
        while True:
            record_id = self._new_id("rec")
            if all(record_id not in table.records for table in self._tables.values()):
                return record_id

    def add_table(self, name: str, fields: dict[str, str]) -> str:
        """Add a table with these fields (name -> Airtable field type); returns its id."""
        unknown = sorted(set(fields.values()) - FIELD_TYPES)
        if not fields:
            raise ValueError("a table needs at least one field")
        if unknown:
            raise ValueError(f"unsupported field types {unknown}")
        with self.lock:
            if self._find_table(name) is not None:
                raise ValueError(f"table {name!r} already exists")
            columns = [FieldDef(self._new_id("fld"), key, kind) for key, kind in fields.items()]
            table = Table(self._new_id("tbl"), name, columns)
            self._tables[table.id] = table
            return table.id

    def _find_table(self, key: str) -> Table | None:
        if key in self._tables:
            return self._tables[key]
        return next((t for t in self._tables.values() if t.name == key), None)

    def table(self, key: str) -> Table:
        """The table with this name or id (KeyError if none)."""
        found = self._find_table(key)
        if found is None:
            raise KeyError(key)
        return found

    def _now(self) -> datetime:
        return truncate_ms(self.clock.now())

    def _context(self, table: Table, modified_at: datetime | None = None) -> WriteContext:
        at = self._now() if modified_at is None else truncate_ms(modified_at)
        return WriteContext(table, at, self._new_record_id)

    # -- direct Python API (no HTTP, no rate limit, no log) --------------------------------------

    def create(
        self,
        table: str,
        fields: dict[str, Any],
        *,
        modified_at: datetime | None = None,
        validate: bool = True,
    ) -> dict[str, Any]:
        """Create a record as a user would; ``validate=False`` stores values unchecked."""
        with self.lock:
            ctx = self._context(self.table(table), modified_at)
            values = ctx.table.coerce_fields(fields, validate=validate)
            return ctx.table.render(ctx.table.insert(ctx.new_id(), values, ctx.now))

    def update(
        self,
        table: str,
        record_id: str,
        fields: dict[str, Any],
        *,
        modified_at: datetime | None = None,
        validate: bool = True,
    ) -> dict[str, Any]:
        """Edit a record as a user would (merge; None clears). ``modified_at`` sets the
        modified time explicitly; otherwise it moves to the clock's now if a value changed."""
        with self.lock:
            ctx = self._context(self.table(table), modified_at)
            record = ctx.table.records.get(record_id)
            if record is None:
                raise not_found(record_id)
            values = ctx.table.coerce_fields(fields, validate=validate)
            forced = modified_at is not None
            ctx.table.apply(record, values, replace=False, at=ctx.now, force_time=forced)
            return ctx.table.render(record)

    def delete(self, table: str, record_id: str) -> None:
        """Delete a record (AirtableError 404 if it does not exist)."""
        with self.lock:
            delete_record(self.table(table), record_id)

    def get(self, table: str, record_id: str) -> dict[str, Any] | None:
        """A record in the API shape, or None."""
        with self.lock:
            found = self.table(table)
            record = found.records.get(record_id)
            return None if record is None else found.render(record)

    def records(self, table: str) -> list[dict[str, Any]]:
        """Every record of a table in the API shape, in creation order."""
        with self.lock:
            found = self.table(table)
            return [found.render(record) for record in found.records.values()]

    # -- EmulatorServer hooks --------------------------------------------------------------------

    def error(self, status: int, kind: str, message: str) -> Response:
        """Airtable's error body: ``{"error": {"type": ..., "message": ...}}``."""
        return Response(status, {"error": {"type": kind, "message": message}})

    def admit(self, now: float) -> Response | None:
        """Airtable's per-base limit: over ``rate_limit`` a second, 429 and a lockout."""
        if self.limiter.admit(now):
            return None
        return self.error(429, "RATE_LIMIT_REACHED", "Rate limit exceeded. Please try again later")

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
        for name, values in request.query.items():
            if name not in ("cellFormat", "timeZone", "userLocale", "returnFieldsByFieldId"):
                raise bad_request(f"unknown parameter {name!r}")
            if name == "cellFormat" and values != ["json"]:
                raise bad_request("only cellFormat=json is supported")
            if name == "returnFieldsByFieldId" and values[0] not in ("", "0", "false"):
                raise bad_request("returnFieldsByFieldId is not supported")
        record = table.records.get(record_id)
        if record is None:
            raise not_found(record_id)
        return table.render(record)

    def _meta(self, base_id: str, request: Request) -> Response:
        if base_id != self.base_id:
            return self.error(403, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND", _FORBIDDEN)
        unknown = sorted(set(request.query) - {"include", "include[]"})
        if unknown:
            return self.error(422, "INVALID_REQUEST_UNKNOWN", f"unknown parameters {unknown}")
        tables = [
            {
                "id": table.id,
                "name": table.name,
                "primaryFieldId": next(iter(table.fields.values())).id,
                "fields": [field_schema(column) for column in table.fields.values()],
                "views": [],
            }
            for table in self._tables.values()
        ]
        return Response(200, {"tables": tables})


def _no_route() -> Response:
    """Airtable's answer to an unknown route: a bare ``"NOT_FOUND"``."""
    return Response(404, "NOT_FOUND")
