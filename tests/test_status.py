"""``reconcile status``: health for monitors, from the database alone.

Ages are arranged by moving stored times back (never by waiting): the status measures them on
the database's clock."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from reconciler.emulators.airtable import AirtableEmulator
from reconciler.emulators.twenty import TwentyEmulator
from reconciler.store.database import lock_key, run_lock_name
from tests.helpers import execute, seed_leads, seed_progressions

M = "rep_progressions"
Cli = Callable[..., Any]
BAD = {"First Name": "Bad", "ICP Score": "high"}  # a pull failure: not a number


def _age_history(db: sa.Engine, minutes: int) -> None:
    """Make every stored run ``minutes`` older."""
    shift = "interval '1 minute' * :m"
    execute(
        db,
        f"UPDATE reconciler.runs SET started_at = started_at - {shift}, "
        f"finished_at = finished_at - {shift}",
        m=minutes,
    )


def _insert_running(db: sa.Engine, run_id: str, minutes_ago: int) -> None:
    execute(
        db,
        "INSERT INTO reconciler.runs (run_id, started_at, status, lookback_minutes) "
        "VALUES (:r, clock_timestamp() - interval '1 minute' * :m, 'running', 20)",
        r=run_id,
        m=minutes_ago,
    )


@contextmanager
def _alive(db: sa.Engine, run_id: str) -> Iterator[None]:
    """Hold a run's own lock, as its live process does."""
    key = lock_key(run_lock_name(run_id))
    with db.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
        conn.commit()
        yield
        conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        conn.commit()


def _problems(result: Any) -> list[str]:
    assert result.exit_code == 1, result.output
    return result.stdout.splitlines()


@pytest.fixture
def synced(airtable: AirtableEmulator, twenty: TwentyEmulator, db: sa.Engine, cli: Cli) -> None:
    """Both mappings synced once, successfully."""
    seed_leads(airtable, 2)
    seed_progressions(twenty, 2)
    result = cli()
    assert result.exit_code == 0, result.output


@pytest.mark.usefixtures("synced")
def test_status__healthy_after_a_run_and_no_remote_request(
    airtable: AirtableEmulator, twenty: TwentyEmulator, cli: Cli
) -> None:
    airtable.reset_log()
    twenty.reset_log()

    result = cli("status")

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "healthy: leads synced 0 min ago; rep_progressions synced 0 min ago (max age 45 min)\n"
    )
    assert airtable.requests == [] and twenty.requests == []


def test_status__never_synced(airtable, twenty, database_url, cli: Cli) -> None:
    assert _problems(cli("status")) == ["leads: never synced", f"{M}: never synced"]


@pytest.mark.usefixtures("synced")
def test_status__stale_past_max_age(db: sa.Engine, cli: Cli) -> None:
    _age_history(db, 50)

    lines = _problems(cli("status"))

    assert [line.split(" (run ")[0] for line in lines] == [
        "leads: last success 50 min ago",
        f"{M}: last success 50 min ago",
    ]
    assert all(line.endswith("max age 45 min") for line in lines)
    assert cli("status", "--max-age", "60").exit_code == 0


