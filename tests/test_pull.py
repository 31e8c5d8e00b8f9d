"""Stage 1 page by page: a row the database refuses fails alone, whether it is inserted or
updated; values are stored as they always were; a listing that breaks mid-way keeps what was
applied and leaves no thread behind; records a listing reads again are applied once; an
application's edit made while a page is applied waits for it and is kept."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from reconciler.emulators.airtable import AirtableEmulator
from reconciler.emulators.twenty import TwentyEmulator
from reconciler.model import parse_datetime
from tests.helpers import (
    ago,
    edit_while_writing,
    execute,
    lead_fields,
    rows,
    seed_leads,
    seed_progressions,
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
    twenty.update(rep, {"badges": ""})

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
