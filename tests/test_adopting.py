"""Rows adopted by their natural key (``match_on``): only rows holding no remote id are
candidates, they are locked while linked, and a link never overwrites a key the application
set meanwhile. Rows an application linked by remote id themselves never clear a record's
values with their empty cells."""

from __future__ import annotations

import sqlalchemy as sa

from tests.helpers import (
    ago,
    edit_while_writing,
    execute,
    remote_progression,
    rows,
    seed_leads,
    twenty_writes,
)

M = "rep_progressions"
LINK = "UPDATE rep_progressions SET twenty_id="  # the statement that records a link


def _local(db: sa.Engine, member: str, *, name: str, xp: int) -> None:
    execute(
        db,
        "INSERT INTO rep_progressions (name, workspace_member_id, total_xp) VALUES (:n, :m, :x)",
        n=name,
        m=member,
        x=xp,
    )


def _without_trigger(db: sa.Engine, sql: str) -> None:
    """Write with the table's triggers off: ``updated_at`` is left as it was."""
    execute(db, "ALTER TABLE rep_progressions DISABLE TRIGGER USER")
    execute(db, sql)
    execute(db, "ALTER TABLE rep_progressions ENABLE TRIGGER USER")


def test_new_row__a_linked_row_with_the_same_key_is_no_candidate(twenty, db, cli) -> None:
    """A row already linked is never matched again: a new row with its key is created, not
    failed as ambiguous."""
    linked = remote_progression(twenty, "wm-1", minutes_ago=300)
    _local(db, "wm-1", name="Linked", xp=1)
    assert cli("--mapping", M).mapping(M)["push"]["matched"] == 1
    _local(db, "wm-1", name="New", xp=2)

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert result.report["errors"] == []
    reps = result.mapping(M)
    assert reps["push"]["created"] == 1 and reps["push"]["matched"] == 0
    by_name = {r["name"]: str(r["twenty_id"]) for r in rows(db, M)}
    assert by_name["Linked"] == linked and by_name["New"] != linked
    assert twenty.get(by_name["New"])["name"] == "New"


def test_pull_link__an_application_edit_made_while_linking_waits_and_is_kept(
    twenty, db, cli
) -> None:
    """The rows a page links are locked from their reading to the page's commit: an
    application editing one in between waits, its edit lands after the merge and is pushed."""
    rid = remote_progression(twenty, "wm-5", minutes_ago=3, totalXp=42)
    _local(db, "wm-5", name="Rep 0", xp=1)
    _without_trigger(db, f"UPDATE rep_progressions SET updated_at = '{ago(60).isoformat()}'")
    edit = "UPDATE rep_progressions SET total_xp = 7"

    with edit_while_writing(db, LINK, edit) as editing:
        pulled = cli("--mapping", M, "--stage", "pull")

    assert pulled.exit_code == 0, pulled.output
    assert editing.ident is not None, "the pull linked nothing"
    assert pulled.mapping(M)["pull"]["matched"] == 1
    (row,) = rows(db, M)
    assert str(row["twenty_id"]) == rid and row["total_xp"] == 7
    pushed = cli("--mapping", M, "--stage", "push")
    assert pushed.exit_code == 0, pushed.output
    assert pushed.mapping(M)["push"]["updated"] == 1
    assert twenty.get(rid)["totalXp"] == 7


def test_push_link__keeps_a_key_the_application_set_meanwhile(twenty, db, cli) -> None:
    """The push finds a record by the row's natural key; the application links the row by
    hand before the link is recorded: its key stays."""
    remote_progression(twenty, "wm-1", minutes_ago=300)
    chosen = remote_progression(twenty, "wm-other", minutes_ago=300)
    _local(db, "wm-1", name="Local", xp=1)
    edit = f"UPDATE rep_progressions SET twenty_id = '{chosen}'"

    with edit_while_writing(db, LINK, edit) as editing:
        result = cli("--mapping", M)

    assert editing.ident is not None, "the push linked nothing"
    assert result.exit_code == 0, result.output
    (row,) = rows(db, M, "name = 'Local'")
    assert str(row["twenty_id"]) == chosen


