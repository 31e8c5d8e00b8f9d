"""Reading the change log (``reconcile log``) and keeping it to its retention; the entries are
written by :class:`reconciler.store.changelog.ChangeLog`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Connection, delete, func, select

from reconciler.model import iso_ms
from reconciler.store.schema import change_log
from reconciler.store.sql import BIGINT_MAX

if TYPE_CHECKING:
    from reconciler.store.sync import Store

PURGE_BATCH = 5000  # rows per retention statement: short locks, bounded work per run
PURGE_MAX_BATCHES = 4


def purge_expired(
    store: Store,
    max_age: timedelta,
    *,
    batch: int = PURGE_BATCH,
    max_batches: int = PURGE_MAX_BATCHES,
) -> int:
    """Delete entries older than ``max_age`` (database clock), oldest first, at most
    ``batch * max_batches`` of them.

    Each batch is its own unit of work (a savepoint in a dry run, rolled back with the rest), so
    locks stay short and a large backlog is worked off over a few runs. Returns the rows removed.
    """
    removed = 0
    for _ in range(max_batches):
        oldest = (
            select(change_log.c.id)
            .where(change_log.c.logged_at < func.now() - max_age)
            .order_by(change_log.c.id)
            .limit(batch)
        )
        with store.unit() as conn:
            count = conn.execute(delete(change_log).where(change_log.c.id.in_(oldest))).rowcount
        removed += count
        if count < batch:
            break
    return removed


@dataclass(frozen=True)
class LogFilter:
    """Which entries ``reconcile log`` shows; every set field narrows the selection."""

    mappings: tuple[str, ...] = ()
    remote_id: str | None = None
    local_table: str | None = None
    local_id: int | None = None
    run_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50


def read_log(conn: Connection, where: LogFilter) -> list[dict[str, Any]]:
    """Entries matching the filter, newest first, as JSON-ready objects."""
    c = change_log.c
    conditions: list[ColumnElement[bool]] = []
    if where.mappings:
        conditions.append(c.mapping.in_(where.mappings))
    for column, value in (
        (c.remote_id, where.remote_id),
        (c.local_table, where.local_table),
        (c.local_id, where.local_id),
        (c.run_id, where.run_id),
    ):
        if value is not None:
            conditions.append(column == value)
    if where.since is not None:
        conditions.append(c.logged_at >= where.since)
    if where.until is not None:
        conditions.append(c.logged_at < _end_of_millisecond(where.until))
    query = (
        select(change_log)
        .where(*conditions)
        .order_by(c.id.desc())  # the order entries were written in
        .limit(min(where.limit, BIGINT_MAX))
    )
    return [_as_json(dict(r._mapping)) for r in conn.execute(query)]


def _end_of_millisecond(moment: datetime) -> datetime:
    """Entries are shown to the millisecond, so ``--until`` copied from one includes it."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000) + timedelta(milliseconds=1)


def _as_json(row: dict[str, Any]) -> dict[str, Any]:
    local_id = row["local_id"]
    return {
        "id": row["id"],
        "logged_at": iso_ms(row["logged_at"]),
        "run_id": row["run_id"],
        "mapping": row["mapping"],
        "stage": row["stage"],
        "action": row["action"],
        "rule": row["rule"],
        "conflict": row["conflict"],
        "remote_id": row["remote_id"],
        "local_key": f"{row['local_table']}:{local_id}" if local_id is not None else None,
        "local_id": local_id,
        "changes": _expanded(row["changes"], row["rule"]),
        "message": row["message"],
    }


def _expanded(changes: Any, rule: str) -> Any:
    """An entry's changes in the list form; a new record's values object becomes one change per
    field (old null, the entry's rule)."""
    if isinstance(changes, dict):
        return [{"field": c, "old": None, "new": v, "rule": rule} for c, v in changes.items()]
    return changes
