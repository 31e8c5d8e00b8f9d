"""Real processes against real servers: kill -9 mid-push, the database connection lost mid-run,
two runs at once, and SIGTERM. Each test holds a run inside a remote call with a delay fault,
acts on it from outside, then checks that the next run completes everything without
duplicates."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from reconciler.emulators.airtable import AirtableEmulator
from reconciler.emulators.twenty import TwentyEmulator
from tests.helpers import execute, rows, seed_leads, seed_progressions, twenty_writes
from tests.processes import (
    Proc,
    fault_taken,
    reconciler_backends,
    scalar,
    start_reconcile,
    wait_until,
)

M = "rep_progressions"
Cli = Callable[..., Any]
Spawn = Callable[..., Proc]
HOLD = 1.5  # seconds a delayed request is held: long enough to act on the stalled run


def _patches(em: AirtableEmulator) -> list[Any]:
    return [r for r in em.requests if r.method == "PATCH"]


def _assert_twenty_matches_local(twenty: TwentyEmulator, db: sa.Engine) -> None:
    """Every local row is linked to exactly one remote record holding its values."""
    remote = {r["id"]: r for r in twenty.records()}
    local = rows(db, M)
    assert len(remote) == len(local)
    assert len({r["name"] for r in remote.values()}) == len(remote)  # no duplicate
    for row in local:
        record = remote[str(row["twenty_id"])]
        assert (record["name"], record["totalXp"]) == (row["name"], row["total_xp"])


def _edit_progressions(db: sa.Engine, creates: int) -> None:
    execute(db, "UPDATE rep_progressions SET total_xp = total_xp + 100")
    for i in range(creates):
        execute(db, "INSERT INTO rep_progressions (name, total_xp) VALUES (:n, :x)", n=f"n{i}", x=i)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start ``reconcile`` processes (report in ``tmp_path/<name>.json``); any still running
    at the end of the test is killed, so a failing test leaves nothing behind."""
    started: list[Proc] = []

    def start(name: str, *args: str) -> Proc:
        proc = start_reconcile(tmp_path / f"{name}.json", *args)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.popen.poll() is None:
            proc.popen.kill()
        proc.popen.communicate()


def _no_run_connected(db: sa.Engine) -> None:
    wait_until(lambda: reconciler_backends(db) == [], what="the run's connection to close")


def _last_run(cli: Cli) -> dict[str, Any]:
    """The newest entry of `reconcile runs --json`."""
    result = cli("runs", "--json", "--limit", "1")
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout)[0])


# -- kill -9 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("held", ["write", "read_before_write"])
def test_kill_9_mid_push__next_run_completes_without_duplicates(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli, spawn: Spawn, held: str
) -> None:
    """SIGKILL while the push is held in the remote call (the write then lands unrecorded, or
    never leaves): the next run creates nothing twice and every local edit arrives."""
    seed_progressions(twenty, 3)
    assert cli("--mapping", M).exit_code == 0
    _edit_progressions(db, creates=4)
    twenty.reset_log()
    method = "POST" if held == "write" else "GET"
    twenty.faults.delay(HOLD, times=1, method=method)
    stage = ["--stage", "push"] if held == "read_before_write" else []  # a push that reads

    proc = spawn("killed", "--mapping", M, *stage)
    proc.wait_for(fault_taken(twenty), what="the run to reach the held request")
    proc.signal(signal.SIGKILL)
    code, _, _ = proc.finish()
    assert code == -signal.SIGKILL
    wait_until(lambda: twenty.count(method=method) >= 1, what="the held request to finish")
    _no_run_connected(db)
    assert len(rows(db, M, "twenty_id IS NULL")) == 4  # the kill left the creates unrecorded
    assert len(twenty.records()) == (7 if held == "write" else 3)

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    _assert_twenty_matches_local(twenty, db)
    assert len(twenty.records()) == len(rows(db, M)) == 7
    twenty.reset_log()
    assert cli("--mapping", M).exit_code == 0
    assert twenty_writes(twenty) == []


def test_kill_9_mid_push__airtable_edits_all_arrive_once(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, spawn: Spawn
) -> None:
    """SIGKILL while the first of two PATCH batches is held: after the next run every edit is
    on Airtable, no record was added, and one more run sends nothing."""
    ids = seed_leads(airtable, 15)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'note ' || id, claimed_by = 'rep'")
    airtable.faults.delay(HOLD, times=1, method="PATCH")

    proc = spawn("killed")
    proc.wait_for(fault_taken(airtable), what="the run to reach the held PATCH")
    assert _last_run(cli)["status"] == "running"
    proc.signal(signal.SIGKILL)
    assert proc.finish()[0] == -signal.SIGKILL
    wait_until(lambda: len(_patches(airtable)) == 1, what="the held PATCH to finish")
    _no_run_connected(db)
    killed = _last_run(cli)
    assert killed["status"] == "interrupted"  # its process is gone, its row still says running
    assert scalar(
        db, "SELECT status FROM reconciler.runs WHERE run_id = :r", r=killed["run_id"]
    ) == ("running")

    result = cli()

    assert result.exit_code == 0, result.output
    assert scalar(
        db, "SELECT status FROM reconciler.runs WHERE run_id = :r", r=killed["run_id"]
    ) == ("interrupted")
    remote = {r["id"]: r["fields"] for r in airtable.records("Leads")}
    assert sorted(remote) == sorted(ids)
    for row in rows(db):
        fields = remote[row["airtable_record_id"]]
        assert (fields["Notes"], fields["Claimed By"]) == (f"note {row['id']}", "rep")
    airtable.reset_log()
    assert cli().exit_code == 0
    assert _patches(airtable) == []


