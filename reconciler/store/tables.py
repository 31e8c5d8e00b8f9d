"""The database side of a run on one connection: its units of work, and each mapping's local
table as the live schema has it (checked once a run, before anything is read or written).

:class:`Tables` is the base of :class:`reconciler.store.rows.Rows` (the stages' reads), itself the
base of :class:`reconciler.store.sync.Store` (their writes).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from sqlalchemy import Connection, MetaData, Table, TextClause, text
from sqlalchemy.exc import NoSuchTableError

from reconciler.errors import UsageError
from reconciler.model import FieldSpec, Kind, Mapping
from reconciler.store.schema import BUSINESS_TABLES

# A relation's columns, as reflection would find them: a table, view, materialized view, foreign
# or partitioned table, found as an unqualified name is, through the search path; one row with
# no name for a relation without columns, no row when there is no such relation. Each row also
# says whether a run can insert rows into the relation and update them: a table can; a view only
# when Postgres writes through it (a simple view over one table) or triggers do it for it.
# pg_relation_is_updatable's bits are 1 << CmdType (src/include/nodes/nodes.h: CMD_UPDATE 2,
# CMD_INSERT 3), triggers counted.
_LIVE_COLUMNS = text(
    "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
    " a.attgenerated <> '' OR a.attidentity = 'a',"
    " coalesce(pg_catalog.pg_relation_is_updatable(c.oid::regclass, true) & 12 = 12, false)"
    " FROM pg_catalog.pg_class c"
    " LEFT JOIN pg_catalog.pg_attribute a"
    " ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
    " WHERE c.oid = to_regclass(quote_ident(:name))"
    " AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
)


# Whether the relation, or for a view the relations it reads (its rewrite rule's dependencies),
# has a trigger of its own on UPDATE: pg_trigger.tgtype's bit 16 (src/include/catalog/
# pg_trigger.h: TRIGGER_TYPE_UPDATE).
_UPDATE_TRIGGER = text(
    "WITH rel AS (SELECT to_regclass(quote_ident(:name)) AS oid)"
    " SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t"
    " WHERE NOT t.tgisinternal AND t.tgtype & 16 <> 0 AND t.tgrelid IN ("
    " SELECT oid FROM rel UNION"
    " SELECT d.refobjid FROM pg_catalog.pg_rewrite r"
    " JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass"
    " AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass"
    " WHERE r.ev_class IN (SELECT oid FROM rel) AND d.refobjid <> r.ev_class))"
)

# The column types (as ``format_type`` writes them) an ``id`` may have: the sync state, the
# change log and the failures keep rows by a bigint.
_INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})


# What a pushed field's column may be, by kind, as the families ``_family`` sorts column types
# into: a value read back from any other family is not the one that was pulled (JSON in a text
# column reads back as a string, and was pushed as one) or cannot be read as the kind at all.
# A type of no known family (an enum, a domain) is taken on trust.
_HOLDS: dict[Kind, tuple[str, ...]] = {
    Kind.TEXT: ("text", "integer", "decimal", "uuid"),  # read back as their text
    Kind.NUMBER: ("decimal", "integer"),
    Kind.INTEGER: ("integer", "decimal"),
    Kind.BOOLEAN: ("boolean",),
    Kind.DATETIME: ("timestamp",),
    Kind.DATE: ("date",),
    Kind.JSON: ("jsonb",),
}
# The column type each kind is best kept in (what a fix converts a column to).
_BEST_TYPE = {
    Kind.TEXT: "text",
    Kind.NUMBER: "numeric",
    Kind.INTEGER: "bigint",
    Kind.BOOLEAN: "boolean",
    Kind.DATETIME: "timestamptz",
    Kind.DATE: "date",
    Kind.JSON: "jsonb",
}


def _family(kind: str) -> str | None:
    """The family of a column type as ``format_type`` writes it; None for a type of none."""
    name = kind.rsplit(".", 1)[-1]
    if name.endswith("[]"):
        return None
    if name in ("text", "citext", "name") or name.startswith("character varying"):
        return "text"
    if name.startswith("character"):
        return "padded"  # character(n): reads back with the spaces that fill it
    if name in _INTEGER_TYPES:
        return "integer"
    if name.startswith("numeric") or name in ("real", "double precision"):
        return "decimal"
    if name == "boolean":
        return "boolean"
    if name.startswith("timestamp"):
        return "timestamp"
    if name in ("date", "json", "jsonb", "uuid"):
        return "jsonb" if name.startswith("json") else name
    return None


def _unfit_columns(mapping: Mapping, live: dict[str, LiveColumn]) -> list[str]:
    """Each pushed field whose column's type cannot hold its kind, and a key column that
    cannot hold the remote's record ids, with the statement that converts the column."""
    found = []
    table = mapping.local_table
    for spec in mapping.push_fields:
        column, kind = spec.column, live[spec.column].type
        family = _family(kind)
        if family is not None and family not in _HOLDS[spec.kind]:
            best = _BEST_TYPE[spec.kind]
            found.append(
                f"{column} is {kind}, which cannot hold {spec.kind.value} (ALTER TABLE {table} "
                f"ALTER COLUMN {column} TYPE {best} USING {column}::{best})"
            )
    key, kind = mapping.key_column, live[mapping.key_column].type
    holds = ("text", "uuid") if mapping.remote == "twenty" else ("text",)
    family = _family(kind)
    if family is not None and family not in holds:
        ids = "Twenty's record ids" if mapping.remote == "twenty" else "Airtable's record ids"
        found.append(
            f"{key} is {kind}, which cannot hold {ids} (ALTER TABLE {table} ALTER COLUMN {key} "
            f"TYPE text USING {key}::text)"
        )
    return found


