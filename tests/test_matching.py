"""First contact: records that already exist on both sides are linked by their natural key
(``match_on``), merged field by field, and never duplicated."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from tests.helpers import (
    ago,
    execute,
    remote_progression,
    rows,
    twenty_reads,
    twenty_writes,
)

M = "rep_progressions"


def _local(db: sa.Engine, member: str | None, *, name: str, xp: int, modules: str = "[]") -> None:
    execute(
        db,
        "INSERT INTO rep_progressions (name, workspace_member_id, total_xp, completed_modules) "
        "VALUES (:n, :m, :x, CAST(:c AS jsonb))",
        n=name,
        m=member,
        x=xp,
        c=modules,
    )


def _by_member(db: sa.Engine) -> dict[str | None, dict[str, Any]]:
    return {r["workspace_member_id"]: r for r in rows(db, M)}


def _set_updated_at(db: sa.Engine, member: str, minutes_ago: float) -> None:
    """Make a local row look last changed ``minutes_ago`` (the trigger stamps every write)."""
    execute(db, "ALTER TABLE rep_progressions DISABLE TRIGGER USER")
    execute(
        db,
        "UPDATE rep_progressions SET updated_at = :t WHERE workspace_member_id = :m",
        t=ago(minutes_ago),
        m=member,
    )
    execute(db, "ALTER TABLE rep_progressions ENABLE TRIGGER USER")


def test_first_contact__existing_reps_are_linked_not_duplicated(twenty, db, cli) -> None:
    """The adopter's case: 3 reps in Twenty, the same 3 in Postgres without twenty_id."""
    ids = {
        m: remote_progression(twenty, m, minutes_ago=300, name=f"Rep {m}")
        for m in ("wm-0", "wm-1", "wm-2")
    }
    for member in ids:
        _local(db, member, name=f"Rep {member}", xp=1000)

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert len(twenty.records()) == 3 and len(rows(db, M)) == 3
    assert {m: str(r["twenty_id"]) for m, r in _by_member(db).items()} == ids
    reps = result.mapping(M)
    assert reps["push"]["matched"] == 3 and reps["push"]["created"] == 0
    again = cli("--mapping", M)
    assert again.exit_code == 0 and twenty_writes(twenty)[-1:] == twenty_writes(twenty)[-1:]
    assert again.mapping(M)["push"]["matched"] == 0 and again.mapping(M)["push"]["updated"] == 0


def test_first_contact__a_server_with_pages_of_60_links_every_key_it_finds(twenty, db, cli) -> None:
    """Look-ups send up to 200 keys a request; a server that clamps ``limit`` to 60 (shared
    docs: the maximum is 200 "in current versions (?)") answers them in pages, all followed."""
    twenty.max_limit = 60
    for i in range(250):
        remote_progression(twenty, f"wm-{i}", minutes_ago=300, name=f"Rep {i}")
        _local(db, f"wm-{i}", name=f"Rep {i}", xp=5)

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert len(twenty.records()) == 250 and len(rows(db, M)) == 250
    assert result.mapping(M)["push"]["matched"] == 250
    assert result.mapping(M)["push"]["created"] == 0


def test_first_contact__newer_side_wins_per_field_and_arrays_take_the_union(
    twenty, db, cli
) -> None:
    newer_remote = remote_progression(
        twenty, "wm-r", minutes_ago=10, totalXp=900, completedModules='["m1","m2"]'
    )
    newer_local = remote_progression(
        twenty, "wm-l", minutes_ago=300, totalXp=100, completedModules='["m1"]'
    )
    _local(db, "wm-r", name="Rep 0", xp=500, modules='["m3"]')
    _local(db, "wm-l", name="Rep 0", xp=700, modules='["m4"]')
    _set_updated_at(db, "wm-r", 200)
    _set_updated_at(db, "wm-l", 5)

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    local = _by_member(db)
    assert local["wm-r"]["total_xp"] == 900 and local["wm-l"]["total_xp"] == 700
    assert sorted(local["wm-r"]["completed_modules"]) == ["m1", "m2", "m3"]
    assert sorted(local["wm-l"]["completed_modules"]) == ["m1", "m4"]
    assert twenty.get(newer_local)["totalXp"] == 700
    assert sorted(json.loads(twenty.get(newer_remote)["completedModules"])) == ["m1", "m2", "m3"]
    assert len(twenty.records()) == 2
    quiet = cli("--mapping", M)
    assert quiet.mapping(M)["push"]["updated"] == 0 and quiet.mapping(M)["pull"]["updated"] == 0


def test_first_contact__the_newer_side_wins_an_empty_field_too(twenty, db, cli) -> None:
    """The contract merges a pair linked by natural key "as a conflict with no shadow": each
    differing field goes to the newer side, an empty one too (unlike a row an application
    linked itself, whose empty cells take the record's values: ``test_adopting.py``)."""
    older = remote_progression(twenty, "wm-o", minutes_ago=300, currentRank="Gold")
    newer = remote_progression(twenty, "wm-n", minutes_ago=10, currentRank="Silver")
    _local(db, "wm-o", name="Rep 0", xp=1000)
    _local(db, "wm-n", name="Rep 0", xp=1000)
    _set_updated_at(db, "wm-o", 5)
    _set_updated_at(db, "wm-n", 200)

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    reps = result.mapping(M)
    assert reps["pull"]["matched"] == 1 and reps["push"]["matched"] == 1  # wm-n is in the window
    local = _by_member(db)
    assert (local["wm-o"]["current_rank"], local["wm-n"]["current_rank"]) == (None, "Silver")
    assert twenty.get(older)["currentRank"] in (None, "")
    assert twenty.get(newer)["currentRank"] == "Silver"


