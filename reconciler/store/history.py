"""Run history, watermarks and retry bookkeeping (the reconciler's own tables)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Interval,
    Select,
    any_,
    bindparam,
    case,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.types import NullType

from reconciler.model import Mapping
from reconciler.store.database import lock_held, run_lock_name
from reconciler.store.schema import failures, meta, remote_state, runs, watermarks
from reconciler.store.sql import BIGINT_MAX, among, text_array

# How long what refusals taught a remote's pacer holds after the last refusal: a path or a plan
# that needed it may have changed since, and one refusal more teaches it again.
PACING_KEPT = timedelta(days=7)


@dataclass(frozen=True)
class Failure:
    """One record that failed, for the report and the retry schedule."""

    stage: str
    record_key: str
    message: str
    local_id: int | None = None
    remote_id: str | None = None
    local_updated_at: datetime | None = None
    retryable: bool = True


@dataclass(frozen=True)
class DeadLetter:
    """A record that will not be retried until it changes again locally."""

    stage: str
    record_key: str
    message: str
    attempts: int


def install_id(conn: Connection) -> str:
    """The database's install id (a random UUID written by the first migration)."""
    value = conn.execute(select(meta.c.value).where(meta.c.key == "install_id")).scalar()
    return str(value)


def watermark(conn: Connection, mapping: str) -> datetime | None:
    """The end of the last complete pull window of a mapping."""
    return conn.execute(
        select(watermarks.c.pull_until).where(watermarks.c.mapping == mapping)
    ).scalar()


def set_watermark(conn: Connection, mapping: str, until: datetime) -> None:
    """Record that a mapping's pull window up to ``until`` was read completely."""
    stmt = insert(watermarks).values(mapping=mapping, pull_until=until)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[watermarks.c.mapping],
            set_={"pull_until": until, "updated_at": func.now()},
        )
    )


@dataclass(frozen=True)
class RemoteState:
    """What earlier runs kept of a mapping's remote: its schema (for the remote adapter), its
    clock offset (the remote's clock minus this host's), the mapped columns every synced row
    holds a base for (None: not counted yet, as for a mapping that never ran), and what
    refusals taught its pacer in the last week (``Pacer.lessons``)."""

    schema: Any | None = None
    clock_offset: timedelta | None = None
    filled: frozenset[str] | None = None
    pacing: dict[str, float] | None = None  # what refusals taught the pacer, a week at most

    def unfilled(self, mapping: Mapping) -> list[str]:
        """The mapping's columns that rows synced before they were mapped hold no base for:
        they fill in as those rows' records are read again (``--full`` reads them all)."""
        if self.filled is None:
            return []
        return [f.column for f in mapping.fields if f.column not in self.filled]

    def filled_after(self, mapping: Mapping, *, swept: bool) -> list[str]:
        """What to keep as filled at the end of a run of the mapping: every column after a
        complete full read (``swept``) or the mapping's first count, else the columns still
        mapped that were filled before (a column no longer mapped leaves the list, so one mapped
        again is named as unfilled)."""
        columns = [f.column for f in mapping.fields]
        if swept or self.filled is None:
            return columns
        return [c for c in columns if c in self.filled]


def remote_state_of(conn: Connection, mapping: str) -> RemoteState:
    """The kept state of a mapping's remote (empty when nothing was kept yet)."""
    recent = remote_state.c.pacing_saved_at > func.now() - PACING_KEPT
    row = conn.execute(
        select(
            remote_state.c.schema,
            remote_state.c.clock_offset_ms,
            remote_state.c.filled_fields,
            case((recent, remote_state.c.pacing)),
        ).where(remote_state.c.mapping == mapping)
    ).first()
    if row is None:
        return RemoteState()
    offset = None if row[1] is None else timedelta(milliseconds=row[1])
    return RemoteState(row[0], offset, None if row[2] is None else frozenset(row[2]), row[3])


