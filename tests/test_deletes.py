"""Deletes are marked, never applied, and absence counts only in a complete --full sweep."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import sqlalchemy as sa

from tests.helpers import (
    ago,
    execute,
    progression_fields,
    rows,
    seed_leads,
    seed_progressions,
    twenty_writes,
)

M = "rep_progressions"


def test_full__marks_rows_whose_airtable_record_is_gone(airtable, db, cli) -> None:
    ids = seed_leads(airtable, 20)
    cli()
    airtable.delete("Leads", ids[4])
    result = cli("--full")
    assert result.exit_code == 0, result.output
    leads = result.mapping("leads")
    assert leads["remote_deleted"] == 1 and leads["remote_deleted_ids"] == [ids[4]]
    marked = rows(db, where="remote_deleted_at IS NOT NULL")
    assert [r["airtable_record_id"] for r in marked] == [ids[4]]
    assert len(rows(db)) == 20  # nothing deleted locally


def test_window_run__never_takes_absence_for_a_delete(airtable, db, cli) -> None:
    ids = seed_leads(airtable, 5)
    cli()
    airtable.delete("Leads", ids[0])
    result = cli()
    assert result.mapping("leads")["remote_deleted"] == 0
    assert rows(db, where="remote_deleted_at IS NOT NULL") == []


def test_full__brake_refuses_a_mass_delete(airtable, db, cli) -> None:
    ids = seed_leads(airtable, 20)
    cli()
    for rid in ids[:5]:
        airtable.delete("Leads", rid)
    refused = cli("--full")
    assert refused.exit_code == 1, refused.output
    assert "--allow-mass-delete" in refused.report["errors"][0]["message"]
    assert rows(db, where="remote_deleted_at IS NOT NULL") == []
    allowed = cli("--full", "--allow-mass-delete")
    assert allowed.exit_code == 0, allowed.output
    assert allowed.mapping("leads")["remote_deleted"] == 5


def test_full__brake_allows_exactly_its_share(airtable, db, cli) -> None:
    ids = seed_leads(airtable, 20)
    cli()
    for rid in ids[:2]:
        airtable.delete("Leads", rid)
    result = cli("--full")  # 2 of 20: 10%, the most the brake lets through
    assert result.exit_code == 0, result.output
    leads = result.mapping("leads")
    assert leads["remote_deleted"] == 2 and leads["remote_deleted_ids"] == sorted(ids[:2])
    assert len(rows(db, where="remote_deleted_at IS NOT NULL")) == 2


def test_full__brake_leaves_out_rows_marked_by_an_earlier_run(airtable, db, cli) -> None:
    ids = seed_leads(airtable, 30)
    cli()
    for rid in ids[:2]:
        airtable.delete("Leads", rid)
    assert cli("--full").mapping("leads")["remote_deleted"] == 2
    for rid in ids[2:4]:
        airtable.delete("Leads", rid)
    result = cli("--full")  # 2 of the 28 rows still linked (7%), not 4 of 30 (13%)
    assert result.exit_code == 0, result.output
    leads = result.mapping("leads")
    assert leads["remote_deleted"] == 2 and leads["remote_deleted_ids"] == sorted(ids[2:4])
    assert len(rows(db, where="remote_deleted_at IS NOT NULL")) == 4


def test_marked_row__is_never_pushed(airtable, db, cli) -> None:
    ids = seed_leads(airtable, 12)
    cli()
    airtable.delete("Leads", ids[0])
    cli("--full")
    execute(db, "UPDATE leads SET notes = 'edited after the delete'")
    airtable.reset_log()
    result = cli()
    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["push"]["updated"] == 11
    assert result.report["errors"] == []


def test_twenty_soft_delete__in_the_window_is_marked(twenty, db, cli) -> None:
    ids = seed_progressions(twenty, 4)
    cli("--mapping", M)
    twenty.soft_delete(ids[2])
    result = cli("--mapping", M)
    assert result.exit_code == 0, result.output
    assert result.mapping(M)["remote_deleted"] == 1
    marked = rows(db, M, "remote_deleted_at IS NOT NULL")
    assert [str(r["twenty_id"]) for r in marked] == [ids[2]]
    execute(db, "UPDATE rep_progressions SET streak_days = 99")
    twenty.reset_log()
    cli("--mapping", M)
    restored = twenty.get(ids[2])
    assert restored is not None and restored["deletedAt"] is not None  # not resurrected
    assert len(twenty_writes(twenty)) == 1


def test_twenty_full__a_server_comparing_at_the_millisecond_loses_no_record(
    twenty, db, cli
) -> None:
    """Stored to the microsecond, newer servers' cursors pass over records of a page's last
    millisecond (``millisecond_comparisons``): a sweep that took them for gone would mark them
    deleted and never write to them again."""
    twenty.microsecond_stamps = True
    twenty.millisecond_comparisons = True
    start = ago(5)
    for i in range(600):  # about 27 records a millisecond
        twenty.create(progression_fields(i), updated_at=start + timedelta(microseconds=37 * i))
    assert cli("--mapping", M).mapping(M)["pull"]["inserted"] == 600

    result = cli("--full", "--mapping", M)

    assert result.exit_code == 0, result.output
    assert result.mapping(M)["remote_deleted"] == 0
    assert rows(db, M, "remote_deleted_at IS NOT NULL") == []


def _deleted_entries(db) -> int:
    with db.connect() as conn:
        query = "SELECT count(*) FROM reconciler.change_log WHERE action = 'remote_deleted'"
        return int(conn.execute(sa.text(query)).scalar_one())


def test_twenty_soft_delete__read_again_changes_nothing(twenty, db, cli) -> None:
    ids = seed_progressions(twenty, 3)
    cli("--mapping", M)
    twenty.soft_delete(ids[0])
    assert cli("--mapping", M).mapping(M)["remote_deleted"] == 1
    (marked,) = rows(db, M, "remote_deleted_at IS NOT NULL")

    again = cli("--mapping", M)  # its window overlaps the last one's: the delete is read again

    assert again.exit_code == 0, again.output
    assert again.mapping(M)["remote_deleted"] == 0
    assert again.mapping(M)["remote_deleted_ids"] == []
    assert rows(db, M, "remote_deleted_at IS NOT NULL") == [marked]  # mark and updated_at kept
    assert _deleted_entries(db) == 1


def _restore(twenty, rid: str) -> None:
    """Bring a soft-deleted record back (an upsert of its id restores it)."""
    response = httpx.post(
        f"{twenty.url}/rest/batch/repProgressions",
        params={"upsert": "true"},
        json=[{"id": rid}],
        headers={"Authorization": f"Bearer {twenty.token}"},
    )
    assert response.status_code == 201, response.text


def test_twenty_restore__a_record_back_from_the_trash_unmarks_its_row(twenty, db, cli) -> None:
    ids = seed_progressions(twenty, 3)
    cli("--mapping", M)
    twenty.soft_delete(ids[1])
    assert cli("--mapping", M).mapping(M)["remote_deleted"] == 1
    _restore(twenty, ids[1])

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert rows(db, M, "remote_deleted_at IS NOT NULL") == []
    execute(db, "UPDATE rep_progressions SET streak_days = 9")
    pushed = cli("--mapping", M)
    assert pushed.exit_code == 0, pushed.output
    assert pushed.mapping(M)["push"]["updated"] == 3
    assert twenty.get(ids[1])["streakDays"] == 9


# -- deleted stays deleted: a push never recreates or restores a record ---------------------------


def _log(cli, *args: str) -> list[dict]:
    result = cli("log", "--json", *args)
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout))


def test_twenty_hard_delete__an_update_after_a_complete_pull_is_not_sent(twenty, db, cli) -> None:
    """Upsert would re-insert a destroyed id: the push reads the ids first and marks the row."""
    ids = seed_progressions(twenty, 5)
    cli("--mapping", M)
    twenty.hard_delete(ids[1])
    execute(db, "UPDATE rep_progressions SET streak_days = 42")
    twenty.reset_log()

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert twenty.get(ids[1]) is None  # not re-inserted
    reps = result.mapping(M)
    assert reps["push"]["updated"] == 4 and reps["push"]["failed"] == 0
    assert reps["remote_deleted"] == 1 and reps["remote_deleted_ids"] == [ids[1]]
    marked = rows(db, M, "remote_deleted_at IS NOT NULL")
    assert [str(r["twenty_id"]) for r in marked] == [ids[1]]
    (entry,) = _log(cli, "--remote-id", ids[1], "--run", result.report["run_id"])
    assert (entry["stage"], entry["action"]) == ("push", "remote_deleted")
    assert "not recreated" in entry["message"] and "twenty_id" in entry["message"]
    writes = twenty_writes(twenty)
    assert len(writes) == 1 and {r["id"] for r in writes[0].body} == set(ids) - {ids[1]}
    again = cli("--mapping", M)
    assert again.exit_code == 0 and again.mapping(M)["remote_deleted"] == 0
    assert twenty.get(ids[1]) is None


def test_twenty_soft_delete__seen_only_by_the_push_is_not_restored(twenty, db, cli) -> None:
    """A push-only run never read the soft delete: the push's read finds it in the trash."""
    ids = seed_progressions(twenty, 3)
    cli("--mapping", M)
    twenty.soft_delete(ids[0])
    execute(db, "UPDATE rep_progressions SET streak_days = 7")

    result = cli("--mapping", M, "--stage", "push")

    assert result.exit_code == 0, result.output
    restored = twenty.get(ids[0])
    assert restored is not None and restored["deletedAt"] is not None
    assert result.mapping(M)["remote_deleted"] == 1
    assert result.mapping(M)["push"]["updated"] == 2


