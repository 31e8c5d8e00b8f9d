"""``--skip-locked``: a mapping another run holds is skipped and reported, the others run.

Without the flag the contract holds: exit 4 at once, status ``locked``, nothing done."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from reconciler.emulators.airtable import AirtableEmulator
from reconciler.emulators.twenty import TwentyEmulator
from reconciler.store.database import lock_key
from tests.helpers import rows, seed_leads, seed_progressions
from tests.processes import Proc, fault_taken, scalar, start_reconcile

M = "rep_progressions"
Cli = Callable[..., Any]
LOCKED = "locked by another run"
HOLD = 60.0  # at most, seconds the first run's request is held: until the second run ends


@contextmanager
def held(db: sa.Engine, *names: str) -> Iterator[None]:
    """Hold the advisory locks of mappings from another session, as a running run does."""
    with db.connect() as conn:
        for name in names:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": lock_key(name)})
        conn.commit()
        try:
            yield
        finally:
            for name in names:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(name)})
            conn.commit()


@pytest.fixture
def both(airtable: AirtableEmulator, twenty: TwentyEmulator) -> None:
    """Two leads in Airtable and two progressions in Twenty."""
    seed_leads(airtable, 2)
    seed_progressions(twenty, 2)


@pytest.mark.usefixtures("both")
def test_skip_locked__the_held_mapping_is_skipped_and_the_others_run(
    db: sa.Engine, cli: Cli
) -> None:
    with held(db, "leads"):
        result = cli("--skip-locked")

    assert result.exit_code == 0, result.output
    report = result.report
    assert report["status"] == "ok"
    leads = result.mapping("leads")
    assert leads["skipped"] == LOCKED and leads["api"]["requests"] == 0
    assert result.mapping(M)["skipped"] is None and result.mapping(M)["pull"]["inserted"] == 2
    assert rows(db) == [] and len(rows(db, M)) == 2
    assert "leads: skipped (locked by another run)" in result.stderr
    stored = "SELECT status FROM reconciler.runs WHERE run_id = :r"
    assert scalar(db, stored, r=report["run_id"]) == "ok"


@pytest.mark.usefixtures("both")
def test_skip_locked__the_next_run_catches_the_skipped_mapping_up(db: sa.Engine, cli: Cli) -> None:
    with held(db, "leads"):
        assert cli("--skip-locked").exit_code == 0

    result = cli("--skip-locked")

    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["skipped"] is None
    assert len(rows(db)) == 2


@pytest.mark.usefixtures("both")
def test_skip_locked__every_mapping_held_is_exit_4_and_nothing_done(
    db: sa.Engine, cli: Cli
) -> None:
    with held(db, "leads", M):
        result = cli("--skip-locked")

    assert result.exit_code == 4, result.output
    assert result.report["status"] == "locked"
    assert result.report["message"] == (
        f"another run holds the locks of every mapping of this run (leads, {M}); nothing was done"
    )
    assert [m["skipped"] for m in result.report["mappings"]] == [LOCKED, LOCKED]
    assert rows(db) == [] and rows(db, M) == []
    assert scalar(db, "SELECT count(*) FROM reconciler.runs") == 0


@pytest.mark.usefixtures("both")
@pytest.mark.parametrize("busy", ["leads", M])
def test_without_skip_locked__one_held_mapping_stops_the_run_with_exit_4(
    db: sa.Engine, cli: Cli, busy: str
) -> None:
    with held(db, busy):
        result = cli()

    assert result.exit_code == 4, result.output
    report = result.report
    assert report["status"] == "locked"
    assert report["message"] == (
        f"another run holds the lock of mapping {busy}; nothing was done "
        "(--skip-locked runs the others)"
    )
    assert all(m["skipped"] is None and m["api"]["requests"] == 0 for m in report["mappings"])
    assert rows(db) == [] and rows(db, M) == []


@pytest.mark.usefixtures("both")
@pytest.mark.parametrize(
    ("busy", "args", "says"),
    [
        (("leads", M), (), f"the locks of every mapping of this run (leads, {M})"),
        (("leads",), ("--mapping", "leads"), "the lock of mapping leads"),
    ],
)
def test_without_skip_locked__the_message_names_every_held_mapping_and_no_idle_hint(
    db: sa.Engine, cli: Cli, busy: tuple[str, ...], args: tuple[str, ...], says: str
) -> None:
    """Every held mapping is named at once, and --skip-locked is suggested only when it would
    run something."""
    with held(db, *busy):
        result = cli(*args)

    assert result.exit_code == 4, result.output
    assert result.report["message"] == f"another run holds {says}; nothing was done"


def test_skip_locked__a_second_real_run_skips_what_the_first_holds(
    airtable: AirtableEmulator, twenty: TwentyEmulator, db: sa.Engine, tmp_path: Path
) -> None:
    """Two processes: the first holds leads (its listing is held in the emulator); the second,
    with --skip-locked, skips leads, syncs rep_progressions and exits 0; the first then ends
    normally."""
    seed_leads(airtable, 5)
    seed_progressions(twenty, 2)
    second_ended = threading.Event()
    airtable.faults.delay(HOLD, times=1, method="GET", until=second_ended)
    procs: list[Proc] = []
    try:
        procs.append(start_reconcile(tmp_path / "first.json", "--mapping", "leads"))
        procs[0].wait_for(fault_taken(airtable), what="the first run to hold the leads lock")
        procs.append(start_reconcile(tmp_path / "second.json", "--skip-locked"))
        code, _, err = procs[1].finish()
        second_ended.set()

        assert code == 0, err
        second = procs[1].report
        assert [m["skipped"] for m in second["mappings"]] == [LOCKED, None]
        assert len(rows(db, M)) == 2
        code, _, err = procs[0].finish()
        assert code == 0, err
        assert len(rows(db)) == 5
    finally:
        second_ended.set()
        for proc in procs:
            if proc.popen.poll() is None:
                proc.popen.kill()
                proc.popen.communicate()
