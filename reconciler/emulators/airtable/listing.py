"""List records: request options (query string or JSON body), selection, sorting and paging.

Paging works like Airtable's: the first request evaluates the formula once and snapshots the
ordered ids of the matching records in a server-side iterator; each page then renders the
records' live values. The ``offset`` token names the iterator and the position of the next page;
an unknown token, or an iterator idle for longer than its time to live, is refused with 422
``LIST_RECORDS_ITERATOR_NOT_AVAILABLE``.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from reconciler.emulators.airtable.evaluate import compile_formula
from reconciler.emulators.airtable.formula import FormulaError
from reconciler.emulators.airtable.schema import AirtableError, FieldDef, unprocessable
from reconciler.emulators.airtable.store import Getter, StoredRecord, Table

_SORT_PARAM_RE = re.compile(r"^sort\[(\d+)\]\[(field|direction)\]$")
_INT_RE = re.compile(r"^\d+$")
_ALPHANUMERIC = string.ascii_letters + string.digits
_PASSIVE_PARAMS = ("timeZone", "userLocale")


def bad_request(message: str) -> AirtableError:
    """422 ``INVALID_REQUEST_UNKNOWN``: Airtable's answer to a malformed parameter."""
    return unprocessable("INVALID_REQUEST_UNKNOWN", f"Invalid request: {message}")


@dataclass
class ListOptions:
    """The options of one list request."""

    page_size: int = 100
    max_records: int | None = None
    offset: str | None = None
    formula: str | None = None
    fields: list[str] | None = None
    sort: list[tuple[str, str]] = field(default_factory=list)
    comment_count: bool = False
    by_id: bool = False
    view: str | None = None


# -- parsing -------------------------------------------------------------------------------------


def _integer(name: str, raw: Any, low: int, high: int | None) -> int:
    if isinstance(raw, str) and _INT_RE.match(raw):
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise bad_request(f"{name} must be an integer")
    if raw < low or (high is not None and raw > high):
        upper = f" and at most {high}" if high is not None else ""
        raise bad_request(f"{name} must be at least {low}{upper}, got {raw}")
    return raw


def _apply_common(options: ListOptions, name: str, value: Any) -> None:
    """Apply one option shared by the query and body forms."""
    if name == "pageSize":
        options.page_size = _integer(name, value, 1, 100)
    elif name == "maxRecords":
        options.max_records = _integer(name, value, 1, None)
    elif name in ("offset", "filterByFormula"):
        if not isinstance(value, str):
            raise bad_request(f"{name} must be a string")
        setattr(options, "offset" if name == "offset" else "formula", value)
    elif name == "cellFormat":
        if value != "json":
            raise bad_request("only cellFormat=json is supported")
    elif name in _PASSIVE_PARAMS:
        if not isinstance(value, str):
            raise bad_request(f"{name} must be a string")
    elif name == "returnFieldsByFieldId":
        options.by_id = flag(name, value)
    elif name == "view":
        if not isinstance(value, str):
            raise bad_request("view must be a string")
        options.view = value
    else:
        raise bad_request(f"unknown parameter {name!r}")


def flag(name: str, value: Any) -> bool:
    """A boolean option: JSON true/false in a body, ``1``/``0``/``true``/``false`` in a query.

    ``returnFieldsByFieldId`` is a query parameter of list and get-record
    (https://airtable.com/developers/web/api/get-record#query-returnfieldsbyfieldid) and a body
    key of listRecords, create and update (pyairtable ``api/params.py`` sends ``int(...)`` in a
    query and ``bool(...)`` in a body; gtalarico/pyairtable#252: writes read it from the body).
    ``true`` is the documented form (shared docs ``airtable-api.md``, "Reading"); the service
    takes pyairtable's ``1`` as well. Any other value is refused, as other malformed parameters
    are (422 ``INVALID_REQUEST_UNKNOWN``).
    """
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("1", "true", "0", "false", ""):
        return value.lower() in ("1", "true")
    raise bad_request(f"{name} must be a boolean")


