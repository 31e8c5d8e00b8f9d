"""End to end: `reconcile` against the Airtable emulator over HTTP and a real Postgres."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from reconciler.emulators.airtable import AirtableEmulator
from tests.helpers import (
    ago,
    dated_events,
    execute,
    list_requests,
    notes_config,
    notes_events,
    rows,
    seed_leads,
)


def _patches(em: AirtableEmulator) -> list[Any]:
    return [r for r in em.requests if r.method == "PATCH"]


def _by_name(em: AirtableEmulator, table: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Fields sent keyed by field id (as the tool writes them), keyed by their names."""
    names = {fid: column.name for fid, column in em.table(table).columns.items()}
    return {names[key]: value for key, value in fields.items()}


def test_pull__inserts_250_leads_in_three_list_requests(airtable, db, cli) -> None:
    seed_leads(airtable, 250)
    result = cli("--lookback", "20")
    assert result.exit_code == 0, result.output
    pull = result.mapping("leads")["pull"]
    assert pull["fetched"] == 250 and pull["inserted"] == 250
    assert list_requests(airtable) <= 3
    local = rows(db)
    assert len(local) == 250
    first = next(r for r in local if r["first_name"] == "Ann3")
    assert first["icp_score"] == Decimal("53.5")
    assert first["sms_sent_count"] == 3
    assert first["booked"] is False and first["sms_stop"] is False
    assert first["sms_last_sent_at"].isoformat().startswith("2026-11-19T08:30:00.250")


def test_pull__ignores_records_older_than_the_window(airtable, db, cli) -> None:
    seed_leads(airtable, 3, minutes_ago=5)
    seed_leads(airtable, 2, minutes_ago=60)
    result = cli("--lookback", "20")
    assert result.exit_code == 0, result.output
    assert len(rows(db)) == 3


def test_second_run__writes_nothing_anywhere(airtable, db, cli) -> None:
    seed_leads(airtable, 120)
    assert cli().exit_code == 0
    before = {r["id"]: r["updated_at"] for r in rows(db)}
    airtable.reset_log()
    result = cli("--lookback", "20")
    assert result.exit_code == 0, result.output
    assert _patches(airtable) == []
    assert {r["id"]: r["updated_at"] for r in rows(db)} == before
    assert result.mapping("leads")["pull"]["unchanged"] == 120
    assert result.mapping("leads")["push"]["updated"] == 0


def test_second_run__a_record_stamped_again_with_its_own_values_changes_nothing(
    airtable, db, cli
) -> None:
    """Whether Airtable moves a last modified time when a cell is written its own value is not
    documented (the emulator moves nothing); the tool does not depend on it: a record in the
    window whose values are those of the last sync is unchanged, and nothing is written."""
    (rid,) = seed_leads(airtable, 1)
    assert cli().exit_code == 0
    before = rows(db)
    airtable.update("Leads", rid, {"Status": "New"}, modified_at=ago(0))  # stamped, same value
    airtable.reset_log()

    result = cli()

    assert result.exit_code == 0, result.output
    pull = result.mapping("leads")["pull"]
    assert (pull["fetched"], pull["unchanged"], pull["conflicts"]) == (1, 1, 0)
    assert _patches(airtable) == [] and rows(db) == before


def test_pull__updates_a_remote_edit(airtable, db, cli) -> None:
    ids = seed_leads(airtable, 3)
    cli()
    airtable.update("Leads", ids[1], {"Status": "Qualified", "ICP Score": None})
    result = cli()
    assert result.mapping("leads")["pull"]["updated"] == 1
    row = rows(db, where=f"airtable_record_id = '{ids[1]}'")[0]
    assert row["status"] == "Qualified" and row["icp_score"] is None