class TableMissing(UsageError):
    """A mapping's table, or columns it needs, do not exist (the others name their fix)."""


class LiveTable(NamedTuple):
    """A live table (or view) as ``_LIVE_COLUMNS`` reads it: its columns by name, and whether
    a run can insert into it and update it."""

    columns: dict[str, LiveColumn]
    writable: bool


class LiveColumn(NamedTuple):
    """A column of a live table: its type as ``format_type`` writes it, whether it is
    ``NOT NULL``, and whether only the database writes it (a generated or identity column)."""

    type: str
    not_null: bool
    generated: bool = False  # written by the database alone (GENERATED ALWAYS)


def _has_empty_value(spec: FieldSpec, kind: str) -> bool:
    """Whether a column of type ``kind`` (as ``format_type`` writes it) holds an empty value
    of the field's kind that reads back as that empty value: ``''`` in ``text``, ``varchar``
    or ``citext`` (not ``character(n)``, which pads it with spaces), JSON's ``null`` in
    ``json`` or ``jsonb``."""
    family = _family(kind)
    return (spec.kind, family) in ((Kind.TEXT, "text"), (Kind.JSON, "jsonb"))


def _zoned_stamp(kind: str) -> bool:
    """Whether a column type (as ``format_type`` writes it) is ``timestamptz``, whatever its
    precision (``timestamp(3) with time zone``): what ``updated_at`` must be."""
    return kind.startswith("timestamp") and kind.endswith(" with time zone")


def _check_live(mapping: Mapping, found: LiveTable, needed: list[str]) -> None:
    """Raise the error that names the fix when the live table cannot serve the mapping: a
    ``needed`` column missing, ``updated_at`` without a time zone, a relation Postgres cannot
    write, an ``id`` that is no integer, a pulled column only the database writes, or a pushed
    column whose type cannot hold its field's kind."""
    live = found.columns
    missing = [c for c in needed if c not in live]
    if missing:
        raise TableMissing(
            f"mapping {mapping.name!r}: table {mapping.local_table!r} lacks column(s) "
            + ", ".join(missing)
        )
    if not _zoned_stamp(live["updated_at"].type):
        raise UsageError(
            f"mapping {mapping.name!r}: {mapping.local_table}.updated_at is "
            f"{live['updated_at'].type}, not timestamp with time zone, so it cannot be "
            "compared with the remotes' times: ALTER TABLE "
            f"{mapping.local_table} ALTER COLUMN updated_at "
            "TYPE timestamptz USING updated_at AT TIME ZONE 'UTC' (if it holds UTC times)"
        )
    if not found.writable:
        raise UsageError(
            f"mapping {mapping.name!r}: Postgres cannot insert into and update "
            f"{mapping.local_table} (a view that joins or groups tables, a materialized "
            "view): map its table or a simple view of one table, or give the view INSTEAD "
            "OF triggers"
        )
    if live["id"].type not in _INTEGER_TYPES:
        name = mapping.local_table
        raise UsageError(
            f"mapping {mapping.name!r}: {name}.id is {live['id'].type}, not an integer: "
            "the sync state keeps each row by an integer id. Give the table one (ALTER "
            f"TABLE {name} ADD COLUMN sync_id bigint GENERATED ALWAYS AS IDENTITY UNIQUE) "
            'and map a view that names it id (README, "Mapping configuration")'
        )
    generated = [f.column for f in mapping.fields if f.pulls and live[f.column].generated]
    if generated:
        raise UsageError(
            f"mapping {mapping.name!r}: {', '.join(generated)} in {mapping.local_table} "
            "only the database writes (GENERATED ALWAYS), so a pull cannot: give "
            f"{'that field' if len(generated) == 1 else 'those fields'} "
            'direction = "push", or map another column'
        )
    unfit = _unfit_columns(mapping, live)
    if unfit:
        raise UsageError(
            f"mapping {mapping.name!r}: a value read back from a pushed column of the wrong "
            "type is not the one pulled, and would be pushed in its place: "
            f"{'; '.join(unfit)}; or change the field's `kind`"
        )


