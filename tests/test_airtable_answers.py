"""Any answer a real Airtable (or a proxy in front of it) may give ends in a per-record or
per-mapping error with a one-line message: never a traceback, nothing lost."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from reconciler.emulators.airtable import AirtableEmulator
from tests.helpers import execute, list_requests, rows, seed_leads

Cli = Callable[..., Any]
TABLE = "/v0/app"  # every data request of the base (not the meta API)
META = "/v0/meta/bases/"
BAD_GATEWAY = (
    "<html><head><title>502 Bad Gateway</title></head><body>\n<h1>nginx</h1></body></html>"
)


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries that run out in well under a second."""
    monkeypatch.setenv("RECONCILER_RETRY_BASE_SECONDS", "0.001")


def _one_error(result: Any) -> str:
    (error,) = result.report["errors"]
    message = str(error["message"])
    assert "\n" not in message and "Traceback" not in result.output, result.output
    assert "internal error" not in message
    return message


def _notes(em: AirtableEmulator) -> set[Any]:
    return {r["fields"].get("Notes") for r in em.records("Leads")}


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (200, "<html>Please sign in</html>", "text/html"),
        (200, '{"records": [', "application/json"),
        (200, "[]", "application/json"),
        (200, '{"records": "none"}', "application/json"),
        (502, BAD_GATEWAY, "text/html"),
    ],
)
def test_listing__an_odd_answer_once_is_retried(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, status: int, body: str, content_type: str
) -> None:
    seed_leads(airtable, 3)
    airtable.faults.raw(status, body, content_type=content_type, method="GET", path=TABLE)

    result = cli()

    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["api"]["retries"] == 1 and len(rows(db)) == 3


@pytest.mark.parametrize(
    ("status", "body", "content_type", "said"),
    [
        (200, "<html>Please sign in</html>", "text/html", "a body that is not JSON (an HTML page"),
        (200, '{"records": "none"}', "application/json", "a listing of the wrong shape"),
        (200, "[1, 2]", "application/json", "with list JSON, not an object"),
        (502, BAD_GATEWAY, "text/html", "502 (an HTML page: 502 Bad Gateway)"),
    ],
)
def test_listing__an_odd_answer_that_persists_stops_the_mapping(
    airtable: AirtableEmulator,
    db: sa.Engine,
    cli: Cli,
    quick_retries: None,
    status: int,
    body: str,
    content_type: str,
    said: str,
) -> None:
    seed_leads(airtable, 3)
    airtable.faults.raw(status, body, 1000, content_type=content_type, path=TABLE)

    result = cli()

    assert result.exit_code == 3, result.output
    message = _one_error(result)
    assert "Airtable kept failing after retries" in message and said in message
    airtable.faults.clear()
    assert cli().exit_code == 0 and len(rows(db)) == 3  # nothing lost: the next run reads it