@pytest.mark.usefixtures("synced")
def test_status__a_mapping_that_lost_its_credentials_is_still_watched(
    db: sa.Engine, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TWENTY_API_KEY")
    assert cli().exit_code == 0  # the run skips it and succeeds
    _age_history(db, 30)
    assert cli().exit_code == 0

    (line,) = _problems(cli("status", "--max-age", "20"))

    assert line.startswith(f"{M}: last success 30 min ago")
    assert line.endswith("(not configured here: TWENTY_API_KEY)")
    healthy = cli("status", "--max-age", "40")  # young enough: the ok line still says it
    assert healthy.exit_code == 0, healthy.output
    assert f"{M} synced 30 min ago (not configured here: TWENTY_API_KEY)" in healthy.stdout


def test_status__a_mapping_never_configured_is_not_watched(airtable, db, cli: Cli) -> None:
    seed_leads(airtable, 1)
    assert cli().exit_code == 0

    result = cli("status")

    assert result.exit_code == 0, result.output
    assert "rep_progressions not configured (TWENTY_API_KEY), not watched" in result.stdout


def test_status__dead_letters_per_mapping(airtable, db, cli: Cli, monkeypatch) -> None:
    monkeypatch.setenv("RECONCILER_MAX_ATTEMPTS", "1")
    seed_leads(airtable, 1)
    bad = airtable.create("Leads", BAD, validate=False)
    assert cli().exit_code == 1

    (line,) = _problems(cli("status"))

    assert line == f"leads: 1 dead-lettered record(s): pull {bad['id']} (1x)"


def test_status__a_record_failing_more_than_n_times(airtable, db, cli: Cli) -> None:
    bad = airtable.create("Leads", BAD, validate=False)
    assert cli().exit_code == 1
    execute(db, "UPDATE reconciler.failures SET dead = false")  # as a retryable failure
    assert cli("status").exit_code == 0  # one failure is a blip: the partial run synced leads
    execute(db, "UPDATE reconciler.failures SET attempts = 4")

    (line,) = _problems(cli("status"))

    assert line == f"leads: 1 record(s) failed more than 3 times in a row: pull {bad['id']} (4x)"
    assert cli("status", "--max-failures", "4").exit_code == 0
    assert cli("status", "--max-failures", str(2**64)).exit_code == 0  # past integer: tolerated


@pytest.mark.usefixtures("synced")
def test_status__a_mapping_failing_in_more_than_n_runs_in_a_row(
    airtable: AirtableEmulator, cli: Cli
) -> None:
    airtable.faults.fail(401, times=1000)
    for _ in range(3):
        assert cli().exit_code == 3
    assert cli("status").exit_code == 0  # three in a row are tolerated, and leads is not stale

    assert cli().exit_code == 3
    (line,) = _problems(cli("status"))

    assert line.startswith("leads: failed in its last 4 runs in a row: ")
    assert "401" in line or "refused" in line


@pytest.mark.usefixtures("synced")
def test_status__an_interrupted_run_until_a_run_finishes(db: sa.Engine, cli: Cli) -> None:
    _insert_running(db, "20260101T000000Z-dead00", minutes_ago=0)

    (line,) = _problems(cli("status"))

    assert line == "run 20260101T000000Z-dead00: interrupted (0 min ago); no run has finished since"
    assert cli().exit_code == 0
    assert cli("status").exit_code == 0


@pytest.mark.usefixtures("synced")
def test_status__a_run_running_longer_than_max_age(db: sa.Engine, cli: Cli) -> None:
    _insert_running(db, "20260101T000000Z-slow00", minutes_ago=50)
    _insert_running(db, "20260101T000000Z-busy00", minutes_ago=5)
    with _alive(db, "20260101T000000Z-slow00"), _alive(db, "20260101T000000Z-busy00"):
        lines = _problems(cli("status"))
    assert lines == ["run 20260101T000000Z-slow00: still running after 50 min"]


@pytest.mark.usefixtures("synced")
def test_status__a_skipped_run_is_no_success(db: sa.Engine, cli: Cli) -> None:
    """A run that skipped leads (locked by another run) does not make leads fresh."""
    _age_history(db, 50)
    with db.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": lock_key("leads")})
        conn.commit()
        assert cli("--skip-locked").exit_code == 0
    (line,) = _problems(cli("status"))
    assert line.startswith("leads: last success 50 min ago")


@pytest.mark.usefixtures("synced")
def test_status_json__per_mapping_figures_and_healthy(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    bad = airtable.create("Leads", BAD, validate=False)
    assert cli().exit_code == 1
    execute(db, "UPDATE reconciler.failures SET attempts = 5, dead = false")

    result = cli("status", "--json")

    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["healthy"] is False and doc["max_age_minutes"] == 45 and doc["max_failures"] == 3
    leads, progressions = doc["mappings"]
    assert leads["name"] == "leads" and leads["healthy"] is False
    assert leads["last_success"].endswith("Z") and leads["age_minutes"] < 1
    assert (leads["dead_letters"], leads["failing_records"]) == (0, 1)
    (record,) = leads["records"]
    assert (record["record"], record["attempts"], record["dead"]) == (bad["id"], 5, False)
    assert progressions["healthy"] is True and progressions["failed_runs_in_a_row"] == 0
    assert doc["runs"] == [] and len(doc["problems"]) == 1


def test_status__unmigrated_database_is_exit_3(airtable, unmigrated_url, cli: Cli) -> None:
    result = cli("status")
    assert result.exit_code == 3, result.output
    assert "reconcile migrate" in result.stderr

    result = cli("status", "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["healthy"] is False


def test_status__unknown_mapping_is_a_usage_error(airtable, database_url, cli: Cli) -> None:
    result = cli("status", "--mapping", "nope")
    assert result.exit_code == 2, result.output
    assert "--mapping" in result.stderr


def _store_runs(db: sa.Engine, outcomes: list[str], *, per_second: int = 3) -> list[str]:
    """Store finished runs of leads, oldest first, ``per_second`` of them in each second (run
    ids of one second sort by their random part, not by start); returns their ids."""
    ids, rows = [], []
    for i, outcome in enumerate(outcomes):
        second, within = divmod(i, per_second)
        started = f"2026-01-01T00:{second // 60:02d}:{second % 60:02d}.{within * 100:03d}"
        run_id = f"20260101T00{second // 60:02d}{second % 60:02d}Z-{9 - within:06d}"
        error = {"mapping": "leads", "stage": "pull", "record": None, "message": f"bad {i}"}
        report = {
            "run_id": run_id,
            "status": outcome,
            "message": None,
            "mappings": [{"name": "leads", "skipped": None}],
            "errors": [error] if outcome == "failed" else [],
        }
        ids.append(run_id)
        rows.append({"r": run_id, "s": started, "status": outcome, "report": json.dumps(report)})
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO reconciler.runs (run_id, started_at, finished_at, status, "
                "lookback_minutes, report) VALUES (:r, CAST(:s AS timestamptz), "
                "CAST(:s AS timestamptz), :status, 20, CAST(:report AS jsonb))"
            ),
            rows,
        )
    return ids


def test_runs_of__newest_first_across_pages_and_within_a_second(db: sa.Engine) -> None:
    from reconciler.store.health import PAGE, runs_of

    _store_runs(db, ["ok"] * (2 * PAGE + 7))
    with db.connect() as conn:
        found = list(runs_of(conn, "leads", limit=10_000))
        assert [r.run_id for r in runs_of(conn, "rep_progressions", limit=10)] == []
        # pages extended to the end of their last second still give no more than the limit
        assert [len(list(runs_of(conn, "leads", limit=n))) for n in (1, PAGE, PAGE + 1)] == [
            1,
            PAGE,
            PAGE + 1,
        ]

    starts = [r.started_at for r in found]
    assert len(found) == 2 * PAGE + 7 and starts == sorted(starts, reverse=True)


def test_status__counts_failures_back_to_a_success_pages_away(
    airtable, database_url, db: sa.Engine, cli: Cli
) -> None:
    ids = _store_runs(db, ["ok", "partial", *["failed"] * 70])

    result = cli("status", "--json", "--mapping", "leads")

    leads = json.loads(result.stdout)["mappings"][0]
    assert leads["last_success_run"] == ids[1]
    assert leads["failed_runs_in_a_row"] == 70
    assert (
        f"leads: failed in its last 70 runs in a row: bad {len(ids) - 1}"
        in (json.loads(result.stdout)["problems"])
    )


def test_status__nothing_to_watch_is_a_usage_error(database_url, cli: Cli) -> None:
    """No credentials and no history (a monitor run without the runs' environment): exit 2."""
    result = cli("status")
    assert result.exit_code == 2, result.output
    assert "AIRTABLE_TOKEN" in result.stderr and "TWENTY_API_KEY" in result.stderr


@pytest.mark.usefixtures("synced")
def test_status__a_run_that_failed_mid_run_is_a_failed_run_not_an_interrupted_one(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.store.sync import Store

    def boom(self: Store, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(Store, "push_candidates", boom)
    for _ in range(4):
        assert cli().exit_code == 3

    lines = _problems(cli("status"))

    why = "failed in its last 4 runs in a row: internal error: RuntimeError: boom"
    assert lines == [f"leads: {why}", f"{M}: {why}"]
    doc = json.loads(cli("status", "--json").stdout)
    assert doc["runs"] == []
    assert [m["failed_runs_in_a_row"] for m in doc["mappings"]] == [4, 4]


def _set_errors(db: sa.Engine, run_ids: list[str], errors: list[dict[str, Any]]) -> None:
    """Replace the errors of stored runs' reports."""
    execute(
        db,
        "UPDATE reconciler.runs SET report = jsonb_set(report, '{errors}', CAST(:e AS jsonb)) "
        "WHERE run_id = ANY(:ids)",
        e=json.dumps(errors),
        ids=run_ids,
    )


def _add_failures(db: sa.Engine, rows: list[tuple[str, int, bool]]) -> None:
    """Store failing pull records of leads: (record key, attempts, dead)."""
    for key, attempts, dead in rows:
        execute(
            db,
            "INSERT INTO reconciler.failures (mapping, stage, record_key, attempts, dead, message) "
            "VALUES ('leads', 'pull', :k, :a, :d, 'bad value')",
            k=key,
            a=attempts,
            d=dead,
        )


def test_status__no_success_within_the_runs_read(airtable, database_url, db, cli: Cli) -> None:
    _store_runs(db, ["failed"] * 2001, per_second=1)

    lines = _problems(cli("status", "--mapping", "leads"))

    assert lines[0] == "leads: no success in the last 2000 runs it took part in"
    assert lines[1].startswith("leads: failed in its last 2000 runs in a row: ")


@pytest.mark.usefixtures("synced")
def test_status__lists_five_records_with_the_most_attempts_and_counts_the_rest(
    db: sa.Engine, cli: Cli
) -> None:
    _add_failures(db, [(f"rec{i}", 8 - i, True) for i in range(5)])
    (line,) = _problems(cli("status"))
    shown = "pull rec0 (8x), pull rec1 (7x), pull rec2 (6x), pull rec3 (5x), pull rec4 (4x)"
    assert line == f"leads: 5 dead-lettered record(s): {shown}"

    _add_failures(db, [("rec5", 1, True)])

    (line,) = _problems(cli("status"))

    assert line == f"leads: 6 dead-lettered record(s): {shown} and 1 more"


@pytest.mark.usefixtures("synced")
def test_status_json__lists_twenty_records_dead_ones_first_and_counts_all(
    db: sa.Engine, cli: Cli
) -> None:
    _add_failures(db, [(f"rec{i:02d}", 5, False) for i in range(25)] + [("gone", 1, True)])

    result = cli("status", "--json")

    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    leads = doc["mappings"][0]
    assert (leads["dead_letters"], leads["failing_records"]) == (1, 25)
    assert [r["record"] for r in leads["records"]] == ["gone"] + [f"rec{i:02d}" for i in range(19)]
    assert doc["problems"][0] == "leads: 1 dead-lettered record(s): pull gone (1x)"


@pytest.mark.usefixtures("synced")
def test_status_json__a_record_failing_within_the_tolerance_is_not_listed(
    db: sa.Engine, cli: Cli
) -> None:
    _add_failures(db, [("rec", 3, False), ("gone", 1, True)])

    result = cli("status", "--json")

    assert result.exit_code == 1, result.output
    leads = json.loads(result.stdout)["mappings"][0]
    assert (leads["dead_letters"], leads["failing_records"]) == (1, 0)
    assert [r["record"] for r in leads["records"]] == ["gone"]


@pytest.mark.usefixtures("synced")
def test_status_json__says_which_runs_are_running_and_which_interrupted(
    db: sa.Engine, cli: Cli
) -> None:
    _insert_running(db, "20260101T000000Z-busy00", minutes_ago=5)
    _insert_running(db, "20260101T000000Z-dead00", minutes_ago=0)
    with _alive(db, "20260101T000000Z-busy00"):
        result = cli("status", "--json")

    assert result.exit_code == 1, result.output
    runs = json.loads(result.stdout)["runs"]
    assert [(r["run_id"], r["state"]) for r in runs] == [
        ("20260101T000000Z-busy00", "running"),
        ("20260101T000000Z-dead00", "interrupted"),
    ]


def test_status_json__a_mapping_never_configured_is_not_watched(airtable, db, cli: Cli) -> None:
    seed_leads(airtable, 1)
    assert cli().exit_code == 0

    result = cli("status", "--json")

    assert result.exit_code == 0, result.output
    leads, progressions = json.loads(result.stdout)["mappings"]
    assert (leads["watched"], leads["not_configured"]) == (True, None)
    assert progressions["watched"] is False and progressions["not_configured"] == "TWENTY_API_KEY"
    assert progressions["healthy"] is True


def test_status__a_run_stopped_by_a_signal_is_not_a_failure(
    airtable, database_url, db: sa.Engine, cli: Cli
) -> None:
    ids = _store_runs(db, ["ok", *["partial"] * 4])
    stop = {"mapping": "*", "stage": "run", "record": None, "message": "stopped by a signal"}
    _set_errors(db, ids[1:], [stop])

    result = cli("status", "--json", "--mapping", "leads")

    leads = json.loads(result.stdout)["mappings"][0]
    assert (leads["last_success_run"], leads["failed_runs_in_a_row"]) == (ids[0], 0)


def test_status__a_failed_mapping_is_explained_by_its_own_error_not_a_records(
    airtable, database_url, db: sa.Engine, cli: Cli
) -> None:
    ids = _store_runs(db, ["ok", *["failed"] * 4])
    record = {"mapping": "leads", "stage": "pull", "record": "rec1", "message": "bad value"}
    stopped = {"mapping": "leads", "stage": "push", "record": None, "message": "Airtable is down"}
    _set_errors(db, ids[1:], [record, stopped])

    lines = _problems(cli("status", "--mapping", "leads"))

    assert "leads: failed in its last 4 runs in a row: Airtable is down" in lines


def test_status__an_interrupted_run_before_any_finished_run(
    airtable, database_url, db: sa.Engine, cli: Cli
) -> None:
    _insert_running(db, "20260101T000000Z-dead00", minutes_ago=0)
    execute(db, "UPDATE reconciler.runs SET status = 'interrupted'")

    lines = _problems(cli("status"))

    assert lines == [
        "leads: never synced",
        "run 20260101T000000Z-dead00: interrupted (0 min ago); no run has finished since",
    ]


@pytest.mark.usefixtures("synced")
def test_status__a_partial_run_ends_an_interruption(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    _insert_running(db, "20260101T000000Z-dead00", minutes_ago=0)
    airtable.create("Leads", BAD, validate=False)
    assert cli().exit_code == 1
    execute(db, "UPDATE reconciler.failures SET dead = false")  # as a retryable failure

    result = cli("status")

    assert result.exit_code == 0, result.output


@pytest.mark.usefixtures("synced")
def test_status__only_the_mappings_asked_for(db: sa.Engine, cli: Cli) -> None:
    _age_history(db, 50)
    assert cli("--mapping", "leads").exit_code == 0

    result = cli("status", "--mapping", "leads")

    assert result.exit_code == 0, result.output
    assert result.stdout == "healthy: leads synced 0 min ago (max age 45 min)\n"


@pytest.mark.parametrize("option", ["--max-age", "--max-failures"])
def test_status__a_limit_below_one_is_a_usage_error(airtable, database_url, cli, option) -> None:
    result = cli("status", option, "0")
    assert result.exit_code == 2, result.output
    assert option in result.stderr


def test_status__a_max_age_past_ten_years_is_a_usage_error(airtable, database_url, cli) -> None:
    result = cli("status", "--max-age", str(2**64))
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "--max-age" in result.stderr
    assert "5256000" in result.stderr


def test_status__counts_at_most_the_runs_it_scans(
    airtable, database_url, db: sa.Engine, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs are read by whole pages, each extended to the end of its last second: the count of
    failed runs still stops at the scan's limit, the number its line names."""
    import reconciler.health

    monkeypatch.setattr(reconciler.health, "SCAN_LIMIT", 100)
    _store_runs(db, ["failed"] * 130)

    doc = json.loads(cli("status", "--json", "--mapping", "leads").stdout)

    assert doc["mappings"][0]["failed_runs_in_a_row"] == 100
    assert "leads: no success in the last 100 runs it took part in" in doc["problems"]