def _record_metadata(values: Any) -> bool:
    if not isinstance(values, list) or any(v != "commentCount" for v in values):
        raise bad_request("recordMetadata may only contain 'commentCount'")
    return bool(values)


def options_from_query(query: dict[str, list[str]]) -> ListOptions:
    """Parse the query string of ``GET /v0/{base}/{table}``."""
    options = ListOptions()
    sorts: dict[int, dict[str, str]] = {}
    for name, values in query.items():
        sort_param = _SORT_PARAM_RE.match(name)
        if name in ("fields[]", "fields"):
            options.fields = (options.fields or []) + values
        elif name in ("recordMetadata[]", "recordMetadata"):
            options.comment_count = _record_metadata(values)
        elif sort_param:
            _single(name, values)
            sorts.setdefault(int(sort_param.group(1)), {})[sort_param.group(2)] = values[0]
        else:
            _apply_common(options, name, _single(name, values))
    options.sort = _sort_list([sorts[index] for index in sorted(sorts)])
    return options


def _single(name: str, values: list[str]) -> str:
    if len(values) != 1:
        raise bad_request(f"parameter {name!r} given {len(values)} times")
    return values[0]


def options_from_body(body: Any, query: dict[str, list[str]]) -> ListOptions:
    """Parse the JSON body (and passive query parameters) of ``POST .../listRecords``."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    options = ListOptions()
    for name, values in query.items():
        if name not in _PASSIVE_PARAMS:
            raise bad_request(f"unknown query parameter {name!r}")
        _single(name, values)
    for name, value in body.items():
        if name == "fields":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise bad_request("fields must be a list of field names or ids")
            options.fields = list(value)
        elif name == "sort":
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise bad_request("sort must be a list of {field, direction} objects")
            options.sort = _sort_list(value)
        elif name == "recordMetadata":
            options.comment_count = _record_metadata(value)
        else:
            _apply_common(options, name, value)
    return options


def _sort_list(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    result: list[tuple[str, str]] = []
    for entry in entries:
        if set(entry) - {"field", "direction"} or not isinstance(entry.get("field"), str):
            raise bad_request("each sort needs a field (and optionally a direction)")
        direction = entry.get("direction", "asc")
        if direction not in ("asc", "desc"):
            raise bad_request(f"sort direction must be 'asc' or 'desc', got {direction!r}")
        result.append((entry["field"], direction))
    return result


# -- selection -----------------------------------------------------------------------------------


def _sort_key(getter: Getter) -> Any:
    def key(record: StoredRecord) -> tuple[int, Any]:
        value = getter(record)
        if value is None:
            return (0, 0)
        if isinstance(value, bool | int | float):
            return (1, float(value))
        if isinstance(value, datetime):
            return (3, value.timestamp())
        if isinstance(value, date):
            return (3, datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp())
        if isinstance(value, list):
            return (2, ", ".join(map(str, value)).casefold())
        return (2, str(value).casefold())

    return key


def _view_order(table: Table, view: str | None) -> list[StoredRecord]:
    """Records in a view's order (creation order: the emulator's views neither filter nor
    sort), or in an arbitrary stable order without a view ("Without sort or view, order is
    arbitrary")."""
    if view is None:
        return sorted(table.records.values(), key=lambda record: record.id)
    if not any(view in (found["id"], found["name"]) for found in table.views):
        raise unprocessable("VIEW_NAME_NOT_FOUND", f'Could not find view "{view}" in this table')
    return sorted(table.records.values(), key=lambda record: record.number)


def select(table: Table, options: ListOptions) -> list[str]:
    """The ordered ids of the records matching the request (evaluated once, for page one).

    ``sort`` and ``fields`` take names or ids (interchangeable wherever the API takes a field
    name: ngocnicholas/airtable.net#42, Airtable's 2022 changelog in gtalarico/pyairtable#158);
    ``filterByFormula`` takes names only (see :meth:`Table.formula_getter`).
    """
    sorts = [(table.field(name), direction) for name, direction in options.sort]
    records = _view_order(table, options.view)
    if options.formula and options.formula.strip():
        try:
            predicate = compile_formula(options.formula, table.formula_getter)
        except FormulaError as exc:
            raise unprocessable(
                "INVALID_FILTER_BY_FORMULA",
                f"The formula for filtering records is invalid: {exc}",
            ) from None
        records = [record for record in records if predicate(record)]
    for column, direction in reversed(sorts):
        records.sort(key=_sort_key(table.getter(column.id)), reverse=direction == "desc")
    if options.max_records is not None:
        records = records[: options.max_records]
    return [record.id for record in records]


# -- iterators -----------------------------------------------------------------------------------


@dataclass
class _Iterator:
    table_id: str
    ids: list[str]
    touched: float
    tokens: list[str] = field(default_factory=list)


class Iterators:
    """The server-side list iterators that ``offset`` tokens name."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._by_token: dict[str, tuple[_Iterator, int]] = {}

    def start(self, table: Table, ids: list[str], now: float, ttl: float) -> _Iterator:
        """A new iterator over a snapshot of ``ids`` (forgetting expired ones)."""
        self.expire(now, ttl)
        return _Iterator(table.id, ids, now)

    def resume(self, token: str, table: Table, now: float, ttl: float) -> tuple[_Iterator, int]:
        """The iterator and position an offset token names; 422 if unknown or expired."""
        self.expire(now, ttl)
        found = self._by_token.get(token)
        if found is None or found[0].table_id != table.id:
            raise unprocessable(
                "LIST_RECORDS_ITERATOR_NOT_AVAILABLE",
                "The offset is unknown or has expired; restart the listing from the beginning",
            )
        return found

    def issue(self, iterator: _Iterator, position: int, now: float) -> str:
        """A new offset token for the page of ``iterator`` starting at ``position``."""
        iterator.touched = now
        suffix = "".join(self._rng.choices(_ALPHANUMERIC, k=14))
        token = f"itr{suffix}/{iterator.ids[position]}"
        iterator.tokens.append(token)
        self._by_token[token] = (iterator, position)
        return token

    def expire(self, now: float, ttl: float) -> None:
        """Forget every iterator idle for longer than ``ttl`` seconds."""
        stale = {id(it): it for it, _ in self._by_token.values() if now - it.touched > ttl}
        for iterator in stale.values():
            for token in iterator.tokens:
                self._by_token.pop(token, None)


def list_page(
    table: Table, options: ListOptions, iterators: Iterators, now: float, ttl: float
) -> dict[str, Any]:
    """Answer one list request: a page of live records, and an offset while more remain."""
    only: list[FieldDef] | None = None
    if options.fields is not None:
        only = [table.field(name) for name in options.fields]
    if options.offset is not None:
        iterator, position = iterators.resume(options.offset, table, now, ttl)
        iterator.touched = now
    else:
        iterator, position = iterators.start(table, select(table, options), now, ttl), 0
    page: list[dict[str, Any]] = []
    while position < len(iterator.ids) and len(page) < options.page_size:
        record = table.records.get(iterator.ids[position])
        position += 1
        if record is not None:
            page.append(_rendered(table, record, only, options))
    while position < len(iterator.ids) and iterator.ids[position] not in table.records:
        position += 1
    body: dict[str, Any] = {"records": page}
    if position < len(iterator.ids):
        body["offset"] = iterators.issue(iterator, position, now)
    return body


def _rendered(
    table: Table, record: StoredRecord, only: list[FieldDef] | None, options: ListOptions
) -> dict[str, Any]:
    rendered = table.render(record, only, by_id=options.by_id)
    if options.comment_count:
        rendered["commentCount"] = 0
    return rendered
