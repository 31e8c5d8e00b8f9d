"""Field ids in the Airtable emulator: ids wherever the real API takes names, renames keep ids.

Sources are cited in the emulator code and in docs/fidelity-airtable.md.
"""

from __future__ import annotations

import pyairtable
import pytest
import requests

from reconciler.emulators.airtable import AirtableEmulator
from tests.airtable_fixtures import api, em, leads, server  # noqa: F401  (fixtures)
from tests.test_emulator_airtable import call, error_type, records_path


def ids(em: AirtableEmulator, *names: str) -> list[str]:
    """The field ids of Leads fields."""
    return [em.field_id("Leads", name) for name in names]


# -- reading by id ---------------------------------------------------------------------------------


def test_read__return_fields_by_field_id_on_list_and_get(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    email, score = ids(em, "Email", "ICP Score")
    record_id = em.create("Leads", {"Email": "a@example.com", "ICP Score": 3})["id"]
    (listed,) = leads.all(use_field_ids=True)
    assert listed["fields"][email] == "a@example.com" and listed["fields"][score] == 3
    assert "Email" not in listed["fields"]
    assert leads.get(record_id, use_field_ids=True)["fields"] == listed["fields"]
    by_name = leads.get(record_id)["fields"]
    assert by_name["Email"] == "a@example.com"
    zero = call(em, "GET", records_path(em), params={"returnFieldsByFieldId": "0"})
    assert "Email" in zero.json()["records"][0]["fields"]


def test_read__list_records_body_takes_return_fields_by_field_id(em: AirtableEmulator) -> None:
    (email,) = ids(em, "Email")
    em.create("Leads", {"Email": "a@example.com"})
    body = {"returnFieldsByFieldId": True, "fields": [email]}
    response = call(em, "POST", records_path(em, "/listRecords"), json=body)
    assert [r["fields"] for r in response.json()["records"]] == [{email: "a@example.com"}]
    bad = call(em, "POST", records_path(em, "/listRecords"), json={"returnFieldsByFieldId": "x"})
    assert bad.status_code == 422


def test_read__fields_and_sort_take_ids(em: AirtableEmulator, leads: pyairtable.Table) -> None:
    email, score = ids(em, "Email", "ICP Score")
    for i in (2, 9, 5):
        em.create("Leads", {"Email": f"{i}@example.com", "ICP Score": i, "Company": "X"})
    listed = leads.all(fields=[email, "ICP Score"], sort=[f"-{score}"])
    assert [r["fields"] for r in listed] == [
        {"Email": f"{i}@example.com", "ICP Score": i} for i in (9, 5, 2)
    ]


def test_formula__field_ids_are_unknown_names(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    (email,) = ids(em, "Email")
    em.create("Leads", {"Email": "a@example.com"})
    with pytest.raises(requests.HTTPError) as exc:
        leads.all(formula=f"{{{email}}} = 'a@example.com'")
    assert error_type(exc) == "INVALID_FILTER_BY_FORMULA"
    message = exc.value.response.json()["error"]["message"]
    assert (
        message
        == f"The formula for filtering records is invalid: Unknown field names: {email.lower()}"
    )
    assert len(leads.all(formula="{Email} = 'a@example.com'")) == 1


# -- writing by id ---------------------------------------------------------------------------------


def test_write__ids_and_names_mix_and_the_body_flag_keys_the_answer(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    email, company, score = ids(em, "Email", "Company", "ICP Score")
    created = leads.create({email: "a@example.com", "Company": "Acme"}, use_field_ids=True)
    assert created["fields"][email] == "a@example.com" and created["fields"][company] == "Acme"
    patched = leads.update(created["id"], {score: 4, "Company": "Beta"})
    assert patched["fields"]["ICP Score"] == 4 and patched["fields"]["Company"] == "Beta"
    (batch,) = leads.batch_update(
        [{"id": created["id"], "fields": {company: "Gamma"}}], use_field_ids=True
    )
    assert batch["fields"][company] == "Gamma"
    replaced = leads.update(created["id"], {email: "b@example.com"}, replace=True)
    assert set(replaced["fields"]) == {"Email", "lastModifiedTime"}


def test_write__query_parameter_does_not_key_a_write_answer(em: AirtableEmulator) -> None:
    (email,) = ids(em, "Email")
    response = call(
        em,
        "POST",
        records_path(em),
        params={"returnFieldsByFieldId": "1"},
        json={"fields": {email: "a@example.com"}},
    )
    assert response.status_code == 200 and response.json()["fields"] == {
        "Email": "a@example.com",
        "lastModifiedTime": response.json()["createdTime"],
    }


def test_write__upsert_merges_on_a_field_id(em: AirtableEmulator, leads: pyairtable.Table) -> None:
    email, score = ids(em, "Email", "ICP Score")
    existing = em.create("Leads", {"Email": "a@example.com", "ICP Score": 1})["id"]
    result = leads.batch_upsert(
        [{"fields": {email: "a@example.com", score: 7}}, {"fields": {email: "n@example.com"}}],
        key_fields=[email],
    )
    assert result["updatedRecords"] == [existing] and len(result["createdRecords"]) == 1
    assert (em.get("Leads", existing) or {})["fields"]["ICP Score"] == 7


def test_write__one_field_by_name_and_id_at_once_is_refused(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    (email,) = ids(em, "Email")
    with pytest.raises(requests.HTTPError) as exc:
        leads.create({email: "a@example.com", "Email": "b@example.com"})
    assert error_type(exc) == "INVALID_REQUEST_UNKNOWN"
    assert em.records("Leads") == []


@pytest.mark.parametrize("key", ["fldNOSUCHFIELD000", "email"])
def test_write__unknown_id_or_wrong_case_name_is_unknown_field(
    leads: pyairtable.Table, key: str
) -> None:
    with pytest.raises(requests.HTTPError) as exc:
        leads.create({key: "a@example.com"})
    assert error_type(exc) == "UNKNOWN_FIELD_NAME"
    assert exc.value.response.json()["error"]["message"] == f'Unknown field name: "{key}"'


# -- renames ---------------------------------------------------------------------------------------


def test_rename__id_survives_and_old_name_is_unknown_everywhere(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    (company,) = ids(em, "Company")
    record_id = em.create("Leads", {"Company": "Acme"})["id"]
    em.rename_field("Leads", "Company", "Organisation")
    assert em.field_id("Leads", "Organisation") == company
    with pytest.raises(requests.HTTPError) as write:
        leads.update(record_id, {"Company": "Beta"})
    assert error_type(write) == "UNKNOWN_FIELD_NAME"
    with pytest.raises(requests.HTTPError) as formula:
        leads.all(formula="{Company} = 'Acme'")
    assert error_type(formula) == "INVALID_FILTER_BY_FORMULA"
    with pytest.raises(requests.HTTPError) as fields:
        leads.all(fields=["Company"])
    assert error_type(fields) == "UNKNOWN_FIELD_NAME"
    assert leads.update(record_id, {company: "Beta"})["fields"]["Organisation"] == "Beta"
    (found,) = leads.all(formula="{Organisation} = 'Beta'", use_field_ids=True)
    assert found["fields"][company] == "Beta"


def test_rename__meta_shows_the_new_name_under_the_same_id(
    em: AirtableEmulator, leads: pyairtable.Table
) -> None:
    (company,) = ids(em, "Company")
    em.rename_field("Leads", "Company", "Organisation")
    schema = leads.schema(force=True)
    assert schema.field(company).name == "Organisation"
    assert "Company" not in [f.name for f in schema.fields]


def test_rename__to_a_name_in_use_or_from_an_unknown_one_fails(em: AirtableEmulator) -> None:
    with pytest.raises(ValueError, match="already exists"):
        em.rename_field("Leads", "Company", "Email")
    with pytest.raises(Exception, match="Unknown field name"):
        em.rename_field("Leads", "Nope", "Other")
