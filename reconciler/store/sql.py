"""Small SQL building blocks shared by the store modules."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

import psycopg
from sqlalchemy import Connection, Table, Text, any_, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB


def among(column: Any, values: Sequence[Any]) -> Any:
    """``column = ANY(:array)``: one bound array instead of an ``IN`` list of parameters, so the
    statement text stays short and the server can reuse its plan."""
    return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))


def insert_json_rows(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: list[dict[str, Any]] | str,
    *,
    conflict: str = "",
    returning: Sequence[str] = (),
) -> list[Any]:
    """Insert many rows with ONE short statement: the rows travel as a single jsonb array and
    Postgres types them against the table (``jsonb_populate_recordset``).

    A multi-row ``VALUES`` list would carry one parameter per cell and be re-parsed on every
    page; this keeps the statement text constant and the parsing on the server. ``rows`` may be
    the array's JSON text already.
    """
    prep = conn.dialect.identifier_preparer
    name = prep.format_table(table)
    cols = ", ".join(prep.quote(c) for c in columns)
    encoded = isinstance(rows, str)
    source = (
        f"jsonb_populate_recordset(NULL::{name}, {'CAST(:rows AS jsonb)' if encoded else ':rows'})"
    )
    sql = f"INSERT INTO {name} ({cols}) SELECT {cols} FROM {source}"
    if conflict:
        sql += f" {conflict}"
    if returning:
        sql += " RETURNING " + ", ".join(prep.quote(c) for c in returning)
    statement = text(sql).bindparams(bindparam("rows", type_=Text if encoded else JSONB))
    result = conn.execute(statement, {"rows": rows})
    return list(result) if returning else []


def copy_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Append rows with ``COPY … FROM STDIN`` on the connection's open transaction.

    For an append-only table written with every change (the change log) this is the cheapest
    path Postgres has: no statement to plan, rows streamed in their text form, inserted in bulk.
    Values are adapted by psycopg; json columns take their text as it is.
    """
    prep = conn.dialect.identifier_preparer
    cols = ", ".join(prep.quote(c) for c in columns)
    raw = cast(psycopg.Connection[Any], conn.connection.driver_connection)
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY {prep.format_table(table)} ({cols}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)
