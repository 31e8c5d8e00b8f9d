"""Deletes are marked, never applied, and absence counts only in a complete --full sweep."""

from __future__ import annotations

from tests.helpers import execute, rows, seed_leads, seed_progressions, twenty_writes

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
