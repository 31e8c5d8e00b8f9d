"""Small SQL building blocks shared by the store modules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, any_, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB


def among(column: Any, values: Sequence[Any]) -> Any:
    """``column = ANY(:array)``: one bound array instead of an ``IN`` list of parameters, so the
    statement text stays short and the server can reuse its plan."""
    return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))


def insert_json_rows(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: list[dict[str, Any]],
    *,
    conflict: str = "",
    returning: Sequence[str] = (),
) -> list[Any]:
    """Insert many rows with ONE short statement: the rows travel as a single jsonb array and
    Postgres types them against the table (``jsonb_populate_recordset``).

    A multi-row ``VALUES`` list would carry one parameter per cell and be re-parsed on every
    page; this keeps the statement text constant and the parsing on the server.
    """
    prep = conn.dialect.identifier_preparer
    name = prep.format_table(table)
    cols = ", ".join(prep.quote(c) for c in columns)
    source = f"jsonb_populate_recordset(NULL::{name}, :rows)"
    sql = f"INSERT INTO {name} ({cols}) SELECT {cols} FROM {source}"
    if conflict:
        sql += f" {conflict}"
    if returning:
        sql += " RETURNING " + ", ".join(prep.quote(c) for c in returning)
    statement = text(sql).bindparams(bindparam("rows", type_=JSONB))
    result = conn.execute(statement, {"rows": rows})
    return list(result) if returning else []
