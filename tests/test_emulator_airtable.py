"""The Airtable emulator behaves like Airtable where the reconciler depends on it.

Most tests drive the emulator through pyairtable itself over real HTTP, so they prove what the
client will see: paging, formulas, limits, validation and server-maintained timestamps.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pyairtable
import pytest
import requests
from pyairtable import formulas as F

from reconciler.emulators.airtable import (
    LEADS_FIELDS,
    AirtableEmulator,
    AirtableError,
    FormulaError,
    compile_formula,
)
from reconciler.emulators.limits import SlidingWindowLimiter
from tests.airtable_fixtures import TOKEN, api, em, leads, server  # noqa: F401  (fixtures)

T0 = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)
LMT = F.Field("lastModifiedTime")


def call(em: AirtableEmulator, method: str, path: str, token: str = TOKEN, **kw: Any) -> Any:
    """A raw HTTP request to the emulator."""
    headers = {"Authorization": f"Bearer {token}"}
    return requests.request(method, em.url + path, headers=headers, timeout=5, **kw)


def records_path(em: AirtableEmulator, suffix: str = "") -> str:
    """The path of the Leads records endpoint."""
    return f"/v0/{em.base_id}/Leads{suffix}"


def error_type(exc: pytest.ExceptionInfo[requests.HTTPError]) -> str:
    """The Airtable error type of a failed pyairtable call."""
    assert exc.value.response is not None
    return str(exc.value.response.json()["error"]["type"])


def seed(em: AirtableEmulator, count: int, start: datetime = T0) -> list[str]:
    """Create ``count`` leads modified one second apart from ``start``; returns their ids."""
    return [
        em.create(
            "Leads",
            {"Email": f"lead{i}@example.com", "ICP Score": i},
            modified_at=start + timedelta(seconds=i),
        )["id"]
        for i in range(count)
    ]


# -- listing and paging ----------------------------------------------------------------------------


def test_list__pages_of_100_in_three_requests(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    ids = seed(em, 250)
    pages = list(leads.iterate(page_size=100))
    assert [len(page) for page in pages] == [100, 100, 50]
    assert em.count("GET", records_path(em)) == 3
    assert sorted(r["id"] for page in pages for r in page) == sorted(ids)


def test_list__default_order_is_stable_but_not_creation_order(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    ids = seed(em, 40)
    listed = [r["id"] for r in leads.all()]
    assert listed == [r["id"] for r in leads.all()]
    assert listed != ids
    assert sorted(listed) == sorted(ids)


def test_list__sort_and_max_records(em: AirtableEmulator, leads: pyairtable.Table) -> None:
    seed(em, 30)
    top = leads.all(sort=["-ICP Score"], max_records=5, page_size=2)
    assert [r["fields"]["ICP Score"] for r in top] == [29, 28, 27, 26, 25]


def test_list__fields_restricts_returned_fields(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    em.create("Leads", {"Email": "a@example.com", "Company": "Acme", "ICP Score": 3})
    (record,) = leads.all(fields=["Company", "lastModifiedTime"])
    assert set(record["fields"]) == {"Company", "lastModifiedTime"}


@pytest.mark.parametrize("size", ["101", "0", "ten"])
def test_list__page_size_out_of_range_is_422(em: AirtableEmulator, size: str) -> None:
    response = call(em, "GET", records_path(em), params={"pageSize": size})
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "INVALID_REQUEST_UNKNOWN"


@pytest.mark.parametrize("count", ["0", "-1", "five"])
def test_list__max_records_below_one_is_422(em: AirtableEmulator, count: str) -> None:
    em.create("Leads", {"Email": "a@example.com"})
    response = call(em, "GET", records_path(em), params={"maxRecords": count})
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "INVALID_REQUEST_UNKNOWN"


def test_list__page_size_101_via_pyairtable_raises(leads: pyairtable.Table) -> None:
    with pytest.raises(requests.HTTPError) as exc:
        leads.all(page_size=101)
    assert exc.value.response is not None and exc.value.response.status_code == 422


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"fields[]": "Nope"}, "UNKNOWN_FIELD_NAME"),
        ({"sort[0][field]": "Nope"}, "UNKNOWN_FIELD_NAME"),
        ({"sort[0][field]": "Email", "sort[0][direction]": "up"}, "INVALID_REQUEST_UNKNOWN"),
        ({"view": "No such view"}, "VIEW_NAME_NOT_FOUND"),
        ({"modifiedSince": "2026-01-01"}, "INVALID_REQUEST_UNKNOWN"),
        ({"returnFieldsByFieldId": "maybe"}, "INVALID_REQUEST_UNKNOWN"),
        ({"cellFormat": "string"}, "INVALID_REQUEST_UNKNOWN"),
    ],
)
def test_list__bad_parameters_are_422(
    em: AirtableEmulator, params: dict[str, str], expected: str
) -> None:
    response = call(em, "GET", records_path(em), params=params)
    assert (response.status_code, response.json()["error"]["type"]) == (422, expected)


@pytest.mark.parametrize("params", [{"cellFormat": "string"}, {"pageSize": "10"}])
def test_get_record__a_parameter_it_does_not_take_is_422(
    em: AirtableEmulator, params: dict[str, str]
) -> None:
    record_id = em.create("Leads", {"Email": "a@example.com"})["id"]
    response = call(em, "GET", records_path(em, f"/{record_id}"), params=params)
    assert (response.status_code, response.json()["error"]["type"]) == (
        422,
        "INVALID_REQUEST_UNKNOWN",
    )


def test_list__url_of_16000_chars_is_414(em: AirtableEmulator) -> None:
    def formula(clauses: int) -> str:
        return "OR(" + ",".join(["RECORD_ID()='recAAAAAAAAAAAAAA'"] * clauses) + ")"

    response = call(em, "GET", records_path(em), params={"filterByFormula": formula(600)})
    assert response.status_code == 414
    short = call(em, "GET", records_path(em), params={"filterByFormula": formula(100)})
    assert short.status_code == 200


def test_list__url_of_exactly_16000_chars_is_414_and_one_shorter_is_answered(
    em: AirtableEmulator,
) -> None:
    path = records_path(em)

    def params(length: int) -> dict[str, str]:
        """A formula making the path and query string ``length`` characters long."""
        bare = len(path) + len("?") + len(urlencode({"filterByFormula": "NOT(''='')"}))
        return {"filterByFormula": "NOT('" + "x" * (length - bare) + "'='')"}

    assert len(path) + 1 + len(urlencode(params(16_000))) == 16_000
    assert call(em, "GET", path, params=params(16_000)).status_code == 414
    assert call(em, "GET", path, params=params(15_999)).status_code == 200


def test_list__post_list_records_takes_options_in_the_body(em: AirtableEmulator) -> None:
    seed(em, 12)
    body = {
        "pageSize": 5,
        "filterByFormula": "{ICP Score} >= 4",
        "sort": [{"field": "ICP Score", "direction": "desc"}],
        "fields": ["ICP Score"],
    }
    first = call(em, "POST", records_path(em, "/listRecords"), json=body).json()
    assert [r["fields"] for r in first["records"]] == [{"ICP Score": s} for s in (11, 10, 9, 8, 7)]
    second = call(em, "POST", records_path(em, "/listRecords"), json={"offset": first["offset"]})
    assert [r["fields"]["ICP Score"] for r in second.json()["records"]] == [6, 5, 4]
    assert "offset" not in second.json()
    bad = call(em, "POST", records_path(em, "/listRecords"), json={"pageSize": 5, "where": 1})
    assert bad.status_code == 422


def test_list__a_parameter_given_twice_is_422(em: AirtableEmulator) -> None:
    response = call(em, "GET", records_path(em) + "?pageSize=2&pageSize=3")
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "INVALID_REQUEST_UNKNOWN"


def test_list__post_list_records_takes_options_only_in_the_body(em: AirtableEmulator) -> None:
    seed(em, 3)
    path = records_path(em, "/listRecords")
    response = call(em, "POST", path, params={"pageSize": 2}, json={})
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "INVALID_REQUEST_UNKNOWN"
    passive = call(em, "POST", path, params={"timeZone": "utc", "userLocale": "en"}, json={})
    assert passive.status_code == 200 and len(passive.json()["records"]) == 3


def test_paging__edited_record_keeps_position_with_new_timestamp(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    seed(em, 30)
    reference = [r["id"] for r in leads.all()]
    em.clock.frozen = T0 + timedelta(days=1)
    pages = leads.iterate(page_size=10)
    first = next(pages)
    edited, deleted = reference[15], reference[25]
    em.update("Leads", edited, {"Company": "Edited Inc"})
    em.delete("Leads", deleted)
    rest = [r for page in pages for r in page]
    listed = [r["id"] for r in first + rest]
    assert listed == [i for i in reference if i != deleted]
    (row,) = [r for r in rest if r["id"] == edited]
    assert row["fields"]["lastModifiedTime"] == "2026-11-21T10:00:00.000Z"
    assert row["fields"]["Company"] == "Edited Inc"


def test_paging__expired_iterator_is_422(em: AirtableEmulator, leads: pyairtable.Table) -> None:
    seed(em, 5)
    em.iterator_ttl = 0.05
    pages = leads.iterate(page_size=2)
    next(pages)
    em.clock.advance(0.1)
    with pytest.raises(requests.HTTPError) as exc:
        next(pages)
    assert error_type(exc) == "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"


def test_paging__an_iterator_expires_once_idle_longer_than_its_time_to_live(
    em: AirtableEmulator,
) -> None:
    seed(em, 8)
    em.iterator_ttl = 60.0
    query: dict[str, Any] = {"pageSize": 2}
    for _ in range(2):  # used every 40 s: alive 80 s after it started
        page = call(em, "GET", records_path(em), params=query)
        assert page.status_code == 200
        query["offset"] = page.json()["offset"]
        em.clock.advance(40.0)
    assert call(em, "GET", records_path(em), params=query).status_code == 200
    em.clock.advance(61.0)
    expired = call(em, "GET", records_path(em), params=query)
    assert expired.status_code == 422
    assert expired.json()["error"]["type"] == "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"


def test_paging__an_offset_of_another_table_is_422(em: AirtableEmulator) -> None:
    seed(em, 5)
    em.add_table("Other", {"Name": "singleLineText"})
    offset = call(em, "GET", records_path(em), params={"pageSize": 2}).json()["offset"]
    other = call(em, "GET", f"/v0/{em.base_id}/Other", params={"offset": offset})
    assert other.status_code == 422
    assert other.json()["error"]["type"] == "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"


def test_paging__live_iterator_and_unknown_offset(em: AirtableEmulator) -> None:
    seed(em, 5)
    first = call(em, "GET", records_path(em), params={"pageSize": 2}).json()
    again = call(em, "GET", records_path(em), params={"pageSize": 2, "offset": first["offset"]})
    assert again.status_code == 200 and len(again.json()["records"]) == 2
    unknown = call(em, "GET", records_path(em), params={"offset": "itrNOPE/recNOPE"})
    assert unknown.status_code == 422
    assert unknown.json()["error"]["type"] == "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"


def test_paging__last_page_has_no_offset(em: AirtableEmulator) -> None:
    seed(em, 4)
    first = call(em, "GET", records_path(em), params={"pageSize": 2}).json()
    last = call(em, "GET", records_path(em), params={"pageSize": 2, "offset": first["offset"]})
    assert "offset" in first and "offset" not in last.json()


# -- formulas --------------------------------------------------------------------------------------


def _stamp(em: AirtableEmulator, name: str, at: datetime) -> str:
    return str(em.create("Leads", {"First Name": name}, modified_at=at)["id"])


def _names(records: list[Any]) -> list[str]:
    return sorted(r["fields"]["First Name"] for r in records)


@pytest.fixture
def window(em: AirtableEmulator) -> tuple[datetime, datetime]:
    """Records stamped around a [start, end) window, named by where they fall."""
    start, end = T0, T0 + timedelta(hours=1)
    ms = timedelta(milliseconds=1)
    for name, at in [
        ("before", start - ms),
        ("at-start", start),
        ("just-after-start", start + ms),
        ("just-before-end", end - ms),
        ("at-end", end),
    ]:
        _stamp(em, name, at)
    return start, end


def test_filter__datetime_window_includes_start_exactly(
    leads: pyairtable.Table, window: tuple[datetime, datetime]
) -> None:
    start, end = window
    formula = F.AND(F.GTE(LMT, start), F.LT(LMT, end))
    assert "DATETIME_PARSE('2026-11-20T10:00:00.000Z')" in str(formula)
    found = leads.all(formula=formula)
    assert _names(found) == ["at-start", "just-after-start", "just-before-end"]


def test_filter__is_after_is_strict(
    leads: pyairtable.Table, window: tuple[datetime, datetime]
) -> None:
    start, _ = window
    found = leads.all(formula=F.IS_AFTER(LMT, start))
    assert _names(found) == ["at-end", "just-after-start", "just-before-end"]
    documented = "IS_AFTER({lastModifiedTime}, DATETIME_PARSE('2026-11-20T10:00:00.000Z'))"
    assert _names(leads.all(formula=documented)) == _names(found)


def test_filter__documented_forms_and_functions(
    leads: pyairtable.Table, window: tuple[datetime, datetime]
) -> None:
    cases = {
        "{lastModifiedTime} >= DATETIME_PARSE('2026-11-20T11:00:00.000Z')": ["at-end"],
        "is_before(LAST_MODIFIED_TIME(), datetime_parse('2026-11-20T10:00:00Z'))": ["before"],
        "IS_SAME({lastModifiedTime}, DATETIME_PARSE('2026-11-20T10:00:00.000Z'))": ["at-start"],
        "IS_SAME({lastModifiedTime}, '2026-11-20T10:00:00.900Z', 'second')": [
            "at-start",
            "just-after-start",
        ],
        "{lastModifiedTime} = DATETIME_PARSE('2026-11-20T12:00:00+02:00', "
        "'YYYY-MM-DDTHH:mm:ssZ')": ["at-start"],
        "AND(OR({First Name}='before', {First Name}=\"at-end\"), NOT({First Name}='at-end'))": [
            "before"
        ],
        "{First Name} & '!' = 'at-end!'": ["at-end"],
    }
    for formula, expected in cases.items():
        assert _names(leads.all(formula=formula)) == expected, formula


@pytest.mark.parametrize(
    "formula",
    [
        "{lastModifiedTime} >= '2026-11-20T09:00:00.000Z'",
        "{lastModifiedTime} = '2026-11-20T10:00:00.000Z'",
        "{lastModifiedTime} != '2026-11-20T10:00:00.000Z'",
    ],
)
def test_filter__bare_iso_string_comparison_matches_nothing(
    leads: pyairtable.Table, window: tuple[datetime, datetime], formula: str
) -> None:
    assert leads.all(formula=formula) == []


@pytest.mark.parametrize(
    "formula",
    [
        "CONCATENATE({Email}, 'x')",
        "FOO()",
        "{Email} = ",
        "{Nope} = 'x'",
        "Email = 'x'",
        "{ICP Score} + 1 > 2",
        "DATETIME_PARSE('next tuesday')",
        "DATETIME_PARSE({Email}, 'DD/MM/YYYY')",
        "AND(",
        "AND()",
        "NOT(1, 2)",
        "'unterminated",
        "{Email} == 'x'",
        "IS_SAME({lastModifiedTime}, {lastModifiedTime}, 'fortnight')",
    ],
)
def test_filter__unsupported_or_malformed_formula_is_422(
    em: AirtableEmulator, leads: pyairtable.Table, formula: str
) -> None:
    seed(em, 2)
    with pytest.raises(requests.HTTPError) as exc:
        leads.all(formula=formula)
    assert error_type(exc) == "INVALID_FILTER_BY_FORMULA"


def test_filter__long_record_id_or_switches_to_post_list_records(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    ids = seed(em, 450)
    wanted = ids[:400]
    formula = F.OR(*[F.EQ(F.RECORD_ID(), record_id) for record_id in wanted])
    found = leads.all(formula=formula)
    assert sorted(r["id"] for r in found) == sorted(wanted)
    assert em.count("POST", records_path(em, "/listRecords"), status=200) == 4
    assert em.count("GET") == 0


def test_filter__pyairtable_match_escapes_quotes(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    tricky = 'o\'brien "the" \\ one'
    em.create("Leads", {"Company": tricky, "ICP Score": 7, "Booked": True})
    em.create("Leads", {"Company": "o'brien", "ICP Score": 7})
    found = leads.all(formula=F.match({"Company": tricky, "ICP Score": 7, "Booked": True}))
    assert [r["fields"]["Company"] for r in found] == [tricky]


def test_filter__empty_cells_compare_as_blank(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    empty = em.create("Leads", {"First Name": "empty"})["id"]
    full = {"Notes": "n", "Booked": True, "ICP Score": 3, "Booked At": "2026-01-01T00:00:00Z"}
    em.create("Leads", {"First Name": "full", **full})
    for formula in [
        "{Notes} = ''",
        "{Notes} = BLANK()",
        "{Booked} = FALSE()",
        "NOT({Booked})",
        "{ICP Score} = 0",
        "{ICP Score} < 1",
        "NOT({Booked At} >= DATETIME_PARSE('2000-01-01'))",
        "{Booked At} = BLANK()",
    ]:
        assert [r["id"] for r in leads.all(formula=formula)] == [empty], formula


def test_filter__an_empty_cell_is_neither_after_nor_before(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    em.create("Leads", {"First Name": "empty"})
    em.create("Leads", {"First Name": "booked", "Booked At": "2026-01-01T00:00:00Z"})
    for formula in [
        "IS_BEFORE({Booked At}, DATETIME_PARSE('2030-01-01'))",
        "IS_AFTER({Booked At}, DATETIME_PARSE('2000-01-01'))",
        "IS_AFTER(DATETIME_PARSE('2030-01-01'), {Booked At})",
    ]:
        assert _names(leads.all(formula=formula)) == ["booked"], formula


def test_filter__bad_data_does_not_crash(em: AirtableEmulator, leads: pyairtable.Table) -> None:
    em.create("Leads", {"First Name": "bad", "ICP Score": "high"}, validate=False)
    em.create("Leads", {"First Name": "good", "ICP Score": 9})
    assert _names(leads.all(formula="{ICP Score} > 5")) == ["good"]
    (bad,) = leads.all(formula="{First Name} = 'bad'")
    assert bad["fields"]["ICP Score"] == "high"


def test_filter__fifty_thousand_records_evaluate_fast(em: AirtableEmulator) -> None:
    table = em.table("Leads")
    score = table.field("ICP Score").id
    for i in range(50_000):
        table.insert(f"rec{i:014d}", {score: i}, T0 + timedelta(milliseconds=i))
    lookup = table.formula_getter
    formula = str(
        F.AND(F.GTE(LMT, T0 + timedelta(seconds=10)), F.LT(LMT, T0 + timedelta(seconds=20)))
    )
    started = time.perf_counter()
    predicate = compile_formula(formula, lookup)
    matched = sum(1 for record in table.records.values() if predicate(record))
    elapsed = time.perf_counter() - started
    assert matched == 10_000
    assert elapsed < 0.5
    response = call(em, "GET", records_path(em), params={"filterByFormula": formula})
    assert response.status_code == 200 and len(response.json()["records"]) == 100


def test_filter__compile_rejects_unknown_fields_directly() -> None:
    with pytest.raises(FormulaError, match="Unknown field"):
        compile_formula("{Missing} = 1", lambda name: None)


# -- writes ----------------------------------------------------------------------------------------


def test_write__batch_of_11_is_422_and_nothing_applied(em: AirtableEmulator) -> None:
    records = [{"fields": {"Email": f"{i}@example.com"}} for i in range(11)]
    response = call(em, "POST", records_path(em), json={"records": records})
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "INVALID_RECORDS"
    assert em.records("Leads") == []
    ten = call(em, "POST", records_path(em), json={"records": records[:10]})
    assert ten.status_code == 200 and len(em.records("Leads")) == 10
    none = call(em, "POST", records_path(em), json={"records": []})
    assert none.status_code == 422


def test_write__two_entries_for_one_record_are_422_and_nothing_applied(
    em: AirtableEmulator,
) -> None:
    record_id = em.create("Leads", {"Email": "a@example.com"})["id"]
    twice = [{"id": record_id, "fields": {"ICP Score": n}} for n in (1, 2)]
    response = call(em, "PATCH", records_path(em), json={"records": twice})
    assert (response.status_code, response.json()["error"]["type"]) == (422, "INVALID_RECORDS")
    new_twice = {
        "performUpsert": {"fieldsToMergeOn": ["Email"]},
        "records": [{"fields": {"Email": "b@example.com", "ICP Score": n}} for n in (1, 2)],
    }
    response = call(em, "PATCH", records_path(em), json=new_twice)
    assert (response.status_code, response.json()["error"]["type"]) == (422, "INVALID_RECORDS")
    assert em.records("Leads") == [em.get("Leads", record_id)]
    assert "ICP Score" not in (em.get("Leads", record_id) or {})["fields"]


def test_upsert__fields_to_merge_on_takes_at_most_three_fields(em: AirtableEmulator) -> None:
    fields = {"Email": "a@example.com", "Company": "Acme", "Title": "CEO", "Status": "new"}

    def upsert(merge_on: list[str]) -> Any:
        body = {"performUpsert": {"fieldsToMergeOn": merge_on}, "records": [{"fields": fields}]}
        return call(em, "PATCH", records_path(em), json=body)

    four = upsert(list(fields))
    assert (four.status_code, four.json()["error"]["type"]) == (422, "INVALID_REQUEST_UNKNOWN")
    assert em.records("Leads") == []
    assert upsert(list(fields)[:3]).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"fields": {"Email": "a@example.com"}, "upsert": True},  # a key it does not take
        {"fields": {"ICP Score": "5"}, "typecast": "true"},  # typecast not a boolean
    ],
)
def test_write__a_body_it_does_not_take_is_422_and_nothing_created(
    em: AirtableEmulator, body: dict[str, Any]
) -> None:
    response = call(em, "POST", records_path(em), json=body)
    assert (response.status_code, response.json()["error"]["type"]) == (
        422,
        "INVALID_REQUEST_UNKNOWN",
    )
    assert em.records("Leads") == []


def test_write__one_invalid_value_applies_nothing(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    batch: list[Any] = [{"Email": "a@ex.com"}, {"ICP Score": "high"}, {"Email": "c@ex.com"}]
    with pytest.raises(requests.HTTPError) as exc:
        leads.batch_create(batch)
    assert error_type(exc) == "INVALID_VALUE_FOR_COLUMN"
    assert "ICP Score" in exc.value.response.json()["error"]["message"]
    assert em.records("Leads") == []
    ids = seed(em, 2)
    before = em.records("Leads")
    updates: list[Any] = [
        {"id": ids[0], "fields": {"Company": "X"}},
        {"id": ids[1], "fields": {"Booked": 1}},
    ]
    with pytest.raises(requests.HTTPError):
        leads.batch_update(updates)
    assert em.records("Leads") == before


def test_write__unknown_record_id_is_refused_and_nothing_applied(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    (known,) = seed(em, 1)
    updates: list[Any] = [
        {"id": known, "fields": {"Company": "X"}},
        {"id": "recDOESNOTEXIST00", "fields": {"Company": "Y"}},
    ]
    with pytest.raises(requests.HTTPError) as exc:
        leads.batch_update(updates)
    assert exc.value.response is not None and exc.value.response.status_code == 422
    assert error_type(exc) == "ROW_DOES_NOT_EXIST"
    assert "Company" not in (em.get("Leads", known) or {})["fields"]
    with pytest.raises(requests.HTTPError) as missing:
        leads.get("recDOESNOTEXIST00")
    assert missing.value.response is not None and missing.value.response.status_code == 404
    assert error_type(missing) == "MODEL_ID_NOT_FOUND"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"lastModifiedTime": "2026-01-01T00:00:00.000Z"}, "INVALID_VALUE_FOR_COLUMN"),
        ({"lastModifiedTime": None}, "INVALID_VALUE_FOR_COLUMN"),
        ({"Nope": "x"}, "UNKNOWN_FIELD_NAME"),
        ({"Email": 5}, "INVALID_VALUE_FOR_COLUMN"),
        ({"ICP Score": "5"}, "INVALID_VALUE_FOR_COLUMN"),
        ({"ICP Score": True}, "INVALID_VALUE_FOR_COLUMN"),
        ({"Booked": "yes"}, "INVALID_VALUE_FOR_COLUMN"),
        ({"Booked At": "2026-01-01T10:00:00"}, "INVALID_VALUE_FOR_COLUMN"),
        ({"Booked At": "tomorrow"}, "INVALID_VALUE_FOR_COLUMN"),
        ({"Booked At": 1767225600}, "INVALID_VALUE_FOR_COLUMN"),
    ],
)
def test_write__invalid_values_are_422(
    em: AirtableEmulator, leads: pyairtable.Table, fields: dict[str, Any], expected: str
) -> None:
    with pytest.raises(requests.HTTPError) as exc:
        leads.create(fields)
    assert error_type(exc) == expected
    assert em.records("Leads") == []


def test_write__computed_field_message_says_computed(leads: pyairtable.Table) -> None:
    with pytest.raises(requests.HTTPError) as exc:
        leads.create({"lastModifiedTime": "2026-01-01T00:00:00.000Z"})
    assert exc.value.response is not None
    assert "computed" in exc.value.response.json()["error"]["message"]


def test_write__typecast_converts_strings(leads: pyairtable.Table) -> None:
    record = leads.create({"ICP Score": "42", "Booked": "true", "Email": 7}, typecast=True)
    assert record["fields"]["ICP Score"] == 42
    assert record["fields"]["Booked"] is True
    assert record["fields"]["Email"] == "7"


def test_write__datetimes_are_normalized_to_utc_milliseconds(leads: pyairtable.Table) -> None:
    record = leads.create({"Booked At": "2026-11-20T12:00:00.123456+02:00"})
    assert record["fields"]["Booked At"] == "2026-11-20T10:00:00.123Z"


def test_write__patch_merges_put_replaces_null_clears_empty_omitted(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    created = leads.create({"Email": "a@example.com", "Company": "Acme", "Booked": True})
    patched = leads.update(created["id"], {"Company": None, "Notes": "", "Title": "CEO"})
    assert patched["fields"].keys() == {"Email", "Booked", "Title", "lastModifiedTime"}
    replaced = leads.update(created["id"], {"Company": "Beta"}, replace=True)
    assert replaced["fields"].keys() == {"Company", "lastModifiedTime"}
    unchecked = leads.update(created["id"], {"Booked": False})
    assert "Booked" not in unchecked["fields"]
    assert em.get("Leads", created["id"]) == unchecked


def test_write__last_modified_moves_only_on_change_and_is_server_set(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    em.clock.frozen = T0
    record = leads.create({"Email": "a@example.com", "ICP Score": 5})
    assert (
        record["createdTime"] == record["fields"]["lastModifiedTime"] == "2026-11-20T10:00:00.000Z"
    )
    em.clock.frozen = T0 + timedelta(minutes=5)
    same = leads.update(record["id"], {"ICP Score": 5, "Email": "a@example.com"})
    assert same["fields"]["lastModifiedTime"] == "2026-11-20T10:00:00.000Z"
    changed = leads.update(record["id"], {"ICP Score": 6})
    assert changed["fields"]["lastModifiedTime"] == "2026-11-20T10:05:00.000Z"
    assert changed["createdTime"] == "2026-11-20T10:00:00.000Z"


def test_write__last_modified_follows_clock_skew(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    em.clock.skew = timedelta(hours=-3)
    record = leads.create({"Email": "a@example.com"})
    stamped = datetime.fromisoformat(record["fields"]["lastModifiedTime"].replace("Z", "+00:00"))
    expected = datetime.now(UTC) - timedelta(hours=3)
    assert abs((stamped - expected).total_seconds()) < 2


def test_upsert__creates_updates_and_rejects_ambiguous(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    existing = em.create("Leads", {"Email": "a@example.com", "ICP Score": 1})["id"]
    result = leads.batch_upsert(
        [
            {"fields": {"Email": "a@example.com", "ICP Score": 2}},
            {"fields": {"Email": "b@example.com", "ICP Score": 3}},
        ],
        key_fields=["Email"],
    )
    assert result["updatedRecords"] == [existing]
    assert len(result["createdRecords"]) == 1
    assert (em.get("Leads", existing) or {})["fields"]["ICP Score"] == 2
    em.create("Leads", {"Email": "b@example.com"})
    with pytest.raises(requests.HTTPError) as exc:
        leads.batch_upsert([{"fields": {"Email": "b@example.com"}}], key_fields=["Email"])
    assert exc.value.response is not None and exc.value.response.status_code == 422
    assert len(em.records("Leads")) == 3


def test_delete__batch_and_single(em: AirtableEmulator, leads: pyairtable.Table) -> None:
    ids = seed(em, 12)
    deleted = leads.batch_delete(ids[:11])
    assert deleted == [{"id": i, "deleted": True} for i in ids[:11]]
    assert em.count("DELETE") == 2
    assert leads.delete(ids[11]) == {"id": ids[11], "deleted": True}
    assert em.records("Leads") == []
    too_many = call(em, "DELETE", records_path(em), params={"records[]": ids[:11]})
    assert too_many.status_code == 422
    with pytest.raises(requests.HTTPError) as exc:
        leads.delete(ids[0])
    assert exc.value.response is not None and exc.value.response.status_code == 404


def test_delete__the_same_id_twice_is_422_and_nothing_deleted(em: AirtableEmulator) -> None:
    ids = seed(em, 2)
    response = call(em, "DELETE", records_path(em), params={"records[]": [ids[0], ids[0]]})
    assert (response.status_code, response.json()["error"]["type"]) == (422, "INVALID_RECORDS")
    assert len(em.records("Leads")) == 2


# -- auth, routing, limits, faults, log ------------------------------------------------------------


def test_auth__wrong_token_is_401(em: AirtableEmulator) -> None:
    api = pyairtable.Api("wrong-token", endpoint_url=em.url, retry_strategy=None)
    with pytest.raises(requests.HTTPError) as exc:
        api.table(em.base_id, "Leads").all()
    api.session.close()
    assert exc.value.response is not None and exc.value.response.status_code == 401


@pytest.mark.parametrize("path", ["/v0/appWRONGBASE00001/Leads", "/v0/{base}/NoSuchTable"])
def test_routes__wrong_base_or_table_is_403(em: AirtableEmulator, path: str) -> None:
    response = call(em, "GET", path.format(base=em.base_id))
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"


def test_routes__unknown_route_is_bare_not_found(em: AirtableEmulator) -> None:
    response = call(em, "GET", "/v1/whatever")
    assert (response.status_code, response.json()) == (404, "NOT_FOUND")


def test_routes__table_id_and_name_both_work(em: AirtableEmulator, api: pyairtable.Api) -> None:
    table_id = em.add_table("Other Table", {"Name": "singleLineText", "When": "date"})
    api.table(em.base_id, table_id).create({"Name": "x", "When": "2026-01-02"})
    (record,) = api.table(em.base_id, "Other Table").all()
    assert record["fields"] == {"Name": "x", "When": "2026-01-02"}


def test_rate_limit__sixth_request_is_429_then_lockout_until_it_ends(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    em.limiter = SlidingWindowLimiter(5, window=0.1, lockout=0.3)
    statuses = [call(em, "GET", records_path(em)).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    em.clock.advance(0.15)  # the 0.1 s window has passed, the lockout has not
    with pytest.raises(requests.HTTPError) as exc:
        leads.all()
    assert exc.value.response is not None
    assert exc.value.response.json()["errors"][0]["error"] == "RATE_LIMIT_REACHED"
    em.clock.advance(0.2)
    assert leads.all() == []


def test_rate_limit__constructor_arguments_apply() -> None:
    with AirtableEmulator(TOKEN, rate_limit=5, lockout=0.3) as emulator:
        assert isinstance(emulator, AirtableEmulator)
        path = f"/v0/{emulator.base_id}/Leads"
        statuses = [call(emulator, "GET", path).status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        assert emulator.limiter.lockout == 0.3


def test_faults__503_twice_then_recovery(em: AirtableEmulator, leads: pyairtable.Table) -> None:
    em.faults.fail(503, times=2)
    for _ in range(2):
        with pytest.raises(requests.HTTPError) as exc:
            leads.all()
        assert exc.value.response is not None and exc.value.response.status_code == 503
    assert leads.all() == []


def test_faults__drop_gives_connection_error(em: AirtableEmulator, leads: pyairtable.Table) -> None:
    em.faults.drop()
    with pytest.raises(requests.ConnectionError):
        leads.all()
    assert leads.all() == []
    assert em.count(status=0) == 1


def test_faults__delay_holds_the_request(em: AirtableEmulator, leads: pyairtable.Table) -> None:
    em.faults.delay(0.2)
    started = time.perf_counter()
    leads.all()
    assert time.perf_counter() - started >= 0.2
    em.faults.delay(0.2)
    timeout: Any = (1, 0.05)
    impatient = pyairtable.Api(TOKEN, endpoint_url=em.url, retry_strategy=None, timeout=timeout)
    with pytest.raises(requests.Timeout):
        impatient.table(em.base_id, "Leads").all()
    impatient.session.close()


def test_log__counts_requests_by_method_path_and_status(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    leads.create({"Email": "a@example.com"})
    leads.all()
    with pytest.raises(requests.HTTPError):
        leads.all(formula="NOPE(")
    assert em.count() == 3
    assert em.count("POST", records_path(em), status=200) == 1
    assert em.count("GET", status=422) == 1
    em.reset_log()
    assert em.count() == 0


# -- metadata and the Python API -------------------------------------------------------------------


def test_meta__tables_lists_leads_fields(em: AirtableEmulator, api: pyairtable.Api) -> None:
    schema = api.base(em.base_id).schema()
    leads = schema.table("Leads")
    assert leads.id.startswith("tbl") and len(leads.id) == 17
    assert {f.name: f.type for f in leads.fields} == LEADS_FIELDS
    assert all(f.id.startswith("fld") for f in leads.fields)
    wrong = call(em, "GET", "/v0/meta/bases/appWRONGBASE00001/tables")
    assert wrong.status_code == 403


def test_python_api__records_have_the_api_shape(em: AirtableEmulator) -> None:
    record = em.create("Leads", {"Email": "a@example.com"}, modified_at=T0)
    assert record["id"].startswith("rec") and len(record["id"]) == 17
    assert record["id"][3:].isalnum()
    assert record == {
        "id": record["id"],
        "createdTime": "2026-11-20T10:00:00.000Z",
        "fields": {"Email": "a@example.com", "lastModifiedTime": "2026-11-20T10:00:00.000Z"},
    }
    updated = em.update("Leads", record["id"], {"Notes": "hi"}, modified_at=T0 + timedelta(hours=1))
    assert updated["fields"]["lastModifiedTime"] == "2026-11-20T11:00:00.000Z"
    assert em.records("Leads") == [updated]
    em.delete("Leads", record["id"])
    assert em.get("Leads", record["id"]) is None
    with pytest.raises(AirtableError):
        em.update("Leads", record["id"], {"Notes": "gone"})
    with pytest.raises(AirtableError):
        em.create("Leads", {"ICP Score": "high"})


def test_routes__an_internal_failure_answers_500(
    em: AirtableEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(request: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(em, "_route", broken)
    response = call(em, "GET", records_path(em))
    assert response.status_code == 500
    assert "boom" in response.json()["error"]["message"]
