"""What ``reconcile status`` reads: each mapping's stored run reports, the failures table, and
the runs left unfinished. Read only; nothing here writes or contacts a remote."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from reconciler.store.database import lock_held, run_lock_name
from reconciler.store.schema import failures, runs
from reconciler.store.sql import INTEGER_MAX

PAGE = 50  # stored reports read per query while looking for a mapping's last success
RECORDS_SHOWN = 20  # failing records listed per mapping (the counts are always complete)
SUCCEEDED_RUNS = ("ok", "partial")  # a run that finished, whatever its records did
SECOND = len("20261121T002722Z")  # a run id's prefix: its start time, to the second


@dataclass(frozen=True)
class StoredRun:
    """A finished run, as ``reconciler.runs`` keeps it."""

    run_id: str
    started_at: datetime
    finished_at: datetime | None
    report: dict[str, Any]


@dataclass(frozen=True)
class FailingRecord:
    """A record that failed more than the tolerated number of times, or was dead-lettered."""

    mapping: str
    stage: str
    record: str
    attempts: int
    dead: bool
    message: str
    first_failed_at: datetime


@dataclass(frozen=True)
class Failures:
    """A mapping's dead letters and records failing repeatedly: complete counts, and the
    first ``RECORDS_SHOWN`` of them (dead first, then the most attempts)."""

    dead: int = 0
    failing: int = 0
    records: tuple[FailingRecord, ...] = ()


@dataclass(frozen=True)
class UnfinishedRun:
    """A run that has not finished: still running (alive), or interrupted (its process gone)."""

    run_id: str
    started_at: datetime
    alive: bool


def database_now(conn: Connection) -> datetime:
    """The database's clock: every stored time was stamped by it, so ages are measured on it."""
    return conn.execute(select(func.clock_timestamp())).scalar_one()  # type: ignore[no-any-return]


def runs_of(conn: Connection, mapping: str, *, limit: int) -> Iterator[StoredRun]:
    """The finished runs in which ``mapping`` took part (not skipped), newest first, ``limit``
    of them at most; read a page at a time, so a caller that stops early reads little.

    A run id starts with its start time to the second (``20261121T002722Z-…``): pages follow the
    primary key index, so Postgres stops at the first page instead of sorting every stored
    report, and a page is extended to the whole of its last second, then sorted by the exact
    start time.
    """
    took_part = runs.c.report["mappings"].contains([{"name": mapping, "skipped": None}])
    columns = (runs.c.run_id, runs.c.started_at, runs.c.finished_at, runs.c.report)
    before: str | None = None
    left = limit
    while left > 0:
        query = select(*columns).where(took_part).order_by(runs.c.run_id.desc()).limit(PAGE)
        if before is not None:
            query = query.where(runs.c.run_id < before)
        page = [StoredRun(*row) for row in conn.execute(query)]
        if len(page) == PAGE:
            before = page[-1].run_id[:SECOND]
            same_second = (runs.c.run_id < page[-1].run_id, runs.c.run_id >= before)
            page += [
                StoredRun(*r) for r in conn.execute(select(*columns).where(took_part, *same_second))
            ]
        # A page extended to the end of its last second may hold more than are left to give.
        yield from sorted(page, key=lambda run: run.started_at, reverse=True)[:left]
        if len(page) < PAGE:
            return
        left -= len(page)


def failures_by_mapping(conn: Connection, max_failures: int) -> dict[str, Failures]:
    """Per mapping: its dead letters, and its live records that failed more than
    ``max_failures`` times in a row."""
    max_failures = min(max_failures, INTEGER_MAX)  # no record has failed more often
    flagged = or_(failures.c.dead, failures.c.attempts > max_failures)
    counts = select(
        failures.c.mapping,
        func.count().filter(failures.c.dead),
        func.count().filter(and_(~failures.c.dead, failures.c.attempts > max_failures)),
    ).group_by(failures.c.mapping)
    rank = (
        func.row_number()
        .over(
            partition_by=failures.c.mapping,
            order_by=(failures.c.dead.desc(), failures.c.attempts.desc(), failures.c.record_key),
        )
        .label("rank")
    )
    ranked = select(
        failures.c.mapping,
        failures.c.stage,
        failures.c.record_key,
        failures.c.attempts,
        failures.c.dead,
        failures.c.message,
        failures.c.first_failed_at,
        rank,
    ).where(flagged)
    shown = ranked.subquery()
    records: dict[str, list[FailingRecord]] = {}
    for row in conn.execute(select(shown).where(shown.c.rank <= RECORDS_SHOWN)):
        records.setdefault(row.mapping, []).append(FailingRecord(*row[:7]))
    return {
        name: Failures(dead, failing, tuple(records.get(name, ())))
        for name, dead, failing in conn.execute(counts)
        if dead or failing
    }


def unfinished_runs(conn: Connection) -> list[UnfinishedRun]:
    """Runs not finished, oldest first: each still running (its process holds its run lock),
    or interrupted (marked so, or marked running by a process that no longer holds its lock).
    An interruption followed by a run that finished (``ok`` or ``partial``) is over."""
    last_finished = (
        select(func.max(runs.c.started_at)).where(runs.c.status.in_(SUCCEEDED_RUNS))
    ).scalar_subquery()
    query = (
        select(runs.c.run_id, runs.c.started_at, runs.c.status, last_finished)
        .where(
            or_(
                runs.c.status == "running",
                and_(
                    runs.c.status == "interrupted",
                    or_(last_finished.is_(None), runs.c.started_at > last_finished),
                ),
            )
        )
        .order_by(runs.c.started_at)
    )
    found = []
    for run_id, started, status, finished in conn.execute(query).all():
        alive = status == "running" and lock_held(conn, run_lock_name(run_id))
        if alive or finished is None or started > finished:
            found.append(UnfinishedRun(run_id, started, alive))
    return found
