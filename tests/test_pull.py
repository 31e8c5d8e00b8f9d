"""Stage 1 page by page: a row the database refuses fails alone, whether it is inserted or
updated; values are stored as they always were; a listing that breaks mid-way keeps what was
applied and leaves no thread behind; records a listing reads again are applied once, in their
newest version, and a failure is forgotten once the record goes in; an application's edit made
while a page is applied waits for it and is kept; failed records are read again by id when their
retry is due, never before nor once dead-lettered."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from reconciler.emulators.airtable import AirtableEmulator
from reconciler.emulators.twenty import TwentyEmulator
from reconciler.engine import pull as pull_stage
from reconciler.model import parse_datetime
from reconciler.records import RemoteRecord
from reconciler.report import MappingResult
from tests.helpers import (
    ago,
    edit_while_writing,
    execute,
    lead_fields,
    progression_fields,
    rows,
    seed_leads,
    seed_progressions,
    twenty_reads,
)
from tests.sides import Side

M = "rep_progressions"
SHORT_NAMES = "ALTER TABLE leads ADD CONSTRAINT short_first_name CHECK (length(first_name) < 40)"
LONG_NAME = "N" * 50


def _log(db: sa.Engine, action: str) -> int:
    with db.connect() as conn:
        query = sa.text("SELECT count(*) FROM reconciler.change_log WHERE action = :a")
        return int(conn.execute(query, {"a": action}).scalar_one())


def _prefetching() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "prefetch"]


def _scheduled_later(db: sa.Engine, stage: str) -> bool:
    """Whether the stage has a failure recorded whose retry is not due yet."""
    with db.connect() as conn:
        query = sa.text(
            "SELECT count(*) FROM reconciler.failures "
            "WHERE stage = :s AND NOT dead AND next_attempt_at > now()"
        )
        return bool(conn.execute(query, {"s": stage}).scalar_one())


def test_pull__a_new_record_the_database_refuses_fails_alone(
    airtable: AirtableEmulator, db: sa.Engine, cli
) -> None:
    execute(db, SHORT_NAMES)
    seed_leads(airtable, 120)
    bad = airtable.create("Leads", {**lead_fields(999), "First Name": LONG_NAME})
    seed_leads(airtable, 120)

    result = cli("--stage", "pull")

    assert result.exit_code == 1, result.output
    pull = result.mapping("leads")["pull"]
    assert (pull["fetched"], pull["inserted"], pull["failed"]) == (241, 240, 1)
    (error,) = result.report["errors"]
    assert error["record"] == bad["id"]
    assert "database refused the record" in error["message"]
    assert "short_first_name" in error["message"]
    assert len(rows(db)) == 240
    assert (_log(db, "inserted"), _log(db, "dead_letter")) == (240, 1)
    airtable.update("Leads", bad["id"], {"First Name": "Ann"})
    assert cli("--stage", "pull").exit_code == 0
    assert len(rows(db, where="first_name = 'Ann'")) == 1


def test_pull__an_edit_the_database_refuses_fails_alone(
    airtable: AirtableEmulator, db: sa.Engine, cli
) -> None:
    ids = seed_leads(airtable, 150)
    assert cli("--stage", "pull").exit_code == 0
    execute(db, SHORT_NAMES)
    for n, record_id in enumerate(ids):
        name = LONG_NAME if n == 70 else f"Bo{n}"
        airtable.update("Leads", record_id, {"First Name": name, "Status": "Contacted"})

    result = cli("--stage", "pull")

    assert result.exit_code == 1, result.output
    pull = result.mapping("leads")["pull"]
    assert (pull["updated"], pull["failed"]) == (149, 1)
    assert [e["record"] for e in result.report["errors"]] == [ids[70]]
    local = {r["airtable_record_id"]: r for r in rows(db)}
    assert local[ids[70]]["first_name"] == "Ann70" and local[ids[70]]["status"] == "New"
    assert local[ids[71]]["first_name"] == "Bo71" and local[ids[71]]["status"] == "Contacted"


def test_pull__json_emptied_remotely_is_stored_as_the_json_null_as_before(
    twenty: TwentyEmulator, db: sa.Engine, cli
) -> None:
    (rep,) = seed_progressions(twenty, 1)
    assert cli("--mapping", M).exit_code == 0
    twenty.update(rep, {"badges": ""}, stored=True)  # "" as older servers stored it

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    with db.connect() as conn:
        kind = conn.execute(sa.text("SELECT jsonb_typeof(badges) FROM rep_progressions"))
        assert kind.scalar_one() == "null"


def test_pull__a_listing_broken_after_its_first_page_keeps_that_page(
    airtable: AirtableEmulator, db: sa.Engine, cli, monkeypatch
) -> None:
    monkeypatch.setenv("RECONCILER_RETRY_BASE_SECONDS", "0.001")
    seed_leads(airtable, 250)
    pages = f"/v0/{airtable.base_id}/"  # the listing's pages, not the schema read before them
    airtable.faults.delay(0, times=1, method="GET", path=pages)  # the first page is answered
    airtable.faults.fail(503, times=1000, method="GET", path=pages)  # every later one fails

    result = cli("--stage", "pull")

    assert result.exit_code == 3, result.output
    assert any("Airtable" in e["message"] for e in result.report["errors"])
    assert len(rows(db)) == 100
    assert not _prefetching()
    airtable.faults.clear()
    assert cli("--stage", "pull").exit_code == 0
    assert len(rows(db)) == 250


def test_pull__text_no_database_can_hold_fails_its_record_alone(
    side: Side, db: sa.Engine, cli
) -> None:
    """A JSON string may escape a lone UTF-16 surrogate (JavaScript strings can hold one, and
    JSON.stringify writes it as ``\\ud800``); no UTF-8 text can: that record fails alone,
    named, and the others go in, on insert and on update."""
    now = datetime.now(UTC)
    ids = [side.create(i, now) for i in range(3)]
    side.edit(ids[1], "cut emoji \ud83d")

    first = cli("--mapping", side.name, "--stage", "pull")

    assert first.exit_code == 1, first.output
    (error,) = first.report["errors"]
    assert error["record"] == ids[1]
    assert "lone surrogate ('\\ud83d')" in error["message"]
    assert side.local_ids(db) == {ids[0], ids[2]}
    side.edit(ids[0], "also \udc00 cut")
    side.edit(ids[1], "mended")

    second = cli("--mapping", side.name, "--stage", "pull")

    assert second.exit_code == 1, second.output
    assert [e["record"] for e in second.report["errors"]] == [ids[0]]
    assert side.local_ids(db) == set(ids)
    assert side.local_text(db, ids[1]) == "mended"


def test_pull__a_failed_record_is_retried_after_it_leaves_the_window(
    airtable: AirtableEmulator, db: sa.Engine, cli
) -> None:
    """A record whose pull failed (its local row held a value the tool cannot read) is read
    again by its id once its retry is due, even when no later window holds its edit."""
    (rid,) = seed_leads(airtable, 1, minutes_ago=60)
    assert cli("--full").exit_code == 0
    execute(db, "UPDATE leads SET icp_score = 'NaN'")
    edited = ago(5)
    airtable.update("Leads", rid, {"Notes": "remote edit"}, modified_at=edited)
    failed = cli()
    assert failed.exit_code == 1 and {e["stage"] for e in failed.report["errors"]} == {
        "pull",
        "push",
    }
    execute(db, "UPDATE leads SET icp_score = 1")
    execute(db, "UPDATE reconciler.failures SET next_attempt_at = now()")

    result = cli("--lookback", "1")

    assert result.exit_code == 0, result.output
    assert parse_datetime(result.report["window"]["since"]) > edited  # not in the window
    assert result.mapping("leads")["pull"]["updated"] == 1
    assert rows(db)[0]["notes"] == "remote edit"


def test_pull__a_failed_record_is_not_read_again_before_its_retry_is_due(
    airtable: AirtableEmulator, db: sa.Engine, cli
) -> None:
    """A record whose pull failed, out of the window now, is not read by its id while its retry
    is scheduled later."""
    (rid,) = seed_leads(airtable, 1, minutes_ago=60)
    assert cli("--full").exit_code == 0
    execute(db, "UPDATE leads SET icp_score = 'NaN'")
    airtable.update("Leads", rid, {"Notes": "remote edit"}, modified_at=ago(5))
    assert cli().exit_code == 1
    execute(db, "UPDATE leads SET icp_score = 1")
    assert _scheduled_later(db, "pull")

    result = cli("--lookback", "1")

    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["pull"]["fetched"] == 0
    assert rows(db)[0]["notes"] is None
    assert _scheduled_later(db, "pull")


def test_pull__a_failed_record_deleted_before_its_retry_is_marked_not_applied(
    twenty: TwentyEmulator, db: sa.Engine, cli
) -> None:
    """The retry of a record whose pull failed reads it by id, finds it soft-deleted since (out
    of the window), and marks its row deleted remotely: its last values are not applied."""
    (rid,) = seed_progressions(twenty, 1, minutes_ago=60)
    assert cli("--mapping", M, "--full").exit_code == 0
    execute(db, "UPDATE rep_progressions SET total_xp = 'NaN'")
    twenty.update(rid, {"name": "edited, then deleted"}, updated_at=ago(10))
    assert cli("--mapping", M).exit_code == 1
    execute(db, "UPDATE rep_progressions SET total_xp = 1")
    twenty.clock.frozen = ago(5)
    twenty.soft_delete(rid)
    twenty.clock.frozen = None
    execute(db, "UPDATE reconciler.failures SET next_attempt_at = now()")

    result = cli("--mapping", M, "--lookback", "1")

    assert result.exit_code == 0, result.output
    (row,) = rows(db, M)
    assert row["name"] == "Rep 0" and row["remote_deleted_at"] is not None
    assert result.mapping(M)["remote_deleted_ids"] == [rid]
    assert result.mapping(M)["pull"]["fetched"] == 0


def test_pull__a_failed_record_found_deleted_is_forgotten_and_not_read_again(
    twenty: TwentyEmulator, db: sa.Engine, cli
) -> None:
    """A record whose pull failed and that its retry finds deleted remotely leaves no failure
    behind: later runs neither report it nor read it again by its id."""
    (rid,) = seed_progressions(twenty, 1, minutes_ago=60)
    assert cli("--mapping", M, "--full").exit_code == 0
    execute(db, "UPDATE rep_progressions SET total_xp = 'NaN'")
    twenty.update(rid, {"name": "edited, then deleted"}, updated_at=ago(10))
    assert cli("--mapping", M).exit_code == 1
    twenty.clock.frozen = ago(5)
    twenty.soft_delete(rid)
    twenty.clock.frozen = None
    execute(db, "UPDATE reconciler.failures SET next_attempt_at = now()")
    assert cli("--mapping", M, "--lookback", "1").mapping(M)["remote_deleted"] == 1
    execute(db, "UPDATE reconciler.failures SET next_attempt_at = now()")
    twenty.reset_log()

    result = cli("--mapping", M, "--lookback", "1")

    assert result.exit_code == 0, result.output
    assert result.report["errors"] == []
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM reconciler.failures")).scalar_one() == 0
    assert not [r for r in twenty_reads(twenty) if "id[in]" in r.query.get("filter", [""])[0]]


def test_pull__a_dead_lettered_record_is_not_read_again(
    airtable: AirtableEmulator, db: sa.Engine, cli
) -> None:
    """A record whose pull was dead-lettered is listed in later reports but not read again by
    its id: only a new version of it in a window brings it back."""
    seed_leads(airtable, 1, minutes_ago=60)
    bad = airtable.create(
        "Leads", {"First Name": "Bad", "ICP Score": "high"}, modified_at=ago(60), validate=False
    )
    assert cli("--full").exit_code == 1
    execute(db, "UPDATE reconciler.failures SET next_attempt_at = now()")

    result = cli()

    assert result.mapping("leads")["pull"]["fetched"] == 0
    assert [e["record"] for e in result.report["errors"]] == [bad["id"]]
    with db.connect() as conn:
        query = "SELECT attempts, dead FROM reconciler.failures WHERE stage = 'pull'"
        assert conn.execute(sa.text(query)).all() == [(1, True)]


def test_pull__a_record_read_twice_in_one_group_of_pages_is_applied_in_its_newest_version(
    monkeypatch,
) -> None:
    """Pages applied together may hold a record twice (read again by a listing that started
    over, or edited between two readings): only its newest version is applied, wherever it
    stands among the others."""
    applied: list[RemoteRecord] = []
    monkeypatch.setattr(
        pull_stage, "apply_records", lambda ctx, records, **_: applied.extend(records)
    )
    ctx = SimpleNamespace(result=MappingResult(M, "twenty"), progress=lambda *_: None)
    versions = [RemoteRecord("x", ago(m), {"name": f"{m} min ago"}) for m in (2, 3, 1, 4)]
    other = RemoteRecord("y", ago(5), {"name": "other"})

    pull_stage._Listing(failing=False, sweeping=False).apply(ctx, [*versions, other], timedelta(0))

    assert applied == [versions[2], other]


def test_pull__an_application_edit_made_while_a_page_is_applied_waits_and_is_kept(
    airtable: AirtableEmulator, db: sa.Engine, cli
) -> None:
    """The rows a page updates are locked from their reading to the page's commit: an
    application editing one of them in between waits, its edit lands after the pull's, and
    the push sends it as the newer change. Unlocked, the pull wrote the remote's older value
    over the edit and recorded the row as in sync: the edit was lost on both sides."""
    (rid,) = seed_leads(airtable, 1, minutes_ago=60)
    assert cli("--full").exit_code == 0
    airtable.update("Leads", rid, {"Processing Status": "remote"}, modified_at=ago(5))
    edit = "UPDATE leads SET processing_status = 'application'"

    with edit_while_writing(db, "UPDATE leads AS t SET", edit) as editing:
        pulled = cli("--stage", "pull")

    assert pulled.exit_code == 0, pulled.output
    assert editing.ident is not None, "the pull wrote nothing to leads"
    assert rows(db)[0]["processing_status"] == "application"
    pushed = cli("--stage", "push")
    assert pushed.exit_code == 0, pushed.output
    assert pushed.mapping("leads")["push"]["updated"] == 1
    assert airtable.get("Leads", rid)["fields"]["Processing Status"] == "application"


def test_pull__records_read_again_when_a_listing_starts_over_are_applied_once(
    airtable: AirtableEmulator, db: sa.Engine, cli
) -> None:
    """Airtable's listing starts over when its offset expires (422
    ``LIST_RECORDS_ITERATOR_NOT_AVAILABLE``), so the pages already applied come again: each
    record is applied, counted and logged once, as the contract's window rule says of records
    read twice."""
    seed_leads(airtable, 250)
    gone = {"type": "LIST_RECORDS_ITERATOR_NOT_AVAILABLE", "message": "expired"}

    expired: list[str] = []

    def expire(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        if not expired and sql.startswith("INSERT INTO leads"):  # once the first page is in
            expired.append(sql)
            airtable.faults.fail(422, body={"error": gone}, method="GET", path="/v0/app")

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", expire)
    try:
        result = cli("--stage", "pull")
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", expire)

    assert result.exit_code == 0, result.output
    listings = [r for r in airtable.requests if r.method == "GET" and "/v0/app" in r.path]
    assert [r.status for r in listings].count(422) == 1  # the listing did start over
    pull = result.mapping("leads")["pull"]
    assert (pull["inserted"], pull["updated"], pull["unchanged"]) == (250, 0, 0)
    assert len(rows(db)) == 250
    assert _log(db, "inserted") == 250


def test_pull__a_record_failing_then_read_again_in_the_same_run_is_cleared(
    twenty: TwentyEmulator, db: sa.Engine, cli
) -> None:
    """A full sweep reads again the records edited while it runs: one the database refused on
    the first page, mended remotely meanwhile, goes in on a later page, and its failure is
    forgotten (not left dead-lettered for the runs that follow)."""
    execute(db, "ALTER TABLE rep_progressions ADD CONSTRAINT short_name CHECK (length(name) < 40)")
    bad = twenty.create({**progression_fields(999), "name": LONG_NAME}, updated_at=ago(10))["id"]
    seed_progressions(twenty, 250)

    mended: list[str] = []

    def mend(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        if not mended and sql.startswith("INSERT INTO rep_progressions"):  # the first page
            mended.append(sql)
            twenty.update(bad, {"name": "Mended"})

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", mend)
    try:
        result = cli("--mapping", M, "--full")
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", mend)

    assert [e["record"] for e in result.report["errors"]] == [bad]  # refused on the first page
    assert len(rows(db, M, "name = 'Mended'")) == 1 and len(rows(db, M)) == 251
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM reconciler.failures")).scalar() == 0
    again = cli("--mapping", M)
    assert again.exit_code == 0 and again.report["errors"] == [], again.output