def test_a_web_page_at_the_address__the_mapping_stops_after_a_few_attempts(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    """A web site at AIRTABLE_API_URL answers every path with its page (200, HTML): as the
    run's first answer that is the API not reached, tried as often as a server that does not
    answer (three times), not for the two minutes a failing API is given."""
    seed_leads(airtable, 3)
    page = "<!doctype html><html><head><title>Sign in</title></head><body></body></html>"
    airtable.faults.raw(200, page, 1000, content_type="text/html")

    result = cli("--mapping", "leads")

    assert result.exit_code == 3, result.output
    message = _one_error(result)
    assert "Airtable could not be reached (3 attempts)" in message, message
    assert "an HTML page: Sign in" in message and "check AIRTABLE_API_URL" in message
    assert result.mapping("leads")["api"]["requests"] == 3
    airtable.faults.clear()
    assert cli().exit_code == 0 and len(rows(db)) == 3


def test_listing__an_offset_that_is_a_number_is_sent_back_as_text(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    """The docs say only to send the ``offset`` back: Airtable's is a text, a server's may be a
    number (0 included); either pages on."""
    first, second = "rec" + "A" * 14, "rec" + "B" * 14
    for record, offset in ((first, 0), (second, None)):
        page = {
            "records": [{"id": record, "createdTime": "2026-11-20T10:00:00.000Z", "fields": {}}]
        }
        body = json.dumps({**page, **({"offset": offset} if offset is not None else {})})
        airtable.faults.raw(200, body, content_type="application/json", method="GET", path=TABLE)

    result = cli("--stage", "pull")

    assert result.exit_code == 0, result.output
    assert {r["airtable_record_id"] for r in rows(db)} == {first, second}
    listings = [r for r in airtable.requests if r.path.startswith(TABLE)]
    assert [r.query.get("offset") for r in listings] == [None, ["0"]]


def test_listing__an_empty_offset_ends_it(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    """An ``offset`` of "" names no next page: the listing ends, and does not start over."""
    seed_leads(airtable, 2)
    record = "rec" + "A" * 14
    page = {
        "records": [{"id": record, "createdTime": "2026-11-20T10:00:00.000Z", "fields": {}}],
        "offset": "",
    }
    airtable.faults.raw(
        200, json.dumps(page), content_type="application/json", method="GET", path=TABLE
    )

    result = cli("--stage", "pull")

    assert result.exit_code == 0, result.output
    assert [r["airtable_record_id"] for r in rows(db)] == [record]
    assert len([r for r in airtable.requests if r.path.startswith(TABLE)]) == 1


def test_connection_cut_mid_body__retried_on_reads_and_writes(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    """``ChunkedEncodingError``: the answer's body stops halfway (the write stood)."""
    seed_leads(airtable, 3)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'through a cut'")
    airtable.faults.cut(method="GET", path=TABLE)
    airtable.faults.cut(method="PATCH")

    result = cli()

    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["api"]["retries"] == 2
    assert _notes(airtable) == {"through a cut"}


def test_connection_cut_on_every_write__exit_3_and_the_next_run_sends_it(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, quick_retries: None
) -> None:
    seed_leads(airtable, 2)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'after the outage'")
    airtable.faults.cut(1000, method="PATCH")

    failed = cli()

    assert failed.exit_code == 3, failed.output
    assert "connection problem: ChunkedEncodingError" in _one_error(failed)
    airtable.faults.clear()
    assert cli().exit_code == 0 and _notes(airtable) == {"after the outage"}


def test_redirect__is_not_followed_and_names_airtable_api_url(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    seed_leads(airtable, 1)
    login = "https://sso.example.com/login?session=secret-session-token"
    airtable.faults.raw(302, "", 1000, headers={"Location": login}, path=TABLE)

    result = cli()

    assert result.exit_code == 3, result.output
    message = _one_error(result)
    assert "redirected to https://sso.example.com/login" in message
    assert "check AIRTABLE_API_URL" in message and "secret-session-token" not in message
    assert list_requests(airtable) == 1 and result.mapping("leads")["api"]["retries"] == 0


def test_wrong_api_url__a_bare_not_found_names_airtable_api_url(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown route answers 404 with the bare JSON string "NOT_FOUND"."""
    airtable.faults.fail(404, body="NOT_FOUND", path=TABLE)
    seed_leads(airtable, 1)

    result = cli()

    assert result.exit_code == 3, result.output
    message = _one_error(result)
    assert "Airtable answered 404 NOT_FOUND" in message and "AIRTABLE_API_URL" in message


def test_413__splits_the_batch_and_a_record_too_large_fails_alone(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    ids = seed_leads(airtable, 2)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'note ' || id")
    too_large = '{"error": {"type": "REQUEST_TOO_LARGE", "message": "Request body is too large"}}'
    # The batch of two, then the first record alone, are too large; the second goes through.
    airtable.faults.raw(413, too_large, 2, content_type="application/json", method="PATCH")

    result = cli()

    assert result.exit_code == 1, result.output
    assert result.mapping("leads")["push"]["updated"] == 1
    assert "413" in _one_error(result) and airtable.count("PATCH") == 3
    (refused,) = [e["record"] for e in result.report["errors"]]
    (written,) = set(ids) - {refused}
    remote = {r["id"]: r["fields"].get("Notes") for r in airtable.records("Leads")}
    local = {r["airtable_record_id"]: r["notes"] for r in rows(db)}
    assert remote[refused] is None and remote[written] == local[written]


def test_413__a_batch_too_large_is_written_in_halves(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    seed_leads(airtable, 10)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'halved'")
    airtable.faults.raw(413, "Request Entity Too Large", method="PATCH", content_type="text/plain")

    result = cli()

    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["push"]["updated"] == 10
    assert [len(r.body["records"]) for r in airtable.requests if r.method == "PATCH"] == [10, 5, 5]


def test_unknown_field_type__a_mapped_field_of_it_stops_the_mapping_naming_it(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    """New field types appear in Airtable; one the tool cannot read as text is a mismatch."""
    url = f"{airtable.url}{META}{airtable.base_id}/tables"
    meta = requests.get(url, headers={"Authorization": f"Bearer {airtable.token}"}, timeout=5)
    body = meta.json()
    for field in body["tables"][0]["fields"]:
        if field["name"] == "Status":
            field["type"], field["options"] = "agentStatus", {"agent": "fldX"}
    airtable.faults.fail(200, body=body, path=META)
    seed_leads(airtable, 1)

    result = cli()

    assert result.exit_code == 3, result.output
    assert "'Status' is a agentStatus field but its kind is text" in _one_error(result)


def test_unexpected_value_shape__fails_its_record_alone(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    seed_leads(airtable, 2)
    odd = airtable.create("Leads", {"Company": {"name": "Acme"}}, validate=False)

    result = cli()

    assert result.exit_code == 1, result.output
    message = _one_error(result)
    assert result.report["errors"][0]["record"] == odd["id"] and "Company" in message
    assert len(rows(db)) == 2


def test_token_refused__names_the_variable(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRTABLE_TOKEN", "not-the-token")

    result = cli()

    assert result.exit_code == 3, result.output
    message = _one_error(result)
    assert "refused the token (401" in message and "check AIRTABLE_TOKEN" in message
    assert "not-the-token" not in result.output


def test_write_forbidden__names_the_write_scope_and_loses_nothing(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    """A token that may read but not write: 403 on the PATCH stops the mapping, not a record."""
    seed_leads(airtable, 2)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'needs write scope'")
    denied = {"error": {"type": "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND", "message": "denied"}}
    airtable.faults.fail(403, body=denied, method="PATCH")

    result = cli()

    assert result.exit_code == 3, result.output
    message = _one_error(result)
    assert "403" in message and "data.records:write" in message
    assert result.mapping("leads")["push"]["failed"] == 0
    assert cli().exit_code == 0 and _notes(airtable) == {"needs write scope"}


def test_expired_offset__the_listing_starts_over_and_reads_everything(
    airtable: AirtableEmulator,
) -> None:
    """Airtable's offset is a server-side iterator that expires (422
    LIST_RECORDS_ITERATOR_NOT_AVAILABLE): the listing starts over from its first page."""
    from reconciler.config import load_settings
    from reconciler.model import LEADS
    from reconciler.remotes.factory import build_remote

    seed_leads(airtable, 250)
    remote = build_remote(LEADS, load_settings())
    pages = remote.list_changed(None)
    first = next(pages)
    gone = {"type": "LIST_RECORDS_ITERATOR_NOT_AVAILABLE", "message": "expired"}
    airtable.faults.fail(422, body={"error": gone}, method="GET", path=TABLE)

    rest = [record for page in pages for record in page]
    remote.close()

    assert len(first) == 100 and len(rest) == 250  # the first page again, then the rest
    assert {r.id for r in first + rest} == {r["id"] for r in airtable.records("Leads")}


def test_expired_offset__a_listing_that_keeps_expiring_stops_after_three_restarts(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    """Every second page answers 422 LIST_RECORDS_ITERATOR_NOT_AVAILABLE: the listing starts
    over three times, then the mapping stops instead of reading its first page forever."""
    record = {"id": "rec" + "A" * 14, "createdTime": "2026-11-20T10:00:00.000Z", "fields": {}}
    first = json.dumps({"records": [record], "offset": "itrEXPIRED0000000/" + record["id"]})
    gone = {"error": {"type": "LIST_RECORDS_ITERATOR_NOT_AVAILABLE", "message": "expired"}}
    for _ in range(10):  # more than the bound: an unbounded listing would read on past them
        airtable.faults.raw(200, first, content_type="application/json", method="GET", path=TABLE)
        airtable.faults.fail(422, body=gone, method="GET", path=TABLE)

    result = cli("--stage", "pull")

    assert result.exit_code == 3, result.output
    assert "LIST_RECORDS_ITERATOR_NOT_AVAILABLE" in _one_error(result)
    listings = [r for r in airtable.requests if r.path.startswith(TABLE)]
    assert [r.query.get("offset") is None for r in listings] == [True, False] * 4
