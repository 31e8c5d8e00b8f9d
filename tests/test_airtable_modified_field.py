"""The Airtable modified field must be a "Last modified time" with a date-and-time result that
watches every pulled field; otherwise runs refuse the mapping (exit 3) and `reconcile check`
fails (exit 2), naming the field, what is wrong and the fix. No value of it crashes a run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from reconciler.emulators.airtable import AirtableEmulator
from reconciler.emulators.airtable.schema import time_result
from tests.helpers import (
    ago,
    events,
    events_config,
    events_table,
    list_requests,
    rows,
    seed_leads,
)

Cli = Callable[..., Any]

EVENTS_TABLE = events_table("note text")
EVENTS_CONFIG = events_config('{ remote = "Note", column = "note", direction = "push" }')


def _events(em: AirtableEmulator, db: sa.Engine, tmp_path: Path, modified: dict[str, Any]) -> Path:
    """An Events table whose modified field has ``modified`` options; returns the config."""
    remote = {
        "Note": "singleLineText",
        "lastModifiedTime": {"type": "lastModifiedTime", "options": modified},
    }
    return events(em, db, tmp_path, remote, EVENTS_TABLE, EVENTS_CONFIG)


def _reconfigure_leads_modified(em: AirtableEmulator, **options: Any) -> None:
    """Change the Leads modified field's settings as a person would in Airtable's UI (the
    emulator has no call for it)."""
    with em.lock:
        em.table("Leads").field("lastModifiedTime").options.update(options)


def _errors(result: Any, mapping: str) -> list[str]:
    return [e["message"] for e in result.report["errors"] if e["mapping"] == mapping]


def test_modified_field__date_only_refuses_that_mapping_alone(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, tmp_path: Path
) -> None:
    config = _events(airtable, db, tmp_path, {"result": "date"})
    airtable.create("Events", {"Title": "Launch"}, modified_at=ago(5))
    seed_leads(airtable, 2)

    result = cli("--config", str(config))

    assert result.exit_code == 3, result.output
    (message,) = _errors(result, "events")
    assert "'lastModifiedTime' shows a date without a time" in message
    assert "set its formatting to include a time" in message
    assert result.mapping("leads")["pull"]["inserted"] == 2  # the other mapping went on
    assert rows(db, "events") == []
    assert not any("Events" in r.path for r in airtable.requests)  # not even listed


def test_modified_field__watching_some_fields_refuses_naming_the_unwatched_ones(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    seed_leads(airtable, 2)
    _reconfigure_leads_modified(airtable, referencedFieldIds=[airtable.field_id("Leads", "Notes")])

    result = cli()

    assert result.exit_code == 3, result.output
    (message,) = _errors(result, "leads")
    assert "'lastModifiedTime' watches only some fields, not 'First Name', 'Last Name'" in message
    assert "and 16 more: their edits would be missed" in message  # 21 unwatched
    assert "make it watch all fields" in message and "\n" not in message
    assert list_requests(airtable) == 0 and rows(db) == []


def test_modified_field__watching_every_pulled_field_is_enough(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, tmp_path: Path
) -> None:
    """A push-only field need not be watched: its edits are never pulled."""
    config = _events(airtable, db, tmp_path, {"referencedFieldIds": ["Title"]})
    airtable.create("Events", {"Title": "Launch"}, modified_at=ago(5))

    result = cli("--config", str(config), "--mapping", "events")

    assert result.exit_code == 0, result.output
    assert [r["title"] for r in rows(db, "events")] == ["Launch"]


def test_modified_field__a_date_only_value_in_a_record_never_crashes_a_run(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    """The field was fine when the kept schema was read; its formatting changed since: the
    value "2026-11-20" stops the mapping with the fix, not the run with a traceback. (A window
    compares the date as its midnight, so only a sweep, or a read by id, meets such a value
    before the kept schema is a day old and is read again.)"""
    seed_leads(airtable, 2)
    assert cli().exit_code == 0
    _reconfigure_leads_modified(airtable, result=time_result("date"))

    result = cli("--full")

    assert result.exit_code == 3, result.output
    (message,) = _errors(result, "leads")
    assert "'lastModifiedTime' holds a date without a time" in message
    assert "set its formatting to include a time" in message
    assert "internal error" not in result.output and "Traceback" not in result.output


def test_modified_field__a_schema_silent_on_what_it_shows_runs_and_check_says_so(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, tmp_path: Path
) -> None:
    """The field model makes a last modified time's ``result`` optional (pyairtable 3.5:
    ``LastModifiedTimeFieldOptions.result`` may be None). A schema without it says nothing
    wrong: the mapping runs (a value without a time would still stop it, as above), and
    `check` passes, saying what it could not tell."""
    config = _events(airtable, db, tmp_path, {"result": None})
    airtable.create("Events", {"Title": "Launch"}, modified_at=ago(5))

    result = cli("--config", str(config), "--mapping", "events")
    checked = cli("check", "--config", str(config))

    assert result.exit_code == 0, result.output
    assert [r["title"] for r in rows(db, "events")] == ["Launch"]
    (line,) = [x for x in checked.stdout.splitlines() if "modified field of events" in x]
    assert line.startswith("✓"), checked.output
    assert "does not say whether it shows a time" in line


def test_modified_field__an_unreadable_value_fails_its_record_alone(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    seed_leads(airtable, 1)
    assert cli().exit_code == 0
    odd = {"id": "recODDRECORD000001", "createdTime": "yesterday-ish", "fields": {}}
    airtable.faults.fail(200, body={"records": [odd]}, method="GET", path="/v0/app")

    result = cli()

    assert result.exit_code == 1, result.output
    (error,) = result.report["errors"]
    assert error["record"] == "recODDRECORD000001"
    assert "cannot read 'yesterday-ish' as a modified time" in error["message"]


def test_check__modified_field_problems_fail_naming_each_and_its_fix(
    airtable: AirtableEmulator, twenty: Any, database_url: str, cli: Cli
) -> None:
    _reconfigure_leads_modified(
        airtable,
        result=time_result("date"),
        referencedFieldIds=[airtable.field_id("Leads", "Status")],
    )

    result = cli("check")

    assert result.exit_code == 2, result.output
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("✗")]
    assert line.startswith("✗ airtable modified field of leads (lastModifiedTime):")
    assert "shows a date without a time" in line and "watches only some fields" in line
    assert "set its formatting to include a time" in line and "make it watch all fields" in line


def test_modified_field__fixed_in_airtable_is_trusted_again_by_the_next_run(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    """A refused schema is read again on the next run (not kept for a day)."""
    seed_leads(airtable, 1)
    _reconfigure_leads_modified(airtable, result=time_result("date"))
    assert cli().exit_code == 3
    _reconfigure_leads_modified(airtable, result=time_result("dateTime"))

    result = cli()

    assert result.exit_code == 0, result.output
    assert len(rows(db)) == 1
