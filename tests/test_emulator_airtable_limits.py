"""Deleted records, the rate-limit lockout and the monthly call cap of the Airtable emulator.

Time is moved with the emulator's clock (``em.clock.advance``), never slept.
"""

from __future__ import annotations

import threading
from typing import Any

import pyairtable
import pytest
import requests

from reconciler.emulators.airtable import AirtableEmulator
from reconciler.emulators.limits import SlidingWindowLimiter
from tests.airtable_fixtures import api, em, leads, server  # noqa: F401  (fixtures)
from tests.test_emulator_airtable import call, error_type, records_path

META = "/v0/meta/bases/{base}/tables"


def status(em: AirtableEmulator, method: str = "GET", path: str | None = None) -> int:
    """The status of one raw request (the Leads listing by default)."""
    return int(call(em, method, path or records_path(em)).status_code)


def body_429(response: Any) -> dict[str, Any]:
    """The one entry of a 429's ``errors`` array."""
    errors = response.json()["errors"]
    assert len(errors) == 1
    return dict(errors[0])


# -- deleted records -------------------------------------------------------------------------------


@pytest.fixture
def deleted(em: AirtableEmulator) -> str:
    """The id of a record that existed and was deleted."""
    record_id = str(em.create("Leads", {"Email": "a@example.com"})["id"])
    em.delete("Leads", record_id)
    return record_id


def test_deleted__get_is_404_model_id_not_found(leads: pyairtable.Table, deleted: str) -> None:
    with pytest.raises(requests.HTTPError) as exc:
        leads.get(deleted)
    assert exc.value.response.status_code == 404
    assert exc.value.response.json() == {
        "error": {"type": "MODEL_ID_NOT_FOUND", "message": "Record not found"}
    }


@pytest.mark.parametrize("replace", [False, True])
def test_deleted__single_write_is_404_and_batch_write_is_422(
    em: AirtableEmulator, leads: pyairtable.Table, deleted: str, replace: bool
) -> None:
    with pytest.raises(requests.HTTPError) as single:
        leads.update(deleted, {"Company": "X"}, replace=replace)
    assert single.value.response.status_code == 404
    assert error_type(single) == "MODEL_ID_NOT_FOUND"
    alive = em.create("Leads", {"Email": "b@example.com"})["id"]
    with pytest.raises(requests.HTTPError) as batch:
        leads.batch_update(
            [
                {"id": alive, "fields": {"Company": "Y"}},
                {"id": deleted, "fields": {"Company": "X"}},
            ],
            replace=replace,
        )
    assert batch.value.response.status_code == 422
    assert batch.value.response.json() == {
        "error": {
            "type": "ROW_DOES_NOT_EXIST",
            "message": f"Record ID {deleted} does not exist in this table",
        }
    }
    assert "Company" not in (em.get("Leads", alive) or {})["fields"]


def test_deleted__upsert_naming_it_fails_and_creates_nothing(
    em: AirtableEmulator, deleted: str
) -> None:
    body = {
        "performUpsert": {"fieldsToMergeOn": ["Email"]},
        "records": [{"id": deleted, "fields": {"Email": "a@example.com"}}],
    }
    response = call(em, "PATCH", records_path(em), json=body)
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "ROW_DOES_NOT_EXIST"
    assert em.records("Leads") == []


def test_deleted__deleting_again_is_404(leads: pyairtable.Table, deleted: str) -> None:
    for attempt in (lambda: leads.delete(deleted), lambda: leads.batch_delete([deleted])):
        with pytest.raises(requests.HTTPError) as exc:
            attempt()
        assert exc.value.response.status_code == 404
        assert error_type(exc) == "MODEL_ID_NOT_FOUND"


