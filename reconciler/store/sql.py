"""Small SQL building blocks shared by the store modules."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import psycopg
from sqlalchemy import Connection, Table, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

# The largest values of Postgres' integer types (https://www.postgresql.org/docs/current/
# datatype-numeric.html): a count or limit asked for beyond them means "all", and is bound as
# the largest value the column or LIMIT takes, instead of failing as out of range.
INTEGER_MAX = 2**31 - 1
BIGINT_MAX = 2**63 - 1

COPY_LINES = 100  # lines of COPY text sent at a time (some 30 KB of change-log entries)

# COPY's text format: a cell's backslash, tab, newline and carriage return are escaped, and
# NULL is written \N (https://www.postgresql.org/docs/current/sql-copy.html, "Text Format").
COPY_NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def among(column: Any, values: Sequence[Any]) -> Any:
    """``column = ANY(:array)``: one bound array instead of an ``IN`` list of parameters, so the
    statement text stays short and the server can reuse its plan."""
    return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))


def int_array(values: Iterable[int]) -> str:
    """The text of a ``bigint[]`` (``{1,2}``), for a parameter cast to the array type: psycopg
    adapts a list element by element in Python, and a pull sends such lists for every page."""
    return "{" + ",".join(map(str, values)) + "}"


def text_array(values: Iterable[str]) -> str:
    """The text of a text-like array (``{"a","b"}``), each element quoted (see ``int_array``)."""
    return "{" + ",".join(f'"{_array_escape(v)}"' for v in values) + "}"


def _array_escape(value: str) -> str:
    if "\\" in value or '"' in value:
        return value.replace("\\", "\\\\").replace('"', '\\"')
    return value


def _driver(conn: Connection) -> psycopg.Connection[Any]:
    return cast(psycopg.Connection[Any], conn.connection.driver_connection)


def copy_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Append rows with ``COPY … FROM STDIN`` on the connection's open transaction.

    For an append-only table written with every change (the change log) this is the cheapest
    path Postgres has: no statement to plan, rows streamed in their text form, inserted in bulk.
    Values are adapted by psycopg; json columns take their text as it is. A row the database
    refuses is raised as SQLAlchemy raises it (``IntegrityError``, ``DataError``…).
    """
    with _copying(conn, table, columns) as copy:
        for row in rows:
            copy.write_row(row)


def copy_lines(conn: Connection, table: Table, columns: Sequence[str], lines: Iterable[str]) -> int:
    """:func:`copy_rows` for rows already written as lines of ``COPY``'s text format (cells
    separated by tabs, text through :func:`copy_text`, NULL as ``COPY_NULL``, a newline after
    each line), with nothing for psycopg to adapt value by value. Sent ``COPY_LINES`` lines at
    a time, so that the server stores some while the next are made; no ``COPY`` at all when
    there is no line. The lines are drawn while the ``COPY`` is open: an iterator that makes
    them must not use the connection. Returns the number of lines."""
    lines = iter(lines)
    first = next(lines, None)
    if first is None:
        return 0
    chunk, written = [first, *itertools.islice(lines, COPY_LINES - 1)], 0
    with _copying(conn, table, columns) as copy:
        while chunk:
            copy.write("".join(chunk))
            written += len(chunk)
            chunk = list(itertools.islice(lines, COPY_LINES))
    return written


@contextmanager
def _copying(conn: Connection, table: Table, columns: Sequence[str]) -> Iterator[psycopg.Copy]:
    prep = conn.dialect.identifier_preparer
    cols = ", ".join(prep.quote(c) for c in columns)
    try:
        with (
            _driver(conn).cursor() as cursor,
            cursor.copy(f"COPY {prep.format_table(table)} ({cols}) FROM STDIN") as copy,
        ):
            yield copy
    except psycopg.Error as exc:  # as SQLAlchemy raises it (IntegrityError, DataError…)
        raise DBAPIError.instance(None, None, exc, psycopg.Error) from exc
    except UnicodeEncodeError as exc:
        raise unstorable_text(exc) from None


def unstorable_text(exc: UnicodeEncodeError) -> DBAPIError:
    """A text the driver could not encode, as the ``DataError`` the server gives a value it
    refuses, so the row holding it fails alone. A remote's JSON may escape a lone UTF-16
    surrogate (``"\\ud800"``: JavaScript strings can hold one, and ``JSON.stringify`` writes it
    so, RFC 8259 section 8.2), which no UTF-8 text, and so no Postgres text, can hold."""
    bad = exc.object[exc.start : exc.end]
    refused = psycopg.DataError(
        f"text holds a lone surrogate ({bad!r}), which UTF-8 and Postgres cannot store"
    )
    return cast(DBAPIError, DBAPIError.instance(None, None, refused, psycopg.Error))


def copy_text(text: str) -> str:
    """Text as a cell of ``COPY``'s text format."""
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_COPY_ESCAPES)
    return text


def refused_row(exc: DBAPIError) -> bool:
    """Whether the database refused a row for the row's own sake, so that the rest of a batch
    can go in without it: a value the column cannot hold (SQLSTATE class 22), a constraint
    (class 23), or an exception a trigger of the application raised (PL/pgSQL's class P0,
    ``RAISE EXCEPTION``)."""
    if isinstance(exc, DataError | IntegrityError):
        return True
    return (sqlstate(exc) or "").startswith("P0")


def sqlstate(exc: Exception) -> str | None:
    """The SQLSTATE code of a database error (None for another error)."""
    state = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return state if isinstance(state, str) else None


def refusal(exc: Exception) -> str:
    """The first line of the database's message for an error (its statement and parameters,
    which SQLAlchemy adds on further lines, left out); the error's type when it says nothing."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