def test_push__sends_portal_fields_in_batches_of_10(airtable, db, cli) -> None:
    ids = seed_leads(airtable, 40)
    cli()
    airtable.reset_log()
    execute(
        db,
        "UPDATE leads SET notes = 'called ' || id, claimed_by = 'rep@x.com', "
        "claimed_at = '2026-11-20T10:00:00.123Z', processing_status = 'done', "
        "campaign_id = 'C-7' WHERE id <= 25",
    )
    result = cli()
    assert result.exit_code == 0, result.output
    push = result.mapping("leads")["push"]
    assert push["updated"] == 25 and push["pending"] == 25
    patches = _patches(airtable)
    assert len(patches) <= 3
    sent_fields = {
        k
        for p in patches
        for rec in p.body["records"]
        for k in _by_name(airtable, "Leads", rec["fields"])
    }
    assert sent_fields == {"Notes", "Claimed By", "Claimed At", "Processing Status", "Campaign ID"}
    local = rows(db, where="id = 1")[0]
    remote = airtable.get("Leads", local["airtable_record_id"])
    assert remote is not None
    assert remote["fields"]["Notes"] == "called 1"
    assert remote["fields"]["Claimed At"] == "2026-11-20T10:00:00.123Z"
    assert len(ids) == 40
    airtable.reset_log()
    again = cli()
    assert _patches(airtable) == [] and again.mapping("leads")["pull"]["updated"] == 0


def test_push__never_sends_pull_only_fields(airtable, db, cli) -> None:
    seed_leads(airtable, 2)
    cli()
    airtable.reset_log()
    execute(db, "UPDATE leads SET first_name = 'Local', status = 'Mine'")
    result = cli()
    assert result.exit_code == 0, result.output
    assert _patches(airtable) == []
    assert {r["first_name"] for r in rows(db)} == {"Local"}


def test_conflict__local_newer_wins_and_is_pushed(airtable, db, cli) -> None:
    (rid,) = seed_leads(airtable, 1)
    cli()
    airtable.update("Leads", rid, {"Notes": "remote note"}, modified_at=ago(3))
    execute(db, "UPDATE leads SET notes = 'local note'")
    result = cli()
    assert result.exit_code == 0, result.output
    pull = result.mapping("leads")["pull"]
    assert pull["conflicts"] == 1 and pull["skipped_local_newer"] == 1
    assert rows(db)[0]["notes"] == "local note"
    remote = airtable.get("Leads", rid)
    assert remote is not None and remote["fields"]["Notes"] == "local note"


def test_conflict__remote_newer_wins_locally_and_nothing_is_pushed(airtable, db, cli) -> None:
    (rid,) = seed_leads(airtable, 1)
    cli()
    execute(db, "UPDATE leads SET notes = 'local note', updated_at = now() - interval '3 min'")
    airtable.update("Leads", rid, {"Notes": "remote note"})
    airtable.reset_log()
    result = cli()
    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["pull"]["conflicts"] == 1
    assert rows(db)[0]["notes"] == "remote note"
    assert _patches(airtable) == []


def test_conflict__edits_to_different_fields_both_survive(airtable, db, cli) -> None:
    (rid,) = seed_leads(airtable, 1)
    cli()
    execute(db, "UPDATE leads SET claimed_by = 'local rep'")
    airtable.update("Leads", rid, {"Notes": "remote note", "Status": "Hot"})
    result = cli()
    assert result.exit_code == 0, result.output
    row = rows(db)[0]
    assert (row["claimed_by"], row["notes"], row["status"]) == ("local rep", "remote note", "Hot")
    remote = airtable.get("Leads", rid)
    assert remote is not None
    assert remote["fields"]["Claimed By"] == "local rep"
    assert remote["fields"]["Notes"] == "remote note"


def test_push__skips_when_remote_is_newer(airtable, db, cli) -> None:
    (rid,) = seed_leads(airtable, 1)
    cli()
    execute(db, "UPDATE leads SET notes = 'local', updated_at = now() - interval '2 min'")
    airtable.update("Leads", rid, {"Notes": "remote"})
    airtable.reset_log()
    result = cli("--stage", "push")
    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["push"]["skipped_remote_newer"] == 1
    remote = airtable.get("Leads", rid)
    assert remote is not None and remote["fields"]["Notes"] == "remote"
    reads = [r for r in airtable.requests if r.method in ("GET", "POST")]
    assert len(reads) == 1  # one batched read of modified times, not one GET per record