def test_twenty_push__costs_one_read_per_200_updates(twenty, db, cli) -> None:
    ids = seed_progressions(twenty, 450)
    cli("--mapping", M)
    execute(db, "UPDATE rep_progressions SET streak_days = streak_days + 1")
    twenty.reset_log()

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert result.mapping(M)["push"]["updated"] == len(ids)
    reads = [r for r in twenty.requests if r.method == "GET"]
    by_id = [r for r in reads if "id[in]" in r.query["filter"][0]]
    writes = twenty_writes(twenty)
    # The push reads the 450 ids 200 a request (3), then writes 60 a request (8); the pull
    # lists 450 records (3 pages of 200, and one more when its two readers meet among records
    # of one millisecond, as records made in a loop are).
    assert len(writes) == 8
    assert len(by_id) == 3
    assert 3 <= len(reads) - len(by_id) <= 4


def test_twenty_push__keeps_each_records_position(twenty, db, cli) -> None:
    """An upsert without ``position`` would move the record to the top of every view."""
    ids = seed_progressions(twenty, 5)
    cli("--mapping", M)
    before = {r["id"]: r["position"] for r in twenty.records()}
    execute(db, "UPDATE rep_progressions SET total_xp = total_xp + 1")

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert result.mapping(M)["push"]["updated"] == len(ids)
    assert {r["id"]: r["position"] for r in twenty.records()} == before
    (write,) = twenty_writes(twenty)[-1:]
    assert all("position" in record for record in write.body)


