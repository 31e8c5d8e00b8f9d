"""Field types in the Airtable emulator: selects, last-modified-time options, dates, other real
types with their real value shapes, read-only types, and the metadata API describing them all.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyairtable
import pytest
import requests
from pyairtable.models import schema as S

from reconciler.emulators.airtable import (
    DEFAULT_COLLABORATORS,
    FORMULA_ERROR,
    NOT_A_NUMBER,
    AirtableEmulator,
)
from tests.airtable_fixtures import api, em, server  # noqa: F401  (fixtures)
from tests.test_emulator_airtable import call, error_type

T0 = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)
ADA = dict(DEFAULT_COLLABORATORS[0])


def deals(em: AirtableEmulator, api: pyairtable.Api) -> pyairtable.Table:
    """A Deals table with select fields, through pyairtable."""
    em.add_table(
        "Deals",
        {
            "Name": "singleLineText",
            "Stage": {"type": "singleSelect", "options": {"choices": ["Open", "Won"]}},
            "Tags": {
                "type": "multipleSelects",
                "options": {"choices": [{"name": "vip", "color": "redBright"}, "new"]},
            },
        },
    )
    return api.table(em.base_id, "Deals")


# -- selects ---------------------------------------------------------------------------------------


def test_select__unknown_option_is_422_with_the_real_message(
    em: AirtableEmulator, api: pyairtable.Api
) -> None:
    table = deals(em, api)
    for fields, name in [({"Stage": "Lost"}, "Lost"), ({"Tags": ["vip", "cold"]}, "cold")]:
        with pytest.raises(requests.HTTPError) as exc:
            table.create(fields)
        assert error_type(exc) == "INVALID_MULTIPLE_CHOICE_OPTIONS"
        message = exc.value.response.json()["error"]["message"]
        assert message == f'Insufficient permissions to create new select option ""{name}""'
    assert em.records("Deals") == []
    created = table.create({"Stage": "Won", "Tags": ["new", "vip"]})
    assert created["fields"] == {"Stage": "Won", "Tags": ["new", "vip"]}


def test_select__typecast_creates_the_option_and_meta_shows_it(
    em: AirtableEmulator, api: pyairtable.Api
) -> None:
    table = deals(em, api)
    created = table.create({"Stage": "Lost", "Tags": "vip, cold"}, typecast=True)
    assert created["fields"] == {"Stage": "Lost", "Tags": ["vip", "cold"]}
    stage = api.base(em.base_id).schema(force=True).table("Deals").field("Stage")
    assert isinstance(stage, S.SingleSelectFieldSchema)
    assert [c.name for c in stage.options.choices] == ["Open", "Won", "Lost"]
    assert all(
        c.id.startswith("sel") and len(c.id) == 17 and c.color for c in stage.options.choices
    )
    assert table.create({"Stage": "Lost"})["fields"]["Stage"] == "Lost"


def test_select__a_refused_request_creates_no_option(
    em: AirtableEmulator, api: pyairtable.Api
) -> None:
    table = deals(em, api)
    with pytest.raises(requests.HTTPError):
        table.batch_create([{"Stage": "Lost"}, {"Name": 5}], typecast=False)
    with pytest.raises(requests.HTTPError):
        table.batch_create([{"Stage": "Lost"}, {"Nope": 1}], typecast=True)
    stage = em.table("Deals").field("Stage")
    assert stage.choice_names() == ["Open", "Won"]


def test_select__choices_in_meta_have_id_name_color(em: AirtableEmulator) -> None:
    em.add_table("Deals", {"Tags": {"type": "multipleSelects", "options": {"choices": ["a"]}}})
    body = call(em, "GET", f"/v0/meta/bases/{em.base_id}/tables").json()
    (field,) = next(t for t in body["tables"] if t["name"] == "Deals")["fields"]
    (choice,) = field["options"]["choices"]
    assert set(choice) == {"id", "name", "color"} and choice["name"] == "a"


# -- last modified time ----------------------------------------------------------------------------


def watched_table(em: AirtableEmulator, result: str = "dateTime") -> str:
    """A table whose 'Stage changed' field watches only Stage."""
    return em.add_table(
        "Watched",
        {
            "Name": "singleLineText",
            "Stage": "singleLineText",
            "Notes": "multilineText",
            "Stage changed": {
                "type": "lastModifiedTime",
                "options": {"referencedFieldIds": ["Stage"], "result": result},
            },
            "Any change": "lastModifiedTime",
        },
    )


def _watched_record(
    em: AirtableEmulator, api: pyairtable.Api
) -> tuple[pyairtable.Table, dict[str, Any]]:
    """The ``Watched`` table and a record created at ``T0`` at stage ``new``; the clock then
    stands an hour later."""
    watched_table(em)
    table = api.table(em.base_id, "Watched")
    em.clock.frozen = T0
    record = table.create({"Name": "a", "Stage": "new"})
    em.clock.frozen = T0 + timedelta(hours=1)
    return table, dict(record)


def test_lmt__watching_some_fields_moves_only_when_they_change(
    em: AirtableEmulator, api: pyairtable.Api
) -> None:
    table, record = _watched_record(em, api)
    notes = table.update(record["id"], {"Notes": "called"})
    assert notes["fields"]["Stage changed"] == "2026-11-20T10:00:00.000Z"
    assert notes["fields"]["Any change"] == "2026-11-20T11:00:00.000Z"
    em.clock.frozen = T0 + timedelta(hours=2)
    stage = table.update(record["id"], {"Stage": "won"})
    assert stage["fields"]["Stage changed"] == "2026-11-20T12:00:00.000Z"
    found = table.all(formula="{Stage changed} >= DATETIME_PARSE('2026-11-20T11:30:00.000Z')")
    assert [r["id"] for r in found] == [record["id"]]


def test_lmt__writing_a_watched_field_its_own_value_moves_nothing(
    em: AirtableEmulator, api: pyairtable.Api
) -> None:
    table, record = _watched_record(em, api)
    same = table.update(record["id"], {"Stage": "new"})
    assert same["fields"]["Stage changed"] == "2026-11-20T10:00:00.000Z"
    assert same["fields"]["Any change"] == "2026-11-20T10:00:00.000Z"


def test_lmt__watching_an_unset_field_shows_the_creation_time(em: AirtableEmulator) -> None:
    watched_table(em)
    record = em.create("Watched", {"Name": "a"}, modified_at=T0)
    assert record["fields"]["Stage changed"] == "2026-11-20T10:00:00.000Z"


def test_lmt__date_result_reads_as_a_date(em: AirtableEmulator, api: pyairtable.Api) -> None:
    watched_table(em, result="date")
    table = api.table(em.base_id, "Watched")
    em.clock.frozen = T0 + timedelta(hours=15)  # 2026-11-21T01:00Z
    record = table.create({"Stage": "new"})
    assert record["fields"]["Stage changed"] == "2026-11-21"
    assert table.all(formula="IS_SAME({Stage changed}, DATETIME_PARSE('2026-11-21'), 'day')")


def test_lmt__a_result_given_as_none_is_left_out_and_values_stay_date_times(
    em: AirtableEmulator, api: pyairtable.Api
) -> None:
    """pyairtable's ``LastModifiedTimeFieldOptions.result`` is optional: a schema may not say
    what the field shows."""
    em.add_table(
        "Silent",
        {
            "Name": "singleLineText",
            "Changed": {"type": "lastModifiedTime", "options": {"result": None}},
        },
    )
    changed = api.base(em.base_id).schema().table("Silent").field("Changed")
    assert isinstance(changed, S.LastModifiedTimeFieldSchema)
    assert changed.options.result is None
    assert "result" not in changed.model_dump(by_alias=True, exclude_none=True)["options"]
    em.clock.frozen = T0
    record = api.table(em.base_id, "Silent").create({"Name": "a"})
    assert record["fields"]["Changed"] == "2026-11-20T10:00:00.000Z"


def test_lmt__meta_options_have_the_real_shape(em: AirtableEmulator, api: pyairtable.Api) -> None:
    watched_table(em, result="date")
    schema = api.base(em.base_id).schema().table("Watched")
    changed = schema.field("Stage changed")
    assert isinstance(changed, S.LastModifiedTimeFieldSchema)
    assert changed.options.is_valid is True
    assert changed.options.referenced_field_ids == [schema.field("Stage").id]
    assert isinstance(changed.options.result, S.DateFieldConfig)
    default = schema.field("Any change")
    assert isinstance(default, S.LastModifiedTimeFieldSchema)
    assert default.options.referenced_field_ids == []
    assert isinstance(default.options.result, S.DateTimeFieldConfig)
    leads = api.base(em.base_id).schema().table("Leads").field("lastModifiedTime")
    assert leads.model_dump(by_alias=True, exclude_none=True)["options"] == {
        "isValid": True,
        "referencedFieldIds": [],
        "result": {
            "type": "dateTime",
            "options": {
                "timeZone": "utc",
                "dateFormat": {"format": "YYYY-MM-DD", "name": "iso"},
                "timeFormat": {"format": "HH:mm", "name": "24hour"},
            },
        },
    }


# -- dates -----------------------------------------------------------------------------------------


def test_date__is_date_only(em: AirtableEmulator, api: pyairtable.Api) -> None:
    em.add_table("Events", {"Name": "singleLineText", "On": "date"})
    table = api.table(em.base_id, "Events")
    assert table.create({"On": "2026-11-20"})["fields"]["On"] == "2026-11-20"
    cast = table.create({"On": "2026-11-21T23:30:00-02:00"}, typecast=True)
    assert cast["fields"]["On"] == "2026-11-22"
    for bad in ("2026-11-20T10:00:00.000Z", "20/11/2026", 20261120):
        with pytest.raises(requests.HTTPError) as exc:
            table.create({"On": bad})
        assert error_type(exc) == "INVALID_VALUE_FOR_COLUMN"
    found = table.all(formula="IS_AFTER({On}, DATETIME_PARSE('2026-11-21'))")
    assert [r["fields"]["On"] for r in found] == ["2026-11-22"]


# -- other types -----------------------------------------------------------------------------------


def zoo(em: AirtableEmulator) -> str:
    """A table with one field of many real types; returns its id."""
    other = em.add_table("Other", {"Name": "singleLineText"})
    return em.add_table(
        "Zoo",
        {
            "Name": "singleLineText",
            "Code": "barcode",
            "Stars": {"type": "rating", "options": {"max": 3}},
            "Owner": "singleCollaborator",
            "Team": "multipleCollaborators",
            "Links": {"type": "multipleRecordLinks", "options": {"linkedTableId": other}},
            "Summary": "aiText",
            "Open": "button",
            "Total": "rollup",
            "Lookup": "multipleLookupValues",
            "Count": "count",
            "Made by": "createdBy",
            "Edited by": "lastModifiedBy",
            "Calc": "formula",
            "Number": "autoNumber",
            "Created": {"type": "createdTime", "options": {"result": "date"}},
            "Spent": "duration",
            "Share": "percent",
            "Price": "currency",
            "Site": "url",
            "Body": "richText",
        },
    )


def test_types__real_value_shapes(em: AirtableEmulator, api: pyairtable.Api) -> None:
    zoo(em)
    linked = em.create("Other", {"Name": "x"})["id"]
    table = api.table(em.base_id, "Zoo")
    record = table.create(
        {
            "Code": {"text": "0123", "type": "upce"},
            "Stars": 3,
            "Owner": {"email": "ada@example.com"},
            "Team": [ADA["id"]],
            "Links": [linked],
        }
    )
    summary = {"state": "generated", "isStale": False, "value": "A lead."}
    em.set_computed("Zoo", record["id"], "Summary", summary)
    em.set_computed("Zoo", record["id"], "Open", {"label": "Open", "url": "https://x.test"})
    fields = table.get(record["id"])["fields"]
    assert fields["Code"] == {"text": "0123", "type": "upce"}
    assert fields["Stars"] == 3 and fields["Owner"] == ADA and fields["Team"] == [ADA]
    assert fields["Links"] == [linked] and fields["Summary"] == summary
    assert fields["Open"] == {"label": "Open", "url": "https://x.test"}
    assert fields["Number"] == 1 and fields["Created"] == record["createdTime"][:10]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"Stars": 4}, "INVALID_VALUE_FOR_COLUMN"),
        ({"Stars": 1.5}, "INVALID_VALUE_FOR_COLUMN"),
        ({"Code": "0123"}, "INVALID_VALUE_FOR_COLUMN"),
        ({"Owner": {"email": "nobody@example.com"}}, "INVALID_VALUE_FOR_COLUMN"),
        ({"Links": ["recNOSUCHRECORD00"]}, "ROW_DOES_NOT_EXIST"),
        ({"Links": "recNOSUCHRECORD00"}, "INVALID_VALUE_FOR_COLUMN"),
    ],
)
def test_types__bad_values_are_422(
    em: AirtableEmulator, api: pyairtable.Api, fields: dict[str, Any], expected: str
) -> None:
    zoo(em)
    with pytest.raises(requests.HTTPError) as exc:
        api.table(em.base_id, "Zoo").create(fields)
    assert error_type(exc) == expected


@pytest.mark.parametrize(
    "name",
    ["Summary", "Open", "Total", "Lookup", "Count", "Made by", "Edited by", "Calc", "Number"],
)
def test_types__read_only_fields_refuse_writes(
    em: AirtableEmulator, api: pyairtable.Api, name: str
) -> None:
    zoo(em)
    with pytest.raises(requests.HTTPError) as exc:
        api.table(em.base_id, "Zoo").create({name: "x"}, typecast=True)
    assert error_type(exc) == "INVALID_VALUE_FOR_COLUMN"
    message = exc.value.response.json()["error"]["message"]
    assert message == f'Field "{name}" cannot accept a value because the field is computed'


def test_types__a_failed_computation_reads_as_its_error(
    em: AirtableEmulator, api: pyairtable.Api
) -> None:
    zoo(em)
    record_id = em.create("Zoo", {"Name": "a"})["id"]
    em.set_computed("Zoo", record_id, "Calc", FORMULA_ERROR)
    em.set_computed("Zoo", record_id, "Total", NOT_A_NUMBER)

    fields = api.table(em.base_id, "Zoo").get(record_id)["fields"]

    assert fields["Calc"] == {"error": "#ERROR!"}
    assert fields["Total"] == {"specialValue": "NaN"}
    for other in ({"label": "x"}, {"error": 1}, {"specialValue": "NaN", "error": "#ERROR!"}):
        with pytest.raises(ValueError, match="a failed computation's error"):
            em.set_computed("Zoo", record_id, "Calc", other)


def test_types__server_maintained_cells_cannot_be_set_directly(em: AirtableEmulator) -> None:
    zoo(em)
    record_id = em.create("Zoo", {"Name": "a"})["id"]
    for name in ("Number", "Created", "Name"):
        with pytest.raises(ValueError, match="not a settable computed field"):
            em.set_computed("Zoo", record_id, name, 1)


# -- the metadata API ------------------------------------------------------------------------------


def test_meta__every_type_parses_with_pyairtable_models(
    em: AirtableEmulator, api: pyairtable.Api
) -> None:
    zoo(em)
    em.add_field("Zoo", "Due", "dateTime", description="When it is due")
    schema = api.base(em.base_id).schema().table("Zoo")
    unknown = [f.name for f in schema.fields if isinstance(f, S.UnknownFieldSchema)]
    assert unknown == []
    assert schema.field("Due").description == "When it is due"
    stars = schema.field("Stars")
    assert isinstance(stars, S.RatingFieldSchema) and stars.options.max == 3
    assert isinstance(schema.field("Links"), S.MultipleRecordLinksFieldSchema)
    checkbox = api.base(em.base_id).schema().table("Leads").field("Booked")
    assert isinstance(checkbox, S.CheckboxFieldSchema) and checkbox.options.icon == "check"


def test_meta__options_per_type_and_no_description_unless_set(em: AirtableEmulator) -> None:
    body = call(em, "GET", f"/v0/meta/bases/{em.base_id}/tables").json()
    fields = {f["name"]: f for f in body["tables"][0]["fields"]}
    assert fields["ICP Score"]["options"] == {"precision": 0}
    assert fields["Booked At"]["options"]["timeFormat"] == {"name": "24hour", "format": "HH:mm"}
    assert "options" not in fields["Email"] and "description" not in fields["Email"]


def test_meta__views_and_include_visible_field_ids(em: AirtableEmulator) -> None:
    path = f"/v0/meta/bases/{em.base_id}/tables"
    (view,) = call(em, "GET", path).json()["tables"][0]["views"]
    assert view["type"] == "grid" and view["id"].startswith("viw") and "visibleFieldIds" not in view
    included = call(em, "GET", path, params={"include[]": "visibleFieldIds"}).json()
    (view,) = included["tables"][0]["views"]
    assert view["visibleFieldIds"] == [f["id"] for f in included["tables"][0]["fields"]]
    bad = call(em, "GET", path, params={"include[]": "everything"})
    assert bad.status_code == 422
    listed = call(em, "GET", f"/v0/{em.base_id}/Leads", params={"view": view["name"]})
    assert listed.status_code == 200