def test_push_only__a_server_refusing_record_id_formulas_reads_each_record(
    airtable, db, cli
) -> None:
    """``RECORD_ID()`` appears nowhere in the shared docs, and a server that holds to them may
    refuse it (422 ``INVALID_FILTER_BY_FORMULA``). A push-only run then reads the records it
    writes by id, one request each, after the one refused listing: an edit older than the
    remote's is held back, and a record deleted in Airtable is taken for deleted."""
    ids = seed_leads(airtable, 4)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'local', updated_at = now() - interval '2 min'")
    airtable.update("Leads", ids[0], {"Notes": "remote"})
    airtable.delete("Leads", ids[1])
    message = "The formula for filtering records is invalid: Unknown function RECORD_ID"
    refusal = {"error": {"type": "INVALID_FILTER_BY_FORMULA", "message": message}}
    airtable.faults.fail(
        422, times=10_000, body=refusal, param="filterByFormula", param_text="RECORD_ID"
    )
    airtable.reset_log()

    result = cli("--stage", "push")

    assert result.exit_code == 0, result.output
    push = result.mapping("leads")["push"]
    assert (push["updated"], push["skipped_remote_newer"]) == (2, 1)
    assert [airtable.get("Leads", i)["fields"]["Notes"] for i in (ids[0], ids[2], ids[3])] == [
        "remote",
        "local",
        "local",
    ]
    deleted = rows(db, where=f"airtable_record_id = '{ids[1]}'")
    assert airtable.get("Leads", ids[1]) is None and deleted[0]["remote_deleted_at"] is not None
    reads = [r for r in airtable.requests if r.method == "GET"]
    assert sum(r.status == 422 for r in reads) == 1
    assert sorted(r.path.rsplit("/", 1)[1] for r in reads if r.status != 422) == sorted(ids)


def test_push__a_record_whose_pull_failed_is_read_before_it_is_written(airtable, db, cli) -> None:
    """A newer remote edit the pull could not apply (another field of the record holds a value
    it cannot type) has not come in: the push reads the record, and the older local value is
    held back instead of written over the edit, in this run and in later ones."""
    (rid,) = seed_leads(airtable, 1, minutes_ago=10)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'older local', updated_at = now() - interval '3 min'")
    edit = {"Notes": "newer remote", "ICP Score": "high"}
    airtable.update("Leads", rid, edit, validate=False, modified_at=ago(1))

    for _ in range(2):
        result = cli()

        assert result.exit_code == 1, result.output
        assert [e["stage"] for e in result.report["errors"]] == ["pull"]
        assert result.mapping("leads")["push"]["skipped_remote_newer"] == 1
        remote = airtable.get("Leads", rid)
        assert remote is not None and remote["fields"]["Notes"] == "newer remote"
        assert _patches(airtable) == []


def test_push__a_remote_edit_made_while_the_run_runs_is_not_overwritten(airtable, db, cli) -> None:
    """A person edits Airtable after the run's pull read its window and before its push: the
    push must not write the older local value over it (Airtable's writes are unconditional).
    The edit is stamped on the emulator's clock past the window's end and the slack its
    formula allows, which is what an edit made during the run looks like to the pull."""
    rids = seed_leads(airtable, 2, minutes_ago=60)  # older than any later window
    assert cli("--full").exit_code == 0
    execute(db, "UPDATE leads SET notes = 'older local'")
    later = airtable.clock.now() + timedelta(seconds=30)
    airtable.update("Leads", rids[0], {"Notes": "newer remote"}, modified_at=later)
    result = cli("--mapping", "leads")
    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["pull"]["fetched"] == 0  # the pull could not see it
    push = result.mapping("leads")["push"]
    assert (push["skipped_remote_newer"], push["updated"]) == (1, 1)
    notes = {r["id"]: r["fields"].get("Notes") for r in airtable.records("Leads")}
    assert notes == {rids[0]: "newer remote", rids[1]: "older local"}
    # A run before the edit's stamp is past sees it only the same way, and holds back again
    # (the window that follows a watermark pulls it once past: test_window.py).
    again = cli("--mapping", "leads")
    assert again.mapping("leads")["push"]["skipped_remote_newer"] == 1
    assert (airtable.get("Leads", rids[0]) or {})["fields"]["Notes"] == "newer remote"


