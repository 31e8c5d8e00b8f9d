"""All SQL of the two stages: reading rows with their sync state, applying a page, recording pushes.

Every statement is set-based (one statement per page or batch, never one per record), and every
page or batch is applied in one transaction together with its sync state (``Store.unit``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
    and_,
    bindparam,
    cast,
    false,
    func,
    literal_column,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import NullType

from reconciler.engine.plan import PullPlan, PushPlan
from reconciler.errors import RecordError
from reconciler.model import Converter, Mapping, converter, json_text, to_db
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
from reconciler.store.schema import failures, sync_state
from reconciler.store.sql import among, copy_rows, int_array, refusal, refused_row, text_array
from reconciler.store.tables import Tables

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


class Store(Tables):
    """The database side of a run, on one connection: the units of work and tables of
    :class:`Tables`, and the statements of the two stages."""

    def __init__(self, conn: Connection, *, dry_run: bool = False) -> None:
        super().__init__(conn, dry_run=dry_run)
        self._queries: dict[tuple[str, bool, bool], Any] = {}
        self._page_sql: dict[str, PageSql] = {}
        self._readers: dict[str, list[tuple[str, Converter]]] = {}

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
