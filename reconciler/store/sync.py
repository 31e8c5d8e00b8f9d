"""The writes of the two stages: applying a page, recording pushes, linking and marking rows (the
reads are :mod:`reconciler.store.rows`'s).

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
    bindparam,
    false,
    func,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError

from reconciler.engine.plan import PullPlan, PushPlan
from reconciler.model import Mapping, json_text
from reconciler.records import LocalRow, Values, WriteResult
from reconciler.store.history import clear_failures
from reconciler.store.pages import (
    DELETE_STATES,
    LINK_TICK,
    STATE_COLUMNS,
    PageSql,
    StateRow,
    rows_json,
)
from reconciler.store.rows import Rows
from reconciler.store.schema import sync_state
from reconciler.store.sql import among, copy_rows, int_array, refusal, refused_row, text_array


class Store(Rows):
    """The database side of a run, on one connection: the units of work and tables of
    :class:`Tables`, the reads of :class:`Rows`, and the writes of the two stages."""

    def __init__(self, conn: Connection, *, dry_run: bool = False) -> None:
        super().__init__(conn, dry_run=dry_run)
        self._page_sql: dict[str, PageSql] = {}

    # -- writing ---------------------------------------------------------------------------------

    def mark_examined(self, mapping: Mapping, rows: Sequence[LocalRow]) -> None:
        """Record that rows holding no remote id were searched for on the remote and nothing
        could be done for them (no match, and the mapping never creates): they are not pushed
        again until they change."""
        states = [
            _state_row(mapping, r.local_id, None, None, r.updated_at, {}, False) for r in rows
        ]
        self._save_states(mapping, states)

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