def test_bad_record__fails_alone_and_the_rest_is_applied(airtable, db, cli) -> None:
    seed_leads(airtable, 5)
    bad = airtable.create("Leads", {"First Name": "Bad", "ICP Score": "high"}, validate=False)
    result = cli()
    assert result.exit_code == 1, result.output
    report = result.report
    assert report["status"] == "partial"
    assert result.mapping("leads")["pull"]["failed"] == 1
    assert result.mapping("leads")["pull"]["inserted"] == 5
    (error,) = report["errors"]
    assert error["record"] == bad["id"] and "ICP Score" in error["message"]
    assert len(rows(db)) == 5
    assert "Traceback" not in result.output


def test_bad_record__fixed_remotely_goes_through_next_run(airtable, db, cli) -> None:
    bad = airtable.create("Leads", {"First Name": "Bad", "ICP Score": "high"}, validate=False)
    assert cli().exit_code == 1
    airtable.update("Leads", bad["id"], {"ICP Score": 70})
    result = cli()
    assert result.exit_code == 0, result.output
    assert result.report["errors"] == []
    assert rows(db)[0]["icp_score"] == 70


def test_503_burst__is_retried_and_recovered(airtable, db, cli) -> None:
    seed_leads(airtable, 150)
    airtable.faults.fail(503, times=3)
    result = cli()
    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["api"]["retries"] == 3
    assert len(rows(db)) == 150


def test_failed_push__is_retried_by_the_next_run_whatever_its_age(airtable, db, cli) -> None:
    seed_leads(airtable, 2)
    cli()
    execute(db, "UPDATE leads SET notes = 'to send', updated_at = now() - interval '3 days'")
    airtable.faults.fail(500, times=1000, method="PATCH")
    failed = cli()
    assert failed.exit_code == 3, failed.output
    assert failed.report["status"] == "failed"
    airtable.faults.clear()
    result = cli()
    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["push"]["updated"] == 2
    assert {r["fields"].get("Notes") for r in airtable.records("Leads")} == {"to send"}


def test_dry_run__decides_everything_and_writes_nothing(airtable, db, cli) -> None:
    seed_leads(airtable, 10)
    result = cli("--dry-run")
    assert result.exit_code == 0, result.output
    assert result.report["dry_run"] is True
    assert result.mapping("leads")["pull"]["inserted"] == 10
    assert rows(db) == []
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM reconciler.runs")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM reconciler.sync_state")).scalar() == 0


def test_dry_run__push_counts_without_sending(airtable, db, cli) -> None:
    seed_leads(airtable, 3)
    cli()
    execute(db, "UPDATE leads SET notes = 'x'")
    airtable.reset_log()
    result = cli("--dry-run")
    assert result.mapping("leads")["push"]["updated"] == 3
    assert _patches(airtable) == []
    assert all(r["fields"].get("Notes") is None for r in airtable.records("Leads"))


def test_report__has_every_contract_key(airtable, db, cli) -> None:
    seed_leads(airtable, 1)
    result = cli("--json")
    assert result.exit_code == 0, result.output
    import json

    printed = json.loads(result.stdout)
    assert printed == result.report
    for key in (
        "report_version",
        "run_id",
        "status",
        "dry_run",
        "started_at",
        "finished_at",
        "duration_ms",
        "lookback_minutes",
        "window",
        "mappings",
        "errors",
    ):
        assert key in printed
    assert printed["report_version"] == 1
    assert printed["started_at"].endswith("Z") and len(printed["started_at"]) == 24
    leads = result.mapping("leads")
    assert set(leads["pull"]) >= {
        "fetched",
        "inserted",
        "updated",
        "unchanged",
        "conflicts",
        "skipped_local_newer",
        "failed",
    }
    assert set(leads["push"]) >= {
        "pending",
        "created",
        "updated",
        "unchanged",
        "skipped_remote_newer",
        "failed",
        "dead",
    }
    assert set(leads["api"]) == {"requests", "retries", "throttled"}
    twenty = result.mapping("rep_progressions")
    assert twenty["skipped"] == "not configured: TWENTY_API_KEY"


def test_secrets__never_appear_in_output_or_report(airtable, db, cli) -> None:
    seed_leads(airtable, 2)
    result = cli("--json", "-v")
    assert airtable.token not in result.output
    assert airtable.token not in result.report_path.read_text()  # type: ignore[union-attr]


