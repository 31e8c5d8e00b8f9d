"""``reconcile status``: is the sync healthy? Judged from the database alone, for monitors.

A mapping is healthy when its last successful run (one in which it ran without failing: its
records may have failed, which the failures table tracks) is younger than the maximum age, it
has no dead letters, no record of it failed more than ``max_failures`` times in a row, and it did
not fail in more than ``max_failures`` runs in a row. A run still going after the maximum age,
or interrupted with no finished run since, is a problem too.

A mapping without credentials here that has never synced is taken as deliberately unused and
not watched; one that has synced before is watched as usual (its credentials may have gone
missing), and its line says what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from reconciler.model import Mapping, iso_ms
from reconciler.outcome import FAILED, SUCCEEDED, mapping_errors, mapping_outcome
from reconciler.store import health as store

SCAN_LIMIT = 2000  # stored runs read per mapping looking for its last success (~3 weeks)


@dataclass
class MappingHealth:
    """What the history says about one mapping."""

    mapping: Mapping
    not_configured: str | None = None  # the missing variables, when its credentials are missing
    last_success: datetime | None = None
    last_success_run: str | None = None
    failed_in_a_row: int = 0
    last_failure: str | None = None  # the newest mapping-level failure's message
    scanned_all: bool = True  # False: SCAN_LIMIT runs were read without finding a success
    failures: store.Failures = field(default_factory=store.Failures)

    @property
    def watched(self) -> bool:
        """Unused mappings (no credentials here, never synced) are not watched."""
        return self.not_configured is None or self.last_success is not None


@dataclass
class Health:
    """The assessment: per mapping, the unfinished runs, and the problems found."""

    checked_at: datetime
    max_age: timedelta
    max_failures: int
    mappings: list[MappingHealth]
    runs: list[store.UnfinishedRun]

    def age(self, moment: datetime | None) -> float | None:
        """Minutes from ``moment`` to the check, on the database's clock."""
        return None if moment is None else (self.checked_at - moment).total_seconds() / 60

    @property
    def problems(self) -> list[str]:
        """One line per problem, mappings first; empty when healthy."""
        lines = [line for m in self.mappings for line in self.mapping_problems(m)]
        return lines + [line for run in self.runs if (line := self.run_problem(run))]

    @property
    def healthy(self) -> bool:
        """Whether nothing is wrong."""
        return not self.problems

    def mapping_problems(self, m: MappingHealth) -> list[str]:
        """The problems of one mapping (none when it is not watched)."""
        if not m.watched:
            return []
        name, lines = m.mapping.name, []
        age = self.age(m.last_success)
        missing = f" (not configured here: {m.not_configured})" if m.not_configured else ""
        if age is None and m.scanned_all:
            lines.append(f"{name}: never synced{missing}")
        elif age is None:
            lines.append(f"{name}: no success in the last {SCAN_LIMIT} runs it took part in")
        elif age >= self.max_age.total_seconds() / 60:
            lines.append(
                f"{name}: last success {age:.0f} min ago (run {m.last_success_run}), "
                f"max age {self.max_age.total_seconds() / 60:.0f} min{missing}"
            )
        if m.failed_in_a_row > self.max_failures:
            lines.append(
                f"{name}: failed in its last {m.failed_in_a_row} runs in a row: {m.last_failure}"
            )
        lines += self._record_problems(m)
        return lines

    def _record_problems(self, m: MappingHealth) -> list[str]:
        found, name, lines = m.failures, m.mapping.name, []
        if found.dead:
            keys = _keys([r for r in found.records if r.dead], found.dead)
            lines.append(f"{name}: {found.dead} dead-lettered record(s): {keys}")
        if found.failing:
            keys = _keys([r for r in found.records if not r.dead], found.failing)
            lines.append(
                f"{name}: {found.failing} record(s) failed more than {self.max_failures} "
                f"times in a row: {keys}"
            )
        return lines

    def run_problem(self, run: store.UnfinishedRun) -> str | None:
        """The problem an unfinished run is, if any: interrupted, or running for too long."""
        age = self.age(run.started_at) or 0.0
        if not run.alive:
            return f"run {run.run_id}: interrupted ({age:.0f} min ago); no run has finished since"
        if age >= self.max_age.total_seconds() / 60:
            return f"run {run.run_id}: still running after {age:.0f} min"
        return None

    def to_dict(self) -> dict[str, Any]:
        """The ``reconcile status --json`` document."""
        return {
            "healthy": self.healthy,
            "checked_at": iso_ms(self.checked_at),
            "max_age_minutes": self.max_age.total_seconds() / 60,
            "max_failures": self.max_failures,
            "mappings": [self._mapping_dict(m) for m in self.mappings],
            "runs": [
                {
                    "run_id": r.run_id,
                    "started_at": iso_ms(r.started_at),
                    "state": "running" if r.alive else "interrupted",
                    "age_minutes": _minutes(self.age(r.started_at)),
                }
                for r in self.runs
            ],
            "problems": self.problems,
        }

    def _mapping_dict(self, m: MappingHealth) -> dict[str, Any]:
        records = [
            {
                "stage": r.stage,
                "record": r.record,
                "attempts": r.attempts,
                "dead": r.dead,
                "first_failed_at": iso_ms(r.first_failed_at),
                "message": r.message,
            }
            for r in m.failures.records
        ]
        return {
            "name": m.mapping.name,
            "remote": m.mapping.remote,
            "watched": m.watched,
            "not_configured": m.not_configured,
            "last_success": iso_ms(m.last_success) if m.last_success else None,
            "last_success_run": m.last_success_run,
            "age_minutes": _minutes(self.age(m.last_success)),
            "failed_runs_in_a_row": m.failed_in_a_row,
            "dead_letters": m.failures.dead,
            "failing_records": m.failures.failing,
            "records": records,
            "healthy": not self.mapping_problems(m),
        }