def keep_remote_state(
    conn: Connection,
    mapping: str,
    *,
    schema: Any | None,
    clock_offset: timedelta | None,
    filled: list[str] | None = None,
    pacing: dict[str, float] | None = None,
) -> None:
    """Keep a mapping's remote schema (when given), clock offset (when known), filled
    columns (when given) and what refusals taught its pacer (when anything: kept a week)."""
    values: dict[str, Any] = {}
    if schema is not None:
        values |= {"schema": schema, "schema_saved_at": func.now()}
    if clock_offset is not None:
        values |= {
            "clock_offset_ms": clock_offset.total_seconds() * 1000,
            "clock_seen_at": func.now(),
        }
    if filled is not None:
        values["filled_fields"] = filled
    if pacing:
        values |= {"pacing": pacing, "pacing_saved_at": func.now()}
    if not values:
        return
    stmt = insert(remote_state).values(mapping=mapping, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=[remote_state.c.mapping], set_=values))


def record_failures(
    conn: Connection,
    mapping: str,
    items: list[Failure],
    *,
    max_attempts: int,
    base_delay: timedelta,
) -> dict[str, int]:
    """Count an attempt for each failed record and schedule its retry (doubling delays).

    A record that failed ``max_attempts`` times, or failed in a way that will not heal
    (``retryable`` False), is dead-lettered. A push failure whose row changed locally since its
    last attempt starts counting afresh. Returns the keys dead-lettered now, with the attempts
    each took.
    """
    items = list({(item.stage, item.record_key): item for item in items}.values())
    if not items:
        return {}
    previous = _previous_failures(conn, mapping, items)
    rows = [
        _failure_row(
            mapping, item, previous.get((item.stage, item.record_key)), max_attempts, base_delay
        )
        for item in items
    ]
    stmt = insert(failures).values(
        {c: bindparam(c) for c in rows[0] if c != "delay"}
        | {
            "last_failed_at": func.now(),
            "next_attempt_at": func.now() + bindparam("delay", type_=Interval()),
        }
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[failures.c.mapping, failures.c.stage, failures.c.record_key],
            set_={
                c: stmt.excluded[c]
                for c in (*rows[0], "last_failed_at", "next_attempt_at")
                if c not in ("mapping", "stage", "record_key", "delay")
            },
        ),
        rows,
    )
    return {row["record_key"]: row["attempts"] for row in rows if row["dead"]}


def _previous_failures(
    conn: Connection, mapping: str, items: list[Failure]
) -> dict[tuple[str, str], tuple[int, datetime | None]]:
    """The attempts so far of the records of ``items`` that failed before, with the local
    ``updated_at`` each last failed with, by stage and key; their rows locked until the
    transaction ends."""
    return {
        (stage, key): (attempts, stamp)
        for stage, key, attempts, stamp in conn.execute(
            select(
                failures.c.stage,
                failures.c.record_key,
                failures.c.attempts,
                failures.c.local_updated_at,
            )
            .where(
                failures.c.mapping == mapping,
                failures.c.stage.in_({item.stage for item in items}),
                among(failures.c.record_key, [item.record_key for item in items]),
            )
            .with_for_update()
        )
    }


def dead_letter_message(attempts: int, message: str) -> str:
    """How a report lists a dead-lettered record: in the run that dead-lettered it and in every
    later one, until it changes or goes through."""
    return f"dead-lettered after {attempts} attempt(s): {message}"


def _failure_row(
    mapping: str,
    item: Failure,
    previous: tuple[int, datetime | None] | None,
    max_attempts: int,
    base_delay: timedelta,
) -> dict[str, Any]:
    """The failures row of one more attempt (a changed local row starts counting afresh)."""
    fresh = previous is None or (item.stage == "push" and previous[1] != item.local_updated_at)
    attempts = 1 if fresh or previous is None else previous[0] + 1
    return {
        "mapping": mapping,
        "stage": item.stage,
        "record_key": item.record_key,
        "local_id": item.local_id,
        "remote_id": item.remote_id,
        "local_updated_at": item.local_updated_at,
        "attempts": attempts,
        "retryable": item.retryable,
        "dead": attempts >= max_attempts or not item.retryable,
        "message": item.message[:2000],
        "delay": base_delay * (2 ** min(attempts - 1, 16)),
    }


# Built once: a pull clears the failures of every page it applies. The keys travel as an
# array's text, typed by the server from the column.
_CLEAR_FAILURES = delete(failures).where(
    failures.c.mapping == bindparam("mapping"),
    failures.c.stage == bindparam("stage"),
    failures.c.record_key == any_(bindparam("keys", type_=NullType())),
)