def test_push__an_invalid_record_id_fails_alone_and_never_reaches_a_formula(
    airtable, db, cli
) -> None:
    seed_leads(airtable, 2)
    cli()
    execute(
        db,
        "INSERT INTO leads (airtable_record_id, notes) VALUES (:rid, 'x')",
        rid="x') OR TRUE() OR ('",
    )
    execute(db, "UPDATE leads SET notes = 'edited'")
    airtable.reset_log()
    result = cli("--stage", "push")
    assert result.exit_code == 1, result.output
    (error,) = result.report["errors"]
    assert "not a valid record id" in error["message"]
    assert result.mapping("leads")["push"]["updated"] == 2
    assert not any("TRUE()" in str(r.query) + str(r.body) for r in airtable.requests)


def test_date__a_date_field_syncs_with_a_postgres_date_column_both_ways(
    airtable, db, cli, tmp_path
) -> None:
    from datetime import date

    config = dated_events(airtable, db, tmp_path)
    leap = airtable.create("Events", {"Title": "Leap", "Day": "2024-02-29"}, modified_at=ago(5))
    bad = airtable.create(
        "Events",
        {"Title": "Bad", "Day": "2024-03-01T10:00:00.000Z"},
        modified_at=ago(5),
        validate=False,
    )
    first = cli("--config", str(config), "--mapping", "events")
    assert first.exit_code == 1, first.output  # the record holding a date-time fails alone
    (error,) = first.report["errors"]
    assert error["record"] == bad["id"] and "Day: expected a date, got" in error["message"]
    assert [(r["title"], r["day"]) for r in rows(db, "events")] == [("Leap", date(2024, 2, 29))]

    execute(db, "UPDATE events SET day = '2024-03-01'")
    second = cli("--config", str(config), "--mapping", "events")
    assert second.mapping("events")["push"]["updated"] == 1, second.output
    sent = [
        _by_name(airtable, "Events", rec["fields"])
        for r in _patches(airtable)
        for rec in r.body["records"]
    ]
    assert sent == [{"Day": "2024-03-01"}]
    (stored,) = [r for r in airtable.records("Events") if r["id"] == leap["id"]]
    assert stored["fields"]["Day"] == "2024-03-01"


def test_pull__a_row_deleted_locally_comes_back_with_one_state(airtable, db, cli) -> None:
    """Its sync state outlives it (no foreign key to an application's table): the record
    pulled again gets a new row, and the old state under its remote id is replaced."""
    (record_id,) = seed_leads(airtable, 1)
    assert cli().exit_code == 0
    execute(db, "DELETE FROM leads")
    airtable.update("Leads", record_id, {"Notes": "Called again."})

    result = cli()

    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["pull"]["inserted"] == 1
    (row,) = rows(db)
    with db.connect() as conn:
        states = conn.execute(
            sa.text(
                "SELECT local_id FROM reconciler.sync_state "
                "WHERE mapping = 'leads' AND remote_id = :r"
            ),
            {"r": record_id},
        ).all()
    assert [s.local_id for s in states] == [row["id"]]


def test_pull__a_new_row_whose_id_an_old_state_still_holds_gets_that_state_replaced(
    airtable, db, cli
) -> None:
    """An id the sequence hands out again (restarted, or passed by ids an application chose)
    may still have the state of a row deleted locally: the new row's state replaces it."""
    (gone,) = seed_leads(airtable, 1)
    assert cli().exit_code == 0
    execute(db, "DELETE FROM leads")
    airtable.delete("Leads", gone)
    execute(db, "ALTER TABLE leads ALTER COLUMN id RESTART WITH 1")
    (fresh,) = seed_leads(airtable, 1)

    result = cli()

    assert result.exit_code == 0, result.output
    (row,) = rows(db)
    assert row["id"] == 1 and row["airtable_record_id"] == fresh
    with db.connect() as conn:
        states = conn.execute(
            sa.text("SELECT local_id, remote_id FROM reconciler.sync_state WHERE mapping = 'leads'")
        ).all()
    assert [tuple(s) for s in states] == [(1, fresh)]


