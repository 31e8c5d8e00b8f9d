"""Airtable's answers and parameters in the forms its documentation gives (shared docs
``airtable-api.md``, contract "Deleted stays deleted" and "Rate limits"): listings ask for
``returnFieldsByFieldId=true`` and refuse an answer keyed by name, a 404 to a batch PATCH is a
deleted record, and every 429 holds the base for 30 seconds."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from reconciler.config import AirtableTarget, Secret
from reconciler.emulators.airtable import AirtableEmulator
from reconciler.model import LEADS
from reconciler.remotes.airtable import AirtableRemote
from reconciler.remotes.airtable_http import MAX_URL_LENGTH, send
from reconciler.remotes.base import Pacer, RetryPolicy
from tests.helpers import execute, list_requests, rows, seed_leads

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


# -- a 404 to a batch PATCH --------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"type": "MODEL_ID_NOT_FOUND", "message": "Could not find what you asked for"}},
        {"error": "NOT_FOUND"},
    ],
    ids=["typed", "bare"],
)
def test_deleted_record_in_a_batch_answered_404__marked_gone_and_the_nine_others_written(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, body: dict[str, Any]
) -> None:
    ids = seed_leads(airtable, 10)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'call back ' || id")
    gone = ids[3]
    airtable.delete("Leads", gone)
    airtable.faults.fail(404, body=body, method="PATCH")
    airtable.reset_log()

    result = cli()

    assert result.exit_code == 0, result.output
    leads = result.mapping("leads")
    assert leads["push"]["updated"] == 9 and leads["push"]["failed"] == 0
    assert leads["remote_deleted"] == 1 and leads["remote_deleted_ids"] == [gone]
    marked = rows(db, where="remote_deleted_at IS NOT NULL")
    assert [r["airtable_record_id"] for r in marked] == [gone]
    local = {r["airtable_record_id"]: r["notes"] for r in rows(db)}
    written = {r["id"]: r["fields"].get("Notes") for r in airtable.records("Leads")}
    assert written == {rid: local[rid] for rid in ids if rid != gone}
    assert airtable.get("Leads", gone) is None
    # The refused PATCH, one listing of its ids to find the deleted one, the batch without it.
    patches = [r for r in airtable.requests if r.method == "PATCH"]
    assert [len(p.body["records"]) for p in patches] == [10, 9]
    assert list_requests(airtable) == 3


# -- 429 -----------------------------------------------------------------------------------------


class SimulatedTime:
    """A clock that moves only when something sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize(
    ("body", "content_type", "headers"),
    [
        ("", "text/plain", {}),
        (
            json.dumps({"errors": [{"error": "TOO_MANY_REQUESTS", "message": "Slow down"}]}),
            "application/json",
            {},
        ),
        ("<html><title>429 Too Many Requests</title></html>", "text/html", {"Retry-After": "5"}),
    ],
    ids=["empty", "another-type", "proxy-retry-after-5"],
)
def test_any_429__nothing_more_is_sent_to_the_base_for_30_seconds(
    airtable: AirtableEmulator, body: str, content_type: str, headers: dict[str, str]
) -> None:
    """Not only Airtable's ``RATE_LIMIT_REACHED``: whatever a 429 carries, the base is held."""
    seed_leads(airtable, 250)  # 3 pages
    time = SimulatedTime()
    target = AirtableTarget(
        Secret(airtable.token), "AIRTABLE_TOKEN", airtable.base_id, airtable.url, 5.0
    )
    remote = AirtableRemote(
        LEADS,
        target,
        RetryPolicy(sleep=time.sleep),
        pacer=Pacer.rate(5.0, clock=time.clock, sleep=time.sleep),
    )
    answers: list[tuple[float, int]] = []
    remote._api.session.hooks["response"].append(
        lambda response, *args, **kwargs: answers.append((time.now, response.status_code))
    )
    remote.prepare(None)
    airtable.faults.raw(
        429,
        body,
        content_type=content_type,
        headers=headers,
        method="GET",
        path=_listing_path(airtable),
    )

    records = [record for page in remote.list_changed(None) for record in page]
    remote.close()

    assert len({r.id for r in records}) == 250
    assert airtable.count(status=429) == 1 and remote.stats.throttled == 1
    refused_at = next(at for at, status in answers if status == 429)
    after = [at for at, status in answers if at > refused_at]
    assert after and min(after) >= refused_at + 30.0
