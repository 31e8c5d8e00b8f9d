"""`find`: live Airtable records by natural key, grouped by key, one `OR(...)` of escaped
equalities per request with as many keys as fit in a URL; never one request per key."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from reconciler.config import load_settings
from reconciler.emulators.airtable import AirtableEmulator
from reconciler.model import LEADS
from reconciler.remotes.airtable import AirtableRemote
from reconciler.remotes.factory import build_remote
from tests.helpers import lead_fields, list_requests


@pytest.fixture
def remote(airtable: AirtableEmulator) -> Iterator[AirtableRemote]:
    """The leads mapping's remote, prepared, with the emulator's log emptied."""
    built = build_remote(LEADS, load_settings())
    assert isinstance(built, AirtableRemote)
    built.prepare(None)
    airtable.reset_log()
    yield built
    built.close()


def _lead(em: AirtableEmulator, **fields: object) -> str:
    return str(em.create("Leads", fields)["id"])


def test_find__groups_live_records_by_key_in_one_request(
    airtable: AirtableEmulator, remote: AirtableRemote
) -> None:
    ann = _lead(airtable, **{"Email": "ann@example.com", "First Name": "Ann"})
    twins = [_lead(airtable, Email="twin@example.com") for _ in range(2)]
    _lead(airtable, Email="other@example.com")

    found = remote.find(["email"], [("ann@example.com",), ("twin@example.com",), ("no@x.io",)])

    assert {key: sorted(r.id for r in records) for key, records in found.items()} == {
        ("ann@example.com",): [ann],
        ("twin@example.com",): sorted(twins),
        ("no@x.io",): [],
    }
    assert found[("ann@example.com",)][0].values["first_name"] == "Ann"
    assert list_requests(airtable) == 1


def test_find__text_is_escaped_and_compared_exactly(
    airtable: AirtableEmulator, remote: AirtableRemote
) -> None:
    tricky = "O'Brien \\ Sons') OR TRUE() OR ('"
    rid = _lead(airtable, Company=tricky)
    _lead(airtable, Company="o'brien \\ sons') or true() or ('")

    found = remote.find(["company"], [(tricky,), ("Acme",)])

    assert [r.id for r in found[(tricky,)]] == [rid] and found[("Acme",)] == []


def test_find__numbers_compare_as_numbers(
    airtable: AirtableEmulator, remote: AirtableRemote
) -> None:
    half = _lead(airtable, **{"ICP Score": 50.5, "SMS Sent Count": 3})
    whole = _lead(airtable, **{"ICP Score": 50, "SMS Sent Count": 3})
    _lead(airtable, **{"ICP Score": 1e-7})

    found = remote.find(["icp_score", "sms_sent_count"], [(50.5, 3), (50, 3), (1e-7, 0)])

    assert [r.id for r in found[(50.5, 3)]] == [half]
    assert [r.id for r in found[(50, 3)]] == [whole]
    assert found[(1e-7, 0)] == []  # its count is empty, not 0


def test_find__a_number_is_sent_as_a_number_not_as_text(
    airtable: AirtableEmulator, remote: AirtableRemote
) -> None:
    rid = _lead(airtable, **{"ICP Score": 50.5})

    found = remote.find(["icp_score"], [(50.5,)])

    assert [r.id for r in found[(50.5,)]] == [rid]
    (listing,) = airtable.requests
    assert listing.query["filterByFormula"] == ["{ICP Score}=50.5"]


def test_find__keys_with_an_empty_part_never_match_and_cost_nothing(
    airtable: AirtableEmulator, remote: AirtableRemote
) -> None:
    _lead(airtable, Email="ann@example.com")

    found = remote.find(["email", "company"], [("ann@example.com", None), ("", "Acme")])

    assert found == {} and airtable.requests == []


def test_find__many_keys_go_in_a_few_requests_each_under_the_url_limit(
    airtable: AirtableEmulator, remote: AirtableRemote
) -> None:
    emails = [f"lead.number.{i}@some-long-company-domain.example.com" for i in range(1500)]
    for i, email in enumerate(emails[:300]):
        airtable.create("Leads", {**lead_fields(i), "Email": email})

    found = remote.find(["email"], [(e,) for e in emails])

    assert sum(len(records) for records in found.values()) == 300
    assert all(len(found[(e,)]) == 1 for e in emails[:300])
    listings = [r for r in airtable.requests if r.method == "GET"]
    formulas = {r.query["filterByFormula"][0] for r in listings}
    assert len(formulas) <= 10  # about 150 keys a request, not one request per key
    assert len(listings) == len(formulas) + 2  # 300 matches: two chunks needed a second page
    for request in listings:
        assert len(request.path) + 1 + len(urlencode(request.query, doseq=True)) < 16_000
    assert not any(r.path.endswith("/listRecords") for r in airtable.requests)


def test_find__datetimes_compare_as_instants(
    airtable: AirtableEmulator, remote: AirtableRemote
) -> None:
    booked = _lead(airtable, **{"Booked At": "2026-11-19T09:30:00.250+01:00"})
    _lead(airtable, **{"Booked At": "2026-11-19T08:30:00.251Z"})

    found = remote.find(["booked_at"], [("2026-11-19T08:30:00.250Z",)])

    assert [r.id for r in found[("2026-11-19T08:30:00.250Z",)]] == [booked]