def clear_failures(conn: Connection, mapping: str, stage: str, keys: list[str]) -> None:
    """Forget the failures of records that went through."""
    if keys:
        conn.execute(
            _CLEAR_FAILURES, {"mapping": mapping, "stage": stage, "keys": text_array(keys)}
        )


def has_failures(conn: Connection, mapping: str, stage: str) -> bool:
    """Whether any record of a mapping's stage is recorded as failing (due or not, dead or not)."""
    query = select(failures.c.record_key).where(
        failures.c.mapping == mapping, failures.c.stage == stage
    )
    return conn.execute(query.limit(1)).first() is not None


def failing_pulls(conn: Connection, mapping: str) -> set[str]:
    """Remote ids whose pull is recorded as failing (due or not, dead or not): their remote
    changes have not come in."""
    return {str(r) for r in conn.execute(_pull_failures(mapping)).scalars()}


def due_pull_retries(conn: Connection, mapping: str) -> list[str]:
    """Remote ids whose pull failed earlier and whose retry is due."""
    query = _pull_failures(mapping).where(
        ~failures.c.dead, failures.c.next_attempt_at <= func.now()
    )
    return [str(r) for r in conn.execute(query).scalars()]


def _pull_failures(mapping: str) -> Select[tuple[str]]:
    """The remote ids of a mapping's recorded pull failures."""
    return select(failures.c.remote_id).where(
        failures.c.mapping == mapping,
        failures.c.stage == "pull",
        failures.c.remote_id.isnot(None),
    )


def dead_letters(conn: Connection, mapping: str) -> list[DeadLetter]:
    """Every dead-lettered record of a mapping."""
    query = (
        select(failures.c.stage, failures.c.record_key, failures.c.message, failures.c.attempts)
        .where(failures.c.mapping == mapping, failures.c.dead)
        .order_by(failures.c.record_key)
    )
    return [DeadLetter(*r) for r in conn.execute(query)]


INTERRUPTED = "interrupted"  # a run whose process died (killed, host down) before finishing


def start_run(
    conn: Connection, run_id: str, started_at: datetime, lookback: int, dry_run: bool
) -> None:
    """Insert the run into the history with status ``running``; earlier runs still marked
    ``running`` that are no longer alive are marked ``interrupted``."""
    dead = _dead_runs(conn)
    if dead:
        conn.execute(update(runs).where(among(runs.c.run_id, dead)).values(status=INTERRUPTED))
    conn.execute(
        insert(runs).values(
            run_id=run_id,
            started_at=started_at,
            status="running",
            lookback_minutes=lookback,
            dry_run=dry_run,
        )
    )


def finish_run(conn: Connection, report: dict[str, Any], exit_code: int) -> None:
    """Store the final report of a run."""
    window = report.get("window") or {}
    conn.execute(
        update(runs)
        .where(runs.c.run_id == report["run_id"])
        .values(
            finished_at=func.now(),
            status=report["status"],
            exit_code=exit_code,
            window_since=window.get("since"),
            window_until=window.get("until"),
            report=report,
        )
    )


def recent_runs(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """The last runs, newest first, as stored reports (or their summary while running); a run
    marked ``running`` whose process is gone shows as ``interrupted``."""
    query = select(runs).order_by(runs.c.started_at.desc()).limit(min(limit, BIGINT_MAX))
    items = [dict(r._mapping) for r in conn.execute(query)]
    dead = set(_dead_runs(conn, [i["run_id"] for i in items if i["status"] == "running"]))
    for item in items:
        if item["run_id"] in dead:
            item["status"] = INTERRUPTED
    return items


def _dead_runs(conn: Connection, candidates: list[str] | None = None) -> list[str]:
    """Runs marked ``running`` (all, or these) whose session no longer holds their run lock:
    a live run holds it from before its row is written until it ends."""
    if candidates is None:
        query = select(runs.c.run_id).where(runs.c.status == "running")
        candidates = [str(r) for r in conn.execute(query).scalars()]
    return [r for r in candidates if not lock_held(conn, run_lock_name(r))]