# -- recreating a record deleted remotely: a person clears the row's key column -----------------


def _clear_key(db, table: str, key: str, local_id: int) -> None:
    execute(db, f"UPDATE {table} SET {key} = NULL WHERE id = :i", i=local_id)


def test_twenty_recreate__clearing_twenty_id_creates_the_record_again(twenty, db, cli) -> None:
    ids = seed_progressions(twenty, 3)
    cli("--mapping", M)
    twenty.soft_delete(ids[1])
    execute(db, "UPDATE rep_progressions SET streak_days = 11")
    marked = cli("--mapping", M)
    assert marked.mapping(M)["remote_deleted"] == 1
    (row,) = rows(db, M, "remote_deleted_at IS NOT NULL")
    _clear_key(db, M, "twenty_id", row["id"])

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert result.mapping(M)["push"]["created"] == 1, result.report
    (now,) = rows(db, M, f"id = {row['id']}")
    new_id = str(now["twenty_id"])
    assert now["remote_deleted_at"] is None and new_id not in ids
    created = twenty.get(new_id)
    assert created is not None and created["deletedAt"] is None
    assert created["streakDays"] == 11 and created["name"] == row["name"]
    old = twenty.get(ids[1])
    assert old is not None and old["deletedAt"] is not None  # the deleted one stays deleted
    again = cli("--mapping", M)
    assert again.exit_code == 0 and again.mapping(M)["push"]["created"] == 0
    assert rows(db, M, "remote_deleted_at IS NOT NULL") == []


def test_twenty_recreate__a_record_this_tool_created_gets_a_new_id(twenty, db, cli) -> None:
    """A create's id is derived from the row: the recreated record must not reuse the deleted
    one's (an upsert on it would restore the deleted record instead of creating one)."""
    execute(
        db,
        "INSERT INTO rep_progressions (name, workspace_member_id, streak_days) "
        "VALUES ('Local Rep', 'wm-local', 3)",
    )
    first = cli("--mapping", M)
    assert first.mapping(M)["push"]["created"] == 1, first.report
    (row,) = rows(db, M)
    first_id = str(row["twenty_id"])
    twenty.soft_delete(first_id)
    execute(db, "UPDATE rep_progressions SET streak_days = 4")
    assert cli("--mapping", M).mapping(M)["remote_deleted"] == 1
    _clear_key(db, M, "twenty_id", row["id"])

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert result.mapping(M)["push"]["created"] == 1, result.report
    (now,) = rows(db, M)
    assert now["remote_deleted_at"] is None and str(now["twenty_id"]) != first_id
    assert twenty.get(first_id)["deletedAt"] is not None  # not restored
    assert twenty.get(str(now["twenty_id"]))["streakDays"] == 4


def test_airtable_recreate__clearing_airtable_record_id_makes_a_lead_local_only(
    airtable, db, cli
) -> None:
    """Leads are never created in Airtable: a lead whose key is cleared is local-only."""
    ids = seed_leads(airtable, 12)
    cli()
    airtable.delete("Leads", ids[0])
    cli("--full")
    (row,) = rows(db, where="remote_deleted_at IS NOT NULL")
    _clear_key(db, "leads", "airtable_record_id", row["id"])
    execute(db, "UPDATE leads SET notes = 'edited' WHERE id = :i", i=row["id"])
    airtable.reset_log()

    result = cli()

    assert result.exit_code == 0, result.output
    leads = result.mapping("leads")
    assert leads["push"]["created"] == 0 and leads["push"]["failed"] == 0
    assert result.report["errors"] == []
    assert len(airtable.records("Leads")) == 11
    (now,) = rows(db, where=f"id = {row['id']}")
    assert now["airtable_record_id"] is None and now["notes"] == "edited"
