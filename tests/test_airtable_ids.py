"""Airtable fields followed by id: resolved once from the meta API, kept a day, read again when
Airtable says it does not know a field; reads and writes by id, formulas by current name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from reconciler.emulators.airtable import AirtableEmulator
from tests.helpers import execute, list_requests, rows, seed_leads
from tests.processes import scalar

Cli = Callable[..., Any]
META = "/v0/meta/bases/"
TABLE = "/v0/app"  # every data request of the base (not the meta API)


def _kept_schema(db: sa.Engine) -> dict[str, Any]:
    value = scalar(db, "SELECT schema FROM reconciler.remote_state WHERE mapping = 'leads'")
    assert isinstance(value, dict)
    return value


def _age_kept_schema(db: sa.Engine, hours: int) -> None:
    """Pretend the kept schema was read ``hours`` ago."""
    execute(
        db,
        "UPDATE reconciler.remote_state SET schema = jsonb_set(schema, '{fetched_at}', "
        "to_jsonb(to_char((now() - make_interval(hours => :h)) AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))) WHERE mapping = 'leads'",
        h=hours,
    )


def _delete_field(em: AirtableEmulator, table: str, name: str) -> None:
    """Delete a field as a person would in Airtable (the emulator has no call for it)."""
    with em.lock:
        found = em.table(table)
        column = found.field(name)
        del found.columns[column.id]
        del found._by_name[name]


def test_fields_by_id__first_run_reads_the_schema_once_and_keeps_ids(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    seed_leads(airtable, 3)

    result = cli()

    assert result.exit_code == 0, result.output
    assert airtable.count("GET", META) == 1
    kept = _kept_schema(db)
    assert kept["table"]["id"] == airtable.table("Leads").id
    assert kept["fields"]["Notes"]["id"] == airtable.field_id("Leads", "Notes")
    assert kept["fields"]["lastModifiedTime"]["type"] == "lastModifiedTime"


def test_fields_by_id__a_run_with_a_young_kept_schema_spends_one_listing(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    """Nothing changed anywhere: one request in all, the listing."""
    seed_leads(airtable, 3)
    assert cli().exit_code == 0
    airtable.reset_log()

    result = cli()

    assert result.exit_code == 0, result.output
    assert len(airtable.requests) == 1 and list_requests(airtable) == 1
    assert result.mapping("leads")["api"]["requests"] == 1


def test_fields_by_id__a_kept_schema_older_than_a_day_costs_one_request_more(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    seed_leads(airtable, 3)
    assert cli().exit_code == 0
    _age_kept_schema(db, hours=25)
    airtable.reset_log()

    result = cli()

    assert result.exit_code == 0, result.output
    assert airtable.count("GET", META) == 1 and len(airtable.requests) == 2
    assert _kept_schema(db)["fetched_at"] > "2026"  # read again, and kept with its new time
    airtable.reset_log()
    assert cli().exit_code == 0 and airtable.count("GET", META) == 0


def test_fields_by_id__reads_ask_for_ids_and_writes_send_ids(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    seed_leads(airtable, 2)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'by id'")
    airtable.reset_log()

    assert cli().exit_code == 0

    listings = [r for r in airtable.requests if r.method == "GET"]
    assert len(listings) == 2  # the pull's window; the push's look at records changed since
    for listing in listings:
        assert listing.query["returnFieldsByFieldId"] == ["true"]
        assert set(listing.query["fields[]"]) == set(airtable.table("Leads").columns)
        assert "{lastModifiedTime}" in listing.query["filterByFormula"][0]
    (patch,) = [r for r in airtable.requests if r.method == "PATCH"]
    notes = airtable.field_id("Leads", "Notes")
    assert all(rec["fields"] == {notes: "by id"} for rec in patch.body["records"])
    assert set(patch.body) == {"records"}  # the documented keys: no returnFieldsByFieldId
    assert {r["fields"]["Notes"] for r in airtable.records("Leads")} == {"by id"}
    # The answer, keyed by name, is read: the modified time kept is the write's, not createdTime.
    kept = scalar(
        db,
        "SELECT json_object_agg(remote_id, to_char(remote_modified_at AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')) FROM reconciler.sync_state WHERE mapping = 'leads'",
    )
    modified = {r["id"]: r["fields"]["lastModifiedTime"] for r in airtable.records("Leads")}
    assert kept == modified
    assert all(r["createdTime"] != modified[r["id"]] for r in airtable.records("Leads"))


def test_rename__a_renamed_field_keeps_syncing_both_ways_at_no_cost(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    ids = seed_leads(airtable, 2)
    assert cli().exit_code == 0
    airtable.rename_field("Leads", "Notes", "Portal Notes")
    airtable.update("Leads", ids[0], {"Portal Notes": "from Airtable"})
    execute(db, "UPDATE leads SET notes = 'from Postgres' WHERE airtable_record_id = :r", r=ids[1])
    airtable.reset_log()

    result = cli()

    assert result.exit_code == 0, result.output
    assert airtable.count("GET", META) == 0  # the ids still answer: nothing to read again
    local = {r["airtable_record_id"]: r["notes"] for r in rows(db)}
    assert local == {ids[0]: "from Airtable", ids[1]: "from Postgres"}
    remote = {r["id"]: r["fields"].get("Portal Notes") for r in airtable.records("Leads")}
    assert remote == local


# The refusal of a formula naming a field that is gone, in Airtable's words and in others (the
# documented error type, INVALID_FILTER_BY_FORMULA, with a message no document fixes).
REFUSED_FORMULA = [
    None,
    {
        "error": {
            "type": "INVALID_FILTER_BY_FORMULA",
            "message": "Invalid formula: no field named 'lastModifiedTime'",
        }
    },
]


@pytest.mark.parametrize("refusal", REFUSED_FORMULA, ids=["airtable", "other-words"])
def test_rename__the_modified_field_renamed_is_followed_with_one_schema_read(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, refusal: dict[str, Any] | None
) -> None:
    """A formula cannot name a field by id: Airtable answers that the old name is unknown, the
    schema is read again once, and the listing starts over under the new name."""
    ids = seed_leads(airtable, 2)
    assert cli().exit_code == 0
    airtable.rename_field("Leads", "lastModifiedTime", "Modified")
    airtable.update("Leads", ids[0], {"Status": "Renamed"})
    airtable.reset_log()
    if refusal is not None:
        airtable.faults.fail(422, body=refusal, method="GET", path=TABLE)

    result = cli()

    assert result.exit_code == 0, result.output
    assert airtable.count("GET", META) == 1
    assert airtable.count(status=422) == 1 and list_requests(airtable) == 2
    assert rows(db, where=f"airtable_record_id = '{ids[0]}'")[0]["status"] == "Renamed"
    assert _kept_schema(db)["fields"]["lastModifiedTime"]["name"] == "Modified"
    airtable.reset_log()
    assert cli().exit_code == 0 and len(airtable.requests) == 1  # and it is kept


@pytest.mark.parametrize("stage", ["pull", "push"])
def test_deleted_field__stops_the_mapping_naming_the_field_and_the_fix(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, stage: str
) -> None:
    seed_leads(airtable, 2)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'pending'")
    _delete_field(airtable, "Leads", "Notes")
    airtable.reset_log()

    result = cli("--stage", stage)

    assert result.exit_code == 3, result.output
    assert airtable.count(status=422) == 1  # the listing (or the write) naming its id
    (error,) = result.report["errors"]
    assert error["mapping"] == "leads"
    assert "has no field 'Notes'" in error["message"]
    assert "add the field back in Airtable" in error["message"]
    assert "\n" not in error["message"] and "Traceback" not in result.output
    assert airtable.count("GET", META) == 1  # read again once, not in a loop


def test_meta_forbidden__the_scope_needed_to_follow_fields_by_id_is_named(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    """A token without schema.bases:read (Airtable answers 403, as for a wrong base)."""
    seed_leads(airtable, 1)
    body = {"error": {"type": "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND", "message": "no"}}
    airtable.faults.fail(403, body=body, path=META)

    result = cli()

    assert result.exit_code == 3, result.output
    (error,) = result.report["errors"]
    assert "schema.bases:read" in error["message"] and "follow fields by id" in error["message"]
    assert "wrong base" in error["message"]
    assert list_requests(airtable) == 0 and rows(db) == []


def test_check__a_rename_since_the_last_run_is_a_passing_line(
    airtable: AirtableEmulator, twenty: Any, db: sa.Engine, cli: Cli
) -> None:
    seed_leads(airtable, 1)
    assert cli().exit_code == 0
    airtable.rename_field("Leads", "Notes", "Portal Notes")

    result = cli("check")

    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.stdout.splitlines() if "airtable field 'Notes' of leads" in x]
    assert line.startswith("✓")
    assert (
        "'Notes' is now named 'Portal Notes' (followed by its id; update the config when "
        "convenient)" in line
    )


def test_check__a_rename_no_run_has_seen_is_a_missing_field(
    airtable: AirtableEmulator, database_url: str, cli: Cli
) -> None:
    airtable.rename_field("Leads", "Notes", "Portal Notes")

    result = cli("check")

    assert result.exit_code == 2, result.output
    assert "missing field(s) 'Notes'" in result.stdout


def test_check__an_unreachable_airtable_names_the_address_and_the_network(
    airtable: AirtableEmulator, database_url: str, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRTABLE_API_URL", "http://127.0.0.1:9")

    result = cli("check")

    assert result.exit_code == 3, result.output
    (line,) = [x for x in result.stdout.splitlines() if "airtable reachable" in x]
    assert line.startswith("✗ airtable reachable and token accepted: cannot reach "), line
    assert "http://127.0.0.1:9" in line
    assert "hint: check AIRTABLE_API_URL and the network" in line