# -- the database lost mid-run --------------------------------------------------------------------


def test_database_lost_mid_pull__exit_3_whole_pages_only_then_recovery(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, spawn: Spawn
) -> None:
    """The run's Postgres session is terminated while the second page is being read: exit 3
    with a clear message; the first page is applied whole (rows with their sync state), the
    second not at all, the watermark stays; the next run completes everything."""
    seed_leads(airtable, 150)
    pages = f"/v0/{airtable.base_id}/"  # the listing's pages, not the schema read before them
    airtable.faults.delay(0, times=1, method="GET", path=pages)
    airtable.faults.delay(HOLD, times=1, method="GET", path=pages)

    proc = spawn("lost", "--mapping", "leads")
    proc.wait_for(fault_taken(airtable), what="the run to read the second page")
    with db.connect() as conn:
        pids = reconciler_backends(db)
        assert pids, "the run should be connected"
        for pid in pids:
            conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    code, _, err = proc.finish()

    assert code == 3, err
    report = proc.report
    assert report["status"] == "failed"
    assert "database connection lost" in report["message"]
    assert "database connection lost" in err
    assert "Traceback" not in err
    assert scalar(db, "SELECT count(*) FROM leads") == 100
    assert (
        scalar(
            db,
            "SELECT count(*) FROM leads l LEFT JOIN reconciler.sync_state s "
            "ON s.mapping = 'leads' AND s.local_id = l.id WHERE s.local_id IS NULL",
        )
        == 0
    )
    assert scalar(db, "SELECT count(*) FROM reconciler.watermarks") == 0

    result = cli("--mapping", "leads")
    assert result.exit_code == 0, result.output
    assert scalar(db, "SELECT count(*) FROM leads") == 150
    assert scalar(db, "SELECT count(*) FROM reconciler.watermarks") == 1


def test_database_lost_mid_push__remote_write_unrecorded_then_linked_without_duplicates(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli, spawn: Spawn
) -> None:
    """The session dies while creates are in flight: exit 3, no local row is half-linked,
    and the next run links the records created remotely instead of creating them again."""
    seed_progressions(twenty, 2)
    assert cli("--mapping", M).exit_code == 0
    _edit_progressions(db, creates=3)
    twenty.faults.delay(HOLD, times=1, method="POST")

    proc = spawn("lost", "--mapping", M)
    proc.wait_for(fault_taken(twenty), what="the run to send the upsert")
    with db.connect() as conn:
        for pid in reconciler_backends(db):
            conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    code, _, err = proc.finish()

    assert code == 3, err
    assert "database connection lost" in proc.report["message"]
    assert len(twenty.records()) == 5  # the upsert landed
    assert len(rows(db, M, "twenty_id IS NULL")) == 3  # ... but was not recorded
    result = cli("--mapping", M)
    assert result.exit_code == 0, result.output
    _assert_twenty_matches_local(twenty, db)


# -- two runs at once ------------------------------------------------------------------------------


def test_two_runs__the_second_exits_4_locked_and_does_nothing(
    airtable: AirtableEmulator, twenty: TwentyEmulator, db: sa.Engine, cli: Cli, spawn: Spawn
) -> None:
    """While one run holds the leads lock, another run over leads exits 4 at once with status
    ``locked``, writes its report and touches nothing; a run of another mapping proceeds."""
    seed_leads(airtable, 5)
    seed_progressions(twenty, 2)
    airtable.faults.delay(HOLD, times=1, method="GET")
    first = spawn("first", "--mapping", "leads")
    first.wait_for(fault_taken(airtable), what="the first run to hold the lock")

    second = cli()

    assert second.exit_code == 4, second.output
    report = second.report
    assert report["status"] == "locked" and report["window"] is None
    assert all(m["api"]["requests"] == 0 for m in report["mappings"])
    assert "lock" in second.stderr
    assert rows(db) == [] and rows(db, M) == []
    assert (
        scalar(db, "SELECT count(*) FROM reconciler.runs WHERE run_id = :r", r=report["run_id"])
        == 0
    )

    other = cli("--mapping", M)
    assert other.exit_code == 0, other.output
    assert len(rows(db, M)) == 2

    code, _, err = first.finish()
    assert code == 0, err
    assert len(rows(db)) == 5


# -- SIGTERM ---------------------------------------------------------------------------------------


def test_sigterm__finishes_the_batch_writes_the_report_and_exits(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, spawn: Spawn
) -> None:
    """SIGTERM while the first of three PATCH batches is in flight: that batch completes and
    is recorded, no further batch is sent, the report is written; the next run sends exactly
    the rest."""
    seed_leads(airtable, 30)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'n' || id")
    airtable.faults.delay(HOLD, times=1, method="PATCH")
    airtable.reset_log()

    proc = spawn("stopped", "--mapping", "leads")
    proc.wait_for(fault_taken(airtable), what="the first PATCH to be held")
    proc.signal(signal.SIGTERM)
    code, _, err = proc.finish(timeout=20)

    assert code == 1, err
    report = proc.report
    assert report["status"] == "partial"
    assert any("stopped by a signal" in e["message"] for e in report["errors"])
    assert report["mappings"][0]["push"]["updated"] == 10
    assert len(_patches(airtable)) == 1
    assert sum(1 for r in airtable.records("Leads") if r["fields"].get("Notes")) == 10

    result = cli("--mapping", "leads")
    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["push"]["updated"] == 20
    assert sum(1 for r in airtable.records("Leads") if r["fields"].get("Notes")) == 30