def test_field_added_to_a_mapping__a_full_run_fills_it_in_for_rows_already_synced(
    airtable, db, cli, tmp_path
) -> None:
    """A column newly mapped has no base in the sync state: an empty local value is no local
    change, so the record's value comes in (and a local value goes out) without a conflict,
    even on rows whose last change was the record's own."""
    config = notes_events(airtable, db, tmp_path)
    kept = airtable.create(
        "Events", {"Title": "A", "Note": "n", "Owner": "Ann"}, modified_at=ago(5)
    )
    empty = airtable.create("Events", {"Title": "B", "Note": "m"}, modified_at=ago(5))
    assert cli("--config", str(config), "--mapping", "events").exit_code == 0
    execute(db, "UPDATE events SET owner = 'Bob', updated_at = :at WHERE title = 'B'", at=ago(10))
    config.write_text(notes_config(owner=True), encoding="utf-8")
    airtable.reset_log()

    result = cli("--config", str(config), "--mapping", "events", "--full")

    assert result.exit_code == 0, result.output
    counts = result.mapping("events")
    assert counts["pull"]["conflicts"] == 0 and counts["pull"]["updated"] == 1, counts
    assert counts["push"]["updated"] == 1, counts
    assert {r["title"]: r["owner"] for r in rows(db, "events")} == {"A": "Ann", "B": "Bob"}
    stored = {r["id"]: r["fields"].get("Owner") for r in airtable.records("Events")}
    assert stored == {kept["id"]: "Ann", empty["id"]: "Bob"}


def _without_base(db: sa.Engine, mapping: str, columns: list[str]) -> set[str]:
    """The ``columns`` some synced row of ``mapping`` holds no base for (its shadow lacks them)."""
    with db.connect() as conn:
        shadows = conn.execute(
            sa.text("SELECT shadow FROM reconciler.sync_state WHERE mapping = :m"), {"m": mapping}
        ).scalars()
        return {c for shadow in shadows for c in columns if c not in shadow}


def test_field_added_to_a_mapping__runs_name_it_until_a_full_run_fills_it_in(
    airtable, db, cli, tmp_path
) -> None:
    """Rows synced before a field was mapped hold no value for it until their records are read
    again: each run names the field (report and output) and the command that reads them all,
    until a full run has; a dry run's full read fills nothing in, so the note stays. Whatever a
    run names, no field it leaves out lacks a base in the sync state."""
    config = notes_events(airtable, db, tmp_path)
    airtable.create("Events", {"Title": "A", "Note": "n", "Owner": "Ann"}, modified_at=ago(90))
    mapped = ["title", "note"]

    def run(*args: str) -> list[str]:
        result = cli("--config", str(config), "--mapping", "events", *args)
        assert result.exit_code == 0, result.output
        named: list[str] = result.mapping("events")["unfilled_fields"]
        if "--dry-run" not in args:
            assert _without_base(db, "events", mapped) <= set(named)
        if named:
            assert f"note: events: {', '.join(named)} mapped since the last full read" in (
                result.stderr
            )
            assert "`reconcile --full --mapping events` fills them in now" in result.stderr
        else:
            assert "note:" not in result.stderr
        return named

    assert run("--full") == []  # a mapping's first run
    config.write_text(notes_config(owner=True), encoding="utf-8")
    mapped.append("owner")

    assert run() == ["owner"]  # the record is outside the window: its row keeps no owner
    assert rows(db, "events")[0]["owner"] is None
    assert run("--full", "--dry-run") == []
    assert run() == ["owner"]
    assert run("--full") == []
    assert run() == []
    assert {r["title"]: r["owner"] for r in rows(db, "events")} == {"A": "Ann"}


def test_field_mapped_again__runs_name_it_as_unfilled(airtable, db, cli, tmp_path) -> None:
    """A field no longer mapped is left out of the rows' next syncs; mapped again, it is named
    like a new one."""
    config = notes_events(airtable, db, tmp_path)
    config.write_text(notes_config(owner=True), encoding="utf-8")
    airtable.create("Events", {"Title": "A", "Note": "n", "Owner": "Ann"}, modified_at=ago(5))
    args = ("--config", str(config), "--mapping", "events")
    assert cli(*args).mapping("events")["unfilled_fields"] == []
    config.write_text(notes_config(owner=False), encoding="utf-8")
    assert cli(*args).mapping("events")["unfilled_fields"] == []

    config.write_text(notes_config(owner=True), encoding="utf-8")

    assert cli(*args).mapping("events")["unfilled_fields"] == ["owner"]
