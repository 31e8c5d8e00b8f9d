"""Airtable's parameters in the forms its documentation gives (shared docs ``airtable-api.md``,
"Reading"): listings ask for ``returnFieldsByFieldId=true``, and refuse an answer keyed by name;
a listing whose URL would reach 16,000 characters goes as ``POST …/listRecords``.
(A 404 to a batch PATCH: ``test_airtable_deleted.py``; a 429 of any shape:
``test_airtable_limits.py``.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import requests
import sqlalchemy as sa

from reconciler.emulators.airtable import AirtableEmulator
from reconciler.remotes.airtable_http import MAX_URL_LENGTH, query_params, send, url_length
from tests.helpers import rows, seed_leads

Cli = Callable[..., Any]


def _listing_path(em: AirtableEmulator) -> str:
    return f"/v0/{em.base_id}/"


# -- returnFieldsByFieldId ---------------------------------------------------------------------


def test_listings__ask_for_field_ids_as_true_by_get_and_by_post(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    """The documented ``true`` in a query, JSON ``true`` in a listRecords body."""
    seed_leads(airtable, 2)

    assert cli().exit_code == 0

    gets = [r for r in airtable.requests if r.method == "GET" and r.path.count("/") == 3]
    assert gets and all(r.query["returnFieldsByFieldId"] == ["true"] for r in gets)
    table = airtable.table("Leads").id
    url = f"{airtable.url}/v0/{airtable.base_id}/{table}"
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {airtable.token}"
    long_formula = f"NOT('{'x' * MAX_URL_LENGTH}'='')"
    airtable.reset_log()
    for formula in ("TRUE()", long_formula):
        options = {"use_field_ids": True, "formula": formula}
        send(session, "GET", url, timeout=5, options=options, fallback=f"{url}/listRecords")
    session.close()
    get, post = airtable.requests
    assert get.method == "GET" and get.query["returnFieldsByFieldId"] == ["true"]
    assert post.path.endswith("/listRecords") and post.body["returnFieldsByFieldId"] is True


def test_listing_keyed_by_field_names__stops_the_mapping_and_inserts_nothing(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    """A server that ignores ``returnFieldsByFieldId`` answers fields by name: read by id they
    would all be empty, and the pull would write NULLs."""
    seed_leads(airtable, 2)
    by_name = {"records": airtable.records("Leads")}
    airtable.faults.raw(
        200,
        json.dumps(by_name),
        content_type="application/json",
        method="GET",
        path=_listing_path(airtable),
    )

    result = cli()

    assert result.exit_code == 3, result.output
    (error,) = result.report["errors"]
    assert "keyed by name" in error["message"] and "returnFieldsByFieldId" in error["message"]
    assert rows(db) == []


# -- the URL limit -----------------------------------------------------------------------------


def test_listing_url__of_16000_characters_goes_by_post_and_one_shorter_by_get(
    airtable: AirtableEmulator,
) -> None:
    """URLs must stay under 16,000 characters: one of exactly 16,000 goes as POST listRecords."""
    table = airtable.table("Leads").id
    url = f"{airtable.url}/v0/{airtable.base_id}/{table}"
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {airtable.token}"
    bare = url_length(session, url, query_params({"formula": "NOT(''='')"}))
    airtable.reset_log()
    for length in (15_999, 16_000):
        options = {"formula": f"NOT('{'x' * (length - bare)}'='')"}
        assert url_length(session, url, query_params(options)) == length
        send(session, "GET", url, timeout=5, options=options, fallback=f"{url}/listRecords")
    session.close()
    get, post = airtable.requests
    assert get.method == "GET" and get.status == 200
    assert post.method == "POST" and post.path.endswith("/listRecords") and post.status == 200
