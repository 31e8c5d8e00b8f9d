"""The statements that apply a page, as SQL text built once per mapping.

A first pull applies hundreds of pages. Building a SQLAlchemy construct for every statement of
every page, and finding its compiled form again, cost the run more than Postgres spent running
the statements; so the few statements a page needs are written out once per mapping (and per
set of columns) and sent with ``exec_driver_sql``. Rows travel as one JSON text parameter per
statement, encoded by the C encoder, and Postgres types them against the table
(``jsonb_populate_recordset``): no per-row or per-cell parameter is processed in Python. A page's
sync states, whose shadows are JSON already, are copied in (``COPY``) after the old ones are
deleted: that spares Postgres parsing every shadow twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import JSON, Connection, Table
from sqlalchemy.dialects.postgresql import ARRAY

from reconciler.engine.plan import PullPlan
from reconciler.model import Kind, Mapping, json_text
from reconciler.records import Values
from reconciler.store.schema import sync_state

LINK_TICK = timedelta(microseconds=1)  # see ``Store.link`` and ``Store._update_rows``
_TICK = f"interval '{LINK_TICK // timedelta(microseconds=1)} microseconds'"


class StateRow(NamedTuple):
    """One row of ``reconciler.sync_state`` as written (after its mapping, the columns of
    ``STATE_COLUMNS`` in order); times keep their full precision, as ``updated_at`` is compared
    exactly to find local changes."""

    local_id: int
    remote_id: str | None
    remote_modified_at: datetime | None
    local_updated_at: datetime | None
    shadow: str  # json text
    pending: bool


class PageSql:
    """The statements of one mapping's page writes, and how its values travel.

    Every statement takes its rows as ``%(rows)s`` (a JSON array) or its keys as ``%(ids)s``
    (an array); each returns what the page needs back (new ids, new ``updated_at``).
    """

    def __init__(
        self,
        conn: Connection,
        mapping: Mapping,
        table: Table,
        empty_columns: frozenset[str],
    ) -> None:
        dialect = conn.dialect
        prep = dialect.identifier_preparer
        self.mapping = mapping
        self.name = _literal(prep.format_table(table))
        self.quote = {c.name: _literal(prep.quote(c.name)) for c in table.c}
        key = mapping.key_column
        self.key = self.quote[key]
        self.key_array = ARRAY(table.c[key].type).compile(dialect=dialect)
        # SQLAlchemy writes a JSON column's None as the JSON null, not as SQL NULL; populating
        # a record from JSON gives SQL NULL, so those columns take the JSON null back.
        self.json_null = {
            c.name: f"CAST('null' AS {c.type.compile(dialect=dialect)})"
            for c in table.c
            if isinstance(c.type, JSON) and not c.type.none_as_null
        }
        self.booleans = frozenset(f.column for f in mapping.fields if f.kind is Kind.BOOLEAN)
        # What a NOT NULL column with an empty value (``Store.empty_columns``) takes for one,
        # where NULL would be refused: '' in text, JSON's null in JSON. An update writes JSON's
        # null into any JSON column; an insert leaves SQL NULL where it is allowed.
        self.required = {c: self.json_null.get(c, "''") for c in empty_columns}
        self.empty = {**self.json_null, **self.required}
        self._null_entries = {f.column: f"{json_text(f.column)}:null" for f in mapping.fields}
        self._inserts: dict[tuple[str, ...], str] = {}
        self._updates: dict[tuple[str, ...], str] = {}
        self.revive = (
            f"UPDATE {self.name} SET remote_deleted_at = NULL "
            f"WHERE {self.key} = ANY(CAST(%(ids)s AS {self.key_array})) "
            "RETURNING id, updated_at"
        )
        self.mapping_json = json_text(mapping.name)

    def insert(self, columns: Sequence[str]) -> str:
        """Insert the rows (the key first, then ``columns``) that do not exist yet; returns
        ``id, key, updated_at`` of each row inserted."""
        cached = self._inserts.get(tuple(columns))
        if cached is None:
            cols = ", ".join(self.quote[c] for c in columns)
            values = ", ".join(_or_empty(self.quote[c], self.required.get(c)) for c in columns)
            cached = self._inserts[tuple(columns)] = (
                f"INSERT INTO {self.name} ({cols}) SELECT {values} "
                f"FROM jsonb_populate_recordset(NULL::{self.name}, CAST(%(rows)s AS jsonb)) "
                f"ON CONFLICT ({self.key}) DO NOTHING RETURNING id, {self.key}, updated_at"
            )
        return cached

    def update(self, columns: tuple[str, ...]) -> str:
        """Write ``columns`` of rows by id; ``updated_at`` moves to the row's ``updated_at``
        value in the JSON (when the change was made remotely) when that is later, else by one
        tick (see ``Store._update_rows``). Returns ``id, updated_at`` of each row."""
        cached = self._updates.get(columns)
        if cached is None:
            sets = [
                f"{self.quote[c]} = {_or_empty(f'r.{self.quote[c]}', self.empty.get(c))}"
                for c in columns
            ]
            sets.append(f"updated_at = greatest(t.updated_at + {_TICK}, r.updated_at)")
            cached = self._updates[columns] = (
                f"UPDATE {self.name} AS t SET {', '.join(sets)} "
                f"FROM jsonb_populate_recordset(NULL::{self.name}, CAST(%(rows)s AS jsonb)) AS r "
                "WHERE t.id = r.id RETURNING t.id, t.updated_at"
            )
        return cached

    def shadow_text(self, plan: PullPlan) -> str:
        """A plan's new shadow as JSON text.

        A new record's is its insert's text (the values of the fields pulled, empty ones left
        out) with the other fields added, rather than a second encoding of the same values (the
        shadow's keys need no order).
        """
        if plan.local is not None:
            return json_text(plan.shadow)
        writes, nulls = plan.writes, self._null_entries
        rest = [
            nulls[c] if v is None else f"{json_text(c)}:{json_text(v)}"
            for c, v in plan.shadow.items()
            if v is None or c not in writes
        ]
        text = plan.values_text
        if not rest:
            return text
        head = "{" if text == "{}" else text[:-1] + ","
        return head + ",".join(rest) + "}"

    def update_row(self, local_id: int, values: Values, changed_at: datetime | None) -> str:
        """One row of an ``update`` as JSON: its id, values as the database takes them, and
        the time of the change as ``updated_at``."""
        db = {c: False if v is None and c in self.booleans else v for c, v in values.items()}
        return json_text(
            {"id": local_id, "updated_at": changed_at and changed_at.isoformat(), **db}
        )


def _or_empty(source: str, empty: str | None) -> str:
    """A value to write: ``source``, or ``empty`` in place of its NULL when there is one."""
    return source if empty is None else f"coalesce({source}, {empty})"


STATES = sync_state.fullname
_MINE = "mapping = %(mapping)s"


def _states_of(column: str, array: str) -> str:
    """The ``ctid`` of this mapping's states whose ``column`` is among ``%(<column>s)s``, each key
    looked up on its own through the column's index (a lateral subquery that ``OFFSET 0``
    keeps from being merged into a join)."""
    return (
        f"SELECT s.ctid FROM unnest(CAST(%({column}s)s AS {array})) AS w(key), LATERAL "
        f"(SELECT ctid FROM {STATES} WHERE {_MINE} AND {column} = w.key OFFSET 0) AS s"
    )


# The states of a page's rows (by local id) and records (by remote id), deleted before the
# new ones are copied in. As ``local_id = ANY(:ids)`` (and ``remote_id = ANY(:ids)``) the
# planner scanned every state of the mapping whenever the table's statistics were young, as they
# are while a first pull fills it (a bitmap scan on ``mapping`` alone): each page then read every
# state written so far, some 1 s of a 50,000-lead first pull. Looked up key by key, a page costs
# the same however many states there are.
DELETE_STATES = (
    f"DELETE FROM {STATES} WHERE ctid = ANY(ARRAY("
    f"{_states_of('local_id', 'BIGINT[]')} UNION ALL {_states_of('remote_id', 'TEXT[]')}))"
)

# The columns a page's states are copied into: the mapping, then ``StateRow``'s fields in order.
STATE_COLUMNS = ("mapping", *StateRow._fields)


def _literal(sql: str) -> str:
    """SQL text safe to send with ``pyformat`` parameters (a ``%`` in a name doubled)."""
    return sql.replace("%", "%%")


def rows_json(rows: Sequence[str]) -> str:
    """JSON objects' texts as one JSON array."""
    return "[" + ",".join(rows) + "]"
