"""All SQL of the two stages: reading rows with their sync state, applying a page, recording pushes.

Every statement is set-based (one statement per page or batch, never one per record), and every
page or batch is applied in one transaction together with its sync state (``Store.unit``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    MetaData,
    Table,
    TextClause,
    and_,
    bindparam,
    cast,
    false,
    func,
    literal_column,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError, NoSuchTableError
from sqlalchemy.types import NullType

from reconciler.engine.plan import PullPlan, PushPlan
from reconciler.errors import RecordError, UsageError
from reconciler.model import Converter, FieldSpec, Kind, Mapping, converter, json_text, to_db
from reconciler.records import LocalRow, SyncState, Values, WriteResult
from reconciler.store.history import clear_failures
from reconciler.store.pages import (
    DELETE_STATES,
    LINK_TICK,
    STATE_COLUMNS,
    PageSql,
    StateRow,
    rows_json,
)
from reconciler.store.schema import BUSINESS_TABLES, failures, sync_state
from reconciler.store.sql import among, copy_rows, int_array, refusal, refused_row, text_array

_STATE_COLUMNS = [
    sync_state.c.remote_id.label("_s_remote_id"),
    sync_state.c.remote_modified_at.label("_s_remote_modified_at"),
    sync_state.c.local_updated_at.label("_s_local_updated_at"),
    sync_state.c.shadow.label("_s_shadow"),
    sync_state.c.pending.label("_s_pending"),
    sync_state.c.local_id.label("_s_local_id"),
]


def _row_columns(mapping: Mapping) -> list[str]:
    """The columns of a mapped row as :meth:`Store._local_row` reads them, in that order."""
    return ["id", "updated_at", mapping.key_column, "remote_deleted_at", *mapping.columns]


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


class Store:
    """The database side of a run, on one connection.

    In a dry run every unit of work is a savepoint inside one outer transaction that is rolled
    back at the end, so the run decides exactly as a real one would and leaves nothing behind.
    """

    def __init__(self, conn: Connection, *, dry_run: bool = False) -> None:
        self.conn = conn
        self.dry_run = dry_run
        self._tables: dict[str, Table] = {}
        self._live: dict[str, LiveTable | None] = {}  # by table name, read once a run
        self._reflected = MetaData()
        self._queries: dict[tuple[str, bool, bool], Any] = {}
        self._page_sql: dict[str, PageSql] = {}
        self._readers: dict[str, list[tuple[str, Converter]]] = {}

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

    # -- tables --------------------------------------------------------------------------------

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
        live = found.columns
        needed = [mapping.key_column, *mapping.columns, "id", "updated_at", "remote_deleted_at"]
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

    # -- reading rows ----------------------------------------------------------------------------

    def _select_rows(self, mapping: Mapping, rows: Any = None, source: Any = None) -> Any:
        """The mapping's rows with their sync state: from the table, or from ``rows`` (a
        relation with the table's columns) joined onto ``source`` when given."""
        rows = self.table(mapping) if rows is None else rows
        join = (rows if source is None else source).outerjoin(
            sync_state,
            and_(sync_state.c.mapping == mapping.name, sync_state.c.local_id == rows.c.id),
        )
        cols = [rows.c[c] for c in _row_columns(mapping)]
        return select(*cols, *_STATE_COLUMNS).select_from(join)

    def _local_row(self, mapping: Mapping, row: Sequence[Any]) -> LocalRow:
        # By position, in ``_select_rows``'s order: read for every row of every page.
        first_state = 4 + len(mapping.fields)
        error = None
        try:
            values = {
                column: convert(row[at])
                for at, (column, convert) in enumerate(self._read(mapping), 4)
            }
        except RecordError:  # rare: the row again, value by value, to keep what is readable
            values, error = self._readable_values(mapping, row)
        state = None
        remote_id, remote_modified_at, local_updated_at, shadow, pending, local_id = row[
            first_state:
        ]
        if local_id is not None:
            state = SyncState(
                remote_id=remote_id,
                remote_modified_at=remote_modified_at,
                local_updated_at=local_updated_at,
                shadow=dict(shadow),
                pending=bool(pending),
            )
        key = row[2]
        if key is None and state is not None and state.remote_id is not None:
            state = None  # its key was cleared: the old record's state is no base for a create
        return LocalRow(
            row[0],
            None if key is None else str(key),
            row[1],
            values,
            state,
            remote_deleted_at=row[3],
            error=error,
        )

    def _readable_values(self, mapping: Mapping, row: Sequence[Any]) -> tuple[Values, str]:
        """A row's canonical values without those that cannot be made canonical, and the
        failures of those, one message."""
        values: Values = {}
        errors: list[str] = []
        for at, (column, convert) in enumerate(self._read(mapping), 4):
            try:
                values[column] = convert(row[at])
            except RecordError as exc:
                errors.append(str(exc))
        return values, "; ".join(errors)

    def _read(self, mapping: Mapping) -> list[tuple[str, Converter]]:
        """Each field's column and how its database value is made canonical."""
        read = self._readers.get(mapping.name)
        if read is None:
            read = [(f.column, converter(f, from_remote=False)) for f in mapping.fields]
            self._readers[mapping.name] = read
        return read

    def _rows_where(self, mapping: Mapping, by_remote_id: bool, lock: bool) -> Any:
        """The rows whose key (remote id, or else primary key) is among ``:wanted``; built once
        per mapping, so that executing it again finds its compiled form at once.

        Each wanted key is looked up on its own, through the key's index (a lateral subquery
        that ``OFFSET 0`` keeps from being merged into a join; the key column always has a
        unique index, which the pull's ``INSERT … ON CONFLICT`` requires). As
        ``key = ANY(:wanted)`` the planner chose a scan of the whole table whenever its
        statistics were young, as they are while a first pull fills it: each page's lookup
        then read every row inserted so far (6 ms against 1.4 ms for 900 keys in a
        50,000-row table).
        """
        cache_key = (mapping.name, by_remote_id, lock)
        query = self._queries.get(cache_key)
        if query is None:
            table = self.table(mapping)
            column = table.c[mapping.key_column] if by_remote_id else table.c.id
            keys = cast(bindparam("wanted", type_=NullType()), ARRAY(column.type))
            wanted = func.unnest(keys).table_valued("value").render_derived()
            found = (
                select(*(table.c[c] for c in dict.fromkeys(_row_columns(mapping))))
                .where(column == wanted.c.value)
                .offset(literal_column("0"))
            )
            if lock:
                found = found.with_for_update()
            rows = found.lateral("found")
            query = self._select_rows(mapping, rows, wanted.join(rows, true()))
            self._queries[cache_key] = query
        return query

    def rows_by_remote_ids(
        self, mapping: Mapping, remote_ids: Sequence[str], *, lock: bool = True
    ) -> dict[str, LocalRow]:
        """Local rows for these remote ids, keyed by remote id (locked for the unit of work)."""
        query = self._rows_where(mapping, True, lock)
        found = self.conn.execute(query, {"wanted": text_array(remote_ids)}).all()
        rows = [self._local_row(mapping, r) for r in found]
        return {r.remote_id: r for r in rows if r.remote_id is not None}

    def rows_by_ids(
        self, mapping: Mapping, local_ids: Sequence[int], *, lock: bool = True
    ) -> dict[int, LocalRow]:
        """Local rows by primary key (locked for the unit of work)."""
        query = self._rows_where(mapping, False, lock)
        found = self.conn.execute(query, {"wanted": int_array(local_ids)}).all()
        return {r.local_id: r for r in (self._local_row(mapping, x) for x in found)}

    def unlinked_by_key(
        self, mapping: Mapping, keys: Sequence[tuple[Any, ...]], *, lock: bool = True
    ) -> list[LocalRow]:
        """The rows holding no remote id of this mapping whose natural key (``match_on``
        columns) is one of ``keys`` (canonical values); locked for the unit of work unless
        ``lock`` is False."""
        table = self.table(mapping)
        specs = [mapping.field(c) for c in mapping.match_on]
        values = [tuple(to_db(s, v) for s, v in zip(specs, key, strict=True)) for key in keys]
        query = self._select_rows(mapping).where(
            table.c[mapping.key_column].is_(None),
            tuple_(*(table.c[c] for c in mapping.match_on)).in_(values),
        )
        if lock:
            query = query.with_for_update(of=table)
        return [self._local_row(mapping, r) for r in self.conn.execute(query)]

    def mark_examined(self, mapping: Mapping, rows: Sequence[LocalRow]) -> None:
        """Record that rows holding no remote id were searched for on the remote and nothing
        could be done for them (no match, and the mapping never creates): they are not pushed
        again until they change."""
        states = [
            _state_row(mapping, r.local_id, None, None, r.updated_at, {}, False) for r in rows
        ]
        self._save_states(mapping, states)

    def push_candidates(self, mapping: Mapping, after_id: int, limit: int) -> list[LocalRow]:
        """Rows that may need a push, by primary key after ``after_id``.

        A row is a candidate when it was never synced, was written since its last sync, or still
        holds values the remote lacks (``pending``); rows waiting out a retry delay or
        dead-lettered are left out until they change again locally. A row marked deleted
        remotely is left out, unless a person cleared its key column to have it created again:
        it is then a new row (its old record's sync state no longer counts).
        """
        table = self.table(mapping)
        key = table.c[mapping.key_column]
        fail = failures.alias("f")
        join_on = and_(
            fail.c.mapping == mapping.name, fail.c.stage == "push", fail.c.local_id == table.c.id
        )
        waiting = select(fail.c.local_id).where(
            join_on,
            table.c.updated_at == fail.c.local_updated_at,
            or_(fail.c.dead, fail.c.next_attempt_at > func.now()),
        )
        conditions = [
            table.c.id > after_id,
            or_(table.c.remote_deleted_at.is_(None), key.is_(None)),
        ]
        if not mapping.create_remote and not mapping.match_on:
            conditions.append(key.isnot(None))  # local-only rows: nothing to create or find
        query = (
            self._select_rows(mapping)
            .where(
                *conditions,
                or_(
                    sync_state.c.local_id.is_(None),
                    sync_state.c.pending,
                    table.c.updated_at.is_distinct_from(sync_state.c.local_updated_at),
                    and_(key.is_(None), sync_state.c.remote_id.isnot(None)),  # key cleared
                ),
                ~waiting.exists(),
            )
            .order_by(table.c.id)
            .limit(limit)
        )
        return [self._local_row(mapping, r) for r in self.conn.execute(query)]

    # -- writing ---------------------------------------------------------------------------------

    def _pages(self, mapping: Mapping) -> PageSql:
        """The statements of this mapping's page writes (built on first use)."""
        pages = self._page_sql.get(mapping.name)
        if pages is None:
            pages = self._page_sql[mapping.name] = PageSql(
                self.conn, mapping, self.table(mapping), self.empty_columns(mapping)
            )
        return pages

    def apply_pull(self, mapping: Mapping, plans: Sequence[PullPlan]) -> None:
        """Apply a page of pull decisions and record the new sync state, in the open unit.

        Inserts, restored rows and updates each return the rows' new ``updated_at``, which the
        sync state records.
        """
        sql = self._pages(mapping)
        key = mapping.key_column
        inserts = [p for p in plans if p.local is None]
        local_ids: dict[str, int] = {}
        stamps: dict[int, datetime] = {}
        if inserts:
            # Canonical values are JSON already: Postgres types them against the table. Each
            # record's text is the one its change-log entry keeps; empty fields are left out
            # (NULL either way).
            rows = rows_json([_keyed(key, p.remote.id, p.values_text) for p in inserts])
            inserted = self.conn.exec_driver_sql(
                sql.insert([key, *inserts[0].writes]), {"rows": rows}
            )
            for local_id, remote_id, stamp in inserted:
                local_ids[str(remote_id)] = local_id
                stamps[local_id] = stamp
            for plan in inserts:
                plan.inserted_id = local_ids.get(plan.remote.id)
        for plan in plans:
            if plan.local is not None:
                local_ids[plan.remote.id] = plan.local.local_id
                stamps[plan.local.local_id] = plan.local.updated_at  # locked: unchanged so far
        revived = [p.remote.id for p in plans if p.local is not None and p.local.remote_deleted]
        if revived:  # a record marked deleted came back (restored remotely)
            restored = self.conn.exec_driver_sql(sql.revive, {"ids": text_array(revived)})
            stamps.update(_stamps(restored))
        self._update_rows(sql, [p for p in plans if p.local is not None and p.writes], stamps)
        states = [
            StateRow(
                local_ids[p.remote.id],
                p.remote.id,
                p.remote.modified_at,
                stamps[local_ids[p.remote.id]],
                sql.shadow_text(p),
                p.pending,
            )
            for p in plans
            if p.remote.id in local_ids
        ]
        self._save_states(mapping, states)

    def _update_rows(
        self, sql: PageSql, plans: Sequence[PullPlan], stamps: dict[int, datetime]
    ) -> None:
        """Write pulled values, one statement per set of columns written; the rows' new
        ``updated_at`` go into ``stamps``.

        ``updated_at`` becomes when the row's content last changed: when the change was made
        remotely (on the database's clock), or the row's own last change if that was later;
        never the time of copying. In a table shared by several remotes, the next remote's
        conflicts are judged against it. (Moved by one microsecond at least, so the trigger,
        which stamps any write that leaves it as it was, leaves it alone.)"""
        groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for plan in plans:
            assert plan.local is not None
            row = sql.update_row(plan.local.local_id, plan.writes, plan.changed_at)
            groups[tuple(sorted(plan.writes))].append(row)
        for columns, rows in groups.items():
            updated = self.conn.exec_driver_sql(sql.update(columns), {"rows": rows_json(rows)})
            stamps.update(_stamps(updated))

    def _updated_at(self, table: Table, ids: list[int]) -> dict[int, datetime]:
        if not ids:
            return {}
        query = select(table.c.id, table.c.updated_at).where(among(table.c.id, ids))
        return {r[0]: r[1] for r in self.conn.execute(query)}

    def _save_states(self, mapping: Mapping, states: list[StateRow]) -> None:
        """Replace the states of these rows and records: the old ones are deleted (by local id
        and by remote id, each key looked up on its index: ``DELETE_STATES``), the new ones
        copied in (``COPY``: no statement to plan, no JSON to parse). A new row's id may still
        have an old state: an application can insert ids of its own ahead of the sequence, and
        a row it deleted leaves its state behind."""
        if not states:
            return
        name = mapping.name
        self.conn.exec_driver_sql(
            DELETE_STATES,
            {
                "mapping": name,
                "local_ids": int_array(s.local_id for s in states),
                "remote_ids": text_array(s.remote_id for s in states if s.remote_id is not None),
            },
        )
        copy_rows(self.conn, sync_state, STATE_COLUMNS, ((name, *s) for s in states))

    def record_push(
        self, mapping: Mapping, done: Sequence[tuple[PushPlan, WriteResult]]
    ) -> dict[int, str]:
        """Record successful pushes: new shadow, remote id (written back for creates), state.
        Returns the rows of creates whose remote id the database refused to write (see
        ``link``), each with the reason: those have no state, and a later run links them."""
        table = self.table(mapping)
        current = self.rows_by_ids(mapping, [p.local.local_id for p, _ in done])
        created = [
            (p.local.local_id, r.record.id)
            for p, r in done
            if r.record is not None and p.local.remote_id is None
        ]
        refused = self.link(mapping, created)
        stamps = self._updated_at(table, [i for i, _ in created])
        states = []
        for plan, result in done:
            row = current.get(plan.local.local_id)
            if row is None or result.record is None or row.local_id in refused:
                continue
            unchanged = row.updated_at == plan.local.updated_at
            base = plan.local.state.shadow if plan.local.state else result.record.values
            shadow = {**base, **plan.send}
            stamp = (
                stamps.get(row.local_id, row.updated_at)
                if unchanged
                else (plan.local.state.local_updated_at if plan.local.state else None)
            )
            pending = not unchanged or any(
                row.values.get(f.column) != shadow.get(f.column) for f in mapping.push_fields
            )
            states.append(
                _state_row(
                    mapping,
                    row.local_id,
                    result.record.id,
                    result.record.modified_at,
                    stamp,
                    shadow,
                    pending,
                )
            )
        self._save_states(mapping, states)
        return refused

    def refresh_states(self, mapping: Mapping, rows: Sequence[LocalRow]) -> None:
        """Mark rows whose local write changed nothing to push as examined."""
        params = [{"_id": r.local_id, "_ts": r.updated_at} for r in rows if r.state is not None]
        if params:
            self.conn.execute(
                update(sync_state)
                .where(
                    sync_state.c.mapping == mapping.name,
                    sync_state.c.local_id == bindparam("_id"),
                )
                .values(local_updated_at=bindparam("_ts"), pending=false()),
                params,
            )

    def mark_remote_deleted(
        self, mapping: Mapping, remote_ids: Sequence[str]
    ) -> list[tuple[str, int]]:
        """Stamp ``remote_deleted_at`` on rows whose remote record is gone; returns the
        ``(remote_id, local_id)`` pairs newly marked, in remote id order.

        Rows are never deleted locally: an outage must not look like a mass delete.
        """
        table = self.table(mapping)
        key = table.c[mapping.key_column]
        if not remote_ids:
            return []
        result = self.conn.execute(
            update(table)
            .where(among(key, remote_ids), table.c.remote_deleted_at.is_(None))
            .values(remote_deleted_at=func.now())
            .returning(key, table.c.id)
        )
        return sorted((str(rid), int(local_id)) for rid, local_id in result)

    def linked_remote_ids(self, mapping: Mapping) -> list[str]:
        """The remote ids of every local row linked to a live remote record."""
        table = self.table(mapping)
        key = table.c[mapping.key_column]
        query = select(key).where(key.isnot(None), table.c.remote_deleted_at.is_(None))
        return [str(r) for r in self.conn.execute(query).scalars()]

    def unlinked_ids(self, mapping: Mapping) -> list[tuple[int, datetime | None]]:
        """Primary keys of the rows that hold no remote id (not created remotely, as far as
        the database knows), each with its ``remote_deleted_at`` (set when a person cleared the
        key of a row whose record was deleted remotely)."""
        table = self.table(mapping)
        query = select(table.c.id, table.c.remote_deleted_at).where(
            table.c[mapping.key_column].is_(None)
        )
        return [(int(i), deleted) for i, deleted in self.conn.execute(query)]

    def link(self, mapping: Mapping, pairs: Sequence[tuple[int, str]]) -> dict[int, str]:
        """Write remote ids into rows that have none, as ``(local_id, remote_id)`` pairs;
        returns the rows the database refused to write (a trigger of the application may
        refuse some), each with the reason, the others linked.

        A row holding no id may still be marked ``remote_deleted_at``: its record was deleted
        and a person cleared its key to have it created again. The mark was the old record's
        and is cleared (a record found deleted marks the row again, from now).

        Recording a link is not a change of the row's content: ``updated_at`` keeps saying
        when the row last changed (moved by one microsecond, so the trigger, which stamps any
        write that leaves it as it was, leaves it alone). In a table shared by several remotes
        the other mappings' conflicts are judged against it.

        A push failure of a row was recorded under its ``table:id`` key, which a linked row no
        longer goes by: it is forgotten (the row's pending change is still found by its
        ``updated_at``, and a failure from now on is recorded under the remote id).
        """
        table = self.table(mapping)
        key = table.c[mapping.key_column]
        values = {
            mapping.key_column: bindparam("_rid"),
            "updated_at": table.c.updated_at + LINK_TICK,
            "remote_deleted_at": None,
        }
        if not pairs:
            return {}
        unlinked = [f"{mapping.local_table}:{i}" for i, _ in pairs]
        clear_failures(self.conn, mapping.name, "push", unlinked)
        statement = update(table).where(table.c.id == bindparam("_id"), key.is_(None))
        return self._each_alone(statement.values(values), [{"_id": i, "_rid": r} for i, r in pairs])

    def _each_alone(self, statement: Any, params: list[dict[str, Any]]) -> dict[int, str]:
        """Run an UPDATE for each row of ``params`` (keyed by ``_id``), all at once or, if the
        database refuses a row, each row in a savepoint of its own; returns the rows refused,
        each with the reason."""
        try:
            with self.conn.begin_nested():
                self.conn.execute(statement, params)
            return {}
        except DBAPIError as exc:
            if not refused_row(exc):
                raise
        refused = {}
        for one in params:
            try:
                with self.conn.begin_nested():
                    self.conn.execute(statement, [one])
            except DBAPIError as exc:
                if not refused_row(exc):
                    raise
                refused[int(one["_id"])] = refusal(exc)
        return refused


def _keyed(key: str, remote_id: str, values: str) -> str:
    """The JSON object text ``values`` with ``key: remote_id`` put first."""
    head = f"{{{json_text(key)}:{json_text(remote_id)}"
    return head + "}" if values == "{}" else f"{head},{values[1:]}"


def _state_row(
    mapping: Mapping,
    local_id: int,
    remote_id: str | None,
    remote_modified_at: datetime | None,
    local_updated_at: datetime | None,
    shadow: Values,
    pending: bool,
) -> StateRow:
    return StateRow(
        local_id, remote_id, remote_modified_at, local_updated_at, json_text(shadow), pending
    )


def _stamps(rows: Iterable[Sequence[Any]]) -> dict[int, datetime]:
    """``{id: updated_at}`` of the rows a statement returned."""
    return {int(r[0]): r[1] for r in rows}