def _minutes(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _keys(records: list[store.FailingRecord], total: int) -> str:
    shown = ", ".join(f"{r.stage} {r.record} ({r.attempts}x)" for r in records[:5])
    return shown + (f" and {total - min(5, len(records))} more" if total > 5 else "")


def assess(
    conn: Connection,
    mappings: Sequence[tuple[Mapping, str | None]],
    *,
    max_age: timedelta,
    max_failures: int,
) -> Health:
    """Judge the sync from the database alone (no remote is contacted).

    Args:
        conn: a connection to a migrated database.
        mappings: each configured mapping with its missing credentials (None when complete).
        max_age: how old a mapping's last success may be.
        max_failures: failures in a row tolerated, per record and per mapping.
    """
    failing = store.failures_by_mapping(conn, max_failures)
    found = []
    for mapping, missing in mappings:
        m = MappingHealth(mapping, missing, failures=failing.get(mapping.name, store.Failures()))
        _read_history(conn, m)
        found.append(m)
    now = store.database_now(conn)
    return Health(now, max_age, max_failures, found, store.unfinished_runs(conn))


def _read_history(conn: Connection, m: MappingHealth) -> None:
    """Walk the mapping's runs newest first: count its failures in a row until its last
    success. Runs it did not finish (stopped by a signal) neither count nor break the count."""
    read = 0
    for run in store.runs_of(conn, m.mapping.name, limit=SCAN_LIMIT):
        read += 1
        entry = next(e for e in run.report["mappings"] if e["name"] == m.mapping.name)
        outcome = mapping_outcome(run.report, entry)
        if outcome in SUCCEEDED:
            m.last_success, m.last_success_run = run.finished_at, run.run_id
            break
        if outcome == FAILED:
            m.failed_in_a_row += 1
            m.last_failure = m.last_failure or _failure_message(run.report, m.mapping.name)
    m.scanned_all = m.last_success is not None or read < SCAN_LIMIT


def _failure_message(report: dict[str, Any], name: str) -> str:
    """Why a mapping failed in a run: its mapping-level error, or the run's own message."""
    errors = [str(e["message"]) for e in mapping_errors(report, name) if e["record"] is None]
    return errors[0] if errors else str(report.get("message") or "failed")
