"""Pushing to Twenty servers of every age: without batch upsert, and with upserts that move
records to the top of their views unless their ``position`` is sent back."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from reconciler.emulators.twenty import TwentyEmulator
from tests.helpers import execute, rows, seed_progressions, twenty_writes

M = "rep_progressions"


def _failures(db: sa.Engine) -> list[dict[str, Any]]:
    with db.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text("SELECT * FROM reconciler.failures"))]


def _positions(em: TwentyEmulator) -> dict[str, Any]:
    return {r["id"]: r["position"] for r in em.records()}


# -- servers without batch upsert -----------------------------------------------------------------


def test_old_server__updates_stop_the_mapping_with_one_line(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any
) -> None:
    """No splitting, no record failed or dead-lettered: one line names what the server lacks."""
    seed_progressions(twenty, 3)
    assert cli("--mapping", M).exit_code == 0
    twenty.supports_upsert = False
    execute(db, "UPDATE rep_progressions SET total_xp = 7")
    twenty.reset_log()

    result = cli("--mapping", M)

    assert result.exit_code == 3, result.output
    (error,) = result.report["errors"]
    assert error["mapping"] == M and error["record"] is None
    assert "batch upsert" in error["message"] and "upgrade the Twenty server" in error["message"]
    assert "\n" not in error["message"]
    push = result.mapping(M)["push"]
    assert (push["updated"], push["failed"], push["dead"]) == (0, 0, 0)
    assert len(twenty_writes(twenty)) == 1  # the batch was not split record by record
    assert _failures(db) == []
    assert {r["totalXp"] for r in twenty.records()} != {7}


def test_old_server__creates_go_through_and_updates_wait_for_the_upgrade(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any
) -> None:
    """A run with both: the new records are created and linked, the updates stay pending (not
    failed); once the server has upsert, the next run sends them."""
    seed_progressions(twenty, 2)
    assert cli("--mapping", M).exit_code == 0
    twenty.supports_upsert = False
    execute(db, "UPDATE rep_progressions SET streak_days = 9 WHERE id = 1")
    execute(db, "INSERT INTO rep_progressions (name) VALUES ('new a'), ('new b')")

    result = cli("--mapping", M)

    assert result.exit_code == 3, result.output
    push = result.mapping(M)["push"]
    assert (push["created"], push["updated"], push["failed"]) == (2, 0, 0)
    (error,) = result.report["errors"]
    assert "1 update(s) wait" in error["message"]
    new_rows = rows(db, M, "name LIKE 'new %'")
    assert all(twenty.get(str(r["twenty_id"])) is not None for r in new_rows)
    assert _failures(db) == []

    twenty.supports_upsert = True
    again = cli("--mapping", M)

    assert again.exit_code == 0, again.output
    assert again.mapping(M)["push"]["updated"] == 1
    edited = rows(db, M, "id = 1")[0]
    assert (twenty.get(str(edited["twenty_id"])) or {}).get("streakDays") == 9
    assert len(twenty.records()) == 4


def test_old_server__a_run_with_only_creates_succeeds(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any
) -> None:
    twenty.supports_upsert = False
    execute(db, "INSERT INTO rep_progressions (name) VALUES ('a'), ('b'), ('c')")

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert result.mapping(M)["push"]["created"] == 3
    assert sorted(r["name"] for r in twenty.records()) == ["a", "b", "c"]
    twenty.reset_log()
    assert cli("--mapping", M).exit_code == 0
    assert twenty_writes(twenty) == []


# -- position -------------------------------------------------------------------------------------


def test_older_servers__an_upsert_keeps_each_records_position(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any
) -> None:
    """Servers whose upsert backfilled position on its update path too (commits acc0f920,
    0051996a of common-create-many-query-runner.service.ts) would move every updated record to
    the top; the position read just before is sent back."""
    twenty.upsert_moves_position = True
    seed_progressions(twenty, 5)
    assert cli("--mapping", M).exit_code == 0
    before = _positions(twenty)
    execute(db, "UPDATE rep_progressions SET closed_deals = closed_deals + 1")

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert result.mapping(M)["push"]["updated"] == 5
    assert _positions(twenty) == before
    assert {r["closedDeals"] for r in twenty.records()} == {1, 2, 3, 4, 5}


def test_older_servers__a_record_dragged_since_the_pull_stays_where_it_was_dragged(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any
) -> None:
    """The position sent back is the one read right before the write, not the pulled one."""
    twenty.upsert_moves_position = True
    ids = seed_progressions(twenty, 3)
    assert cli("--mapping", M).exit_code == 0
    twenty.update(ids[1], position=1234.5)  # a user drags it; no mapped field changes
    execute(db, f"UPDATE rep_progressions SET current_rank = 'E-9' WHERE twenty_id = '{ids[1]}'")

    result = cli("--mapping", M, "--stage", "push")

    assert result.exit_code == 0, result.output
    moved = twenty.get(ids[1])
    assert moved is not None and (moved["position"], moved["currentRank"]) == (1234.5, "E-9")


def test_older_servers__creates_land_at_the_top_and_updates_stay_put(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any
) -> None:
    """A create has no position to keep: the server puts it first, as it does a new record
    made in the app."""
    twenty.upsert_moves_position = True
    seed_progressions(twenty, 2)
    assert cli("--mapping", M).exit_code == 0
    before = _positions(twenty)
    execute(db, "UPDATE rep_progressions SET total_xp = 1")
    execute(db, "INSERT INTO rep_progressions (name) VALUES ('newest')")

    assert cli("--mapping", M).exit_code == 0

    after = _positions(twenty)
    (new_id,) = set(after) - set(before)
    assert {k: after[k] for k in before} == before
    assert after[new_id] < min(before.values())
