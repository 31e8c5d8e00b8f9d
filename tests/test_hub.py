"""A hub: one Postgres table mapped to two remotes (reps in Airtable and in Twenty). Stage 1 runs
for every mapping before stage 2, so an edit made on either remote reaches the other in one run,
field-level merges hold across the three sides, and the next run writes nothing anywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.helpers import ago, execute, rows
from tests.hubs import HUB_CONFIG, REPS_FIELDS, Hub, hub_fixture  # noqa: F401  (``hub``)

M = "rep_progressions"


def test_hub__first_contact_converges_all_three_sides(hub: Hub) -> None:
    for member in hub.links:
        local, at, tw = hub.local(member), hub.at(member), hub.tw(member)
        assert local["name"] == at["Name"] == tw["name"]
        assert local["total_xp"] == at["Total XP"] == tw["totalXp"]
    assert hub.run().mapping("reps_airtable")["push"]["updated"] == 0
    assert hub.writes() == 0


def test_hub__an_airtable_edit_reaches_twenty_in_one_run(hub: Hub) -> None:
    hub.airtable.update("Reps", hub.links["wm-0"][0], {"Name": "Renamed in Airtable"})

    result = hub.run()

    assert hub.tw("wm-0")["name"] == "Renamed in Airtable"
    assert hub.local("wm-0")["name"] == "Renamed in Airtable"
    assert result.mapping(M)["push"]["updated"] == 1
    assert result.mapping("reps_airtable")["push"]["updated"] == 0  # no echo to its source
    hub.airtable.reset_log()
    hub.twenty.reset_log()
    hub.run()
    assert hub.writes() == 0


def test_hub__a_twenty_edit_reaches_airtable_in_one_run(hub: Hub) -> None:
    hub.twenty.update(hub.links["wm-1"][1], {"totalXp": 4321})

    result = hub.run()

    assert hub.at("wm-1")["Total XP"] == 4321
    assert result.mapping("reps_airtable")["push"]["updated"] == 1
    assert result.mapping(M)["push"]["updated"] == 0
    hub.airtable.reset_log()
    hub.twenty.reset_log()
    hub.run()
    assert hub.writes() == 0


def test_hub__edits_to_different_fields_on_three_sides_all_survive(hub: Hub) -> None:
    aid, tid = hub.links["wm-2"]
    hub.airtable.update("Reps", aid, {"Name": "Name from Airtable"})
    hub.twenty.update(tid, {"totalXp": 777})
    execute(
        hub.db, "UPDATE rep_progressions SET current_rank = 'E-7' WHERE airtable_rep_id = :a", a=aid
    )

    hub.run()

    local, at, tw = hub.local("wm-2"), hub.at("wm-2"), hub.tw("wm-2")
    assert (local["name"], local["total_xp"], local["current_rank"]) == (
        "Name from Airtable",
        777,
        "E-7",
    )
    assert (at["Name"], at["Total XP"], at["Current Rank"]) == ("Name from Airtable", 777, "E-7")
    assert (tw["name"], tw["totalXp"], tw["currentRank"]) == ("Name from Airtable", 777, "E-7")
    hub.airtable.reset_log()
    hub.twenty.reset_log()
    hub.run()
    assert hub.writes() == 0


@pytest.mark.parametrize("later", ["airtable", "twenty"])
def test_hub__one_field_edited_on_both_remotes_takes_the_later_edit(hub: Hub, later: str) -> None:
    """Judged by when each edit was made, not by which remote's stage ran first."""
    aid, tid = hub.links["wm-0"]
    early, late = ago(3), ago(1)
    at_time, tw_time = (early, late) if later == "twenty" else (late, early)
    hub.airtable.update("Reps", aid, {"Current Rank": "from Airtable"}, modified_at=at_time)
    hub.twenty.update(tid, {"currentRank": "from Twenty"}, updated_at=tw_time)

    hub.run()

    expected = "from Twenty" if later == "twenty" else "from Airtable"
    assert hub.local("wm-0")["current_rank"] == expected
    assert hub.at("wm-0")["Current Rank"] == expected
    assert hub.tw("wm-0")["currentRank"] == expected
    hub.airtable.reset_log()
    hub.twenty.reset_log()
    hub.run()
    assert hub.writes() == 0


def test_first_contact__a_newer_value_on_the_second_remote_wins(
    airtable: Any, twenty: Any, db: sa.Engine, cli: Any, tmp_path: Path
) -> None:
    """Linking a row to the first remote's record is not a local edit: the second remote's
    newer value still wins at first contact, whichever mapping runs first."""
    airtable.add_table("Reps", REPS_FIELDS)
    execute(db, "ALTER TABLE rep_progressions ADD COLUMN airtable_rep_id text UNIQUE")
    config = HUB_CONFIG.replace(
        'modified_field = "Last Modified"',
        'modified_field = "Last Modified"\nmatch_on = ["workspace_member_id"]',
    )
    (tmp_path / "hub.toml").write_text(config)
    execute(
        db,
        "INSERT INTO rep_progressions (name, workspace_member_id, total_xp, updated_at) "
        "VALUES ('Ann', 'wm-0', 500, :u)",
        u=ago(180),
    )
    tid = twenty.create(
        {"name": "Ann", "workspaceMemberId": "wm-0", "totalXp": 500}, updated_at=ago(120)
    )["id"]
    aid = airtable.create(
        "Reps", {"Name": "Ann", "Workspace Member": "wm-0", "Total XP": 900}, modified_at=ago(10)
    )["id"]

    result = cli("--config", str(tmp_path / "hub.toml"), "--full")

    assert result.exit_code == 0, result.output
    (row,) = rows(db, M)
    assert row["total_xp"] == 900
    assert twenty.get(tid)["totalXp"] == 900
    assert airtable.get("Reps", aid)["fields"]["Total XP"] == 900
