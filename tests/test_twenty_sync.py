"""End to end: `reconcile` against the Twenty emulator over HTTP and a real Postgres."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from reconciler.model import parse_datetime
from tests.helpers import (
    ago,
    execute,
    rows,
    seed_leads,
    seed_progressions,
    twenty_reads,
    twenty_writes,
)

M = "rep_progressions"


def test_pull__150_records_in_one_list_request(twenty, db, cli) -> None:
    seed_progressions(twenty, 150)
    result = cli("--mapping", M)
    assert result.exit_code == 0, result.output
    assert result.mapping(M)["pull"]["inserted"] == 150
    assert len(twenty_reads(twenty)) == 1
    local = rows(db, M)
    assert len(local) == 150
    rep = next(r for r in local if r["name"] == "Rep 3")
    assert rep["completed_modules"] == ["m1", "m2"]
    assert rep["efficiency_metrics"] == {"calls": 10, "rate": 0.5}
    assert rep["total_xp"] == 1003 and rep["current_rank"] == "E-4"


def test_pull__1000_records_in_at_most_6_list_requests(twenty, db, cli) -> None:
    seed_progressions(twenty, 1000)
    result = cli("--mapping", M)
    assert result.exit_code == 0, result.output
    assert result.mapping(M)["pull"]["inserted"] == 1000
    assert len(twenty_reads(twenty)) <= 6


def test_smaller_page_limit__listings_reads_by_id_and_sweeps_follow_the_pages(
    twenty, db, cli
) -> None:
    """The shared docs give the page limit as 200 "in current versions (?)" and say to trust
    ``pageInfo`` and the rows returned: against a server that clamps ``limit`` to 60, a pull,
    a push's reads of 200 ids at a time and a full sweep still see every record, and no record
    is taken for deleted."""
    twenty.max_limit = 60
    made = seed_progressions(twenty, 450)
    pulled = cli("--mapping", M)
    execute(db, "UPDATE rep_progressions SET streak_days = 77")
    pushed = cli("--mapping", M, "--stage", "push")
    swept = cli("--mapping", M, "--full")

    assert (pulled.exit_code, pushed.exit_code, swept.exit_code) == (0, 0, 0), swept.output
    assert sorted(str(r["twenty_id"]) for r in rows(db, M)) == sorted(made)
    assert pushed.mapping(M)["push"]["updated"] == 450
    assert all(twenty.get(i)["streakDays"] == 77 for i in made)
    assert swept.mapping(M)["pull"]["fetched"] == 450
    assert all(r["remote_deleted_at"] is None for r in rows(db, M))


def test_push__edits_and_new_rows_get_their_twenty_id(twenty, db, cli) -> None:
    seed_progressions(twenty, 20)
    cli("--mapping", M)
    twenty.reset_log()
    execute(
        db,
        "UPDATE rep_progressions SET total_xp = total_xp + 500, "
        "badges = '[\"closer\"]'::jsonb WHERE id <= 10",
    )
    for i in range(3):
        execute(
            db,
            "INSERT INTO rep_progressions (name, total_xp, passed_exams) "
            "VALUES (:n, 5, '[\"x\"]'::jsonb)",
            n=f"New {i}",
        )
    result = cli("--mapping", M)
    assert result.exit_code == 0, result.output
    push = result.mapping(M)["push"]
    assert (push["updated"], push["created"]) == (10, 3)
    new_rows = rows(db, M, "name LIKE 'New %'")
    assert all(r["twenty_id"] for r in new_rows)
    for row in new_rows:
        remote = twenty.get(str(row["twenty_id"]))
        assert remote is not None and remote["name"] == row["name"]
        assert json.loads(remote["passedExams"]) == ["x"]
    edited = rows(db, M, "id = 1")[0]
    remote = twenty.get(str(edited["twenty_id"]))
    assert remote is not None and remote["totalXp"] == edited["total_xp"]
    assert json.loads(remote["badges"]) == ["closer"]
    assert len(twenty_writes(twenty)) == 1  # 13 records in one upsert batch


def test_second_run__writes_nothing(twenty, db, cli) -> None:
    seed_progressions(twenty, 30)
    cli("--mapping", M)
    execute(db, "UPDATE rep_progressions SET streak_days = 9 WHERE id <= 5")
    execute(db, "INSERT INTO rep_progressions (name) VALUES ('fresh')")
    cli("--mapping", M)
    before = {r["id"]: r["updated_at"] for r in rows(db, M)}
    twenty.reset_log()
    result = cli("--mapping", M)
    assert result.exit_code == 0, result.output
    assert twenty_writes(twenty) == []
    assert {r["id"]: r["updated_at"] for r in rows(db, M)} == before


def test_push__60_edits_in_two_writes_and_two_reads_at_most(twenty, db, cli) -> None:
    seed_progressions(twenty, 60)
    cli("--mapping", M)
    execute(db, "UPDATE rep_progressions SET closed_deals = closed_deals + 1")
    twenty.reset_log()
    result = cli("--mapping", M, "--stage", "push")
    assert result.exit_code == 0, result.output
    assert result.mapping(M)["push"]["updated"] == 60
    assert len(twenty_writes(twenty)) <= 2
    assert len(twenty_reads(twenty)) <= 2


def test_merge__arrays_edited_on_both_sides_end_with_the_union(twenty, db, cli) -> None:
    (rid,) = seed_progressions(twenty, 1)
    cli("--mapping", M)
    execute(db, 'UPDATE rep_progressions SET completed_modules = \'["m1", "m2", "local"]\'')
    twenty.update(rid, {"completedModules": '["m1", "m2", "remote"]', "streakDays": 4})
    result = cli("--mapping", M)
    assert result.exit_code == 0, result.output
    assert result.mapping(M)["pull"]["conflicts"] == 1
    local = rows(db, M)[0]
    assert sorted(local["completed_modules"]) == ["local", "m1", "m2", "remote"]
    assert local["streak_days"] == 4
    remote = twenty.get(rid)
    assert remote is not None
    assert json.loads(remote["completedModules"]) == local["completed_modules"]
    twenty.reset_log()
    assert cli("--mapping", M).exit_code == 0
    assert twenty_writes(twenty) == []


def test_merge__scalar_conflict_takes_the_newer_side(twenty, db, cli) -> None:
    (rid,) = seed_progressions(twenty, 1)
    cli("--mapping", M)
    twenty.update(rid, {"currentRank": "E-7"}, updated_at=ago(2))
    execute(db, "UPDATE rep_progressions SET current_rank = 'E-5'")
    result = cli("--mapping", M)
    assert result.mapping(M)["pull"]["skipped_local_newer"] == 1
    remote = twenty.get(rid)
    assert remote is not None and remote["currentRank"] == "E-5"


def test_invalid_json__fails_that_record_alone(twenty, db, cli) -> None:
    seed_progressions(twenty, 4)
    bad = twenty.create({"name": "Broken", "badges": "{not json"})
    result = cli("--mapping", M)
    assert result.exit_code == 1, result.output
    (error,) = result.report["errors"]
    assert error["record"] == bad["id"] and "badges" in error["message"]
    assert len(rows(db, M)) == 4


def test_429_burst__is_recovered(twenty, db, cli) -> None:
    seed_progressions(twenty, 10)
    twenty.faults.fail(429, times=3)
    result = cli("--mapping", M)
    assert result.exit_code == 0, result.output
    api = result.mapping(M)["api"]
    assert api["throttled"] == 3 and api["retries"] == 3
    assert len(rows(db, M)) == 10


def test_400__is_not_retried_and_fails_the_record(twenty, db, cli) -> None:
    seed_progressions(twenty, 2)
    cli("--mapping", M)
    execute(db, "UPDATE rep_progressions SET name = 'renamed' WHERE id = 1")
    twenty.faults.fail(400, times=1, method="POST")
    result = cli("--mapping", M)
    assert result.exit_code == 1, result.output
    assert result.mapping(M)["push"]["failed"] == 1
    assert result.mapping(M)["api"]["retries"] == 0


def test_pull_retry__a_record_soft_deleted_since_marks_its_row_remote_deleted(
    twenty, db, cli
) -> None:
    """A record whose pull failed is read again by its id once its retry is due; soft-deleted
    outside the window the listing reads, it is found in the trash."""
    (rid,) = seed_progressions(twenty, 1, minutes_ago=60)
    assert cli("--mapping", M, "--full").exit_code == 0
    execute(db, "UPDATE rep_progressions SET total_xp = 'NaN'")
    twenty.update(rid, {"streakDays": 3}, updated_at=ago(10))
    failed = cli("--mapping", M)
    assert failed.exit_code == 1, failed.output
    assert "pull" in {e["stage"] for e in failed.report["errors"]}
    execute(db, "UPDATE rep_progressions SET total_xp = 1")
    twenty.clock.skew = -timedelta(minutes=4)
    twenty.soft_delete(rid)
    twenty.clock.skew = timedelta(0)
    execute(db, "UPDATE reconciler.failures SET next_attempt_at = now()")

    result = cli("--mapping", M, "--stage", "pull", "--lookback", "1")

    assert result.exit_code == 0, result.output
    deleted_at = (twenty.get(rid) or {})["deletedAt"]
    assert parse_datetime(result.report["window"]["since"]) > parse_datetime(deleted_at)
    assert result.mapping(M)["remote_deleted"] == 1
    (row,) = rows(db, M)
    assert row["remote_deleted_at"] is not None


def test_one_run__reconciles_both_remotes(airtable, twenty, db, cli) -> None:
    seed_leads(airtable, 12)
    seed_progressions(twenty, 7)
    result = cli()
    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["pull"]["inserted"] == 12
    assert result.mapping(M)["pull"]["inserted"] == 7
    assert len(rows(db)) == 12 and len(rows(db, M)) == 7


@pytest.mark.parametrize("stage", ["pull", "push"])
def test_stage_option__runs_only_that_stage(twenty, db, cli, stage: str) -> None:
    seed_progressions(twenty, 2)
    execute(db, "INSERT INTO rep_progressions (name) VALUES ('local only')")
    result = cli("--mapping", M, "--stage", stage)
    assert result.exit_code == 0, result.output
    pulled = result.mapping(M)["pull"]["inserted"]
    created = result.mapping(M)["push"]["created"]
    assert (pulled, created) == ((2, 0) if stage == "pull" else (0, 1))
