"""The shared emulator plumbing: the Date header follows the emulator's clock, and the faults
that real servers and proxies produce besides JSON errors."""

from __future__ import annotations

import email.utils
import gc
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import requests

from reconciler.emulators.airtable import AirtableEmulator
from reconciler.emulators.base import collection_paused
from reconciler.emulators.limits import TokenBucketLimiter

HEADERS = {"Authorization": "Bearer test-token"}


@pytest.fixture
def em() -> Iterator[AirtableEmulator]:
    server = AirtableEmulator(rate_limit=0)
    server.start()
    yield server
    server.stop()


def _leads_url(em: AirtableEmulator) -> str:
    return f"{em.url}/v0/{em.base_id}/Leads"


def test_date_header__follows_the_emulator_clock_skew(em: AirtableEmulator) -> None:
    em.clock.skew = timedelta(minutes=-25)
    response = requests.get(_leads_url(em), headers=HEADERS, timeout=5)
    sent = email.utils.parsedate_to_datetime(response.headers["Date"])
    expected = datetime.now(UTC) - timedelta(minutes=25)
    assert abs((sent - expected).total_seconds()) < 5


def test_date_header__is_sent_on_errors_too(em: AirtableEmulator) -> None:
    response = requests.get(_leads_url(em), timeout=5)  # no token: 401
    assert response.status_code == 401
    assert "Date" in response.headers


def test_raw_fault__sends_an_html_page_as_is(em: AirtableEmulator) -> None:
    em.faults.raw(502, "<html><body>Bad Gateway</body></html>", method="GET")
    response = requests.get(_leads_url(em), headers=HEADERS, timeout=5)
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text.startswith("<html>")
    with pytest.raises(ValueError):
        response.json()
    assert requests.get(_leads_url(em), headers=HEADERS, timeout=5).status_code == 200


def test_raw_fault__redirect_carries_its_location(em: AirtableEmulator) -> None:
    em.faults.raw(302, "", headers={"Location": "https://login.example.com/"}, method="GET")
    response = httpx.get(_leads_url(em), headers=HEADERS)
    assert response.status_code == 302
    assert response.headers["Location"] == "https://login.example.com/"


def test_status_fault__with_a_parameter_hits_only_requests_carrying_it(
    em: AirtableEmulator,
) -> None:
    em.faults.fail(400, times=3, param="pageSize")
    em.faults.fail(422, times=3, param="filterByFormula", param_text="RECORD_ID")
    plain = httpx.get(_leads_url(em), headers=HEADERS)
    carrying = httpx.get(_leads_url(em), headers=HEADERS, params={"pageSize": 5})
    other = httpx.get(_leads_url(em), headers=HEADERS, params={"filterByFormula": "TRUE()"})
    naming = httpx.get(_leads_url(em), headers=HEADERS, params={"filterByFormula": "RECORD_ID()"})
    statuses = (plain.status_code, carrying.status_code, other.status_code, naming.status_code)
    assert statuses == (200, 400, 200, 422) and em.faults.pending() == 4


def test_cut_fault__requests_sees_a_broken_body(em: AirtableEmulator) -> None:
    em.create("Leads", {"First Name": "Ann"})
    em.faults.cut(method="GET")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(_leads_url(em), headers=HEADERS, timeout=5).json()


def test_cut_fault__httpx_sees_a_protocol_error_and_the_write_stands(em: AirtableEmulator) -> None:
    record = em.create("Leads", {"First Name": "Ann"})
    em.faults.cut(method="PATCH")
    body = {"records": [{"id": record["id"], "fields": {"Notes": "kept"}}]}
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.patch(_leads_url(em), headers=HEADERS, json=body)
    stored = em.get("Leads", record["id"])
    assert stored is not None and stored["fields"]["Notes"] == "kept"


def test_delay_fault__until_an_event_holds_the_request_then_handles_it(
    em: AirtableEmulator,
) -> None:
    """A delay with ``until`` holds the request it takes until the test sets the event (its
    seconds only bound the hold), then handles it as a late answer: no clock read."""
    released = threading.Event()
    em.faults.delay(60, method="GET", until=released)
    answers: list[int] = []
    request = threading.Thread(
        target=lambda: answers.append(
            requests.get(_leads_url(em), headers=HEADERS, timeout=90).status_code
        )
    )
    request.start()
    while em.faults.pending():  # the server has taken the fault: the request is being held
        request.join(0.01)
    assert request.is_alive() and answers == [] and em.requests == []

    released.set()
    request.join(30)

    assert not request.is_alive() and answers == [200]
    assert [(r.method, r.status) for r in em.requests] == [("GET", 200)]


def test_token_bucket__whole_tokens_only_and_the_fraction_is_lost() -> None:
    """Twenty's formula: a request refills floor(elapsed * rate) since the last admitted one
    and restarts that clock; a refused request changes nothing."""
    bucket = TokenBucketLimiter(100, 2)  # one token per 0.6 s
    assert bucket.admit(0.0) and bucket.admit(0.0)
    assert not bucket.admit(0.5)  # 0.83 of a token: none
    assert bucket.admit(0.9)  # 1.5 tokens earned since 0.0: one, the half is lost
    assert not bucket.admit(1.2)  # 0.5 since 0.9 (a continuous bucket would have 1.0)
    assert bucket.admit(1.5)


def test_collection_paused__no_collection_inside_and_the_setting_restored_after() -> None:
    assert gc.isenabled()
    with collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collection_paused():
        raise RuntimeError("a run that fails")
    assert gc.isenabled()
    gc.disable()
    try:
        with collection_paused():
            pass
        assert not gc.isenabled()  # left as it was found: off
    finally:
        gc.enable()


def test_stamps__the_year_has_four_digits_before_1000() -> None:
    """Both services render datetimes as ``toISOString`` does (fidelity-twenty.md, Field types;
    fidelity-airtable.md, Field types and values)."""
    from reconciler.emulators.base import iso_ms, iso_us

    first = datetime(1, 1, 1, tzinfo=UTC)
    assert iso_ms(first) == "0001-01-01T00:00:00.000Z"
    assert iso_us(first) == "0001-01-01T00:00:00.000000Z"
    assert iso_ms(datetime(999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)) == (
        "0999-12-31T23:59:59.999Z"
    )
    assert iso_ms(datetime(2026, 12, 1, 10, 0, 0, 123_456, tzinfo=UTC)) == (
        "2026-12-01T10:00:00.123Z"
    )