def test_get_record__finds_a_record_of_another_table_of_the_base(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    em.add_table("Other", {"Name": "singleLineText"})
    other = em.create("Other", {"Name": "elsewhere"})["id"]
    assert leads.get(other)["fields"] == {"Name": "elsewhere"}


# -- the rate-limit lockout ------------------------------------------------------------------------


def test_rate_limit__answer_has_the_real_errors_array_shape(em: AirtableEmulator) -> None:
    em.limiter = SlidingWindowLimiter(5, 1.0, 30.0)
    responses = [call(em, "GET", records_path(em)) for _ in range(6)]
    assert [r.status_code for r in responses] == [200] * 5 + [429]
    assert body_429(responses[5]) == {
        "error": "RATE_LIMIT_REACHED",
        "message": "Rate limit exceeded. Please try again later",
    }


def test_rate_limit__lockout_refuses_everything_but_is_not_extended(em: AirtableEmulator) -> None:
    em.limiter = SlidingWindowLimiter(5, 1.0, 30.0)
    assert [status(em) for _ in range(6)] == [200] * 5 + [429]
    for _ in range(3):  # requests sent during the lockout: refused, and only that
        em.clock.advance(9.0)
        assert status(em) == 429
        assert status(em, path=META.format(base=em.base_id)) == 429
    em.clock.advance(3.5)  # 30.5 s after the request that tripped it
    assert status(em) == 200


def test_rate_limit__lockout_lasts_its_full_length(em: AirtableEmulator) -> None:
    em.limiter = SlidingWindowLimiter(5, 1.0, 30.0)
    [status(em) for _ in range(6)]
    em.clock.advance(29.0)
    assert status(em) == 429
    em.clock.advance(1.5)
    assert status(em) == 200


# -- the monthly call cap --------------------------------------------------------------------------


def test_billing__cap_reached_then_every_data_request_is_429(em: AirtableEmulator) -> None:
    em.monthly_limit = 3
    assert [status(em) for _ in range(3)] == [200, 200, 200]
    assert em.billing_limit_exceeded
    writes = [("POST", records_path(em)), ("PATCH", records_path(em, "/recAAAAAAAAAAAAAA"))]
    for method, path in [("GET", records_path(em)), *writes]:
        response = call(em, method, path, json={"fields": {}})
        assert response.status_code == 429
        assert body_429(response) == {
            "error": "PUBLIC_API_BILLING_LIMIT_EXCEEDED",
            "message": "API billing plan limit exceeded.",
        }
    assert status(em, path=META.format(base=em.base_id)) == 200
    em.new_month()
    assert status(em) == 200


def test_billing__outlasts_a_rate_limit_lockout(em: AirtableEmulator) -> None:
    em.limiter = SlidingWindowLimiter(5, 1.0, 30.0)
    assert [status(em) for _ in range(6)] == [200] * 5 + [429]
    em.billing_limit_exceeded = True
    em.clock.advance(31.0)
    response = call(em, "GET", records_path(em))
    assert response.status_code == 429
    assert body_429(response)["error"] == "PUBLIC_API_BILLING_LIMIT_EXCEEDED"
    em.clock.advance(3600.0)
    assert body_429(call(em, "GET", records_path(em)))["error"] == (
        "PUBLIC_API_BILLING_LIMIT_EXCEEDED"
    )
    em.billing_limit_exceeded = False
    assert status(em) == 200


def test_billing__every_data_request_is_the_billing_429_even_past_the_rate_limit(
    em: AirtableEmulator,
) -> None:
    em.limiter = SlidingWindowLimiter(5, 1.0, 30.0)
    em.billing_limit_exceeded = True
    responses = [call(em, "GET", records_path(em)) for _ in range(7)]
    assert [r.status_code for r in responses] == [429] * 7
    assert {body_429(r)["error"] for r in responses} == {"PUBLIC_API_BILLING_LIMIT_EXCEEDED"}


def test_billing__pyairtable_sees_an_http_error_it_can_classify(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    em.billing_limit_exceeded = True
    with pytest.raises(requests.HTTPError) as exc:
        leads.all()
    assert exc.value.response.status_code == 429
    assert body_429(exc.value.response)["error"] == "PUBLIC_API_BILLING_LIMIT_EXCEEDED"


def test_billing__reset_lifts_the_cap(em: AirtableEmulator) -> None:
    em.monthly_limit = 0
    assert status(em) == 429
    em.reset()
    assert em.monthly_limit is None and status(em) == 200


def test_rate_limit__a_request_is_counted_when_it_arrives_not_after_the_latency(
    em: AirtableEmulator,
) -> None:
    """Airtable counts a request when it reaches the server (its 5 a second are arrivals):
    the simulated latency is the network's, so the limiter stamps before it. Here the first
    request arrives, and during its latency the clock moves on 0.9 s; the second arrives over a
    second after the first, and is let through (stamped after its latency, the first would
    look as recent as the second)."""
    em.limiter = SlidingWindowLimiter(1, 1.0, 30.0)
    em.latency = 0.3
    stamped = threading.Event()  # the server has read its clock for the first request
    read_clock = em.clock.monotonic

    def monotonic() -> float:
        now = read_clock()
        stamped.set()
        return now

    em.clock.monotonic = monotonic  # type: ignore[method-assign]
    first = threading.Thread(target=status, args=(em,))
    first.start()
    assert stamped.wait(10)
    em.clock.advance(0.9)  # while the first request waits out its latency
    first.join()
    em.latency = 0.0

    assert status(em) == 200
    assert [r.status for r in em.requests] == [200, 200]