def test_first_contact__in_the_window_the_pull_links_and_counts_it(twenty, db, cli) -> None:
    rid = remote_progression(twenty, "wm-5", minutes_ago=3, totalXp=42)
    _local(db, "wm-5", name="Local name", xp=1)
    _set_updated_at(db, "wm-5", 60)

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert result.mapping(M)["pull"]["matched"] == 1
    assert result.mapping(M)["pull"]["inserted"] == 0
    (row,) = rows(db, M)
    assert str(row["twenty_id"]) == rid and row["total_xp"] == 42
    entries = json.loads(cli("log", "--json", "--remote-id", rid).stdout)
    assert any(e["stage"] == "pull" and e["rule"] == "matched" for e in entries)


def test_ambiguous__two_local_rows_with_one_key_fail_alone(twenty, db, cli) -> None:
    rid = remote_progression(twenty, "wm-dup", minutes_ago=300)
    remote_progression(twenty, "wm-ok", minutes_ago=300)
    _local(db, "wm-dup", name="A", xp=1)
    _local(db, "wm-dup", name="B", xp=2)
    _local(db, "wm-ok", name="C", xp=3)

    result = cli("--mapping", M)

    assert result.exit_code == 1, result.output
    messages = [e["message"] for e in result.report["errors"]]
    assert len(messages) == 2 and all("workspace_member_id='wm-dup'" in m for m in messages)
    assert all("2 local rows (rep_progressions:1, rep_progressions:2)" in m for m in messages)
    assert len(twenty.records()) == 2  # nothing created for the ambiguous key
    assert {r["name"]: r["twenty_id"] for r in rows(db, M)}["A"] is None
    linked = _by_member(db)
    assert linked["wm-ok"]["twenty_id"] is not None and rid not in {
        str(r["twenty_id"]) for r in rows(db, M)
    }


def test_ambiguous__two_remote_records_with_one_key_fail_the_row(twenty, db, cli) -> None:
    first = remote_progression(twenty, "wm-2x", minutes_ago=300)
    second = remote_progression(twenty, "wm-2x", minutes_ago=300)
    _local(db, "wm-2x", name="Only", xp=1)

    result = cli("--mapping", M)

    assert result.exit_code == 1, result.output
    (error,) = result.report["errors"]
    assert error["record"] == "rep_progressions:1"
    assert "2 Twenty records" in error["message"]
    assert first in error["message"] and second in error["message"]
    assert len(twenty.records()) == 2 and rows(db, M)[0]["twenty_id"] is None


def test_ambiguous__two_records_in_the_window_with_one_key_link_neither(twenty, db, cli) -> None:
    first = remote_progression(twenty, "wm-2x", minutes_ago=3)
    second = remote_progression(twenty, "wm-2x", minutes_ago=3)
    _local(db, "wm-2x", name="Only", xp=1)

    result = cli("--mapping", M)

    assert result.exit_code == 1, result.output
    assert result.mapping(M)["pull"]["matched"] == 0
    pulled = [e["message"] for e in result.report["errors"] if e["stage"] == "pull"]
    assert len(pulled) == 2 and all("2 Twenty records" in m for m in pulled)
    assert all(first in m and second in m for m in pulled)
    assert len(twenty.records()) == 2
    assert [r["twenty_id"] for r in rows(db, M)] == [None]


def test_null_and_empty_keys__never_match(twenty, db, cli) -> None:
    remote_progression(twenty, "", minutes_ago=300, name="Remote without key")
    _local(db, None, name="Local without key", xp=1)
    _local(db, "", name="Local with empty key", xp=2)

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    reps = result.mapping(M)
    assert reps["push"]["matched"] == 0 and reps["push"]["created"] == 2
    assert len(twenty.records()) == 3


def test_key_edited_after_linking__does_not_relink(twenty, db, cli) -> None:
    a = remote_progression(twenty, "wm-a", minutes_ago=300)
    b = remote_progression(twenty, "wm-b", minutes_ago=300)
    _local(db, "wm-a", name="A", xp=1)
    cli("--mapping", M)
    execute(db, "UPDATE rep_progressions SET workspace_member_id = 'wm-b'")

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    (row,) = rows(db, M)
    assert str(row["twenty_id"]) == a  # still linked to its record, whose key it now sends
    assert twenty.get(a)["workspaceMemberId"] == "wm-b"
    assert twenty.get(b)["workspaceMemberId"] == "wm-b"
    assert result.mapping(M)["push"]["matched"] == 0


def test_dry_run__reports_the_same_matches_and_writes_nothing(twenty, db, cli) -> None:
    for m in ("wm-0", "wm-1"):
        remote_progression(twenty, m, minutes_ago=300)
        _local(db, m, name=m, xp=1)
    twenty.reset_log()

    dry = cli("--mapping", M, "--dry-run")

    assert dry.exit_code == 0, dry.output
    assert dry.mapping(M)["push"]["matched"] == 2
    assert twenty_writes(twenty) == [] and all(r["twenty_id"] is None for r in rows(db, M))
    real = cli("--mapping", M)
    assert real.mapping(M)["push"] == dry.mapping(M)["push"]


def test_lookups__are_batched_never_one_request_per_row(twenty, db, cli) -> None:
    for i in range(450):
        _local(db, f"wm-{i}", name=f"Rep {i}", xp=i)
    for i in range(0, 450, 3):
        remote_progression(twenty, f"wm-{i}", minutes_ago=300, totalXp=i)
    twenty.reset_log()

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    reps = result.mapping(M)
    assert reps["push"]["matched"] == 150 and reps["push"]["created"] == 300
    searches = [
        r for r in twenty_reads(twenty) if "workspaceMemberId" in str(r.query.get("filter"))
    ]
    assert len(searches) == 3  # 450 keys, 200 a request
    assert len(twenty.records()) == 450