def test_key_cleared__the_row_is_matched_again_by_its_natural_key(twenty, db, cli) -> None:
    """A row whose key is cleared is a new row, even when ``updated_at`` stays as it was (the
    triggers off): it is searched for by its natural key and linked to the record found."""
    rid = remote_progression(twenty, "wm-1", minutes_ago=300)
    _local(db, "wm-1", name="Rep 0", xp=1)
    assert cli("--mapping", M).mapping(M)["push"]["matched"] == 1
    _without_trigger(db, "UPDATE rep_progressions SET twenty_id = NULL")

    result = cli("--mapping", M, "--stage", "push")

    assert result.exit_code == 0, result.output
    assert result.mapping(M)["push"]["matched"] == 1
    assert result.mapping(M)["push"]["created"] == 0
    (row,) = rows(db, M)
    assert str(row["twenty_id"]) == rid
    assert len(twenty.records()) == 1


def test_linked_row_never_synced__its_empty_cells_never_clear_the_record(airtable, db, cli) -> None:
    """An application's row holding an Airtable record id, never synced, its record outside the
    window: the push reads the record and merges it with the row as a pull would, so the row's
    value is sent, never its empty cells; the record's values come in instead, and later runs
    keep them on both sides (nothing is cleared a run later either)."""
    (rid,) = seed_leads(airtable, 1, minutes_ago=300)
    airtable.update("Leads", rid, {"Notes": "Call back Tuesday"}, modified_at=ago(300))
    execute(
        db,
        "INSERT INTO leads (airtable_record_id, first_name, claimed_by) VALUES (:r, 'Ann', 'bot')",
        r=rid,
    )

    first = cli()
    second = cli("--full")

    assert first.exit_code == 0 and second.exit_code == 0, second.output
    assert first.mapping("leads")["push"]["updated"] == 1
    (record,) = airtable.records("Leads")
    assert record["fields"]["Notes"] == "Call back Tuesday"
    assert record["fields"]["Processing Status"] == "queued"
    assert record["fields"]["Claimed By"] == "bot"
    (row,) = rows(db)
    assert (row["notes"], row["processing_status"]) == ("Call back Tuesday", "queued")
    assert cli().mapping("leads")["push"]["updated"] == 0


def test_linked_row_never_synced__twenty_keeps_the_record_values_the_row_lacks(
    twenty, db, cli
) -> None:
    """The same on Twenty, which reads every record before writing it: the row's value newer
    than the record's is sent, its empty cells take the record's values, and the next run
    sends nothing."""
    rid = remote_progression(twenty, "wm-9", minutes_ago=300, name="Ann", currentRank="Gold")
    execute(
        db,
        "INSERT INTO rep_progressions (twenty_id, workspace_member_id, name, total_xp) "
        "VALUES (:r, 'wm-9', 'Ann', 5)",
        r=rid,
    )

    first = cli("--mapping", M)
    twenty.reset_log()
    second = cli("--mapping", M)

    assert first.exit_code == 0 and second.exit_code == 0, second.output
    assert first.mapping(M)["push"]["updated"] == 1
    record = twenty.get(rid)
    assert (record["totalXp"], record["currentRank"], record["badges"]) == (
        5,
        "Gold",
        '["starter"]',
    )
    (row,) = rows(db, M)
    assert (row["total_xp"], row["current_rank"]) == (5, "Gold")
    assert twenty_writes(twenty) == []


def test_linked_row_never_synced__a_record_deleted_since_gives_the_row_nothing(
    twenty, db, cli
) -> None:
    """A record found soft-deleted is not merged into the row that names it: the row is marked
    deleted remotely, keeps its own values, and nothing restores the record."""
    rid = remote_progression(twenty, "wm-9", minutes_ago=300, name="Ann", currentRank="Gold")
    twenty.soft_delete(rid)
    execute(
        db,
        "INSERT INTO rep_progressions (twenty_id, workspace_member_id, name, total_xp) "
        "VALUES (:r, 'wm-9', 'Ann', 5)",
        r=rid,
    )
    twenty.reset_log()

    result = cli("--mapping", M, "--stage", "push")  # the pull would find the delete first

    assert result.exit_code == 0, result.output
    assert result.mapping(M)["remote_deleted"] == 1
    (row,) = rows(db, M)
    assert row["remote_deleted_at"] is not None
    assert (row["total_xp"], row["current_rank"], row["badges"]) == (5, None, None)
    assert twenty_writes(twenty) == []