class Tables:
    """Units of work on one connection, and the mapped tables as the live schema has them.

    In a dry run every unit of work is a savepoint inside one outer transaction that is rolled
    back at the end, so the run decides exactly as a real one would and leaves nothing behind.
    """

    def __init__(self, conn: Connection, *, dry_run: bool = False) -> None:
        self.conn = conn
        self.dry_run = dry_run
        self._tables: dict[str, Table] = {}
        self._live: dict[str, LiveTable | None] = {}  # by table name, read once a run
        self._reflected = MetaData()

    @contextmanager
    def unit(self) -> Iterator[Connection]:
        """One unit of work: a transaction (a savepoint in a dry run)."""
        if self.dry_run:
            if not self.conn.in_transaction():
                self.conn.begin()
            with self.conn.begin_nested():
                yield self.conn
        else:
            with self.conn.begin():
                yield self.conn

    def discard(self) -> None:
        """End a dry run: roll back everything it did."""
        if self.conn.in_transaction():
            self.conn.rollback()

    def table(self, mapping: Mapping) -> Table:
        """The local table of a mapping, checked against the live schema.

        A built-in table's own definition is used (its types are exact) unless the mapping
        needs a column it lacks: a table shared with another remote (a hub) has that remote's
        key column, added by the user, so the live table is used then. Only the live table's
        column names are read to check it; the whole table is reflected only when it is used.
        """
        if mapping.name in self._tables:
            return self._tables[mapping.name]
        found = self._live_table(mapping.local_table)
        if found is None:
            raise TableMissing(
                f"mapping {mapping.name!r}: table {mapping.local_table!r} does not exist"
            )
        needed = [mapping.key_column, *mapping.columns, "id", "updated_at", "remote_deleted_at"]
        _check_live(mapping, found, needed)
        table = BUSINESS_TABLES.get(mapping.local_table)
        if table is None or any(c not in table.c for c in needed):
            table = self._reflect(mapping)
        self._tables[mapping.name] = table
        return table

    def _required(self, mapping: Mapping) -> dict[str, str]:
        """The mapping's ``NOT NULL`` columns in the live table, each with its type."""
        found = self._live_table(mapping.local_table)
        live = found.columns if found is not None else {}
        return {c: live[c].type for c in mapping.columns if c in live and live[c].not_null}

    def empty_columns(self, mapping: Mapping) -> frozenset[str]:
        """The mapping's ``NOT NULL`` columns that hold an empty value of their kind (an
        application's habit: Django and Rails keep empty text as ``''``): an empty remote
        value is written there as ``''`` (text) or JSON's ``null``, which read back as the
        same empty value."""
        required = self._required(mapping)
        return frozenset(
            f.column
            for f in mapping.fields
            if f.column in required and _has_empty_value(f, required[f.column])
        )

    def unfillable_fields(self, mapping: Mapping) -> list[FieldSpec]:
        """The pulled fields whose column is ``NOT NULL`` and holds no empty value of their
        kind (a number, a date…): a record with the field empty cannot be applied."""
        empty = self.empty_columns(mapping)
        required = self._required(mapping)
        return [
            f
            for f in mapping.fields
            if f.pulls
            and f.column in required
            and f.column not in empty
            and f.kind is not Kind.BOOLEAN  # never empty: an unticked checkbox is false
        ]

    def _live_table(self, name: str) -> LiveTable | None:
        """Table ``name`` as an unqualified name finds it (the first schema of the search path
        that has it), or None when there is no such table or view; read once a run."""
        if name not in self._live:
            found = self._catalog(_LIVE_COLUMNS, name)
            self._live[name] = (
                LiveTable(
                    {
                        column: LiveColumn(kind, bool(not_null), bool(generated))
                        for column, kind, not_null, generated, _ in found
                        if column is not None
                    },
                    bool(found[0][4]),
                )
                if found
                else None
            )
        return self._live[name]

    def has_update_trigger(self, name: str) -> bool:
        """Whether table ``name`` (as ``_live_table`` finds it), or the table a view of that
        name reads, has a trigger of its own that runs on UPDATE: what keeps ``updated_at``
        moving when an application does not."""
        return bool(self._catalog(_UPDATE_TRIGGER, name)[0][0])

    def _catalog(self, query: TextClause, name: str) -> list[Any]:
        """The rows of a catalog query about table ``name``, read in the open unit of work if
        there is one, else in a unit of its own."""
        if self.conn.in_transaction():
            return list(self.conn.execute(query, {"name": name}).all())
        with self.unit() as conn:
            return list(conn.execute(query, {"name": name}).all())

    def _reflect(self, mapping: Mapping) -> Table:
        """The live table as SQLAlchemy reflects it (every column with its type)."""
        try:
            # A connection of its own, so reflecting never touches the run's transaction.
            return Table(
                mapping.local_table,
                self._reflected,
                autoload_with=self.conn.engine,
                extend_existing=True,
            )
        except NoSuchTableError:
            raise UsageError(
                f"mapping {mapping.name!r}: table {mapping.local_table!r} does not exist"
            ) from None
