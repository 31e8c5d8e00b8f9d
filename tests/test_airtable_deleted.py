"""A batch PATCH naming a record deleted in Airtable answers 422 ROW_DOES_NOT_EXIST and applies
nothing: the deleted record ends `gone` (marked, logged, never recreated or retried), and the
rest of the batch is written for one request more (several deleted records: three more)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from reconciler.emulators.airtable import AirtableEmulator
from tests.helpers import execute, list_requests, rows, seed_leads

Cli = Callable[..., Any]


def _patches(em: AirtableEmulator) -> list[Any]:
    return [r for r in em.requests if r.method == "PATCH"]


def _notes(em: AirtableEmulator) -> dict[str, Any]:
    return {r["id"]: r["fields"].get("Notes") for r in em.records("Leads")}


def _log(cli: Cli, *args: str) -> list[dict[str, Any]]:
    result = cli("log", "--json", *args)
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout))


def _edit_all_and_delete(
    em: AirtableEmulator, db: sa.Engine, cli: Cli, deleted: int
) -> tuple[list[str], list[str]]:
    """Ten synced leads, each edited locally, ``deleted`` of them deleted in Airtable."""
    ids = seed_leads(em, 10)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'call back ' || id")
    gone = ids[3 : 3 + deleted]
    for rid in gone:
        em.delete("Leads", rid)
    em.reset_log()
    return ids, gone


# How Airtable refuses a batch PATCH naming a deleted record: 422 ROW_DOES_NOT_EXIST, what the
# service was found to answer (the emulator's own answer, None here), or a 404 with the API's
# JSON error body ("404 record gone" among the error answers of the shared docs
# ``airtable-api.md``), which names no record, so the batch's ids are listed once.
REFUSALS = {
    "422": None,
    "404-typed": {"error": {"type": "MODEL_ID_NOT_FOUND", "message": "Could not find it"}},
    "404-bare": {"error": "NOT_FOUND"},
}


@pytest.mark.parametrize("refusal", list(REFUSALS))
def test_deleted_record_in_a_batch__marked_gone_and_the_nine_others_written(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, refusal: str
) -> None:
    ids, (gone,) = _edit_all_and_delete(airtable, db, cli, deleted=1)
    body = REFUSALS[refusal]
    if body is not None:
        airtable.faults.fail(404, body=body, method="PATCH")

    result = cli()

    assert result.exit_code == 0, result.output
    leads = result.mapping("leads")
    assert leads["push"]["updated"] == 9 and leads["push"]["failed"] == 0
    assert leads["remote_deleted"] == 1 and leads["remote_deleted_ids"] == [gone]
    marked = rows(db, where="remote_deleted_at IS NOT NULL")
    assert [r["airtable_record_id"] for r in marked] == [gone]
    (entry,) = _log(cli, "--remote-id", gone, "--run", result.report["run_id"])
    assert (entry["stage"], entry["action"]) == ("push", "remote_deleted")
    local = {r["airtable_record_id"]: r["notes"] for r in rows(db)}
    assert _notes(airtable) == {rid: local[rid] for rid in ids if rid != gone}
    assert airtable.get("Leads", gone) is None  # never recreated
    # Cost: the refused PATCH, then the batch again without it; no retry. The two listings are
    # the pull's window and the push's look at records changed since; a 404, which names no
    # record, costs one listing of the batch's ids more.
    patches = _patches(airtable)
    assert [len(p.body["records"]) for p in patches] == [10, 9]
    read = 0 if body is None else 1
    assert list_requests(airtable) == 2 + read and leads["api"]["retries"] == 0
    assert leads["api"]["requests"] == 4 + read


def test_several_deleted_records_in_a_batch__found_with_one_listing(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    _, gone = _edit_all_and_delete(airtable, db, cli, deleted=3)

    result = cli()

    assert result.exit_code == 0, result.output
    leads = result.mapping("leads")
    assert leads["push"]["updated"] == 7 and leads["remote_deleted"] == 3
    assert sorted(leads["remote_deleted_ids"]) == sorted(gone)
    assert sorted(
        r["airtable_record_id"] for r in rows(db, where="remote_deleted_at IS NOT NULL")
    ) == sorted(gone)
    # The first refusal names one record; the second sends one listing of the batch's ids
    # (besides the pull's window and the push's look at records changed since).
    assert [len(p.body["records"]) for p in _patches(airtable)] == [10, 9, 7]
    assert list_requests(airtable) == 3 and leads["api"]["requests"] == 6


def test_deleted_record__is_not_sent_again(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    _, (gone,) = _edit_all_and_delete(airtable, db, cli, deleted=1)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'still local' WHERE airtable_record_id = :r", r=gone)
    airtable.reset_log()

    result = cli()

    assert result.exit_code == 0, result.output
    assert _patches(airtable) == [] and result.report["errors"] == []


def test_a_link_to_a_deleted_record_is_not_taken_for_the_record_itself(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    """ROW_DOES_NOT_EXIST naming an id that is not one of the batch's records (a linked
    record, say) is a refusal of that record's content, not a deletion."""
    ids = seed_leads(airtable, 2)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'linked'")
    body = {
        "error": {
            "type": "ROW_DOES_NOT_EXIST",
            "message": "Record ID recLINKEDRECORD001 does not exist in this table",
        }
    }
    airtable.faults.fail(422, times=3, body=body, method="PATCH")

    result = cli()

    assert result.exit_code == 1, result.output
    assert result.mapping("leads")["remote_deleted"] == 0
    assert rows(db, where="remote_deleted_at IS NOT NULL") == []
    assert result.mapping("leads")["push"]["updated"] == 0
    assert sorted(e["record"] for e in result.report["errors"]) == sorted(ids)
    assert all("ROW_DOES_NOT_EXIST" in e["message"] for e in result.report["errors"])
    assert all(airtable.get("Leads", rid) is not None for rid in ids)


def test_a_refusal_of_another_type_is_not_taken_for_a_deleted_record(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    """Only ROW_DOES_NOT_EXIST says a record is gone: another 422 (a value a field refuses)
    fails its record alone, and no listing is spent looking for deleted records."""
    refused, written = seed_leads(airtable, 2)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'call back ' || id")
    airtable.reset_log()
    body = {
        "error": {
            "type": "INVALID_VALUE_FOR_COLUMN",
            "message": 'Field "Notes" cannot accept the provided value',
        }
    }
    airtable.faults.fail(422, times=2, body=body, method="PATCH", containing=refused)

    result = cli()

    assert result.exit_code == 1, result.output
    leads = result.mapping("leads")
    assert leads["push"]["updated"] == 1 and leads["remote_deleted"] == 0
    assert rows(db, where="remote_deleted_at IS NOT NULL") == []
    (error,) = result.report["errors"]
    assert error["record"] == refused and "INVALID_VALUE_FOR_COLUMN" in error["message"]
    local = {r["airtable_record_id"]: r["notes"] for r in rows(db)}
    assert _notes(airtable)[written] == local[written]
    assert _notes(airtable)[refused] != local[refused]
    assert [len(p.body["records"]) for p in _patches(airtable)] == [2, 1, 1]
    assert list_requests(airtable) == 2  # the pull's window and the push's look: no more
