"""The metadata API (``GET /v0/meta/bases/{baseId}/tables``) and the base's limit answers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reconciler.emulators.airtable.schema import field_schema, unprocessable
from reconciler.emulators.airtable.store import Table
from reconciler.emulators.base import Response


def base_schema(tables: Iterable[Table], query: dict[str, list[str]]) -> dict[str, Any]:
    """The schema of every table, as https://airtable.com/developers/web/api/get-base-schema
    shows it: each field with id, name, type, its type's options and a description when set;
    each table with its views.

    ``include`` takes only the literal ``visibleFieldIds`` ("for views of type grid only"),
    which adds the ids of each grid view's visible fields (here: every field).
    """
    include = _include(query)
    return {"tables": [_table_schema(table, include) for table in tables]}


def _include(query: dict[str, list[str]]) -> set[str]:
    unknown = sorted(set(query) - {"include", "include[]"})
    if unknown:
        raise unprocessable("INVALID_REQUEST_UNKNOWN", f"Invalid request: unknown {unknown}")
    values = {value for name in ("include", "include[]") for value in query.get(name, [])}
    if values - {"visibleFieldIds"}:
        raise unprocessable(
            "INVALID_REQUEST_UNKNOWN",
            "Invalid request: include only allows the literal value visibleFieldIds",
        )
    return values


def _table_schema(table: Table, include: set[str]) -> dict[str, Any]:
    columns = list(table.columns.values())
    schema: dict[str, Any] = {
        "id": table.id,
        "name": table.name,
        "primaryFieldId": columns[0].id,
        "fields": [field_schema(column) for column in columns],
        "views": [_view(view, columns, include) for view in table.views],
    }
    if table.description:
        schema["description"] = table.description
    return schema


def _view(view: dict[str, Any], columns: list[Any], include: set[str]) -> dict[str, Any]:
    shown = dict(view)
    if "visibleFieldIds" in include and view["type"] == "grid":
        shown["visibleFieldIds"] = [column.id for column in columns]
    return shown


def rate_limited() -> Response:
    """429 over the per-base rate limit, in the shape the real API sends it.

    Unlike other errors, a 429 carries an ``errors`` array: ``{"errors":[{"error":
    "RATE_LIMIT_REACHED","message":"Rate limit exceeded. Please try again later"}]}``
    (reproduced by Pipedream's staff in PipedreamHQ/pipedream#10130).
    """
    return _errors_429("RATE_LIMIT_REACHED", "Rate limit exceeded. Please try again later")


def billing_limit_exceeded() -> Response:
    """429 once the workspace has spent its monthly API calls (Free 1,000, Team 100,000).

    Community sources only: the type ``PUBLIC_API_BILLING_LIMIT_EXCEEDED`` and message "API
    billing plan limit exceeded." in the same ``errors`` array shape as the rate-limit 429
    (several public projects parse or mock exactly ``{"errors":[{"error":
    "PUBLIC_API_BILLING_LIMIT_EXCEEDED","message":"API billing plan limit exceeded."}]}``). One
    report notes the metadata endpoints kept answering 200 meanwhile; so does the emulator.
    """
    return _errors_429("PUBLIC_API_BILLING_LIMIT_EXCEEDED", "API billing plan limit exceeded.")


def _errors_429(kind: str, message: str) -> Response:
    return Response(429, {"errors": [{"error": kind, "message": message}]})
